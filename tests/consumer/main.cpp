// Compiles a spec through the installed runtime, runs forward and backward
// on raw float32 files in DIR (x.bin, w1.bin, ..., dy.bin; a BTT-MoE's router
// is its last weight) and writes y.bin, dx.bin, dw1.bin, ... and, for a
// BTT-MoE, counts.txt (tokens per expert, aux loss); also checks that bad
// input is an error, not a crash.
//   usage: consumer SPEC_JSON DIR
#include <einstruct/einstruct.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>

namespace {

std::vector<float> load(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::string b((std::istreambuf_iterator<char>(in)), {});
  std::vector<float> v(b.size() / 4);
  std::copy(b.data(), b.data() + v.size() * 4, reinterpret_cast<char *>(v.data()));
  return v;
}

void save(const std::string &path, const std::vector<float> &v) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char *>(v.data()), std::streamsize(v.size() * 4));
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 3)
    return 2;
  std::string dir = argv[2];
  // A bad spec is refused with EINSTRUCT_ERR_SPEC.
  try {
    einstruct::CompiledLayer::cpu(
        R"J({"structure": "monarch(5)", "d_in": 64, "d_out": 64})J");
    std::cerr << "accepted monarch(5) at 64\n";
    return 1;
  } catch (const einstruct::Error &e) {
    if (e.status != EINSTRUCT_ERR_SPEC) {
      std::cerr << "wrong status " << e.status << ": " << e.what() << "\n";
      return 1;
    }
  }
  auto layer = einstruct::CompiledLayer::cpu(argv[1]);
  // Zero threads, routing questions of a layer that has no router or
  // before any call, and aux weights that are negative or not finite, are
  // argument errors.
  auto refused = [](auto &&call) {
    try {
      call();
    } catch (const einstruct::Error &e) {
      return e.status == EINSTRUCT_ERR_ARGUMENT;
    }
    return false;
  };
  bool ok = refused([&] { layer.setThreads(0); }) &&
            (layer.experts()
                 ? refused([&] { layer.routing(); }) &&
                       refused([&] { layer.setAuxWeight(-1); }) &&
                       refused([&] { layer.setAuxWeight(std::nan("")); })
                 : refused([&] { layer.setAuxWeight(0.5); }) &&
                       refused([&] { layer.routing(); }));
  if (!ok) {
    std::cerr << "a call with bad input was accepted\n";
    return 1;
  }
  // The CUDA entry points are exported too: a CUDA layer of the same spec is
  // created where a driver and device exist, refused with
  // EINSTRUCT_ERR_DEVICE (and a message) where not.
  try {
    auto gpu = einstruct::CompiledLayer::cuda(argv[1], "bf16");
    if (gpu.device() != 0 || gpu.dtype() != "bf16") {
      std::cerr << "CUDA layer on device " << gpu.device() << ", " << gpu.dtype()
                << "\n";
      return 1;
    }
  } catch (const einstruct::Error &e) {
    if (e.status != EINSTRUCT_ERR_DEVICE || std::string(e.what()).empty()) {
      std::cerr << "CUDA layer: status " << e.status << ": " << e.what() << "\n";
      return 1;
    }
  }
  if (layer.device() != -1 || layer.dtype() != "f32") {
    std::cerr << "the CPU layer reports device " << layer.device() << "\n";
    return 1;
  }
  std::vector<std::vector<float>> w;
  std::vector<const float *> wp;
  for (size_t k = 0; k < layer.weightShapes().size(); ++k) {
    w.push_back(load(dir + "/w" + std::to_string(k + 1) + ".bin"));
    wp.push_back(w.back().data());
  }
  auto x = load(dir + "/x.bin");
  auto y = layer.forward(x, wp);
  save(dir + "/y.bin", y);
  // Rows are independent: one thread computes the same bits.
  layer.setThreads(1);
  if (layer.forward(x, wp) != y) {
    std::cerr << "forward on one thread differs\n";
    return 1;
  }
  auto g = layer.backward(x, load(dir + "/dy.bin"), wp);
  save(dir + "/dx.bin", g.dx);
  for (size_t k = 0; k < g.dw.size(); ++k)
    save(dir + "/dw" + std::to_string(k + 1) + ".bin", g.dw[k]);
  if (layer.experts()) {
    auto r = layer.routing();
    std::ofstream counts(dir + "/counts.txt");
    for (int64_t c : r.tokensPerExpert)
      counts << c << " ";
    counts << "\n" << r.auxLoss << "\n";
  }
  std::printf("consumer: d_in %lld, d_out %lld, %zu weights: ok\n",
              (long long)layer.dIn(), (long long)layer.dOut(), g.dw.size());
  return 0;
}
