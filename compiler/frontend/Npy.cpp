#include "Npy.h"
#include "JsonFile.h"
#include "search/Checked.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace einstruct {

namespace {

// numpy's own limit on the number of axes (NPY_MAXDIMS).
constexpr size_t kMaxNpyAxes = 64;

// The value text after 'key': in the header dict, or empty.
std::string field(const std::string &h, const std::string &key, size_t &at) {
  size_t k = h.find("'" + key + "'");
  if (k == std::string::npos)
    return "";
  size_t colon = h.find(':', k);
  if (colon == std::string::npos)
    return "";
  at = colon + 1;
  while (at < h.size() && h[at] == ' ')
    ++at;
  return h.substr(at);
}

// Column-major data (np.save of a transposed array) into C order. Size-1
// axes do not move anything and are dropped first; the Fortran offset is
// then kept up to date as the C-order index counts, so the cost is linear
// in the elements whatever the number of axes.
std::vector<float> fortranToC(const std::vector<int64_t> &shape,
                              const std::vector<float> &in) {
  std::vector<int64_t> dims, fstride;
  int64_t stride = 1;
  for (int64_t d : shape) {
    if (d != 1) {
      dims.push_back(d);
      fstride.push_back(stride);
    }
    stride *= d;
  }
  if (dims.size() < 2)
    return in;
  std::vector<float> out(in.size());
  std::vector<int64_t> idx(dims.size(), 0);
  int64_t f = 0;
  for (size_t c = 0; c < in.size(); ++c) {
    out[c] = in[size_t(f)];
    for (size_t k = dims.size(); k-- > 0;) {
      f += fstride[k];
      if (++idx[k] < dims[k])
        break;
      f -= dims[k] * fstride[k];
      idx[k] = 0;
    }
  }
  return out;
}

} // namespace

Result<NpyArray> parseNpy(const std::string &b, const std::string &src) {
  auto fail = [&](size_t offset, const std::string &msg) {
    return Error{fmt::format("{}: byte {}: {}", src, offset, msg)};
  };
  static const char magic[] = "\x93NUMPY";
  if (b.size() < 10 || std::memcmp(b.data(), magic, 6) != 0)
    return fail(0, "not a .npy file (no \\x93NUMPY magic)");
  int major = (unsigned char)b[6];
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = (unsigned char)b[8] | (unsigned char)b[9] << 8;
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12)
      return fail(b.size(), "truncated header length");
    headerLen = size_t((unsigned char)b[8]) | size_t((unsigned char)b[9]) << 8 |
                size_t((unsigned char)b[10]) << 16 |
                size_t((unsigned char)b[11]) << 24;
    headerStart = 12;
  } else {
    return fail(6, fmt::format("unsupported .npy version {}", major));
  }
  if (headerStart + headerLen > b.size())
    return fail(b.size(), fmt::format("truncated header: {} bytes promised",
                                      headerLen));
  std::string h = b.substr(headerStart, headerLen);
  // A Python literal: "key" is as valid as 'key'.
  std::replace(h.begin(), h.end(), '"', '\'');
  size_t at = 0;
  std::string descr = field(h, "descr", at);
  if (descr.rfind("'<f4'", 0) != 0 && descr.rfind("'float32'", 0) != 0)
    return fail(headerStart + at,
                fmt::format("dtype must be little-endian float32 '<f4', "
                            "found {}",
                            descr.substr(0, descr.find_first_of(",}"))));
  std::string order = field(h, "fortran_order", at);
  bool fortran = order.rfind("True", 0) == 0;
  if (!fortran && order.rfind("False", 0) != 0)
    return fail(headerStart + at, "fortran_order must be True or False");
  std::string shapeText = field(h, "shape", at);
  if (shapeText.empty() || shapeText[0] != '(')
    return fail(headerStart + at, "no shape tuple in the header");
  NpyArray a;
  size_t i = 1;
  int64_t count = 1;
  while (i < shapeText.size() && shapeText[i] != ')') {
    if (shapeText[i] == ' ' || shapeText[i] == ',') {
      ++i;
      continue;
    }
    if (!std::isdigit((unsigned char)shapeText[i]))
      return fail(headerStart + at + i, "bad character in the shape");
    int64_t d = 0;
    while (i < shapeText.size() && std::isdigit((unsigned char)shapeText[i])) {
      if (!appendDigit(d, shapeText[i], kMaxDim))
        return fail(headerStart + at + i, "dimension too large");
      ++i;
    }
    if (a.shape.size() == kMaxNpyAxes)
      return fail(headerStart + at + i,
                  fmt::format("more than {} axes in the shape (numpy's limit)",
                              kMaxNpyAxes));
    a.shape.push_back(d);
    auto c = checkedMul(count, d);
    if (!c || *c > (int64_t(1) << 40))
      return fail(headerStart + at, "too many elements");
    count = *c;
  }
  if (i >= shapeText.size())
    return fail(headerStart + at, "unterminated shape tuple");
  size_t dataStart = headerStart + headerLen;
  size_t want = size_t(count) * 4;
  if (b.size() - dataStart < want)
    return fail(b.size(), fmt::format("truncated data: {} bytes of {} "
                                      "expected from byte {}",
                                      b.size() - dataStart, want, dataStart));
  if (b.size() - dataStart > want)
    return fail(dataStart + want,
                fmt::format("{} unexpected bytes after the data",
                            b.size() - dataStart - want));
  a.data.resize(size_t(count));
  if (want) // an empty vector's data() may be null
    std::memcpy(a.data.data(), b.data() + dataStart, want);
  if (fortran && a.shape.size() > 1)
    a.data = fortranToC(a.shape, a.data);
  return a;
}

Result<NpyArray> readNpy(const std::string &path) {
  // The magic first: a large file of something else is never read whole
  // (parseNpy of the first bytes names the problem).
  auto head = readFileHead(path, 10);
  if (!head)
    return Error{head.error()};
  if (head->bytes.compare(0, 6, "\x93NUMPY") != 0)
    return parseNpy(head->bytes, path);
  auto bytes = readTextFile(path, SIZE_MAX);
  if (!bytes)
    return Error{bytes.error()};
  return parseNpy(*bytes, path);
}

std::string encodeNpy(const NpyArray &a) {
  std::string shape = "(";
  for (size_t k = 0; k < a.shape.size(); ++k)
    shape += std::to_string(a.shape[k]) + (a.shape.size() == 1 ? "," : "") +
             (k + 1 < a.shape.size() ? ", " : "");
  shape += ")";
  std::string header = fmt::format(
      "{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}", shape);
  // Pad so that the data starts on a 64-byte boundary, ending in '\n'.
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += char(1);
  out += char(0);
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char *>(a.data.data()), a.data.size() * 4);
  return out;
}

} // namespace einstruct
