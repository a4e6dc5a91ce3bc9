// Checks one generated BTT-MoE layer on the GPU against `einstruct run` on
// the CPU (the grouped CPU path, itself tested against the all-experts
// reference): y, the routing statistics, and dx, dW1, dW2, dWg with the aux
// loss weighted. Inputs are exact in the layer's dtype. Also: two runs give
// identical bits, n = 0 is a no-op, bad arguments are refused. Built with
//   nvcc -include DIR/NAME.h -DLAYER=NAME moe_check.cu DIR/NAME.cu
// Usage: moe_check DATA_DIR AUX_WEIGHT. Exit 0 pass, 1 fail, 77 no device.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "check_common.h"

namespace {

void expect(bool ok, const std::string &what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  failures += !ok;
}

// A float32 C-order .npy (what the generator writes).
std::vector<float> readNpy(const std::string &path, std::vector<long> *shape = nullptr) {
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  if (all.size() < 10 || all.compare(1, 5, "NUMPY") != 0) {
    std::printf("FAIL cannot read %s\n", path.c_str());
    std::exit(1);
  }
  size_t hlen = (unsigned char)all[8] | (unsigned char)all[9] << 8;
  std::string header = all.substr(10, hlen);
  if (header.find("'<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos) {
    std::printf("FAIL %s: not float32 C order\n", path.c_str());
    std::exit(1);
  }
  if (shape) {
    shape->clear();
    std::string s = header.substr(header.find('(') + 1);
    s = s.substr(0, s.find(')'));
    std::stringstream ss(s);
    std::string tok;
    while (std::getline(ss, tok, ','))
      if (tok.find_first_not_of(' ') != std::string::npos)
        shape->push_back(std::stol(tok));
  }
  std::vector<float> v((all.size() - 10 - hlen) / 4);
  std::memcpy(v.data(), all.data() + 10 + hlen, v.size() * 4);
  return v;
}

struct Buffer {
  void *p = nullptr;
  size_t bytes = 0;
  explicit Buffer(size_t b) : bytes(b) { CUDA_OK(cudaMalloc(&p, b ? b : 16)); }
  explicit Buffer(const std::vector<unsigned char> &host) : Buffer(host.size()) {
    CUDA_OK(cudaMemcpy(p, host.data(), bytes, cudaMemcpyHostToDevice));
  }
  ~Buffer() { cudaFree(p); }
  std::vector<unsigned char> get() const {
    std::vector<unsigned char> h(bytes);
    CUDA_OK(cudaMemcpy(h.data(), p, bytes, cudaMemcpyDeviceToHost));
    return h;
  }
};

// max |got − ref| / max |ref|.
double relErr(const std::vector<double> &got, const std::vector<float> &ref) {
  double err = 0, mag = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err = std::fmax(err, std::fabs(got[i] - ref[i]));
    mag = std::fmax(mag, std::fabs((double)ref[i]));
  }
  return mag > 0 ? err / mag : err;
}

} // namespace

int main(int argc, char **argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIP: no CUDA device\n");
    return 77;
  }
  if (argc != 3) {
    std::printf("usage: moe_check DATA_DIR AUX_WEIGHT\n");
    return 2;
  }
  info = FN(info)();
  const std::string dir = argv[1];
  const float auxWeight = std::strtof(argv[2], nullptr);
  std::vector<long> xs;
  auto x = readNpy(dir + "/x.npy", &xs);
  const long n = xs[0];
  auto wg = readNpy(dir + "/wg.npy"), w1 = readNpy(dir + "/w1.npy"),
       w2 = readNpy(dir + "/w2.npy"), dy = readNpy(dir + "/dy.npy");
  auto yRef = readNpy(dir + "/y.npy"), dxRef = readNpy(dir + "/dx.npy"),
       dw1Ref = readNpy(dir + "/dw1.npy"), dw2Ref = readNpy(dir + "/dw2.npy"),
       dwgRef = readNpy(dir + "/dwg.npy");
  std::ifstream rs(dir + "/routing.txt");
  std::vector<long> countsRef;
  double auxRef = 0;
  rs >> auxRef;
  for (long c; rs >> c;)
    countsRef.push_back(c);

  const std::string dt = info->dtype;
  const double tol = dt == "f32" ? 1e-4 : dt == "f16" ? 8e-3 : 3e-2;
  std::printf("%s: %s, %s, %ld tokens, aux weight %g, tolerance %g\n",
              info->name, info->einsum, info->dtype, n, auxWeight, tol);

  Buffer bx(bits(x)), bwg(bits(wg)), bw1(bits(w1)), bw2(bits(w2)),
      bdy(bits(dy));
  const size_t eb = info->dtype_bytes;
  Buffer y(n * info->d_out * eb), gx(n * info->d_in * eb),
      gwg(wg.size() * eb), g1(w1.size() * eb), g2(w2.size() * eb);
  Buffer ws(FN(moe_workspace)(n));
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));

  auto runAll = [&](einstruct_moe_stats *stats) {
    int rc = FN(moe_forward)(bx.p, bwg.p, bw1.p, bw2.p, y.p, n, ws.p,
                             ws.bytes, stats, stream);
    if (rc == 0)
      rc = FN(moe_backward)(bx.p, bwg.p, bw1.p, bw2.p, bdy.p, auxWeight,
                            gx.p, gwg.p, g1.p, g2.p, n, ws.p, ws.bytes,
                            stream);
    if (rc)
      std::printf("FAIL status %d: %s\n", rc, FN(status_string)(rc));
    CUDA_OK(cudaStreamSynchronize(stream));
    return rc;
  };
  einstruct_moe_stats stats;
  if (runAll(&stats))
    return 1;
  auto yGot = y.get(), dxGot = gx.get(), dwgGot = gwg.get(), dw1Got = g1.get(),
       dw2Got = g2.get();
  char line[256];
  bool countsOk = (long)countsRef.size() == stats.experts;
  for (long e = 0; countsOk && e < stats.experts; ++e)
    countsOk = countsRef[e] == stats.counts[e];
  std::snprintf(line, sizeof line, "routing: counts %s the CPU's, aux %.6g vs %.6g, entropy %.4f",
                countsOk ? "equal" : "DIFFER from", stats.aux_loss, auxRef,
                stats.entropy);
  expect(countsOk && std::fabs(stats.aux_loss - auxRef) <= 1e-3 * auxRef, line);
  struct {
    const char *name;
    std::vector<unsigned char> *got;
    std::vector<float> *ref;
  } outs[] = {{"y", &yGot, &yRef},     {"dx", &dxGot, &dxRef},
              {"dW1", &dw1Got, &dw1Ref}, {"dW2", &dw2Got, &dw2Ref},
              {"dWg", &dwgGot, &dwgRef}};
  for (auto &o : outs) {
    double err = relErr(values(*o.got), *o.ref);
    std::snprintf(line, sizeof line, "%s: max error %.3g of max |ref|", o.name, err);
    expect(err <= tol, line);
  }
  // Determinism: a second run gives the same bits.
  if (runAll(nullptr))
    return 1;
  expect(y.get() == yGot && gx.get() == dxGot && gwg.get() == dwgGot &&
             g1.get() == dw1Got && g2.get() == dw2Got,
         "a second forward + backward gives identical bits");
  // n = 0 and bad arguments.
  expect(FN(moe_forward)(bx.p, bwg.p, bw1.p, bw2.p, y.p, 0, ws.p, ws.bytes,
                         &stats, stream) == 0 && stats.counts[0] == 0,
         "n = 0 is a no-op with zero counts");
  expect(FN(moe_forward)(nullptr, bwg.p, bw1.p, bw2.p, y.p, n, ws.p,
                         ws.bytes, nullptr, stream) == EINSTRUCT_ERR_INVALID_ARGUMENT,
         "a null x is refused");
  expect(FN(moe_forward)(bx.p, bwg.p, bw1.p, bw2.p, y.p, n, ws.p,
                         ws.bytes - 1, nullptr, stream) == EINSTRUCT_ERR_WORKSPACE_TOO_SMALL,
         "a short workspace is refused");
  CUDA_OK(cudaStreamDestroy(stream));
  std::printf("%s: %d failure(s)\n", info->name, failures);
  return failures ? 1 : 0;
}
