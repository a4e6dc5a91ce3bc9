#ifndef EINSTRUCT_PASSES
#define EINSTRUCT_PASSES

include "mlir/Pass/PassBase.td"

def AnnotateCost : Pass<"einstruct-annotate-cost"> {
  let summary = "Attach exact params/FLOPs and ω/ψ/ν to every einstruct op";
  let description = [{
    Each `einstruct.layer` gets `einstruct.params`, `einstruct.flops`
    (multiply-adds per input vector), `einstruct.rank_bound`,
    `einstruct.family` and, where defined, `einstruct.omega`, `einstruct.psi`
    and `einstruct.nu`. Each `einstruct.contract` with static shapes gets
    `einstruct.flops` (multiply-adds of the whole contraction).
  }];
}

def SelectStructure : Pass<"einstruct-select-structure", "mlir::ModuleOp"> {
  let summary = "Replace dense einstruct.layer ops by the best structure "
                "within a budget";
  let description = [{
    Every `einstruct.layer` whose einsum is a plain dense matrix ("i,oi->o")
    is replaced by the structure the search ranks first under the budget:
    the pass options, or an `einstruct.budget` dictionary on the op
    (`max_flops_ratio`, `max_params`, `min_psi`, `max_omega`) which wins.
    The dense weight argument of the enclosing function is replaced by the
    structure's weight tensors, appended as new arguments; the chosen
    structure and why are recorded as `einstruct.selected`. Functions that
    are called elsewhere are left alone (their signature would change).
  }];
  let options = [
    Option<"maxFlopsRatio", "max-flops-ratio", "double", "0.25",
           "max multiply-adds as a fraction of the dense layer's">,
    Option<"maxParams", "max-params", "int64_t", "0", "max params (0: none)">,
    Option<"minPsi", "min-psi", "double", "0", "min rank exponent ψ">,
    Option<"objective", "objective", "std::string", "\"paper\"",
           "paper, flops, params, params-per-flop or roofline">,
    Option<"device", "device", "std::string", "\"h100-sxm\"",
           "GPU for the roofline objective">,
    Option<"grid", "grid", "int", "12", "θ step 1/grid">,
  ];
}

def PlanCuda : Pass<"einstruct-plan-cuda"> {
  let summary = "Attach the CUDA kernel configuration the planner chooses "
                "to every layer and contraction";
  let description = [{
    Each `einstruct.layer`, `einstruct.moe_layer` and
    `einstruct.moe_layer_grad` (the forward's plan: one grouped library
    runs both) gets `einstruct.cuda_plan`, a `#einstruct.cuda_plan`
    attribute: the kernel
    kind (fused two-stage, grouped BTT-MoE or cuBLAS), the padded sizes, the
    portable kernel's tiles and, on sm_90a with 16-bit data, the wgmma/TMA
    kernel's tiles — what `einstruct compile --target cuda` emits for the
    same layer and target (compiler/cuda/CudaPlan.h, GemmPlan.h). The
    kernels are emitted from this attribute: a layer that has one already
    (an edited plan) keeps it, checked against the layer and the target (a
    tile the kernels cannot run, a derived value that does not follow, or
    another arch or dtype is an error at the op). A layer the kernels do not
    take (a three-core tensor train, a class past 64) is an error at the op
    naming why; an unknown arch or dtype is an error at the module.
    Each `einstruct.contract` (a contraction chain's: a sequence mixer and
    its backward) gets `cuda_kernel`: "cublas" (one strided batched GEMM,
    its operands transposed into that layout where needed) or "direct"
    (compiler/passes/CudaContract.h); float32 whatever `dtype` says.
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect"];
  let options = [
    Option<"arch", "arch", "std::string", "\"sm_90a\"", "sm_80 or sm_90a">,
    Option<"dtype", "dtype", "std::string", "\"bf16\"", "f32, bf16 or f16">,
    Option<"smemKb", "smem-kb", "int64_t", "0",
           "shared-memory budget per block in KiB (0: the arch's)">,
    Option<"wgmma", "wgmma", "bool", "true",
           "sm_90a: the wgmma/TMA kernel where a role qualifies">,
    Option<"hopperTile", "hopper-tile", "std::string", "\"\"",
           "sm_90a tile FC:NWG:STAGES[:CL] forced on every qualifying role "
           "(default: the tuning table, else analytic)">,
  ];
}

def PlanContractions : Pass<"einstruct-plan-contractions"> {
  let summary = "Turn each einstruct.layer into a chain of pairwise "
                "einstruct.contract ops in the cheapest order";
  let description = [{
    The order is the one with the fewest multiply-adds, found exhaustively
    over the weight permutations (search/Einsum.h termCost). Reshapes are
    explicit: batch dimensions are collapsed to one, the feature dimension is
    zero-padded (or cut) to the product of x's index sizes and expanded into
    one dimension per index; the result is collapsed, cut (or zero-padded) to
    d_out and expanded back to the batch shape.
  }];
  let dependentDialects = ["mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect"];
}

def Autodiff : Pass<"einstruct-autodiff", "mlir::ModuleOp"> {
  let summary = "Derive the backward pass of every layer or mixer function";
  let description = [{
    For each `func.func @f(%args...) -> y` holding einstruct ops, adds
    `@f_backward(%args..., %dy) -> (dargs...)` by one reverse sweep over f's
    ops (recomputing the forward values the rules read). The rules:
    an einstruct.layer's dx is the einsum read backwards (an einstruct.layer
    with the roles of x and y swapped, so padding maps back exactly) and
    dWi = Σ_batch einsum(x, dy, Wj (j ≠ i) -> Wi), a chain of
    einstruct.contract ops in the cheapest order; an einstruct.contract
    "l,r->o" gives "o,r->l" and "l,o->r"; einstruct.chunk_decays and
    einstruct.chunk_scan give one chunk_decays_grad and chunk_scan_grad;
    arith.addf passes the cotangent to both
    operands and tensor reshapes reshape it back. Contributions are summed;
    an argument nothing reads gets a zero gradient. An argument marked
    `einstruct.constant` gets none: it is left out of the results, and
    nothing is computed for it or for values only it reaches. Any other op
    on the path to the result is a located error.
    A function that returns the (y, aux_loss) of one einstruct.moe_layer
    gets `@f_backward(%x, %router, %w..., %dy, %daux) -> (dx, drouter,
    dw...)`, one einstruct.moe_layer_grad.
    With `save-residuals`, each such @f (not a moe_layer's) also gets
    `@f_saving(%args...) -> (y, residuals...)` and
    `@f_backward_saved(%args..., residuals..., %dy) -> (dargs...)`: forward
    values returned by the forward and taken by the backward instead of
    recomputed (training's forward keeps them for its backward). They are a
    minimum cut: the fewest bytes from which the backward has every value
    its sweep reads, the rest recomputed by memory-bound ops (elementwise
    maps, contractions that sum at most 4 products per element, reversals,
    pads, the SSD's decays and chunk scan); larger contractions and layers
    are saved, never recomputed, and values the arguments give by
    reshapes, slices, fills and extents alone are never saved. The saved
    backward reads extents off the arguments where the ops tell them.
  }];
  let options = [
    Option<"saveResiduals", "save-residuals", "bool", "false",
           "also add @f_saving and @f_backward_saved (see above)">,
  ];
  let dependentDialects = ["mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect",
                           "mlir::linalg::LinalgDialect"];
}

def LowerMoe : Pass<"einstruct-lower-moe"> {
  let summary = "Lower einstruct.moe_layer and einstruct.route to routed "
                "per-expert layers and loops";
  let description = [{
    A BTT-MoE layer becomes: the router layer (logits = x·router), the
    routing (an einstruct.route), a stable counting sort of the (token,
    slot) pairs by expert, and a loop over experts that gathers each
    expert's rows, applies its rank-1 einstruct.layer (the weights sliced at
    the expert along the rank letter) to those rows only, and adds the
    gated rows into y — experts in index order, rows in token order, so
    results do not depend on anything but the data. Idle experts cost
    nothing. einstruct.route becomes loops over tokens with the arithmetic
    of search/Routing.cpp in f64 (top-k by repeated arg-max, ties to the
    lower index; gates = softmax over the selected + 1e-6; the aux loss).
    einstruct.moe_layer_grad walks the same groups: per busy expert its
    rank-1 layer's dx (added per token) and weight-slice gradients (put back
    at the expert; idle experts' stay zero) from the gated dy rows, and each
    slot's dgate = <dy_t, y_e> summed in f64; then the routing's gradient
    (token loops in f64 with routeBackward's arithmetic: the selected
    softmax's gradient plus daux·∂aux/∂logits, counts held constant) and
    the router's (dx += dlogits·routerᵀ, drouter = xᵀ·dlogits).
    Everything stays on tensors; f32 layers only.
  }];
  let dependentDialects = ["mlir::scf::SCFDialect",
                           "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect",
                           "mlir::math::MathDialect",
                           "mlir::linalg::LinalgDialect"];
}

def LowerToLinalg : Pass<"einstruct-lower-to-linalg"> {
  let summary = "Lower einstruct.contract, reverse and unary to linalg.generic";
  let description = [{
    Each contraction becomes a zero-filled tensor.empty and one
    linalg.generic whose iteration space is the result's indices (parallel)
    followed by the summed indices (reduction), with body acc + lhs * rhs;
    each reversal a copy, each unary an elementwise generic over arith and
    math ops. Run --einstruct-plan-contractions first: a remaining
    einstruct.layer is an error.
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect",
                           "mlir::math::MathDialect"];
}

def LowerSsd : Pass<"einstruct-lower-ssd"> {
  let summary = "Lower the chunked SSD's ops (chunk_decays, chunk_scan) and "
                "their gradients";
  let description = [{
    einstruct.chunk_decays: the in-chunk prefix sums become masked
    reductions over the chunk (no scan loops), the decays exponentials of
    their differences (local to a chunk, so no long prefix sums cancel).
    einstruct.chunk_scan: an scf.for over the chunks carrying the last
    entering state, one linalg.generic per step. Their gradients recompute
    the forward values and walk the same sums and the recurrence backwards.
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect",
                           "mlir::math::MathDialect",
                           "mlir::scf::SCFDialect"];
}

def FuseBatchTiles : Pass<"einstruct-fuse-batch-tiles", "mlir::func::FuncOp"> {
  let summary = "Run each chain of batched linalg ops over tiles of rows";
  let description = [{
    Runs on tensors, after --einstruct-lower-to-linalg. A layer's chain
    (contraction, transpose of the intermediate, contraction, ...) is tiled
    along the batch, the leading dynamic index of its last op's result, by
    `rows` rows, and every producer whose result also has a dynamic extent
    (depends on the batch) and feeds only the chain is computed inside the
    same loop, one tile at a time. The intermediates are then tile-sized
    and stay in cache instead of making a round trip through memory.
    Batch-independent producers (the weight transposes) stay outside the
    loop and run once. A weight gradient (a static result summed over the
    batch) is tiled along that sum by `summed-rows` rows, each tile adding
    into the result the loop carries (its zero fill stays outside), with
    its batched producers (the recomputed z, the transposes of its
    operands) fused the same way.
  }];
  let options = [
    Option<"rows", "rows", "int64_t", "24", "batch rows per tile">,
    Option<"summedRows", "summed-rows", "int64_t", "32",
           "batch rows per tile of a weight gradient (a multiple of 16 "
           "keeps its operands' transposes in whole vector tiles)">,
  ];
  let dependentDialects = ["mlir::scf::SCFDialect",
                           "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect"];
}

def FuseElementwise : Pass<"einstruct-fuse-elementwise"> {
  let summary = "Merge chains of elementwise linalg.generic ops into one";
  let description = [{
    Runs on tensors. An elementwise generic (every loop parallel) whose
    only use is an elementwise generic reading it at the same points (a
    permutation: nothing recomputed) is merged into it, MLIR's elementwise
    fusion under that control. A short convolution's shifted products and
    their sums, then its activation, become one pass over memory instead
    of one (two with a zero fill) per tap. Contractions (a summed loop)
    are left alone: their payload stays the multiply-add the CPU
    micro-kernel matches.
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect"];
}

def FreshInits : Pass<"einstruct-fresh-inits"> {
  let summary = "Give linalg ops whose payload never reads their init a "
                "tensor.empty init";
  let description = [{
    Runs on tensors. MLIR's elementwise-to-linalg conversion makes an
    operand of `a + b` the op's init too, although the payload never reads
    it. Once the op is tiled, its loop carries that operand, and when the
    operand is read again later bufferization copies all of it first, a
    whole memory pass for nothing. Such inits become `tensor.empty` of the
    same shape, which bufferizes to a fresh buffer without a copy.
  }];
  let dependentDialects = ["mlir::tensor::TensorDialect"];
}

def StridedCopies : Pass<"einstruct-strided-copies"> {
  let summary = "Lower memref.copy between strided views to loops";
  let description = [{
    Runs after bufferization. A memref.copy whose source or target is not
    contiguous (a slice, a padded window, a tile of a larger buffer) would
    become a call to the runtime's generic memrefCopy, which steps through
    the index space one element at a time. Such copies become a copying
    linalg.generic instead, lowered to loops whose unit-stride innermost
    loop LLVM vectorizes. Contiguous copies stay memref.copy (memcpy).
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect"];
}

def BlockTransposes : Pass<"einstruct-block-transposes"> {
  let summary = "Cache-blocked loops for bufferized linalg.transpose";
  let description = [{
    A transpose that moves the innermost index (the weight layouts
    --einstruct-lower-to-linalg makes contiguous along the vector index)
    reads one side with a large stride; lowered naively every element of
    that side touches a new cache line and often a new page. This pass
    writes it as loops over 16 × 16 tiles of the two innermost indices
    (the input's and the output's), so each tile touches 16 lines of each
    side. For f32 with unit-stride innermost dims, the whole `lanes` ×
    `lanes` tiles are `lanes` vector loads, one in-register
    vector.transpose and `lanes` vector stores each; the strips that
    extents not divisible by `lanes` (a dynamic batch among them) leave
    are blocked scalar loops. Transposes that keep the innermost index are
    left alone.
  }];
  let options = [
    Option<"lanes", "lanes", "int64_t", "8", "f32 lanes of a vector register">,
  ];
  let dependentDialects = ["mlir::scf::SCFDialect", "mlir::vector::VectorDialect",
                           "mlir::memref::MemRefDialect",
                           "mlir::arith::ArithDialect"];
}

def VectorizeContractions : Pass<"einstruct-vectorize-contractions"> {
  let summary = "Register-blocked vector loops for bufferized contractions";
  let description = [{
    Runs after bufferization on the linalg.generic ops that
    --einstruct-lower-to-linalg produced (acc + lhs * rhs, innermost loop
    parallel and contiguous). Each becomes a GEMM-style micro-kernel: loops
    over the outer result indices (a dynamic one, the batch, tiled by about
    32), then register tiles of `rows` values of one result index (the
    batch where it can) × `unroll` vectors of the innermost index, held in
    registers while the summed indices run inside. Each summed step loads
    `unroll` vectors once and broadcasts `rows` scalars, so a loaded vector
    serves `rows` FMAs. The tile is chosen for `registers` vector registers
    of `lanes` f32 lanes; accumulators start at zero when the result was
    just zero-filled (the fill is dropped). Contractions whose innermost
    extent is not a multiple of 8, or whose memory is not unit-stride there,
    are left to the scalar loop lowering. The innermost summed loop is
    unrolled here (`steps` summed steps per iteration, then a remainder
    loop), because the JIT's LLVM pipeline runs without its partial loop
    unroller (see JitOptimizer.h).
  }];
  let options = [
    Option<"lanes", "lanes", "int64_t", "8",
           "f32 lanes of a vector register (8: AVX2, 16: AVX-512)">,
    Option<"registers", "registers", "int64_t", "16",
           "vector registers (16: AVX2, 32: AVX-512)">,
    Option<"steps", "steps", "int64_t", "4",
           "summed steps per iteration of the innermost summed loop (1: no unrolling)">,
  ];
  let dependentDialects = ["mlir::vector::VectorDialect",
                           "mlir::scf::SCFDialect",
                           "mlir::memref::MemRefDialect"];
}

#endif
