// A contraction chain on the GPU — a sequence mixer's function or its
// backward, after --einstruct-plan-cuda (compiler/passes/ChainOfFunction.h
// reads it from the IR) — as a list of steps over buffers, data only: the
// emitter (ChainEmitter.h) prints each as one launch or cuBLAS call, and
// tests/unit/test_cuda_chain.cpp executes the same steps on the CPU
// (cuBLAS's column-major semantics, and einstruct_chain.cuh's element
// functions) against independent references. float32 inside; a library's
// inputs and outputs may be bfloat16 (converted on the way in and out).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace einstruct {

// value · S^power: S is the call's one runtime extent (the sequences of a
// mixer call, every tensor's dynamic dimension); power is 0 or 1.
struct ChainSize {
  int64_t value = 1;
  int power = 0;
  int64_t at(int64_t S) const { return power ? value * S : value; }
  ChainSize operator*(const ChainSize &o) const {
    return {value * o.value, power + o.power};
  }
  bool operator==(const ChainSize &o) const {
    return value == o.value && power == o.power;
  }
};

struct ChainBuffer {
  enum Kind { Input, Output, Scratch } kind = Scratch;
  int index = 0; // argument or result number
  int slot = -1; // Scratch: its workspace slot (slots[slot])
  ChainSize elems;
  std::string shape; // "[S, 4, 64]", for comments and manifests
  bool bf16 = false; // stored as bfloat16: an input or output only
};

struct ChainStep {
  enum Kind {
    Gemm,    // cublasGemmStridedBatchedEx: C = op(A)·op(B), column-major
    Direct,  // einstruct_chain::directElement over `out`
    Remap,   // einstruct_chain::remapElement over `out`: transposes,
             // reversals, slices and zero pads
    Add,     // out = in0 + in1 over `count`
    Map,     // out = f(scale·in0 + shift) over `count`: einstruct.unary
    Fill,    // out = value over `count`
    Copy,    // out = in0 over `count`
    Convert, // out = in0 over `count`, between bfloat16 and float32
    Decays,  // einstruct.chunk_decays: a → within, to_end, from_start, chunk
    DecaysGrad,   // a, dW, dE, dS, dG → da (scratch: Q per segment)
    Scan,         // states, decay → entering
    ScanGrad,     // decay, dentering → dstates (entering recomputed first)
    ScanDecayGrad // dstates, entering → ddecay
  } kind;
  // Buffers read, then written; ScanGrad's and DecaysGrad's scratch last.
  std::vector<int> in, out;
  // Gemm (A = in[0], B = in[1], C = out[0]).
  bool transA = false, transB = false;
  ChainSize m, n, k, lda, ldb, ldc, strideA, strideB, strideC, batch;
  // Direct (lhs = in[0], rhs = in[1]) and Remap (src = in[0]): result
  // dimensions with each operand's strides, and Direct's summed ones.
  struct Dims {
    std::vector<ChainSize> dims, a, b;
  } outDims, sumDims;
  // Direct: each operand's element 0 within its buffer (a view read in
  // place: a slice's offset, a reversal's last element).
  int64_t baseA = 0, baseB = 0;
  // Direct and Remap: in.back() is a sum's other term, added to each
  // element as it is written (an addf fused into the step writing a term).
  bool accumulate = false;
  // Remap: src's offset of out index 0, and per out dimension the indices
  // [lo, hi) read from src (zero outside).
  int64_t base = 0;
  std::vector<ChainSize> lo, hi;
  ChainSize count; // Add, Map, Fill, Copy, Convert: elements
  // Map: f as its index in unaryKinds() (einstruct_chain::UnaryKind), and
  // its argument's scale and shift. Fill: the value.
  int unary = 0;
  double scale = 1, shift = 0, value = 0;
  // SSD ops: sequences (S), chunks, steps per chunk, heads, p·k per head.
  ChainSize seqs;
  int64_t chunks = 0, steps = 0, heads = 0, pk = 0;
  std::string what; // the IR op it comes from, for the source's comments
};

struct ChainPlan {
  std::string name;
  std::vector<ChainBuffer> buffers;
  std::vector<ChainStep> steps;
  int inputs = 0, outputs = 0;
  // Each output's dynamic extent (S, or S·L for tokens of all sequences),
  // for a function that takes it as an argument (a saving forward's
  // residuals, into its backward).
  std::vector<ChainSize> outputExtents;
  // The buffers of arguments marked einstruct.constant (M2's DFT
  // matrices), which the caller fills with the values the IR documents.
  std::vector<bool> constantInput;
  // The inputs and outputs that are residuals (einstruct.residual: a saving
  // forward's results after y, its backward's arguments before dy), kept in
  // float32 whatever the boundary's type.
  std::vector<bool> residualInput, residualOutput;
  // Inputs and outputs in bfloat16 (ChainBuffer::bf16), float32 inside.
  bool bf16Boundary = false;
  // The workspace: one slot per group of same-sized scratch buffers whose
  // lives (first write to last read) do not overlap.
  std::vector<ChainSize> slots;
};

} // namespace einstruct
