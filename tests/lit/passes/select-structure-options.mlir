// The pass's options are checked as the CLI checks its flags: NaN, infinite
// or out-of-range budgets are located errors, never a search.
// RUN: not einstruct-opt %s --einstruct-select-structure="max-flops-ratio=nan" 2>&1 | FileCheck %s --check-prefix=NAN
// RUN: not einstruct-opt %s --einstruct-select-structure="max-flops-ratio=inf" 2>&1 | FileCheck %s --check-prefix=INF
// RUN: not einstruct-opt %s --einstruct-select-structure="max-flops-ratio=0" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not einstruct-opt %s --einstruct-select-structure="min-psi=nan" 2>&1 | FileCheck %s --check-prefix=PSI
// RUN: not einstruct-opt %s --einstruct-select-structure="max-params=-5" 2>&1 | FileCheck %s --check-prefix=PARAMS
// NAN: error: --einstruct-select-structure: max-flops-ratio = nan must be a finite number > 0
// INF: error: --einstruct-select-structure: max-flops-ratio = inf must be a finite number > 0
// ZERO: error: --einstruct-select-structure: max-flops-ratio = 0.000000 must be a finite number > 0
// PSI: error: --einstruct-select-structure: min-psi = nan must be in [0, 1]
// PARAMS: error: --einstruct-select-structure: max-params = -5 must be >= 0

func.func @f(%x: tensor<?x64xf32>, %w: tensor<64x64xf32>) -> tensor<?x64xf32> {
  %y = einstruct.layer "i,oi->o" sizes {i = 64, o = 64} d_in 64 d_out 64 (%x, %w)
         : (tensor<?x64xf32>, tensor<64x64xf32>) -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
