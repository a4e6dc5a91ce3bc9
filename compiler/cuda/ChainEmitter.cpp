#include "compiler/cuda/ChainEmitter.h"
#include "compiler/cuda/CudaText.h"

#include <algorithm>
#include <fmt/format.h>

namespace einstruct {

namespace {

const char *kGemmCuh =
#include "einstruct_gemm.cuh.inc"
    ;
const char *kChainCuh =
#include "einstruct_chain.cuh.inc"
    ;

std::string sizeText(const ChainSize &s) {
  return s.power ? fmt::format("{}LL * S", s.value)
                 : fmt::format("{}LL", s.value);
}

std::string listText(const std::vector<ChainSize> &v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + sizeText(v[i]);
  return "{" + (s.empty() ? std::string("0") : s) + "}";
}

std::string stridedText(const ChainStep::Dims &d) {
  return fmt::format("{{{}, {}, {}, {}}}", d.dims.size(), listText(d.dims),
                     listText(d.a), listText(d.b));
}

std::string buf(int b) { return fmt::format("b{}", b); }
// Buffer b from element `offset` on (a view read in place).
std::string at(int b, int64_t offset) {
  return offset ? fmt::format("{} + {}LL", buf(b), offset) : buf(b);
}

// A float's digits that read back as the same float, as a literal's
// (a "." or exponent, so that the caller's "f" suffix makes a float).
std::string floatText(double v) {
  std::string t = fmt::format("{:.9g}", float(v));
  return t.find_first_of(".e") == std::string::npos ? t + ".0" : t;
}

// One step's call; `rc` receives its status.
std::string stepText(const ChainStep &s) {
  auto launch = [](const std::string &count) {
    return fmt::format("<<<blocksFor({}), kThreads, 0, stream>>>", count);
  };
  auto checked = [](const std::string &call) {
    return fmt::format("  {};\n  if ((rc = launched())) return rc;\n", call);
  };
  std::string N = sizeText(s.seqs);
  const std::string acc = s.accumulate ? buf(s.in.back()) : "nullptr";
  switch (s.kind) {
  case ChainStep::Gemm:
    return fmt::format(
        "  if ((rc = einstruct_gemm::gemm<float>(stream, {}, {}, {}, {}, {}, "
        "{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, false))) return rc;\n",
        s.transA, s.transB, sizeText(s.m), sizeText(s.n), sizeText(s.k),
        buf(s.in[0]), sizeText(s.lda), sizeText(s.strideA), buf(s.in[1]),
        sizeText(s.ldb), sizeText(s.strideB), buf(s.out[0]), sizeText(s.ldc),
        sizeText(s.strideC), sizeText(s.batch));
  case ChainStep::Direct:
    return fmt::format("  {{\n    const DirectContract c = {{{}, {}}};\n"
                       "    directKernel{}(c, {}, {}, {}, {});\n"
                       "    if ((rc = launched())) return rc;\n  }}\n",
                       stridedText(s.outDims), stridedText(s.sumDims),
                       launch("stridedCount(c.out)"), at(s.in[0], s.baseA),
                       at(s.in[1], s.baseB), acc, buf(s.out[0]));
  case ChainStep::Remap:
    return fmt::format("  {{\n    const Remap r = {{{}, {}LL, {}, {}}};\n"
                       "    remapKernel{}(r, {}, {}, {});\n"
                       "    if ((rc = launched())) return rc;\n  }}\n",
                       stridedText(s.outDims), s.base, listText(s.lo),
                       listText(s.hi), launch("stridedCount(r.p)"),
                       buf(s.in[0]), acc, buf(s.out[0]));
  case ChainStep::Add:
    return checked(fmt::format("addKernel{}({}, {}, {}, {})",
                               launch(sizeText(s.count)), buf(s.in[0]),
                               buf(s.in[1]), buf(s.out[0]), sizeText(s.count)));
  case ChainStep::Map:
    return checked(fmt::format("mapKernel{}(Map{{{}, {}f, {}f}}, {}, {}, {})",
                               launch(sizeText(s.count)), s.unary,
                               floatText(s.scale), floatText(s.shift),
                               buf(s.in[0]), buf(s.out[0]), sizeText(s.count)));
  case ChainStep::Fill:
    if (s.value == 0)
      return fmt::format("  if ((rc = (int)cudaMemsetAsync({}, 0, "
                         "sizeof(float) * {}, stream))) return rc;\n",
                         buf(s.out[0]), sizeText(s.count));
    return checked(fmt::format("fillKernel{}({}f, {}, {})",
                               launch(sizeText(s.count)), floatText(s.value),
                               buf(s.out[0]), sizeText(s.count)));
  case ChainStep::Copy:
    return fmt::format(
        "  if ((rc = (int)cudaMemcpyAsync({}, {}, sizeof(float) * {}, "
        "cudaMemcpyDeviceToDevice, stream))) return rc;\n",
        buf(s.out[0]), buf(s.in[0]), sizeText(s.count));
  case ChainStep::Convert:
    return checked(fmt::format("convertKernel{}({}, {}, {})",
                               launch(sizeText(s.count)), buf(s.in[0]),
                               buf(s.out[0]), sizeText(s.count)));
  case ChainStep::Decays:
    return checked(fmt::format(
        "chunkDecaysKernel{}({}, {}, {}, {}, {}, {}, {}LL, {}LL, {}LL)",
        launch(fmt::format("{} * {}", N, s.heads * s.chunks * s.steps)),
        buf(s.in[0]), buf(s.out[0]), buf(s.out[1]), buf(s.out[2]),
        buf(s.out[3]), N, s.chunks, s.steps, s.heads));
  case ChainStep::DecaysGrad:
    return checked(fmt::format(
        "chunkDecaysGradKernel{}({}, {}, {}, {}, {}, {}, {}, {}, {}LL, {}LL, "
        "{}LL)",
        launch(fmt::format("{} * {}", N, s.heads * s.chunks)), buf(s.in[0]),
        buf(s.in[1]), buf(s.in[2]), buf(s.in[3]), buf(s.in[4]), buf(s.out[0]),
        buf(s.out[1]), N, s.chunks, s.steps, s.heads));
  case ChainStep::Scan:
  case ChainStep::ScanGrad:
  case ChainStep::ScanDecayGrad: {
    // (in0, in1, out0, N, C, H, PK), one thread per (n, h, pk) or, for the
    // decays' gradient, per (n, h, chunk).
    const bool perChunk = s.kind == ChainStep::ScanDecayGrad;
    const char *kernel = s.kind == ChainStep::Scan ? "chunkScanKernel"
                         : s.kind == ChainStep::ScanGrad
                             ? "chunkScanGradKernel"
                             : "chunkScanDecayGradKernel";
    return checked(fmt::format(
        "{}{}({}, {}, {}, {}, {}LL, {}LL, {}LL)", kernel,
        launch(
            fmt::format("{} * {}", N, s.heads * (perChunk ? s.chunks : s.pk))),
        buf(s.in[0]), buf(s.in[1]), buf(s.out[0]), N, s.chunks, s.heads, s.pk));
  }
  }
  return "";
}

// bfloat16 inputs and outputs travel as void pointers.
std::string signature(const std::string &name, bool bf16) {
  const char *element = bf16 ? "void" : "float";
  return fmt::format("int {}(const {} *const *inputs, {} *const *outputs, "
                     "long long S, void *workspace, size_t workspace_bytes, "
                     "cudaStream_t stream)",
                     name, element, element);
}

} // namespace

Result<CudaSources> emitChain(const ChainPlan &plan, const std::string &name) {
  if (!isCIdentifier(name))
    return Error{"library name '" + cText(name) + "' is not a C identifier"};
  // The arguments and results, in their order, for the header's comment.
  std::vector<const ChainBuffer *> listed;
  for (const auto &b : plan.buffers)
    if (b.kind != ChainBuffer::Scratch)
      listed.push_back(&b);
  std::stable_sort(listed.begin(), listed.end(), [](auto *x, auto *y) {
    return std::pair(x->kind, x->index) < std::pair(y->kind, y->index);
  });
  std::string operands;
  for (const ChainBuffer *b : listed) {
    const bool in = b->kind == ChainBuffer::Input;
    const size_t k = size_t(b->index);
    std::string note;
    if (in && plan.constantInput[k])
      note = std::string(" (constant") +
             (plan.bf16Boundary ? ", float32" : "") +
             ": `einstruct compile --mixer` writes its values; "
             "manifest.json names the file)";
    else if (in ? plan.residualInput[k] : plan.residualOutput[k])
      note =
          std::string(" (residual") + (plan.bf16Boundary ? ", float32" : "") +
          (in ? ": what the saving forward kept)" : ": kept for the backward)");
    operands += fmt::format(" *   {}[{}]: {}{}\n", in ? "inputs" : "outputs",
                            b->index, cText(b->shape), note);
  }
  CudaSources out;
  out.header = fmt::format(
      "#pragma once\n#include <cuda_runtime.h>\n#include <stddef.h>\n\n{}\n"
      "/* @{} of einstruct IR on the GPU, {}, device pointers; S is "
      "the\n * sequences of the call (a dynamic extent is S or a multiple "
      "of it):\n{} */\n"
      "#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n"
      "size_t {}_workspace_bytes(long long S);\n{};\n"
      "const char *{}_status_string(int status);\n\n"
      "#ifdef __cplusplus\n}}\n#endif\n",
      statusDecls(), cText(plan.name),
      plan.bf16Boundary ? "bfloat16 in and out, float32 inside" : "float32",
      operands, name, signature(name, plan.bf16Boundary), name);

  std::string scratch, pointers, body;
  // Inputs the steps never read (a block's backward needs no bias value)
  // get no pointer.
  std::vector<bool> read(plan.buffers.size(), false);
  for (const ChainStep &s : plan.steps)
    for (int b : s.in)
      read[size_t(b)] = true;
  for (const ChainSize &slot : plan.slots)
    scratch += fmt::format("    {{{}LL, {}}},\n", slot.value, slot.power);
  for (size_t b = 0; b < plan.buffers.size(); ++b) {
    const ChainBuffer &x = plan.buffers[b];
    // A bfloat16 library's arguments come as void pointers.
    const std::string element = x.bf16 ? "__nv_bfloat16" : "float";
    const bool cast = plan.bf16Boundary;
    if (x.kind == ChainBuffer::Input && read[b])
      pointers +=
          fmt::format("  const {} *{} = {}inputs[{}];\n", element, buf(int(b)),
                      cast ? "(const " + element + " *)" : "", x.index);
    else if (x.kind == ChainBuffer::Input)
      continue;
    else if (x.kind == ChainBuffer::Output)
      pointers +=
          fmt::format("  {} *{} = {}outputs[{}];\n", element, buf(int(b)),
                      cast ? "(" + element + " *)" : "", x.index);
    else {
      pointers +=
          fmt::format("  float *{} = ws + scratchOffset({}, S); /* {} */\n",
                      buf(int(b)), x.slot, cText(x.shape));
    }
  }
  for (const ChainStep &s : plan.steps)
    body += "  /* " + cText(s.what) + " */\n" + stepText(s);
  out.source = fmt::format(
      "// Generated by einstruct: @{} (a contraction chain) on the GPU.\n"
      "#include \"{}.h\"\n{}\n{}\n"
      "using namespace einstruct_chain;\n\nnamespace {{\n\n"
      "// Workspace slots (scratch buffers whose lives do not overlap share\n"
      "// one): elements, times S or not.\n"
      "const long long kScratch[][2] = {{\n{}    {{0, 0}}}};\n"
      "constexpr int kScratchCount = {};\n\n"
      "// Floats before slot i, each 64-float (256-byte) aligned.\n"
      "long long scratchOffset(int i, long long S) {{\n"
      "  long long at = 0;\n"
      "  for (int k = 0; k < i; ++k)\n"
      "    at += ((kScratch[k][1] ? kScratch[k][0] * S : kScratch[k][0]) + 63) "
      "/ 64 * 64;\n"
      "  return at;\n}}\n\n}} // namespace\n\n"
      "extern \"C\" size_t {}_workspace_bytes(long long S) {{\n"
      "  return S < 1 ? 0 : sizeof(float) * "
      "(size_t)scratchOffset(kScratchCount, S);\n}}\n\n"
      "extern \"C\" {} {{\n"
      "  if (S < 1 || !inputs || !outputs)\n"
      "    return EINSTRUCT_ERR_INVALID_ARGUMENT;\n"
      "  for (int k = 0; k < {}; ++k)\n"
      "    if (!inputs[k]) return EINSTRUCT_ERR_INVALID_ARGUMENT;\n"
      "  for (int k = 0; k < {}; ++k)\n"
      "    if (!outputs[k]) return EINSTRUCT_ERR_INVALID_ARGUMENT;\n"
      "  if (workspace_bytes < {}_workspace_bytes(S) || (kScratchCount && "
      "!workspace))\n"
      "    return EINSTRUCT_ERR_WORKSPACE_TOO_SMALL;\n"
      "  float *ws = (float *)workspace;\n  (void)ws;\n{}  int rc = 0;\n{}"
      "  return rc;\n}}\n\n"
      "extern \"C\" const char *{}_status_string(int status) {{\n"
      "  switch (status) {{\n"
      "  case EINSTRUCT_OK:\n    return \"ok\";\n"
      "  case EINSTRUCT_ERR_INVALID_ARGUMENT:\n"
      "    return \"a null pointer or S < 1\";\n"
      "  case EINSTRUCT_ERR_WORKSPACE_TOO_SMALL:\n"
      "    return \"workspace smaller than {}_workspace_bytes(S)\";\n{}\n}}\n",
      cText(plan.name), name, kGemmCuh, kChainCuh, scratch, plan.slots.size(),
      name, signature(name, plan.bf16Boundary), plan.inputs, plan.outputs, name,
      pointers, body, name, name, statusFallback());
  return out;
}

} // namespace einstruct
