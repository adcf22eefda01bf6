#pragma once
// The x86 intrinsics, for the engine's vector code. GCC 12 reports false "may be used uninitialized"
// warnings inside its AVX-512 intrinsic headers (the _mm512_undefined_* operands of masked and broadcast
// intrinsics), at every use; they are not about our code, so a file that includes this header does not
// get them. Internal to the library.
#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
