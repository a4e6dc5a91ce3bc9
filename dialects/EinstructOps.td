#ifndef EINSTRUCT_OPS
#define EINSTRUCT_OPS

include "EinstructDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/CommonAttrConstraints.td"

def Einstruct_LayerOp : Einstruct_Op<"layer", [Pure]> {
  let summary = "Applies one einsum term of a structured linear layer";
  let description = [{
    `spec` is "x,W1,...->y" over index letters; the input is x flattened (its
    last dimension, d_in) and the result y flattened (its last dimension,
    d_out); leading dimensions are batch. Each weight operand has one
    dimension per letter, in order, sized by `sizes`. When the product of x's
    index sizes differs from d_in the input is zero-padded (or cut), and
    likewise for the output, as the reference does for rounded θ.

    ```mlir
    %y = einstruct.layer "gba,fdrga,fergb->fed" sizes {a = 64, g = 64, ...}
           d_in 4096 d_out 4096 (%x, %A, %B) : (...) -> tensor<?x4096xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input,
                   Variadic<AnyRankedTensor>:$weights,
                   StrAttr:$spec,
                   DictionaryAttr:$sizes,
                   I64Attr:$d_in,
                   I64Attr:$d_out,
                   OptionalAttr<DenseF64ArrayAttr>:$theta,
                   OptionalAttr<I64Attr>:$experts,
                   OptionalAttr<I64Attr>:$top_k);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $spec `sizes` $sizes `d_in` $d_in `d_out` $d_out (`theta` $theta^)?
    ` ` `(` $input `,` $weights `)` attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Einstruct_ContractOp : Einstruct_Op<"contract", [Pure]> {
  let summary = "One pairwise tensor contraction, \"lhs,rhs->result\"";
  let description = [{
    Each operand has one dimension per letter of its part of `spec`; a letter
    keeps one extent across operands. Letters absent from the result are
    summed over.
  }];
  let arguments = (ins AnyRankedTensor:$lhs, AnyRankedTensor:$rhs,
                   StrAttr:$spec);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $spec $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Einstruct_ReverseOp : Einstruct_Op<"reverse",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "The input in reverse order along one static dimension";
  let description = [{
    result[..., i, ...] = input[..., n − 1 − i, ...] along `dim` (extent n,
    static): Hydra's flip of the sequence. Its own gradient.

    ```mlir
    %r = einstruct.reverse %x dim 1 : tensor<?x4096x12x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, I64Attr:$dim);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $input `dim` $dim attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
  let builders = [
    OpBuilder<(ins "::mlir::Value":$input, "int64_t":$dim), [{
      build($_builder, $_state, input.getType(), input,
            $_builder.getI64IntegerAttr(dim));
    }]>
  ];
}

def Einstruct_UnaryOp : Einstruct_Op<"unary",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "An elementwise function of scale · input + shift";
  let description = [{
    result = f(scale · input + shift) elementwise, f named by `kind`:
    identity, exp, sigmoid, silu, softplus, rsqrt, sin, cos, and the
    derivatives that --einstruct-autodiff emits for them: silu_grad,
    sigmoid_grad, rsqrt_grad. The activations, gates and norms around a
    block's mixer (Hydra's SiLU, softplus(dt + dt_bias), −exp(A_log),
    rsqrt(mean(y²) + ε); Hyena's sine filter).

    ```mlir
    %r = einstruct.unary "rsqrt" %ss scale 7.8125e-03 shift 1.0e-05
           : tensor<?x4096xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, StrAttr:$kind,
                   DefaultValuedAttr<F64Attr, "1.0">:$scale,
                   DefaultValuedAttr<F64Attr, "0.0">:$shift);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $kind $input (`scale` $scale^)? (`shift` $shift^)? attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
  let builders = [
    OpBuilder<(ins "::mlir::Value":$input, "::llvm::StringRef":$kind,
                   CArg<"double", "1.0">:$scale,
                   CArg<"double", "0.0">:$shift), [{
      build($_builder, $_state, input.getType(), input,
            $_builder.getStringAttr(kind), $_builder.getF64FloatAttr(scale),
            $_builder.getF64FloatAttr(shift));
    }]>
  ];
}

def Einstruct_RouteOp : Einstruct_Op<"route", [Pure]> {
  let summary = "BTT-MoE routing: top-k experts per token, gates, aux loss";
  let description = [{
    For router logits [batch, E]: the top_k experts of each token by
    descending logit (ties to the lower expert index), gates = softmax over
    the selected logits + 1e-6, and the auxiliary load-balancing loss
    E·Σ_e p̂_e·f̂_e + 0.1·mean(logsumexp²) (structures.md §3).

    ```mlir
    %gates, %experts, %aux = einstruct.route %logits top_k 2
        : tensor<?x8xf32> -> tensor<?x2xf32>, tensor<?x2xi32>, tensor<f32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$logits, I64Attr:$top_k);
  let results = (outs RankedTensorOf<[F32]>:$gates,
                      RankedTensorOf<[I32]>:$experts,
                      RankedTensorOf<[F32]>:$aux_loss);
  let assemblyFormat = [{
    $logits `top_k` $top_k attr-dict `:` type($logits) `->` type($gates) `,`
    type($experts) `,` type($aux_loss)
  }];
  let hasVerifier = 1;
}

def Einstruct_MoeLayerOp : Einstruct_Op<"moe_layer", [Pure]> {
  let summary = "A BTT-MoE layer: routed experts over the BTT rank index";
  let description = [{
    `spec` is a two-weight einsum whose rank letter (in both weights, in
    neither x nor y) indexes `experts` experts. The router [d_in, experts]
    gives logits = x·router; `einstruct.route` semantics pick top_k experts
    per token, and z's rank e is multiplied by the token's gate for e (zero
    when not selected) before the second weight. Results: y and the aux
    loss. Backends compute only the selected experts.

    ```mlir
    %y, %aux = einstruct.moe_layer "ga,frga,ferg->fe" sizes {...} d_in 2048
        d_out 2048 experts 8 top_k 2 (%x, %router, %w1, %w2) : (...) -> (...)
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$router,
                   Variadic<AnyRankedTensor>:$weights, StrAttr:$spec,
                   DictionaryAttr:$sizes, I64Attr:$d_in, I64Attr:$d_out,
                   I64Attr:$experts, I64Attr:$top_k);
  let results = (outs AnyRankedTensor:$result, AnyRankedTensor:$aux_loss);
  let assemblyFormat = [{
    $spec `sizes` $sizes `d_in` $d_in `d_out` $d_out `experts` $experts
    `top_k` $top_k ` ` `(` $input `,` $router `,` $weights `)` attr-dict `:`
    functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Einstruct_MoeLayerGradOp : Einstruct_Op<"moe_layer_grad", [Pure]> {
  let summary = "Gradients of a BTT-MoE layer (einstruct.moe_layer)";
  let description = [{
    For the moe_layer with the same attributes and operands, the gradients
    of <dy, y> + daux·aux_loss with respect to the input, the router and
    each weight. As in the published code, the +1e-6 on the gates and the
    selection counts of the aux loss are constants; idle experts' weight
    slices get zero. `--einstruct-autodiff` builds it for a function that
    returns a moe_layer's results.

    ```mlir
    %dx, %drouter, %dw1, %dw2 = einstruct.moe_layer_grad "ga,frga,ferg->fe"
        sizes {...} d_in 2048 d_out 2048 experts 8 top_k 2
        (%x, %router, %w1, %w2) grad (%dy, %daux) : (...) -> (...)
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$router,
                   Variadic<AnyRankedTensor>:$weights, AnyRankedTensor:$dy,
                   AnyRankedTensor:$daux, StrAttr:$spec,
                   DictionaryAttr:$sizes, I64Attr:$d_in, I64Attr:$d_out,
                   I64Attr:$experts, I64Attr:$top_k);
  let results = (outs AnyRankedTensor:$dinput, AnyRankedTensor:$drouter,
                      Variadic<AnyRankedTensor>:$dweights);
  let assemblyFormat = [{
    $spec `sizes` $sizes `d_in` $d_in `d_out` $d_out `experts` $experts
    `top_k` $top_k ` ` `(` $input `,` $router `,` $weights `)` `grad` ` ` `(` $dy
    `,` $daux `)` attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def Einstruct_ChunkDecaysOp : Einstruct_Op<"chunk_decays", [Pure]> {
  let summary = "The decay factors of a chunked semiseparable (SSD) scan";
  let description = [{
    For log decays a[n, c, q, h] (n sequences of c chunks of q steps, h
    heads; Mamba-2's dt·A in its layout), the segment sums that chunked
    SSD multiplies its contractions by (structures.md §7), exponentiated,
    head-major:

      within[n, h, c, l, s]  = l ≥ s ? exp(Σ_{t=s+1..l} a[n, c, t, h]) : 0
      to_end[n, h, c, s]     = exp(Σ_{t=s+1..q-1} a[n, c, t, h])
      from_start[n, h, c, l] = exp(Σ_{t=0..l} a[n, c, t, h])
      chunk[n, h, c]         = exp(Σ_{t=0..q-1} a[n, c, t, h])

    `within` masks C·Bᵀ inside a chunk, `to_end` decays inputs into their
    chunk's state, `chunk` carries a state across a whole chunk (for
    einstruct.chunk_scan) and `from_start` reads the entering state out.

    ```mlir
    %w, %e, %s, %g = einstruct.chunk_decays %a : tensor<?x4x64x12xf32> ->
        tensor<?x12x4x64x64xf32>, tensor<?x12x4x64xf32>,
        tensor<?x12x4x64xf32>, tensor<?x12x4xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32, F64]>:$a);
  let results = (outs RankedTensorOf<[F32, F64]>:$within,
                      RankedTensorOf<[F32, F64]>:$to_end,
                      RankedTensorOf<[F32, F64]>:$from_start,
                      RankedTensorOf<[F32, F64]>:$chunk);
  let assemblyFormat = [{
    $a attr-dict `:` type($a) `->` type($within) `,` type($to_end) `,`
    type($from_start) `,` type($chunk)
  }];
  let hasVerifier = 1;
}

def Einstruct_ChunkDecaysGradOp : Einstruct_Op<"chunk_decays_grad", [Pure]> {
  let summary = "The gradient of einstruct.chunk_decays";
  let description = [{
    da = Σ over the four results r of (∂r/∂a)ᵀ·dr, for the chunk_decays of
    `a` and cotangents of the results' types. `--einstruct-autodiff` builds
    it; the lowering recomputes the decays from a.

    ```mlir
    %da = einstruct.chunk_decays_grad %a grad (%dw, %de, %ds, %dg) :
        tensor<?x4x64x12xf32>, ... -> tensor<?x4x64x12xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32, F64]>:$a,
                   RankedTensorOf<[F32, F64]>:$dwithin,
                   RankedTensorOf<[F32, F64]>:$dto_end,
                   RankedTensorOf<[F32, F64]>:$dfrom_start,
                   RankedTensorOf<[F32, F64]>:$dchunk);
  let results = (outs RankedTensorOf<[F32, F64]>:$da);
  let assemblyFormat = [{
    $a `grad` ` ` `(` $dwithin `,` $dto_end `,` $dfrom_start `,` $dchunk `)`
    attr-dict `:` type($a) `,` type($dwithin) `,` type($dto_end) `,`
    type($dfrom_start) `,` type($dchunk) `->` type($da)
  }];
  let hasVerifier = 1;
}

def Einstruct_ChunkScanOp : Einstruct_Op<"chunk_scan", [Pure]> {
  let summary = "The states entering each chunk of a chunked SSD";
  let description = [{
    For each chunk's own state states[n, c, h, p, k] (Σ_s to_end·x ⊗ B,
    decayed to the chunk's end) and
    the decay across each chunk, decay[n, h, c]: the state entering chunk z,

      entering[n, 0] = 0,
      entering[n, z] = decay[n, h, z-1] · entering[n, z-1] + states[n, z-1],

    the inter-chunk recurrence of Mamba-2's state passing, c − 1 steps of
    h·p·k multiply-adds each.

    ```mlir
    %e = einstruct.chunk_scan %states, %decay : tensor<?x4x12x64x64xf32>,
        tensor<?x12x4xf32> -> tensor<?x4x12x64x64xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32, F64]>:$states,
                   RankedTensorOf<[F32, F64]>:$decay);
  let results = (outs RankedTensorOf<[F32, F64]>:$entering);
  let assemblyFormat = [{
    $states `,` $decay attr-dict `:` type($states) `,` type($decay) `->`
    type($entering)
  }];
  let hasVerifier = 1;
}

def Einstruct_ChunkScanGradOp : Einstruct_Op<"chunk_scan_grad", [Pure]> {
  let summary = "The gradient of einstruct.chunk_scan";
  let description = [{
    For the chunk_scan of (states, decay) and the cotangent of its result,
    the cotangents of states and decay: the recurrence run backwards (the
    lowering recomputes the entering states first).

    ```mlir
    %ds, %dg = einstruct.chunk_scan_grad %states, %decay grad %de : ...
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32, F64]>:$states,
                   RankedTensorOf<[F32, F64]>:$decay,
                   RankedTensorOf<[F32, F64]>:$dentering);
  let results = (outs RankedTensorOf<[F32, F64]>:$dstates,
                      RankedTensorOf<[F32, F64]>:$ddecay);
  let assemblyFormat = [{
    $states `,` $decay `grad` $dentering attr-dict `:` type($states) `,`
    type($decay) `,` type($dentering) `->` type($dstates) `,` type($ddecay)
  }];
  let hasVerifier = 1;
}

#endif // EINSTRUCT_OPS
