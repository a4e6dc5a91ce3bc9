// .npy and safetensors readers: exact values (round trips, half-precision
// conversions against hand-computed bit patterns) and every rejection with
// the byte offset where the file goes wrong.
#include "compiler/frontend/JsonFile.h"
#include "compiler/frontend/Safetensors.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

using namespace einstruct;

namespace {

// A safetensors file from its header text and data bytes, built by hand so
// that the tests do not depend on encodeSafetensors.
std::string file(const std::string &header, const std::string &data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int k = 0; k < 8; ++k)
    out[size_t(k)] = char(n >> (8 * k));
  return out + header + data;
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int v : b)
    s += char(v);
  return s;
}

std::string errorOf(const Result<NpyArray> &r) { return r ? "" : r.error(); }

} // namespace

TEST_CASE(".npy round trip, empty and 0-d arrays included", "[files]") {
  for (std::vector<int64_t> shape :
       {std::vector<int64_t>{2, 3}, {0, 7}, {}, {5}, {1, 1, 4}}) {
    NpyArray a;
    a.shape = shape;
    size_t n = 1;
    for (auto d : shape)
      n *= size_t(d);
    for (size_t k = 0; k < n; ++k)
      a.data.push_back(float(k) * 0.5f - 1.0f);
    auto b = parseNpy(encodeNpy(a), "a.npy");
    REQUIRE(b);
    CHECK(b->shape == shape);
    CHECK(b->data == a.data);
  }
}

TEST_CASE(".npy in Fortran order comes back in C order", "[files]") {
  // [[1, 2, 3], [4, 5, 6]] stored column-major, as np.save writes a
  // transposed view. Double quotes are valid in the header's Python literal.
  std::string header =
      "{\"descr\": '<f4', 'fortran_order': True, 'shape': (2, 3), }";
  header += std::string((64 - (10 + header.size() + 1) % 64) % 64, ' ') + "\n";
  std::string file = std::string("\x93NUMPY\x01\x00", 8) +
                     char(header.size()) + '\0' + header;
  for (float v : {1.0f, 4.0f, 2.0f, 5.0f, 3.0f, 6.0f})
    file.append(reinterpret_cast<const char *>(&v), 4);
  auto a = parseNpy(file, "f.npy");
  REQUIRE(a);
  CHECK(a->shape == std::vector<int64_t>{2, 3});
  CHECK(a->data == std::vector<float>{1, 2, 3, 4, 5, 6});
}

namespace {
// A Fortran-order float32 .npy of `shape` holding `data` (column-major).
std::string fortranNpy(const std::string &shape, const std::vector<float> &data) {
  std::string header =
      "{'descr': '<f4', 'fortran_order': True, 'shape': (" + shape + "), }";
  header += std::string((64 - (12 + header.size() + 1) % 64) % 64, ' ') + "\n";
  std::string out = std::string("\x93NUMPY\x02\x00", 8);
  for (int k = 0; k < 4; ++k)
    out += char(header.size() >> (8 * k));
  out += header;
  out.append(reinterpret_cast<const char *>(data.data()), data.size() * 4);
  return out;
}
} // namespace

TEST_CASE(".npy in Fortran order: size-1 axes, many axes, numpy's limit",
          "[files]") {
  // (2, 1, 3, 1) column-major: element (i, 0, j, 0) at i + 2·j.
  auto a = parseNpy(fortranNpy("2, 1, 3, 1", {1, 4, 2, 5, 3, 6}), "f.npy");
  REQUIRE(a);
  CHECK(a->shape == std::vector<int64_t>{2, 1, 3, 1});
  CHECK(a->data == std::vector<float>{1, 2, 3, 4, 5, 6});
  // 64 axes (numpy's most), 3 of them > 1: (2, 1..., 3, 1..., 2).
  std::string shape;
  std::vector<int64_t> dims(64, 1);
  dims[0] = 2, dims[30] = 3, dims[63] = 2;
  for (size_t k = 0; k < dims.size(); ++k)
    shape += (k ? ", " : "") + std::to_string(dims[k]);
  std::vector<float> col(12); // F order: offset i + 2·j + 6·k
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k)
        col[size_t(i + 2 * j + 6 * k)] = float(100 * i + 10 * j + k);
  auto b = parseNpy(fortranNpy(shape, col), "m.npy");
  REQUIRE(b);
  std::vector<float> want; // C order: (i, j, k) with k fastest
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k)
        want.push_back(float(100 * i + 10 * j + k));
  CHECK(b->data == want);
  // A 65th axis is refused where it starts, before any data is touched.
  auto c = parseNpy(fortranNpy(shape + ", 1", col), "x.npy");
  REQUIRE(!c);
  CHECK_THAT(c.error(), Catch::Contains("x.npy: byte "));
  CHECK_THAT(c.error(), Catch::Contains("more than 64 axes in the shape"));
}

TEST_CASE(".npy rejections name the byte", "[files]") {
  NpyArray a{{2, 2}, {1, 2, 3, 4}};
  std::string good = encodeNpy(a); // 128-byte header, then 16 data bytes
  CHECK_THAT(errorOf(parseNpy("PK\x03\x04 not numpy", "z.npy")),
             Catch::Contains("z.npy: byte 0: not a .npy file"));
  CHECK_THAT(errorOf(parseNpy(good.substr(0, good.size() - 3), "t.npy")),
             Catch::Contains("t.npy: byte 141: truncated data: 13 bytes of 16 expected from byte 128"));
  CHECK_THAT(errorOf(parseNpy(good + "xy", "l.npy")),
             Catch::Contains("byte 144: 2 unexpected bytes after the data"));
  CHECK_THAT(errorOf(parseNpy(good.substr(0, 40), "h.npy")),
             Catch::Contains("byte 40: truncated header"));
  std::string f8 = good;
  f8.replace(f8.find("<f4"), 3, "<f8");
  CHECK_THAT(errorOf(parseNpy(f8, "d.npy")),
             Catch::Contains("dtype must be little-endian float32"));
}

TEST_CASE("safetensors: F32, F16, BF16, F64 read exactly", "[files]") {
  // F16: 1.0, -2.0, 65504 (largest), 2^-24 (smallest subnormal), +inf.
  std::string f16 = bytes({0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00,
                           0x00, 0x7c});
  // BF16: 1.0 and the top half of float(-3.14159274) = 0xc0490fdb.
  std::string bf16 = bytes({0x80, 0x3f, 0x49, 0xc0});
  double f64v = -0.375;
  std::string f64(8, '\0');
  std::memcpy(&f64[0], &f64v, 8);
  float f32v[2] = {1.5f, -7.25f};
  std::string f32(reinterpret_cast<char *>(f32v), 8);
  std::string header =
      R"({"h":{"dtype":"F16","shape":[5],"data_offsets":[0,10]},)"
      R"("b":{"dtype":"BF16","shape":[2,1],"data_offsets":[10,14]},)"
      R"("d":{"dtype":"F64","shape":[],"data_offsets":[14,22]},)"
      R"("f":{"dtype":"F32","shape":[1,2],"data_offsets":[22,30]},)"
      R"("__metadata__":{"format":"pt"}})";
  std::string st = file(header, f16 + bf16 + f64 + f32);
  auto h = parseSafetensorsHeader(st, "m.safetensors");
  REQUIRE(h);
  CHECK(h->tensors.size() == 4);
  CHECK(h->metadata.at("format") == "pt");
  auto half = parseSafetensor(st, "m.safetensors", "h");
  REQUIRE(half);
  CHECK(half->data[0] == 1.0f);
  CHECK(half->data[1] == -2.0f);
  CHECK(half->data[2] == 65504.0f);
  CHECK(half->data[3] == std::ldexp(1.0f, -24));
  CHECK(std::isinf(half->data[4]));
  auto bf = parseSafetensor(st, "m.safetensors", "b");
  REQUIRE(bf);
  CHECK(bf->shape == std::vector<int64_t>{2, 1});
  CHECK(bf->data == std::vector<float>{1.0f, -3.140625f});
  auto d = parseSafetensor(st, "m.safetensors", "d");
  REQUIRE(d);
  CHECK(d->shape.empty());
  CHECK(d->data == std::vector<float>{-0.375f});
  auto f = parseSafetensor(st, "m.safetensors", "f");
  REQUIRE(f);
  CHECK(f->data == std::vector<float>{1.5f, -7.25f});
  // F64 beyond float32's range is refused by name, not turned into inf;
  // an F64 infinity stays one.
  for (double v : {1e39, -3.5e38, double(INFINITY)}) {
    std::string big(8, '\0');
    std::memcpy(&big[0], &v, 8);
    auto r = parseSafetensor(
        file(R"({"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", big),
        "b.safetensors", "d");
    if (std::isinf(v)) {
      REQUIRE(r);
      CHECK(std::isinf(r->data[0]));
    } else {
      REQUIRE(!r);
      CHECK_THAT(r.error(), Catch::Contains("tensor 'd' element 0 = "));
      CHECK_THAT(r.error(), Catch::Contains("is beyond float32's range"));
    }
  }
  // And what einstruct writes reads back the same.
  auto again = parseSafetensor(encodeSafetensors({{"f", *f}, {"d", *d}}),
                               "again", "f");
  REQUIRE(again);
  CHECK(again->shape == f->shape);
  CHECK(again->data == f->data);
}

TEST_CASE("safetensors rejections name the byte", "[files]") {
  auto err = [](const std::string &st, const std::string &name = "w") {
    auto r = parseSafetensor(st, "s.safetensors", name);
    return r ? std::string() : r.error();
  };
  std::string w = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string data(8, '\0');
  CHECK(err(file(w, data)).empty());
  CHECK_THAT(err("abc"), Catch::Contains("byte 3: truncated: no 8-byte"));
  CHECK_THAT(err(file(w, data).substr(0, 20)),
             Catch::Contains("byte 20: truncated header"));
  CHECK_THAT(err(file(w, data.substr(0, 5))),
             Catch::Contains("truncated data: ends at byte 8 of a 5-byte"));
  CHECK_THAT(err(file(w, data + "xyz")),
             Catch::Contains("3 bytes after the last tensor's data"));
  CHECK_THAT(err(file("[1]", "")), Catch::Contains("byte 8: the header must "
                                                    "be a JSON object"));
  CHECK_THAT(err(file(R"({"w": 1e99999})", "")),
             Catch::Contains("byte 8: invalid JSON header"));
  // A shape nested 100k deep is refused where level 129 opens, before the
  // parser (or an error message printing it) recurses through it.
  const std::string deep = R"({"w":{"dtype":"F32","shape":)" +
                           std::string(100000, '[') + std::string(100000, ']') +
                           "}}";
  CHECK_THAT(err(file(deep, "")),
             Catch::Contains("byte 162: invalid JSON header: nested deeper "
                             "than 128 levels"));
  CHECK_THAT(err(file(R"({"w":{"dtype":"F32","shape":[3],)"
                      R"("data_offsets":[0,8]}})",
                      data)),
             Catch::Contains("byte 9: tensor 'w': data_offsets hold 8 bytes "
                             "but 3 elements of F32 need 12"));
  CHECK_THAT(err(file(R"({"w":{"dtype":"Q4","shape":[2],)"
                      R"("data_offsets":[0,8]}})",
                      data)),
             Catch::Contains("unknown dtype 'Q4'"));
  CHECK_THAT(err(file(R"({"w":{"dtype":"F32","shape":[-2],)"
                      R"("data_offsets":[0,8]}})",
                      data)),
             Catch::Contains("shape entry -2 must be an integer"));
  // Two tensors with a gap between them, and two that overlap.
  std::string two = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                    R"("v":{"dtype":"F32","shape":[1],"data_offsets":[6,10]}})";
  CHECK_THAT(err(file(two, std::string(10, '\0'))),
             Catch::Contains("tensor 'v' starts at data byte 6 where 4 was "
                             "expected"));
  std::string overlap =
      R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  CHECK_THAT(err(file(overlap, data)), Catch::Contains("hole or overlap"));
  CHECK_THAT(err(file(w, data), "x"),
             Catch::Contains("no tensor 'x' (tensors: w)"));
  CHECK_THAT(err(file(R"({"w":{"dtype":"I32","shape":[2],)"
                      R"("data_offsets":[0,8]}})",
                      data)),
             Catch::Contains("dtype I32; einstruct reads F32, F16, BF16"));
}

TEST_CASE("JSON nested past 128 levels is refused before parsing", "[files]") {
  const std::string ok = std::string(128, '[') + std::string(128, ']');
  CHECK(parseJson(ok, "ok.json"));
  CHECK(!jsonTooDeep("[\"[[[[\"]")); // brackets in strings do not count
  auto r = parseJson("{\"a\": " + std::string(200000, '[') + "}", "d.json");
  REQUIRE(!r);
  CHECK(r.error() == "d.json: invalid JSON at byte 134: nested deeper than "
                     "128 levels");
}

TEST_CASE("JSON numbers beyond double's range are errors", "[files]") {
  auto r = parseJson(R"({"tokens": 2e10995116})", "sweep.json");
  REQUIRE(!r);
  CHECK_THAT(r.error(), Catch::Contains("sweep.json: invalid JSON"));
  CHECK_THAT(r.error(), Catch::Contains("number overflow"));
}
