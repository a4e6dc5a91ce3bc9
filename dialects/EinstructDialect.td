// The einstruct dialect: structured linear layers as einsum expressions.
#ifndef EINSTRUCT_DIALECT
#define EINSTRUCT_DIALECT

include "mlir/IR/OpBase.td"

def Einstruct_Dialect : Dialect {
  let name = "einstruct";
  let cppNamespace = "::einstruct";
  let summary = "Structured linear layers as einsums of an input and weights";
  let description = [{
    A layer maps x (batch..., d_in) to y (batch..., d_out) through an einsum
    of x with one or more weight tensors (structures.md). Attributes carry the
    einsum, the size of every index and, when known, the θ exponents.
  }];
  // `einstruct.budget` on any op is checked like the CLI's flags.
  let hasOperationAttrVerify = 1;
  // #einstruct.cuda_plan (EinstructAttrs.td), registered from
  // EinstructAttrs.cpp where its storage type is complete.
  let useDefaultAttributePrinterParser = 1;
  let extraClassDeclaration = [{ void registerAttributes(); }];
}

class Einstruct_Op<string mnemonic, list<Trait> traits = []>
    : Op<Einstruct_Dialect, mnemonic, traits>;

#endif // EINSTRUCT_DIALECT
