#pragma once
// NPCORE_API marks what the shared library exports; everything else in it is hidden
// (-fvisibility=hidden), so a program sees only the declarations in include/npcore/.
#if defined(_WIN32)
#define NPCORE_API
#elif defined(__GNUC__) || defined(__clang__)
#define NPCORE_API __attribute__((visibility("default")))
#else
#define NPCORE_API
#endif
