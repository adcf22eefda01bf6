#include "weights/torch_checkpoint.h"
#include "engine/guard.h"

#include <zip.h>
#include <zlib.h>

#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>
#include <vector>

#include "engine/error.h"
#include "weights/mapped_file.h"
#include "weights/text_util.h"
#include "weights/torch_pickle.h"
#include "weights/weights_file.h"

namespace npcore {
namespace {

constexpr int64_t kMaxNumel = int64_t(1) << 56;
// data.pkl of a state_dict is kilobytes (about 100 bytes per tensor); this leaves room for 500000 tensors.
constexpr uint64_t kMaxPickleBytes = uint64_t(64) << 20;
// A tensor whose strides repeat elements (expand, broadcast) is gathered into a dense copy. A copy more
// than kMaxExpansion times its storage's bytes plus kExpansionSlack is refused: 744 bytes of file could
// otherwise claim gigabytes. Real state_dicts hold dense tensors, or small broadcasts within the slack.
// All copies together (gathered tensors and decompressed entries) are bounded the same way by the file's
// bytes, since many tensors may each expand one small storage within the per-tensor rule.
constexpr uint64_t kMaxExpansion = 4;
constexpr uint64_t kExpansionSlack = uint64_t(1) << 20;

// Adds `n` bytes of copies to `*copied`, refusing a total (with `skipped` copies a shapes-only read did
// not make) above kMaxExpansion x the file plus the slack.
void charge_copy(uint64_t* copied, uint64_t n, uint64_t skipped, uint64_t file_bytes,
                 const std::string& what) {
  *copied += n;
  const uint64_t total = *copied + skipped;
  if (total > kMaxExpansion * file_bytes + kExpansionSlack)
    throw FormatError(what + " brings the copies made while reading to " + std::to_string(total) +
                      " bytes from a file of " + std::to_string(file_bytes) + " bytes; more than " +
                      std::to_string(kMaxExpansion) + " x the file plus 1 MiB is refused");
}

// The bytes of one root storage (data null in a shapes-only read when they would have to be copied).
struct RootBytes {
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
};
using Resolver = std::function<RootBytes(const TorchStorageRef&)>;

// A buffer of `n` bytes for `what`; running out of memory becomes a FormatError naming it and the size.
std::shared_ptr<std::vector<uint8_t>> allocate(uint64_t n, const std::string& what) {
  try {
    return std::make_shared<std::vector<uint8_t>>(size_t(n));
  } catch (const std::bad_alloc&) {
    throw FormatError(what + ": cannot allocate " + std::to_string(n) + " bytes (out of memory)");
  } catch (const std::length_error&) {
    throw FormatError(what + ": cannot allocate " + std::to_string(n) + " bytes (out of memory)");
  }
}

// Turns the unpickled object into a StateDict: every key a str, every value a tensor inside its storage.
std::string a_type(const PyValue& v) {
  const std::string t = py_type_name(v);
  return (std::string("aeiou").find(t[0]) != std::string::npos ? "an " : "a ") + t;
}

StateDict build_state_dict(const PyValue& top, const TorchUnpickler& up, const Resolver& resolve,
                           const std::string& source, const std::shared_ptr<const void>& owner,
                           TensorData mode, uint64_t file_bytes, uint64_t* copied_bytes) {
  uint64_t skipped = 0;  // gathers a shapes-only read did not make, counted so that both modes refuse alike
  using K = PyValue::Kind;
  if (top.kind != K::Dict)
    throw FormatError(source + ": holds " + a_type(top) + ", not a state_dict (a dict of tensors)");
  // A training checkpoint nests the state_dict: name the key it seems to be under.
  std::string nested;
  for (size_t i = 0; i < top.items.size(); i += 2)
    if (top.items[i]->kind == K::Str && top.items[i + 1]->kind == K::Dict && nested.empty())
      nested = printable(top.items[i]->s);
  StateDict sd(source);
  if (owner) sd.keep_alive(owner);
  for (size_t i = 0; i < top.items.size(); i += 2) {
    const PyValue& k = *top.items[i];
    const PyValue& v = *top.items[i + 1];
    if (k.kind != K::Str)
      throw FormatError(source + ": state_dict has a key of type " + py_type_name(k) + ", not str");
    const std::string& name = k.s;
    const std::string shown = printable(name);
    if (v.kind != K::Tensor) {
      std::string hint;
      if (!nested.empty())
        hint = "; the tensors seem to be nested under '" + nested +
               "': load the file with torch and save that dict on its own (torch.save(ckpt['" + nested +
               "'], ...))";
      else
        hint = "; not a plain state_dict (a training checkpoint?): save model.state_dict() instead";
      throw FormatError(source + ": value of '" + shown + "' is " + a_type(v) + ", not a tensor" + hint);
    }
    const TorchTensorRef& t = *v.tensor;
    const TorchStorageRef& s = up.storages().at(t.storage);
    const uint64_t es = dtype_size(s.dtype);
    const int64_t first = s.is_view ? s.view_offset : 0;
    const int64_t avail = s.is_view ? s.view_numel : s.numel;
    const std::string where = source + ": tensor '" + shown + "' " + shape_str(t.size);
    int64_t numel = 1;
    for (int64_t d : t.size) {
      if (d != 0 && numel > kMaxNumel / d) throw FormatError(where + " has too many elements");
      numel *= d;
    }
    const RootBytes root = resolve(s);
    StoredTensor st;
    st.dtype = s.dtype;
    st.shape = t.size;
    st.nbytes = size_t(uint64_t(numel) * es);
    if (numel == 0) {
      st.data = root.data;
      sd.add(name, std::move(st));
      continue;
    }
    // The last element the tensor reads, in elements of the storage (all terms non-negative).
    int64_t last = t.offset;
    for (size_t d = 0; d < t.size.size(); ++d) {
      const int64_t span = t.size[d] - 1;
      if (t.stride[d] != 0 && span > (kMaxNumel - last) / t.stride[d])
        throw FormatError(where + ": offset " + std::to_string(t.offset) + " and stride " +
                          shape_str(t.stride, "(", ")") + " reach beyond any storage");
      last += span * t.stride[d];
    }
    if (last >= avail)
      throw FormatError(where + " at offset " + std::to_string(t.offset) + " with stride " +
                        shape_str(t.stride, "(", ")") + " needs element " + std::to_string(last) +
                        " of storage '" + printable(s.key) + "', which holds " + std::to_string(avail) +
                        " elements");
    const uint64_t storage_bytes = uint64_t(avail) * es;
    if (st.nbytes > kMaxExpansion * storage_bytes + kExpansionSlack)
      throw FormatError(where + " with stride " + shape_str(t.stride, "(", ")") +
                        " repeats the elements of storage '" + printable(s.key) + "': it would take " +
                        std::to_string(st.nbytes) + " bytes from " + std::to_string(storage_bytes) +
                        " bytes of storage; more than " + std::to_string(kMaxExpansion) +
                        " x the storage plus 1 MiB is refused");
    const uint8_t* base = root.data ? root.data + uint64_t(first) * es : nullptr;
    // Dense in C order (size-1 dims may have any stride): point into the file.
    bool dense = true;
    int64_t expect = 1;
    for (size_t d = t.size.size(); d-- > 0;) {
      if (t.size[d] == 1) continue;
      if (t.stride[d] != expect) dense = false;
      expect *= t.size[d];
    }
    if (dense) {
      st.data = base ? base + uint64_t(t.offset) * es : nullptr;
    } else if (mode == TensorData::ShapesOnly || !base) {
      charge_copy(&skipped, st.nbytes, *copied_bytes, file_bytes,
                  where + " (a dense copy of a strided tensor)");
      st.data = nullptr;  // not gathered: only the shape is wanted
    } else {
      charge_copy(copied_bytes, st.nbytes, skipped, file_bytes,
                  where + " (a dense copy of a strided tensor)");
      auto buf = allocate(st.nbytes, where + " (a dense copy of a strided tensor)");
      const size_t rank = t.size.size();
      std::vector<int64_t> idx(rank, 0);
      int64_t src = t.offset;
      for (int64_t n = 0; n < numel; ++n) {
        std::memcpy(buf->data() + uint64_t(n) * es, base + uint64_t(src) * es, es);
        for (size_t d = rank; d-- > 0;) {
          src += t.stride[d];
          if (++idx[d] < t.size[d]) break;
          src -= t.stride[d] * t.size[d];
          idx[d] = 0;
        }
      }
      st.data = buf->data();
      sd.keep_alive(buf);
    }
    sd.add(name, std::move(st));
  }
  return sd;
}

// ---- zip ---------------------------------------------------------------------------------------------

std::string hex32(uint32_t v) {
  static const char* hex = "0123456789abcdef";
  std::string s = "0x";
  for (int i = 28; i >= 0; i -= 4) s.push_back(hex[(v >> i) & 15]);
  return s;
}

// A libzip source over bytes in memory that records where libzip reads, so that the data of a stored
// entry can be located in the memory map (libzip has no API for an entry's data offset).
struct MemSource {
  const uint8_t* data = nullptr;
  uint64_t size = 0, pos = 0;
  bool recording = false;
  int64_t first_read = -1;
  zip_error_t error;

  static zip_int64_t callback(void* ud, void* buf, zip_uint64_t len, zip_source_cmd_t cmd) {
    auto* m = static_cast<MemSource*>(ud);
    switch (cmd) {
      case ZIP_SOURCE_OPEN:
        m->pos = 0;
        return 0;
      case ZIP_SOURCE_READ: {
        const uint64_t n = std::min<uint64_t>(len, m->size - m->pos);
        if (m->recording && m->first_read < 0) m->first_read = int64_t(m->pos);
        if (n) std::memcpy(buf, m->data + m->pos, n);
        m->pos += n;
        return zip_int64_t(n);
      }
      case ZIP_SOURCE_CLOSE:
        return 0;
      case ZIP_SOURCE_STAT: {
        auto* st = ZIP_SOURCE_GET_ARGS(zip_stat_t, buf, len, &m->error);
        if (!st) return -1;
        zip_stat_init(st);
        st->size = m->size;
        st->valid |= ZIP_STAT_SIZE;
        return sizeof(zip_stat_t);
      }
      case ZIP_SOURCE_ERROR:
        return zip_error_to_data(&m->error, buf, len);
      case ZIP_SOURCE_FREE:
        return 0;
      case ZIP_SOURCE_SEEK: {
        const zip_int64_t p = zip_source_seek_compute_offset(m->pos, m->size, buf, len, &m->error);
        if (p < 0) return -1;
        m->pos = uint64_t(p);
        return 0;
      }
      case ZIP_SOURCE_TELL:
        return zip_int64_t(m->pos);
      case ZIP_SOURCE_SUPPORTS:
        return ZIP_SOURCE_SUPPORTS_SEEKABLE;
      default:
        zip_error_set(&m->error, ZIP_ER_OPNOTSUPP, 0);
        return -1;
    }
  }
};

class ZipReader {
 public:
  ZipReader(const uint8_t* data, size_t size, std::string source) : source_(std::move(source)) {
    mem_.data = data;
    mem_.size = size;
    zip_error_init(&mem_.error);
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t* src = zip_source_function_create(&MemSource::callback, &mem_, &err);
    if (!src) fail_with(err, "cannot read the zip archive");
    za_ = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &err);
    if (!za_) {
      zip_source_free(src);
      fail_with(err, "not a readable zip archive (truncated or damaged?)");
    }
    zip_error_fini(&err);
    const zip_int64_t n = zip_get_num_entries(za_, 0);
    for (zip_int64_t i = 0; i < n; ++i) {
      const char* name = zip_get_name(za_, zip_uint64_t(i), ZIP_FL_ENC_RAW);
      if (!name) throw FormatError(source_ + ": zip entry " + std::to_string(i) + " has no readable name");
      if (!index_.emplace(name, zip_uint64_t(i)).second)
        throw FormatError(source_ + ": zip entry '" + printable(name) + "' appears twice");
    }
  }
  ~ZipReader() {
    if (za_) zip_discard(za_);
    zip_error_fini(&mem_.error);
  }
  ZipReader(const ZipReader&) = delete;
  ZipReader& operator=(const ZipReader&) = delete;

  const std::map<std::string, zip_uint64_t>& entries() const { return index_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }

  zip_stat_t stat(const std::string& name) const {
    zip_stat_t st;
    if (zip_stat_index(za_, index_.at(name), 0, &st) != 0)
      throw FormatError(source_ + ": zip entry '" + printable(name) + "': " + zip_strerror(za_));
    for (auto [flag, what] :
         {std::pair{ZIP_STAT_SIZE, "size"}, std::pair{ZIP_STAT_COMP_METHOD, "compression"},
          std::pair{ZIP_STAT_ENCRYPTION_METHOD, "encryption"}, std::pair{ZIP_STAT_CRC, "CRC-32"}})
      if (!(st.valid & flag))
        throw FormatError(source_ + ": zip entry '" + printable(name) + "' has no " + what + " field");
    return st;
  }

  // Reads (and decompresses, checking the CRC) a whole entry of at most `limit` bytes.
  std::shared_ptr<std::vector<uint8_t>> read(const std::string& name, uint64_t limit) const {
    const zip_stat_t st = stat(name);
    if (st.size > limit)
      throw FormatError(source_ + ": zip entry '" + printable(name) + "' is " + std::to_string(st.size) +
                        " bytes, more than the limit of " + std::to_string(limit) + " bytes for it");
    // A compressed entry cannot inflate more than ~1032:1; refuse sizes the archive cannot hold.
    if (st.comp_method != ZIP_CM_STORE && (st.valid & ZIP_STAT_COMP_SIZE) &&
        st.size / 1100 > st.comp_size + 1024)
      throw FormatError(source_ + ": zip entry '" + printable(name) + "' claims " + std::to_string(st.size) +
                        " bytes from " + std::to_string(st.comp_size) + " compressed");
    auto buf = allocate(st.size, source_ + ": zip entry '" + printable(name) + "'");
    zip_file_t* f = zip_fopen_index(za_, index_.at(name), 0);
    if (!f)
      throw FormatError(source_ + ": cannot open zip entry '" + printable(name) + "': " + zip_strerror(za_));
    uint64_t got = 0;
    for (;;) {
      uint8_t extra;
      uint8_t* dst = got < st.size ? buf->data() + got : &extra;
      const zip_int64_t r = zip_fread(f, dst, got < st.size ? st.size - got : 1);
      if (r < 0) {
        const std::string msg = zip_file_strerror(f);
        zip_fclose(f);
        throw FormatError(source_ + ": cannot read zip entry '" + printable(name) + "': " + msg);
      }
      if (r == 0) break;  // end of data (libzip checks the CRC here)
      got += uint64_t(r);
      if (got > st.size) break;
    }
    zip_fclose(f);
    if (got != st.size)
      throw FormatError(source_ + ": zip entry '" + printable(name) + "' holds " + std::to_string(got) +
                        " bytes, its header says " + std::to_string(st.size));
    return buf;
  }

  // Where the bytes of a stored (uncompressed, unencrypted) entry lie in the input, or null if they cannot
  // be located (then read() it). The position libzip reads from is checked against the bytes it returns,
  // and the located bytes against the entry's CRC-32 (libzip checks it only when it reads an entry itself).
  const uint8_t* locate_stored(const std::string& name, uint64_t size, uint32_t crc) {
    if (size == 0) return mem_.data;
    zip_file_t* f = zip_fopen_index(za_, index_.at(name), 0);
    if (!f)
      throw FormatError(source_ + ": cannot open zip entry '" + printable(name) + "': " + zip_strerror(za_));
    uint8_t probe[64];
    const uint64_t n = std::min<uint64_t>(size, sizeof probe);
    mem_.recording = true;
    mem_.first_read = -1;
    const zip_int64_t r = zip_fread(f, probe, n);
    mem_.recording = false;
    zip_fclose(f);
    const int64_t at = mem_.first_read;
    if (r != zip_int64_t(n) || at < 0 || uint64_t(at) > mem_.size || size > mem_.size - uint64_t(at) ||
        std::memcmp(mem_.data + at, probe, n) != 0)
      return nullptr;
    const uint8_t* p = mem_.data + at;
    // zlib's crc32 takes a uInt length: feed it in chunks.
    uLong c = ::crc32(0L, Z_NULL, 0);
    for (uint64_t done = 0; done < size;) {
      const uInt chunk = uInt(std::min<uint64_t>(size - done, uint64_t(1) << 30));
      c = ::crc32(c, p + done, chunk);
      done += chunk;
    }
    if (uint32_t(c) != crc)
      throw FormatError(source_ + ": zip entry '" + printable(name) + "' fails its CRC-32 check (stored " +
                        hex32(crc) + ", data " + hex32(uint32_t(c)) + "): the file is damaged");
    return p;
  }

 private:
  [[noreturn]] void fail_with(zip_error_t& err, const std::string& what) {
    const std::string msg = zip_error_strerror(&err);
    zip_error_fini(&err);
    throw FormatError(source_ + ": " + what + ": " + msg);
  }
  std::string source_;
  MemSource mem_;
  zip_t* za_ = nullptr;
  std::map<std::string, zip_uint64_t> index_;
};

TorchCheckpoint read_zip(const uint8_t* data, size_t size, const std::string& source,
                         const std::shared_ptr<const void>& owner, TensorData mode) {
  ZipReader zip(data, size, source);
  // The archive folder: the one holding data.pkl (torch names it after the file).
  std::string prefix;
  int found = 0;
  for (const auto& [name, idx] : zip.entries()) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      prefix = name.substr(0, slash + 1);
      ++found;
    }
  }
  if (found == 0)
    throw FormatError(source + ": a zip archive without <archive>/data.pkl: not a torch.save checkpoint");
  if (found > 1) throw FormatError(source + ": a zip archive with several <archive>/data.pkl entries");
  if (zip.has(prefix + "constants.pkl"))
    throw FormatError(source +
                      ": a TorchScript archive (torch.jit.save), not a state_dict saved by torch.save");
  if (zip.has(prefix + "byteorder")) {
    auto bo = zip.read(prefix + "byteorder", 16);
    const std::string order(bo->begin(), bo->end());
    if (order != "little")
      throw FormatError(source + ": byteorder '" + printable(order) +
                        "': only little-endian checkpoints are supported");
  }
  auto pkl = zip.read(prefix + "data.pkl", kMaxPickleBytes);
  TorchUnpickler up(source + " (" + prefix + "data.pkl)");
  const PyValue& top = up.load(pkl->data(), pkl->size());

  std::shared_ptr<std::vector<std::shared_ptr<std::vector<uint8_t>>>> copies =
      std::make_shared<std::vector<std::shared_ptr<std::vector<uint8_t>>>>();
  std::unordered_map<std::string, RootBytes> roots;
  TorchCheckpoint ck;
  Resolver resolve = [&](const TorchStorageRef& s) -> RootBytes {
    if (auto it = roots.find(s.key); it != roots.end()) return it->second;
    const std::string entry = prefix + "data/" + s.key;
    if (!zip.has(entry))
      throw FormatError(source + ": storage '" + printable(s.key) + "' has no zip entry " + printable(entry));
    const zip_stat_t st = zip.stat(entry);
    const uint64_t need = uint64_t(s.numel) * dtype_size(s.dtype);
    if (st.size != need)
      throw FormatError(source + ": storage '" + printable(s.key) + "' (" + printable(entry) + ") holds " +
                        std::to_string(st.size) + " bytes; the pickle says " + std::to_string(s.numel) + " " +
                        dtype_name(s.dtype) + " elements (" + std::to_string(need) + " bytes)");
    RootBytes rb;
    rb.nbytes = need;
    if (mode == TensorData::ShapesOnly) {  // sizes checked; bytes neither located, read nor CRC-checked
      roots.emplace(s.key, rb);
      return rb;
    }
    if (st.comp_method == ZIP_CM_STORE && st.encryption_method == ZIP_EM_NONE)
      rb.data = zip.locate_stored(entry, need, st.crc);
    if (!rb.data) {
      charge_copy(&ck.copied_bytes, need, 0, size,
                  source + ": storage '" + printable(s.key) + "' (" + printable(entry) + ", decompressed)");
      auto buf = zip.read(entry, need);
      copies->push_back(buf);
      rb.data = buf->data();
    }
    roots.emplace(s.key, rb);
    return rb;
  };
  ck.format = TorchFormat::Zip;
  ck.file_bytes = size;
  ck.tensors = build_state_dict(top, up, resolve, source, owner, mode, size, &ck.copied_bytes);
  if (!copies->empty()) ck.tensors.keep_alive(copies);
  return ck;
}

// ---- legacy ------------------------------------------------------------------------------------------

// 0x1950a86a20f9469cfc6c, torch's legacy MAGIC_NUMBER, as pickle's little-endian LONG1 bytes.
const std::string kLegacyMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);
constexpr int64_t kLegacyProtocol = 1001;

TorchCheckpoint read_legacy(const uint8_t* data, size_t size, const std::string& source,
                            const std::shared_ptr<const void>& owner, TensorData mode) {
  using K = PyValue::Kind;
  TorchUnpickler up(source);
  size_t pos = 0;
  auto next = [&]() -> const PyValue& {
    size_t used = 0;
    const PyValue& v = up.load(data + pos, size - pos, &used, pos);
    pos += used;
    return v;
  };
  const PyValue& magic = next();
  if (magic.kind != K::BigInt || magic.s != kLegacyMagic)
    throw FormatError(source + ": not a PyTorch checkpoint: the first pickle is not torch's magic number");
  const PyValue& proto = next();
  if (proto.kind != K::Int || proto.i != kLegacyProtocol)
    throw FormatError(source + ": legacy checkpoint protocol " +
                      (proto.kind == K::Int ? std::to_string(proto.i) : py_type_name(proto)) +
                      ", expected 1001");
  const PyValue& info = next();
  if (info.kind != K::Dict) throw FormatError(source + ": legacy checkpoint system info is not a dict");
  for (size_t i = 0; i < info.items.size(); i += 2)
    if (info.items[i]->kind == K::Str && info.items[i]->s == "little_endian" &&
        !(info.items[i + 1]->kind == K::Bool && info.items[i + 1]->i == 1))
      throw FormatError(source +
                        ": saved on a big-endian machine; only little-endian checkpoints are supported");
  const PyValue& top = next();
  const PyValue& keys = next();
  if (keys.kind != K::List && keys.kind != K::Tuple)
    throw FormatError(source + ": legacy checkpoint storage keys are a " + py_type_name(keys) +
                      ", not a list");

  // The storages follow in the order of the key list: an 8-byte element count, then the elements.
  std::unordered_map<std::string, RootBytes> roots;
  for (const PyValue* k : keys.items) {
    if (k->kind != K::Str)
      throw FormatError(source + ": legacy storage key is a " + py_type_name(*k) + ", not str");
    const std::string key = printable(k->s);
    const TorchStorageRef* ref = up.find_root(k->s);
    if (!ref) throw FormatError(source + ": storage '" + key + "' is listed but no tensor uses it");
    if (roots.count(k->s)) throw FormatError(source + ": storage '" + key + "' is listed twice");
    if (size - pos < 8)
      throw FormatError(source + ": truncated: storage '" + key + "' at byte " + std::to_string(pos) +
                        " lacks its 8-byte element count");
    uint64_t count = 0;
    for (int i = 7; i >= 0; --i) count = (count << 8) | data[pos + size_t(i)];
    if (count != uint64_t(ref->numel))
      throw FormatError(source + ": storage '" + key + "' holds " + std::to_string(int64_t(count)) +
                        " elements; the pickle says " + std::to_string(ref->numel));
    pos += 8;
    const uint64_t nbytes = count * dtype_size(ref->dtype);
    if (nbytes > size - pos)
      throw FormatError(source + ": truncated: storage '" + key + "' needs " + std::to_string(nbytes) +
                        " bytes at byte " + std::to_string(pos) + ", the file has " +
                        std::to_string(size - pos));
    roots.emplace(k->s, RootBytes{data + pos, nbytes});
    pos += size_t(nbytes);
  }
  if (pos != size)
    throw FormatError(source + ": " + std::to_string(size - pos) +
                      " unexpected bytes after the last storage");
  Resolver resolve = [&](const TorchStorageRef& s) -> RootBytes {
    auto it = roots.find(s.key);
    if (it == roots.end())
      throw FormatError(source + ": storage '" + printable(s.key) + "' is not in the storage list");
    return it->second;
  };
  TorchCheckpoint ck;
  ck.format = TorchFormat::Legacy;
  ck.file_bytes = size;
  ck.tensors = build_state_dict(top, up, resolve, source, owner, mode, size, &ck.copied_bytes);
  return ck;
}

}  // namespace

const char* torch_format_name(TorchFormat f) {
  return f == TorchFormat::Zip ? "zip" : "legacy";
}

static TorchCheckpoint parse_torch_checkpoint_unguarded(const uint8_t* data, size_t size, const std::string& source,
                                       std::shared_ptr<const void> owner, TensorData mode) {
  switch (sniff_file_kind(data, size)) {
    case FileKind::TorchZip:
      return read_zip(data, size, source, owner, mode);
    case FileKind::TorchLegacy:
      return read_legacy(data, size, source, owner, mode);
    case FileKind::TorchTar:
      throw FormatError(source +
                        ": a tar-format checkpoint (torch < 0.4); load it with torch and save it again");
    default:
      break;
  }
  // A pickle of another protocol still gets the unpickler's own message.
  if (size >= 2 && data[0] == 0x80) return read_legacy(data, size, source, owner, mode);
  std::string head;
  for (size_t i = 0; i < std::min<size_t>(size, 4); ++i) {
    static const char* hex = "0123456789abcdef";
    head += std::string(i ? " " : "") + hex[data[i] >> 4] + hex[data[i] & 15];
  }
  throw FormatError(source + ": not a PyTorch checkpoint: starts with bytes [" + head +
                    "], expected a zip archive (PK..) or a pickle (80 02)");
}

static TorchCheckpoint read_torch_checkpoint_unguarded(const std::string& path, TensorData mode) {
  auto file = MappedFile::open(path);
  return parse_torch_checkpoint(file->data(), file->size(), path, file, mode);
}

TorchCheckpoint parse_torch_checkpoint(const uint8_t* data, size_t size, const std::string& source,
                                       std::shared_ptr<const void> owner, TensorData mode) {
  return guard_call(source, [&] { return parse_torch_checkpoint_unguarded(data, size, source, std::move(owner), mode); });
}

TorchCheckpoint read_torch_checkpoint(const std::string& path, TensorData mode) {
  return guard_call(path, [&] { return read_torch_checkpoint_unguarded(path, mode); });
}

}  // namespace npcore
