#!/usr/bin/env python3
"""Prints the wgmma wrappers of compiler/cuda/kernels/einstruct_sm90.cuh
(the block between its 'generated' markers): one specialisation per N of
wgmma.mma_async m64nNk16 with fp32 accumulators, both operands from shared
memory descriptors, bf16 or f16 inputs, A K-major or M-major (TA), B
K-major or N-major (TB).
Inline PTX needs every accumulator register named, hence a generator.
    scripts/gen_wgmma.py > /tmp/w.inc   # then paste between the markers
"""
NS = (8, 16, 32, 64, 128)

print("template <int N, class T, int TA, int TB = 0> struct Wgmma;")
for n in NS:
    regs = n // 2
    for ty, tn in (("__nv_bfloat16", "bf16"), ("__half", "f16")):
        outs = ", ".join(f"%{i}" for i in range(regs))
        cons = ", ".join(f'"+f"(d[{i}])' for i in range(regs))
        print(f"template <int TA, int TB> struct Wgmma<{n}, {ty}, TA, TB> {{")
        print(f"  __device__ __forceinline__ static void run(float (&d)[{regs}], uint64_t a, uint64_t b, int accumulate) {{")
        print('    asm volatile("{\\n.reg .pred p;\\n"')
        print(f'                 "setp.ne.b32 p, %{regs + 2}, 0;\\n"')
        print(f'                 "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{tn}.{tn} "')
        print(f'                 "{{{outs}}}, "')
        print(f'                 "%{regs}, %{regs + 1}, p, 1, 1, %{regs + 3}, %{regs + 4};\\n}}\\n"')
        print(f'                 : {cons}')
        print('                 : "l"(a), "l"(b), "r"(accumulate), "n"(TA), "n"(TB));')
        print("  }")
        print("};")
