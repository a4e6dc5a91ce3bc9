// RUN: einstruct-opt %s --einstruct-autodiff | FileCheck %s
// RUN: einstruct-opt %s --einstruct-autodiff --einstruct-lower-to-llvm | FileCheck %s --check-prefix=LLVM

// dx is the einsum read backwards (x and y swapped, the weights in reverse
// order, d_in/d_out swapped: search's transposedTerm, which the CUDA
// planner's backward role reads too);
// each dW contracts x and dy over the batch with the other weight, starting
// from whichever of x and dy gives the cheaper chain: for dA, dy·B first
// (n·f·e·g) then x (n·g·a·f) beats x·dy (n·g·a·f·e).
// CHECK-LABEL: func.func @layer_backward(%arg0: tensor<?x32xf32>, %arg1: tensor<4x8x4xf32>, %arg2: tensor<4x6x8xf32>, %arg3: tensor<?x24xf32>) -> (tensor<?x32xf32>, tensor<4x8x4xf32>, tensor<4x6x8xf32>)
// CHECK: einstruct.layer "fe,feg,fga->ga" {{.*}} d_in 24 d_out 32 (%arg3, %arg2, %arg1)
// CHECK: einstruct.contract "nfe,feg->nfg"
// CHECK: einstruct.contract "nfg,nga->fga"
// CHECK: einstruct.contract "nga,fga->ngf"
// CHECK: einstruct.contract "ngf,nfe->feg"
// CHECK: return
// LLVM: llvm.func @layer_backward
func.func @layer(%x: tensor<?x32xf32>, %a: tensor<4x8x4xf32>, %b: tensor<4x6x8xf32>) -> tensor<?x24xf32> {
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 8, a = 4, f = 4, e = 6} d_in 32 d_out 24 (%x, %a, %b)
         : (tensor<?x32xf32>, tensor<4x8x4xf32>, tensor<4x6x8xf32>) -> tensor<?x24xf32>
  return %y : tensor<?x24xf32>
}

// A sum of two terms sharing the input: both dx contributions are added
// (the reverse sweep meets the second term first).
// CHECK-LABEL: func.func @dyad_backward
// CHECK: %[[B:.*]] = einstruct.layer "ok,koi->ik"
// CHECK: %[[A:.*]] = einstruct.layer "ko,koi->ki"
// CHECK: arith.addf %[[B]], %[[A]]
func.func @dyad(%x: tensor<?x8xf32>, %l: tensor<2x6x4xf32>, %u: tensor<2x6x4xf32>) -> tensor<?x12xf32> {
  %0 = einstruct.layer "ki,koi->ko" sizes {i = 4, k = 2, o = 6} d_in 8 d_out 12 (%x, %l) : (tensor<?x8xf32>, tensor<2x6x4xf32>) -> tensor<?x12xf32>
  %1 = einstruct.layer "ik,koi->ok" sizes {i = 4, k = 2, o = 6} d_in 8 d_out 12 (%x, %u) : (tensor<?x8xf32>, tensor<2x6x4xf32>) -> tensor<?x12xf32>
  %2 = arith.addf %0, %1 : tensor<?x12xf32>
  return %2 : tensor<?x12xf32>
}

// A function returning a BTT-MoE layer's (y, aux_loss): its backward takes
// (dy, daux) and is one moe_layer_grad; the router and both weights get
// its gradients, in argument order.
// CHECK-LABEL: func.func @moe_backward(%arg0: tensor<?x16xf32>, %arg1: tensor<16x4xf32>, %arg2: tensor<3x4x4x4xf32>, %arg3: tensor<3x4x4x4xf32>, %arg4: tensor<?x12xf32>, %arg5: tensor<f32>) -> (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>)
// CHECK: %[[DX:.*]], %[[DR:.*]], %[[DW:.*]]:2 = einstruct.moe_layer_grad "ga,frga,ferg->fe" {{.*}} experts 4 top_k 2 (%arg0, %arg1, %arg2, %arg3) grad (%arg4, %arg5)
// CHECK: return %[[DX]], %[[DR]], %[[DW]]#0, %[[DW]]#1
// LLVM: llvm.func @moe_backward
func.func @moe(%x: tensor<?x16xf32>, %wg: tensor<16x4xf32>, %a: tensor<3x4x4x4xf32>, %b: tensor<3x4x4x4xf32>) -> (tensor<?x12xf32>, tensor<f32>) {
  %y, %aux = einstruct.moe_layer "ga,frga,ferg->fe" sizes {g = 4, a = 4, f = 3, e = 4, r = 4} d_in 16 d_out 12 experts 4 top_k 2 (%x, %wg, %a, %b)
      : (tensor<?x16xf32>, tensor<16x4xf32>, tensor<3x4x4x4xf32>, tensor<3x4x4x4xf32>) -> (tensor<?x12xf32>, tensor<f32>)
  return %y, %aux : tensor<?x12xf32>, tensor<f32>
}

// A mixer function: the reverse sweep gives each contraction "l,r->o" its
// two einsums ("o,r->l", "l,o->r"), the decays one chunk_decays_grad fed
// the cotangents of the results used (zeros for the others), and the
// chunking reshapes reshape back.
// CHECK-LABEL: func.func @mixer_backward(%arg0: tensor<?x8x2xf32>, %arg1: tensor<?x8x2xf32>, %arg2: tensor<?x8x2xf32>) -> (tensor<?x8x2xf32>, tensor<?x8x2xf32>)
// CHECK: %[[W:.*]], %{{.*}}, %{{.*}}, %{{.*}} = einstruct.chunk_decays %{{.*}} : tensor<?x2x4x2xf32>
// CHECK: %[[DW:.*]] = einstruct.contract "nclh,ncsh->nhcls" %[[DY:.*]], %[[X:.*]] :
// CHECK: %[[DX:.*]] = einstruct.contract "nhcls,nclh->ncsh" %[[W]], %[[DY]] :
// CHECK: %[[Z:.*]] = linalg.fill
// CHECK: %[[DA:.*]] = einstruct.chunk_decays_grad %{{.*}} grad (%[[DW]], %[[Z]], %{{.*}}, %{{.*}})
// CHECK: %[[DAF:.*]] = tensor.collapse_shape %[[DA]]
// CHECK: %[[DXF:.*]] = tensor.collapse_shape %[[DX]]
// CHECK: return %[[DXF]], %[[DAF]]
func.func @mixer(%x: tensor<?x8x2xf32>, %a: tensor<?x8x2xf32>) -> tensor<?x8x2xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x8x2xf32>
  %xc = tensor.expand_shape %x [[0], [1, 2], [3]] output_shape [%n, 2, 4, 2] : tensor<?x8x2xf32> into tensor<?x2x4x2xf32>
  %ac = tensor.expand_shape %a [[0], [1, 2], [3]] output_shape [%n, 2, 4, 2] : tensor<?x8x2xf32> into tensor<?x2x4x2xf32>
  %w, %e, %s, %t = einstruct.chunk_decays %ac : tensor<?x2x4x2xf32> ->
      tensor<?x2x2x4x4xf32>, tensor<?x2x2x4xf32>, tensor<?x2x2x4xf32>, tensor<?x2x2xf32>
  %y = einstruct.contract "nhcls,ncsh->nclh" %w, %xc : tensor<?x2x2x4x4xf32>, tensor<?x2x4x2xf32> -> tensor<?x2x4x2xf32>
  %yf = tensor.collapse_shape %y [[0], [1, 2], [3]] : tensor<?x2x4x2xf32> into tensor<?x8x2xf32>
  return %yf : tensor<?x8x2xf32>
}

// A constant argument (a DFT matrix): no gradient is returned for it, and
// none is computed for it or for what only it reaches (the product of the
// two constants, %0, is recomputed but never differentiated); the backward
// marks it constant too.
// CHECK-LABEL: func.func @dft_backward(%arg0: tensor<?x4x3xf32>, %arg1: tensor<4x4x2xf32> {einstruct.constant}, %arg2: tensor<2x2xf32> {einstruct.constant}, %arg3: tensor<3xf32>, %arg4: tensor<?x4x3x2xf32>) -> (tensor<?x4x3xf32>, tensor<3xf32>)
// CHECK: %[[FS:.*]] = einstruct.contract "tfc,cx->tfx" %arg1, %arg2
// CHECK-NOT: ->tfx"
// CHECK-NOT: ->cx"
// CHECK: %[[DD:.*]] = einstruct.contract "std,std->d" %arg0
// CHECK: %[[DXY:.*]] = einstruct.contract "sfdx,tfx->std" %{{.*}}, %[[FS]]
// CHECK-NOT: ->tfx"
// CHECK: %[[DX:.*]] = arith.addf %{{.*}}, %[[DXY]]
// CHECK: return %[[DX]], %[[DD]] : tensor<?x4x3xf32>, tensor<3xf32>
func.func @dft(%x: tensor<?x4x3xf32>, %f: tensor<4x4x2xf32> {einstruct.constant},
               %s: tensor<2x2xf32> {einstruct.constant}, %d: tensor<3xf32>) -> tensor<?x4x3x2xf32> {
  %fs = einstruct.contract "tfc,cx->tfx" %f, %s : tensor<4x4x2xf32>, tensor<2x2xf32> -> tensor<4x4x2xf32>
  %y = einstruct.contract "std,tfx->sfdx" %x, %fs : tensor<?x4x3xf32>, tensor<4x4x2xf32> -> tensor<?x4x3x2xf32>
  %skip = einstruct.contract "std,d->std" %x, %d : tensor<?x4x3xf32>, tensor<3xf32> -> tensor<?x4x3xf32>
  %z = einstruct.contract "sfd,sfdx->sfdx" %skip, %y : tensor<?x4x3xf32>, tensor<?x4x3x2xf32> -> tensor<?x4x3x2xf32>
  return %z : tensor<?x4x3x2xf32>
}

// Hydra's sequence ops: a flip is its own gradient; a static slice's
// gradient is its cotangent zero-padded back to the source, a zero pad's is
// the slice it added around (shift by one token: slice then pad).
// CHECK-LABEL: func.func @shift_flip_backward(%arg0: tensor<?x5x2xf32>, %arg1: tensor<?x5x2xf32>) -> tensor<?x5x2xf32>
// CHECK: %[[R:.*]] = einstruct.reverse %arg1 dim 1 : tensor<?x5x2xf32>
// CHECK: %[[S:.*]] = tensor.extract_slice %[[R]][0, 1, 0] [%{{.*}}, 4, 2] [1, 1, 1] : tensor<?x5x2xf32> to tensor<?x4x2xf32>
// CHECK: %[[P:.*]] = tensor.pad %[[S]] low[0, 0, 0] high[0, 1, 0]
// CHECK: return %[[P]]
// LLVM: llvm.func @shift_flip_backward
func.func @shift_flip(%x: tensor<?x5x2xf32>) -> tensor<?x5x2xf32> {
  %c0 = arith.constant 0 : index
  %zero = arith.constant 0.0 : f32
  %n = tensor.dim %x, %c0 : tensor<?x5x2xf32>
  %s = tensor.extract_slice %x[0, 0, 0] [%n, 4, 2] [1, 1, 1] : tensor<?x5x2xf32> to tensor<?x4x2xf32>
  %p = tensor.pad %s low[0, 1, 0] high[0, 0, 0] {
  ^bb0(%i: index, %j: index, %k: index):
    tensor.yield %zero : f32
  } : tensor<?x4x2xf32> to tensor<?x5x2xf32>
  %r = einstruct.reverse %p dim 1 : tensor<?x5x2xf32>
  return %r : tensor<?x5x2xf32>
}

// Elementwise functions: dx = dy ⊙ f'(scale·x + shift) · scale, the
// derivative itself an einstruct.unary; cos' reads sin at the negated
// argument; identity's is the scale alone.
// CHECK-LABEL: func.func @unary_backward(%arg0: tensor<?x8xf32>, %arg1: tensor<?x8xf32>) -> tensor<?x8xf32>
// CHECK-DAG: %[[C:.*]] = einstruct.unary "cos" %arg0 scale 2.000000e+00 shift 5.000000e-01
// CHECK-DAG: %[[S:.*]] = einstruct.unary "sin" %[[C]] scale -3.000000e+00 shift -1.000000e+00
// CHECK-DAG: %[[N:.*]] = einstruct.unary "identity" %arg1 scale -1.000000e+00
// CHECK: %[[G1:.*]] = einstruct.contract "ab,ab->ab" %[[N]], %[[S]]
// CHECK: %[[G2:.*]] = einstruct.unary "identity" %[[G1]] scale 3.000000e+00
// CHECK: %[[D:.*]] = einstruct.unary "sin" %arg0 scale -2.000000e+00 shift -5.000000e-01
// CHECK: %[[G3:.*]] = einstruct.contract "ab,ab->ab" %[[G2]], %[[D]]
// CHECK: %[[G4:.*]] = einstruct.unary "identity" %[[G3]] scale 2.000000e+00
// CHECK: return %[[G4]]
// LLVM: llvm.func @unary_backward
func.func @unary(%x: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %c = einstruct.unary "cos" %x scale 2.0 shift 0.5 : tensor<?x8xf32>
  %s = einstruct.unary "cos" %c scale 3.0 shift 1.0 : tensor<?x8xf32>
  %n = einstruct.unary "identity" %s scale -1.0 : tensor<?x8xf32>
  return %n : tensor<?x8xf32>
}
