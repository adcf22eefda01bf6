# ctest npcore_install_embed: installs the build to a temporary prefix, builds examples/embed against the
# installed package out of tree, once with find_package(npcore) and once with pkg-config, and runs both
# on a fixture core. Arguments: BUILD_DIR, SOURCE_DIR, WORK_DIR, CXX.
set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${what}:\n${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc})")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(f include/npcore/npcore.h include/npcore/model.h include/npcore/npcore_c.h include/npcore/version.h
    bin/npcore)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "install: ${prefix}/${f} is missing")
  endif()
endforeach()
file(GLOB_RECURSE internal ${prefix}/include/*/engine/* ${prefix}/include/engine/* ${prefix}/include/cores/*)
if(internal)
  message(FATAL_ERROR "install: internal headers installed: ${internal}")
endif()
file(GLOB_RECURSE pcs ${prefix}/*/npcore.pc)
list(GET pcs 0 pc)
get_filename_component(pcdir ${pc} DIRECTORY)
get_filename_component(libdir ${pcdir} DIRECTORY)

set(core ${SOURCE_DIR}/tests/fixtures/stacked2d_strides.json)
set(weights ${SOURCE_DIR}/tests/fixtures/stacked2d_strides.weights.safetensors)

# 1. CMake: find_package(npcore) -> npcore::npcore
run("configure examples/embed" ${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/embed -B ${WORK_DIR}/cmake-build
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CXX})
run("build examples/embed" ${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
run("run embed (CMake)" ${WORK_DIR}/cmake-build/embed ${core} ${weights} 5)
if(NOT last_output MATCHES "Stacked2dCore.*5 frames: min")
  message(FATAL_ERROR "embed (CMake) printed no frame summary")
endif()
# A whole model with a shifter (ModelHandle, every data_key per frame).
run("run embed --model (CMake)" ${WORK_DIR}/cmake-build/embed --model
  ${SOURCE_DIR}/tests/fixtures/models/model_stacked2d_gaussian_shifter.json
  ${SOURCE_DIR}/tests/fixtures/models/model_stacked2d_gaussian_shifter.weights.safetensors 3 36 64)
if(NOT last_output MATCHES "FiringRateEncoder\\(Stacked2dCore\\).*session_a \\[1, 40\\].*3 frames: min")
  message(FATAL_ERROR "embed --model (CMake) printed no frame summary")
endif()
# No ISA or OpenMP flag reached the consumer's compile line.
file(GLOB_RECURSE flags ${WORK_DIR}/cmake-build/CMakeFiles/embed.dir/flags.make)
file(READ ${flags} flag_text)
if(flag_text MATCHES "march|fopenmp")
  message(FATAL_ERROR "consumer compile flags carry -march or -fopenmp: ${flag_text}")
endif()

# 1b. CMake with the static library (npcore::npcore_static brings oneDNN, libzip, zlib, libgomp).
file(MAKE_DIRECTORY ${WORK_DIR}/static-src)
configure_file(${SOURCE_DIR}/examples/embed/embed.cpp ${WORK_DIR}/static-src/embed.cpp COPYONLY)
file(WRITE ${WORK_DIR}/static-src/CMakeLists.txt "cmake_minimum_required(VERSION 3.16)\n"
  "project(npcore_embed_static LANGUAGES CXX)\nfind_package(npcore REQUIRED)\n"
  "add_executable(embed embed.cpp)\ntarget_link_libraries(embed PRIVATE npcore::npcore_static)\n")
run("configure embed (static)" ${CMAKE_COMMAND} -S ${WORK_DIR}/static-src -B ${WORK_DIR}/static-build
  -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CXX})
run("build embed (static)" ${CMAKE_COMMAND} --build ${WORK_DIR}/static-build)
run("run embed (static)" ${WORK_DIR}/static-build/embed ${core} ${weights} 3)
if(NOT last_output MATCHES "Stacked2dCore.*3 frames: min")
  message(FATAL_ERROR "embed (static) printed no frame summary")
endif()

# 2. pkg-config
set(ENV{PKG_CONFIG_PATH} ${pcdir})
run("pkg-config" pkg-config --cflags --libs npcore)
string(STRIP "${last_output}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
if(pc_flags MATCHES "march|fopenmp")
  message(FATAL_ERROR "pkg-config flags carry -march or -fopenmp: ${pc_flags}")
endif()
run("compile with pkg-config" ${CXX} -std=c++17 -O2 ${SOURCE_DIR}/examples/embed/embed.cpp -o ${WORK_DIR}/embed-pc
  ${pc_flags} -Wl,-rpath,${libdir})
run("run embed (pkg-config)" ${WORK_DIR}/embed-pc ${core} ${weights} 5)
if(NOT last_output MATCHES "Stacked2dCore.*5 frames: min")
  message(FATAL_ERROR "embed (pkg-config) printed no frame summary")
endif()
# 3. The installed Python module finds the installed library (when NumPy is there).
execute_process(COMMAND /usr/bin/python3 -c "import numpy" RESULT_VARIABLE no_numpy OUTPUT_QUIET ERROR_QUIET)
if(no_numpy EQUAL 0)
  set(ENV{PYTHONPATH} ${prefix}/lib/python3/dist-packages)
  unset(ENV{NPCORE_LIBRARY})
  file(WRITE ${WORK_DIR}/use_npcore.py "import numpy as np\nimport npcore\n"
    "c = npcore.load('${core}', '${weights}')\n"
    "y = c(np.zeros((1, 1, 64, 96), np.float32))\n"
    "print('npcore', npcore.version(), c.type, y.shape, npcore.__file__)\n"
    "assert y.shape == (1, 16, 8, 12)\n")
  run("installed python module" /usr/bin/python3 ${WORK_DIR}/use_npcore.py)
  if(NOT last_output MATCHES "Stacked2dCore.*prefix/lib/python3")
    message(FATAL_ERROR "the installed python module did not run from the prefix")
  endif()
else()
  message(STATUS "NumPy not importable: installed python module not tried")
endif()
# The installed tool runs and reports the version of CMakeLists.txt.
run("installed npcore --version" ${prefix}/bin/npcore --version)
message(STATUS "install, CMake and pkg-config consumers: ok")
