#pragma once
// NumPy's .npy format (numpy.lib.format, what numpy.save / numpy.load read and write): the magic
// "\x93NUMPY", a version byte pair (1.0, 2.0 or 3.0), a little-endian header length (2 bytes for 1.0,
// 4 for 2.0/3.0), a header that is a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape':
// (...)}, then the raw array bytes. The header is parsed by hand with a strict grammar, never evaluated.
// Read: '<f4' (and '<f8', '<f2', converted to float32), C order only. Write: '<f4', C order, version 1.0,
// header padded as numpy 1.24 pads it (so files are byte-identical to numpy.save's), written atomically.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace npcore {

// What a .npy header says (numpy.lib.format.read_array_header_1_0 / _2_0).
struct NpyHeader {
  int major = 1, minor = 0;
  std::string descr;           // "<f4", "<f8" or "<f2" (others are refused by parse_npy_header)
  bool fortran_order = false;  // true is refused by parse_npy (C order only)
  std::vector<int64_t> shape;
  size_t data_offset = 0;  // bytes before the array data (magic, version, length, header)
  size_t item_size = 0;    // bytes per element of descr
};

// Parses and validates the header of a .npy image; `source` (a file name) prefixes every message.
// Throws FormatError naming the source, the bad value and the rule.
NpyHeader parse_npy_header(const uint8_t* data, size_t size, const std::string& source);
// Parses a whole .npy image into a float32 tensor (C order only; sizes checked against `size`).
Tensor parse_npy(const uint8_t* data, size_t size, const std::string& source);
// numpy.load for float arrays: reads (memory-maps) `path`; throws FormatError naming it.
Tensor read_npy(const std::string& path);

// The header bytes numpy.save writes for a float32 C-order array of `shape` (version 1.0, padded with
// spaces and a newline to a multiple of 64 bytes).
std::string npy_header(const Shape& shape);
// numpy.save for float32: writes `t` (a view is written dense) to `path` atomically, so that a failure
// leaves no partial file. Throws FormatError on I/O failure.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace npcore
