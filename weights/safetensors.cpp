#include "weights/safetensors.h"
#include "engine/guard.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "engine/error.h"
#include "weights/json_guard.h"
#include "weights/mapped_file.h"
#include "weights/text_util.h"

namespace npcore {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeader = 100u << 20;  // the reference implementation's limit
// {"name": {"shape": [..]}}: the header object, a tensor's object, its shape or offsets array.
constexpr int kMaxHeaderDepth = 3;

[[noreturn]] void bad(const std::string& source, const std::string& what) {
  throw FormatError(source + ": not a valid safetensors file: " + what);
}

// Multiplies checked against overflow; false if the product exceeds `limit`.
bool mul_ok(uint64_t a, uint64_t b, uint64_t limit, uint64_t* out) {
  if (a != 0 && b > limit / a) return false;
  *out = a * b;
  return *out <= limit;
}

}  // namespace

static SafetensorsFile parse_safetensors_unguarded(const uint8_t* data, size_t size, const std::string& source,
                                  std::shared_ptr<const void> owner) {
  if (size < 8)
    bad(source, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > kMaxHeader) bad(source, "header length " + std::to_string(n) + " exceeds 100 MiB");
  if (n > size - 8)
    bad(source, "header length " + std::to_string(n) + " runs past the end of the file (" +
                    std::to_string(size) + " bytes)");
  const char* hbeg = reinterpret_cast<const char*>(data + 8);

  // Parse the header into a plain (map-backed) json, recording the file's tensor order and refusing
  // repeated keys, which JSON parsers otherwise resolve silently by keeping the last. Depth 1 holds
  // the tensor names, depth 2 the fields of one tensor (or the metadata keys).
  std::vector<std::string> order;
  std::unordered_set<std::string> names, fields;
  const JsonKeyHook on_key = [&](int depth, const std::string& key) {
    if (depth == 1) {
      if (!names.insert(key).second)
        bad(source, "tensor '" + printable(key) + "' appears twice in the header");
      order.push_back(key);
      fields.clear();
    } else if (depth == 2 && !order.empty() && !fields.insert(key).second) {
      const std::string& owner_key = order.back();
      bad(source, (owner_key == "__metadata__" ? std::string("__metadata__")
                                               : "tensor '" + printable(owner_key) + "'") +
                      " has the key '" + printable(key) + "' twice");
    }
  };
  json header;
  std::string why;
  switch (parse_json_limited(hbeg, hbeg + n, kMaxHeaderDepth, &header, &why, on_key)) {
    case JsonParse::Ok:
      break;
    case JsonParse::Invalid:
      bad(source, "header is not valid JSON: " + why);
    case JsonParse::TooDeep:
      bad(source, "header is " + why + " (a safetensors header has " + std::to_string(kMaxHeaderDepth) +
                      ": {name: {shape: [dims]}})");
  }
  if (!header.is_object()) bad(source, "header is not a JSON object");

  SafetensorsFile out;
  out.tensors.set_source(source);
  if (owner) out.tensors.keep_alive(owner);
  const uint8_t* base = data + 8 + n;
  const uint64_t data_size = size - 8 - n;

  struct Range {
    uint64_t b, e;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (const std::string& name : order) {
    const json& v = header.at(name);
    if (name == "__metadata__") {
      if (!v.is_object()) bad(source, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          bad(source,
              "__metadata__ value of '" + printable(m.key()) + "' is not a string: " + brief(m.value()));
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + printable(name) + "'";
    if (!v.is_object()) bad(source, where + " is not described by an object: " + brief(v));
    for (const char* f : {"dtype", "shape", "data_offsets"})
      if (!v.contains(f)) bad(source, where + " lacks '" + f + "'");
    if (v.size() != 3) bad(source, where + " has fields other than dtype, shape, data_offsets: " + brief(v));
    StoredTensor t;
    const json& dtype = v["dtype"];
    if (!dtype.is_string() || !parse_dtype(dtype.get<std::string>(), &t.dtype))
      bad(source, where + " has unknown dtype " + brief(dtype));
    const json& shape = v["shape"];
    if (!shape.is_array() || shape.size() > 16)
      bad(source, where + ": shape must be an array of at most 16 dims, got " + brief(shape));
    uint64_t numel = 1;
    for (const json& d : shape) {
      if (!d.is_number_unsigned())
        bad(source, where + ": shape " + brief(shape) + " has a non-integer or negative dim");
      uint64_t dv = d.get<uint64_t>();
      if (!mul_ok(numel, dv, uint64_t(1) << 56, &numel))
        bad(source, where + ": shape " + brief(shape) + " is too large");
      t.shape.push_back(int64_t(dv));
    }
    const json& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      bad(source, where + ": data_offsets must be two non-negative integers, got " + brief(off));
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e)
      bad(source, where + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(e) + "] decrease");
    if (e > data_size)
      bad(source, where + ": data_offsets end " + std::to_string(e) + " beyond the " +
                      std::to_string(data_size) + " data bytes (file truncated?)");
    uint64_t nbytes = 0;
    if (!mul_ok(numel, dtype_size(t.dtype), std::numeric_limits<uint64_t>::max(), &nbytes) || nbytes != e - b)
      bad(source, where + ": " + std::to_string(e - b) + " bytes for shape " + shape_str(t.shape) + " of " +
                      dtype_name(t.dtype) + ", which needs " + std::to_string(numel * dtype_size(t.dtype)));
    t.data = base + b;
    t.nbytes = size_t(nbytes);
    ranges.push_back({b, e, &name});
    out.tensors.add(name, std::move(t));
  }
  // The format indexes the whole data buffer: the tensors tile it in offset order, with no overlap, no
  // hole and nothing after the last (as the reference implementation's validation requires).
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& x, const Range& y) { return x.b != y.b ? x.b < y.b : x.e < y.e; });
  uint64_t covered = 0;
  const std::string* prev = nullptr;
  for (const Range& r : ranges) {
    if (r.b < covered)
      bad(source, "tensors '" + printable(*prev) + "' and '" + printable(*r.name) + "' overlap");
    if (r.b > covered)
      bad(source, "data bytes [" + std::to_string(covered) + ", " + std::to_string(r.b) +
                      ") belong to no tensor (a hole before tensor '" + printable(*r.name) +
                      "'); the data must be entirely indexed");
    covered = r.e;
    prev = r.name;
  }
  if (covered != data_size)
    bad(source, std::to_string(data_size - covered) +
                    " data bytes after the last tensor belong to no tensor (" + std::to_string(data_size) +
                    " data bytes, tensors cover " + std::to_string(covered) +
                    "); the data must be entirely indexed");
  return out;
}

static SafetensorsFile read_safetensors_unguarded(const std::string& path) {
  auto file = MappedFile::open(path);
  return parse_safetensors(file->data(), file->size(), path, file);
}

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  std::string dir = ".", base = path;
  if (auto slash = path.rfind('/'); slash != std::string::npos) {
    dir = slash == 0 ? "/" : path.substr(0, slash);
    base = path.substr(slash + 1);
  }
  std::string tmpl = dir + "/." + base + ".tmp.XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  fd_ = ::mkstemp(name.data());
  if (fd_ < 0)
    throw FormatError(path + ": cannot create a temporary file in " + dir + ": " + std::strerror(errno));
  tmp_ = name.data();
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::fail(const std::string& what) {
  int e = errno;
  ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_.c_str());
  throw FormatError(path_ + ": " + what + ": " + std::strerror(e));
}

void AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("write failed");
    }
    p += w;
    n -= size_t(w);
  }
}

void AtomicFile::commit() {
  if (::fchmod(fd_, 0644) != 0) fail("chmod failed");
  if (::fsync(fd_) != 0) fail("fsync failed");
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) {
    int e = errno;
    ::unlink(tmp_.c_str());
    throw FormatError(path_ + ": close failed: " + std::strerror(e));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp_.c_str());
    throw FormatError(path_ + ": cannot rename the temporary file into place: " + std::strerror(e));
  }
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, StoredTensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Header in the given order, written entry by entry (an ordered_json would insert each key by a linear
  // search).
  std::string h = "{";
  uint64_t offset = 0;
  std::unordered_set<std::string> names;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__" || !names.insert(name).second)
      throw FormatError(path + ": cannot write tensor name '" + printable(name) + "' (reserved or repeated)");
    nlohmann::ordered_json e;
    e["dtype"] = dtype_name(t.dtype);
    e["shape"] = t.shape;
    e["data_offsets"] = {offset, offset + t.nbytes};
    if (h.size() > 1) h += ',';
    h += nlohmann::json(name).dump();
    h += ':';
    h += e.dump();
    offset += t.nbytes;
  }
  if (!metadata.empty()) {
    if (h.size() > 1) h += ',';
    h += "\"__metadata__\":";
    h += nlohmann::json(metadata).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  h += "}";
  while (h.size() % 8) h.push_back(' ');
  // Streamed: the tensors are written from where they lie (often a memory map), never copied whole.
  AtomicFile f(path);
  uint8_t len[8];
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) len[i] = uint8_t((n >> (8 * i)) & 0xff);
  f.write(len, 8);
  f.write(h.data(), h.size());
  for (const auto& [name, t] : tensors) f.write(t.data, t.nbytes);
  f.commit();
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<Tensor> dense;
  dense.reserve(tensors.size());
  std::vector<std::pair<std::string, StoredTensor>> st;
  for (const auto& [name, t] : tensors) {
    dense.push_back(t.contiguous() ? t : t.clone());
    StoredTensor s;
    s.dtype = DType::F32;
    s.shape.assign(t.shape().begin(), t.shape().end());
    s.data = reinterpret_cast<const uint8_t*>(dense.back().data());
    s.nbytes = size_t(t.numel()) * sizeof(float);
    st.emplace_back(name, std::move(s));
  }
  write_safetensors(path, st, metadata);
}

SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& source,
                                  std::shared_ptr<const void> owner) {
  return guard_call(source, [&] { return parse_safetensors_unguarded(data, size, source, std::move(owner)); });
}

SafetensorsFile read_safetensors(const std::string& path) {
  return guard_call(path, [&] { return read_safetensors_unguarded(path); });
}

}  // namespace npcore
