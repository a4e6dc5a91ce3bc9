#include "Safetensors.h"
#include "JsonFile.h"
#include "search/Checked.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <fmt/format.h>

namespace einstruct {

namespace {

// The reference implementation refuses headers above 100 MB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

int dtypeSize(const std::string &d) {
  static const std::map<std::string, int> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
  auto it = sizes.find(d);
  return it == sizes.end() ? 0 : it->second;
}

float halfToFloat(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  float v;
  if (exp == 0)
    v = std::ldexp(float(man), -24); // zero or subnormal
  else if (exp == 31)
    v = man ? std::nanf("") : INFINITY;
  else
    v = std::ldexp(float(man | 0x400), exp - 25);
  return sign ? -v : v;
}

uint64_t readLE64(const std::string &b) {
  uint64_t n = 0;
  for (int k = 7; k >= 0; --k)
    n = n << 8 | uint64_t((unsigned char)b[size_t(k)]);
  return n;
}

// A JSON value as a non-negative integer that fits int64.
bool asCount(const nlohmann::json &v, int64_t &out) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= uint64_t(INT64_MAX)) {
    out = int64_t(v.get<uint64_t>());
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    out = v.get<int64_t>();
    return true;
  }
  return false;
}

} // namespace

Result<SafetensorsHeader> parseSafetensorsHeader(const std::string &b,
                                                 const std::string &src) {
  auto fail = [&](size_t offset, const std::string &msg) {
    return Error{fmt::format("{}: byte {}: {}", src, offset, msg)};
  };
  if (b.size() < 8)
    return fail(b.size(), "truncated: no 8-byte header length");
  uint64_t n = readLE64(b);
  if (n > kMaxHeaderBytes)
    return fail(0, fmt::format("header length {} exceeds the format's "
                               "100 MB limit (not a safetensors file?)",
                               n));
  if (n > b.size() - 8)
    return fail(b.size(), fmt::format("truncated header: {} bytes promised, "
                                      "{} present",
                                      n, b.size() - 8));
  std::string text = b.substr(8, size_t(n));
  if (text.empty() || text[0] != '{')
    return fail(8, "the header must be a JSON object");
  if (auto deep = jsonTooDeep(text))
    return fail(8 + *deep, fmt::format("invalid JSON header: nested deeper "
                                       "than {} levels",
                                       kMaxJsonDepth));
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception &e) {
    size_t at = 8;
    if (auto *p = dynamic_cast<const nlohmann::json::parse_error *>(&e))
      at += p->byte > 0 ? p->byte - 1 : 0;
    return fail(at, fmt::format("invalid JSON header: {}", e.what()));
  }
  if (!h.is_object())
    return fail(8, "the header must be a JSON object");
  SafetensorsHeader out;
  out.dataStart = 8 + size_t(n);
  const size_t dataSize = b.size() - out.dataStart;
  // Where a tensor's name appears in the header, for error offsets.
  auto at = [&](const std::string &name) {
    size_t k = text.find(nlohmann::json(name).dump());
    return 8 + (k == std::string::npos ? 0 : k);
  };
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string &name = it.key();
    const auto &v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object())
        return fail(at(name), "__metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          return fail(at(name), fmt::format("__metadata__ '{}' is not a "
                                            "string",
                                            m.key()));
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string &msg) {
      return fail(at(name), fmt::format("tensor '{}': {}", name, msg));
    };
    if (!v.is_object())
      return bad("must be an object with dtype, shape and data_offsets");
    SafetensorsEntry e;
    e.name = name;
    if (!v.contains("dtype") || !v["dtype"].is_string())
      return bad("missing string 'dtype'");
    e.dtype = v["dtype"].get<std::string>();
    int size = dtypeSize(e.dtype);
    if (!size)
      return bad(fmt::format("unknown dtype '{}'", e.dtype));
    if (!v.contains("shape") || !v["shape"].is_array())
      return bad("missing array 'shape'");
    int64_t count = 1;
    for (const auto &d : v["shape"]) {
      int64_t dim;
      if (!asCount(d, dim) || dim > kMaxDim)
        return bad(fmt::format("shape entry {} must be an integer in "
                               "[0, 2^40]",
                               d.dump()));
      auto c = checkedMul(count, dim);
      if (!c || *c > kMaxDim)
        return bad("more than 2^40 elements");
      count = *c;
      e.shape.push_back(dim);
    }
    const auto &off = v.contains("data_offsets") ? v["data_offsets"]
                                                 : nlohmann::json();
    int64_t begin, end;
    if (!off.is_array() || off.size() != 2 || !asCount(off[0], begin) ||
        !asCount(off[1], end) || begin > end)
      return bad("data_offsets must be [BEGIN, END] with 0 <= BEGIN <= END");
    if (uint64_t(end) > dataSize)
      return fail(b.size(), fmt::format("tensor '{}': truncated data: ends "
                                        "at byte {} of a {}-byte data "
                                        "section",
                                        name, end, dataSize));
    e.begin = size_t(begin);
    e.end = size_t(end);
    if (uint64_t(end - begin) != uint64_t(count) * uint64_t(size))
      return bad(fmt::format("data_offsets hold {} bytes but {} elements of "
                             "{} need {}",
                             end - begin, count, e.dtype, count * size));
    out.tensors.push_back(std::move(e));
  }
  // The format requires the data section to be covered without holes or
  // overlaps.
  std::sort(out.tensors.begin(), out.tensors.end(),
            [](const auto &x, const auto &y) {
              return std::tie(x.begin, x.end) < std::tie(y.begin, y.end);
            });
  size_t expect = 0;
  for (const auto &e : out.tensors) {
    if (e.begin != expect)
      return fail(out.dataStart + std::min(e.begin, expect),
                  fmt::format("tensor '{}' starts at data byte {} where {} "
                              "was expected (hole or overlap)",
                              e.name, e.begin, expect));
    expect = e.end;
  }
  if (expect != dataSize)
    return fail(out.dataStart + expect,
                fmt::format("{} bytes after the last tensor's data",
                            dataSize - expect));
  return out;
}

Result<NpyArray> parseSafetensor(const std::string &b, const std::string &src,
                                 const std::string &name) {
  auto h = parseSafetensorsHeader(b, src);
  if (!h)
    return Error{h.error()};
  std::vector<std::string> names;
  for (const auto &e : h->tensors)
    names.push_back(e.name);
  std::sort(names.begin(), names.end());
  const SafetensorsEntry *hit = nullptr;
  for (const auto &e : h->tensors)
    if (e.name == name || (name.empty() && h->tensors.size() == 1))
      hit = &e;
  if (!hit) {
    std::string list = names.empty() ? "none" : "";
    for (size_t k = 0; k < names.size() && k < 20; ++k)
      list += (k ? ", " : "") + names[k];
    if (names.size() > 20)
      list += fmt::format(", ... ({} in all)", names.size());
    if (name.empty())
      return Error{fmt::format("{}: holds {} tensors; name one as "
                               "{}:TENSOR (tensors: {})",
                               src, names.size(), src, list)};
    return Error{fmt::format("{}: no tensor '{}' (tensors: {})", src, name,
                             list)};
  }
  NpyArray a;
  a.shape = hit->shape;
  const char *p = b.data() + h->dataStart + hit->begin;
  size_t count = (hit->end - hit->begin) / size_t(dtypeSize(hit->dtype));
  a.data.resize(count);
  if (hit->dtype == "F32") {
    if (count)
      std::memcpy(a.data.data(), p, count * 4);
  } else if (hit->dtype == "F16" || hit->dtype == "BF16") {
    for (size_t k = 0; k < count; ++k) {
      uint16_t v;
      std::memcpy(&v, p + 2 * k, 2);
      if (hit->dtype == "F16") {
        a.data[k] = halfToFloat(v);
      } else {
        uint32_t bits = uint32_t(v) << 16;
        std::memcpy(&a.data[k], &bits, 4);
      }
    }
  } else if (hit->dtype == "F64") {
    for (size_t k = 0; k < count; ++k) {
      double v;
      std::memcpy(&v, p + 8 * k, 8);
      // float32 is what einstruct computes in: a finite value it cannot
      // hold would silently become inf.
      if (std::isfinite(v) && std::fabs(v) > double(FLT_MAX))
        return Error{fmt::format("{}: tensor '{}' element {} = {:g} is "
                                 "beyond float32's range",
                                 src, hit->name, k, v)};
      a.data[k] = float(v);
    }
  } else {
    return Error{fmt::format("{}: tensor '{}' has dtype {}; einstruct reads "
                             "F32, F16, BF16 and F64",
                             src, hit->name, hit->dtype)};
  }
  return a;
}

std::string encodeSafetensors(
    const std::vector<std::pair<std::string, NpyArray>> &tensors,
    const std::map<std::string, std::string> &metadata) {
  nlohmann::json h = nlohmann::json::object();
  if (!metadata.empty())
    h["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto &[name, a] : tensors) {
    size_t bytes = a.data.size() * 4;
    h[name] = {{"dtype", "F32"},
               {"shape", a.shape},
               {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header = h.dump();
  header += std::string((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int k = 0; k < 8; ++k)
    out[size_t(k)] = char((uint64_t(header.size()) >> (8 * k)) & 0xff);
  out += header;
  for (const auto &t : tensors)
    out.append(reinterpret_cast<const char *>(t.second.data.data()),
               t.second.data.size() * 4);
  return out;
}

Result<NpyArray> readArrayFile(const std::string &spec,
                               std::map<std::string, std::string> *metadata) {
  static const std::string ext = ".safetensors";
  std::string path = spec, name;
  size_t k = spec.rfind(ext + ":");
  if (k != std::string::npos) {
    path = spec.substr(0, k + ext.size());
    name = spec.substr(k + ext.size() + 1);
  }
  bool safetensors = path.size() >= ext.size() &&
                     path.compare(path.size() - ext.size(), ext.size(), ext) ==
                         0;
  if (!safetensors)
    return readNpy(path);
  // The header length against the file's size first: a large file of
  // something else is never read whole.
  auto head = readFileHead(path, 8);
  if (!head)
    return Error{head.error()};
  if (head->bytes.size() == 8) {
    const uint64_t n = readLE64(head->bytes);
    if (n > kMaxHeaderBytes) // the full parse's own message
      return Error{parseSafetensorsHeader(head->bytes, path).error()};
    if (n > head->size - 8)
      return Error{fmt::format("{}: byte {}: truncated header: {} bytes "
                               "promised, {} present",
                               path, head->size, n, head->size - 8)};
  }
  auto bytes = readTextFile(path, SIZE_MAX);
  if (!bytes)
    return Error{bytes.error()};
  auto a = parseSafetensor(*bytes, path, name);
  if (a && metadata)
    if (auto h = parseSafetensorsHeader(*bytes, path))
      *metadata = h->metadata;
  return a;
}

} // namespace einstruct
