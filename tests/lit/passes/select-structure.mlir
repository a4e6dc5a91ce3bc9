// RUN: einstruct-opt %s --einstruct-select-structure | FileCheck %s
// RUN: einstruct-opt %s --einstruct-select-structure="max-flops-ratio=0.0625 objective=flops" | FileCheck %s --check-prefix=FLOPS
// RUN: einstruct-opt %s --einstruct-select-structure --einstruct-annotate-cost | FileCheck %s --check-prefix=COST

// Default budget 1/4 of dense MACs, the paper's objective: the dense weight
// argument is replaced by the structure's two weights.
// CHECK-LABEL: func.func @mlp_up(%arg0: tensor<?x1024xf32>, %arg1: tensor<{{[0-9x]+}}xf32>, %arg2: tensor<{{[0-9x]+}}xf32>) -> tensor<?x4096xf32>
// CHECK: einstruct.layer "{{[a-z]+}},{{[a-z]+}},{{[a-z]+}}->{{[a-z]+}}" {{.*}} d_in 1024 d_out 4096 (%arg0, %arg1, %arg2) {einstruct.selected = "{{.*}}omega=0, psi=1{{.*}}"}
// CHECK-NOT: oi->o
// COST: einstruct.flops = [[F:[0-9]+]] : i64
// COST-SAME: einstruct.psi = 1.000000e+00
// FLOPS-LABEL: func.func @mlp_up
// FLOPS: einstruct.selected = "{{.*}}: {{[0-9]+}} MACs;
func.func @mlp_up(%x: tensor<?x1024xf32>, %w: tensor<4096x1024xf32>) -> tensor<?x4096xf32> {
  %y = einstruct.layer "i,oi->o" sizes {i = 1024, o = 4096} d_in 1024 d_out 4096 (%x, %w)
         : (tensor<?x1024xf32>, tensor<4096x1024xf32>) -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}

// An op's own budget wins over the options: full rank within 1/16 of dense.
// CHECK-LABEL: func.func @own_budget
// CHECK: einstruct.selected = "monarch: omega=0, psi=1
// CHECK-NOT: einstruct.budget
func.func @own_budget(%x: tensor<8x4096xf32>, %w: tensor<4096x4096xf32>) -> tensor<8x4096xf32> {
  %y = einstruct.layer "i,oi->o" sizes {i = 4096, o = 4096} d_in 4096 d_out 4096 (%x, %w)
         {einstruct.budget = {max_flops_ratio = 0.03125, min_psi = 1.0}}
         : (tensor<8x4096xf32>, tensor<4096x4096xf32>) -> tensor<8x4096xf32>
  return %y : tensor<8x4096xf32>
}

// Structured layers are left as they are.
// CHECK-LABEL: func.func @already
// CHECK: einstruct.layer "ga,fga,feg->fe"
func.func @already(%x: tensor<?x64xf32>, %a: tensor<8x8x8xf32>, %b: tensor<8x8x8xf32>) -> tensor<?x64xf32> {
  %y = einstruct.layer "ga,fga,feg->fe" sizes {g = 8, a = 8, f = 8, e = 8} d_in 64 d_out 64 (%x, %a, %b)
         : (tensor<?x64xf32>, tensor<8x8x8xf32>, tensor<8x8x8xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
