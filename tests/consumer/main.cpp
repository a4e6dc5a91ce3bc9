// Compiles a spec through the installed runtime, runs forward and backward
// on raw float32 files in DIR (x.bin, w1.bin, ..., dy.bin) and writes y.bin,
// dx.bin, dw1.bin, ...; also checks that a bad spec is an error, not a crash.
//   usage: consumer SPEC_JSON DIR
#include <einstruct/einstruct.hpp>

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
  // A bad spec, and a BTT-MoE (which needs a router the C ABI lacks), are
  // refused with EINSTRUCT_ERR_SPEC rather than run another way.
  for (const char *bad :
       {R"J({"structure": "monarch(5)", "d_in": 64, "d_out": 64})J",
        R"J({"structure": "btt-moe(experts=4, top_k=2)", "d_in": 64, "d_out": 64})J"}) {
    try {
      einstruct::CompiledLayer::cpu(bad);
      std::cerr << "accepted: " << bad << "\n";
      return 1;
    } catch (const einstruct::Error &e) {
      if (e.status != EINSTRUCT_ERR_SPEC) {
        std::cerr << "wrong status " << e.status << ": " << e.what() << "\n";
        return 1;
      }
    }
  }
  auto layer = einstruct::CompiledLayer::cpu(argv[1]);
  std::vector<std::vector<float>> w;
  std::vector<const float *> wp;
  for (size_t k = 0; k < layer.weightShapes().size(); ++k) {
    w.push_back(load(dir + "/w" + std::to_string(k + 1) + ".bin"));
    wp.push_back(w.back().data());
  }
  auto x = load(dir + "/x.bin");
  save(dir + "/y.bin", layer.forward(x, wp));
  auto g = layer.backward(x, load(dir + "/dy.bin"), wp);
  save(dir + "/dx.bin", g.dx);
  for (size_t k = 0; k < g.dw.size(); ++k)
    save(dir + "/dw" + std::to_string(k + 1) + ".bin", g.dw[k]);
  std::printf("consumer: d_in %lld, d_out %lld, %zu weights: ok\n",
              (long long)layer.dIn(), (long long)layer.dOut(), g.dw.size());
  return 0;
}
