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

#endif // EINSTRUCT_OPS
