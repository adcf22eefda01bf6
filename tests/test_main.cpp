// The Catch2 main (one translation unit compiles Catch2's runner).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
