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

#endif // EINSTRUCT_OPS
