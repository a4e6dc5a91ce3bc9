#!/usr/bin/env bash
# Every CLI error class: exit code 2, one line on stderr naming the problem,
# nothing on stdout, and no output file left behind.
set -u
EINSTRUCT=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0

# expect "substring of the error" args...
expect() {
  local want=$1; shift
  local out="$work/out.txt"
  "$EINSTRUCT" "$@" -o "$out" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  local err; err=$(cat "$work/stderr")
  local lines; lines=$(wc -l <"$work/stderr")
  if [[ $rc -eq 2 && $lines -eq 1 && "$err" == "einstruct: error: "*"$want"* \
        && ! -s "$work/stdout" && ! -e "$out" ]] \
     && ! ls "$work" | grep -q '\.tmp\.'; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: einstruct $* -> rc=$rc, stderr: $err (wanted: $want)"
  fi
}

cat >"$work/mismatch.json" <<'JSON'
{"terms": [{"einsum": "ki,koi->ko", "sizes": "k=4,i=16,o=16"},
           {"einsum": "ki,koi->ko", "sizes": "k=4,i=8,o=16"}]}
JSON
printf '{"theta": "(1|0|0|0|0|1|0)", "d_in": 4' >"$work/broken.json"
cat >"$work/bad.json" <<'JSON'
[{"structure": "dense", "d_in": 4, "d_out": 4},
 {"theta": "(0.5|0|0.5|0|0.5|0.5)", "d_in": 16, "d_out": 16}]
JSON

d=(--d-in 4096 --d-out 4096)
# Malformed θ: wrong count, sums off, negative, NaN.
expect "θ has 6 fields, expected 7" analyze --theta '(0.5|0|0.5|0|0.5|0.5)' "${d[@]}"
expect "θα+θβ+θγ = 1.1, must be 1" analyze --theta '(0.5|0|0.6|0|0.5|0.5|0)' "${d[@]}"
expect "θβ = -0.5 is outside [0, 1]" analyze --theta '(1|-0.5|0.5|0|0.5|0.5|0)' "${d[@]}"
expect "θγ is not a finite number" analyze --theta '(0.5|0|nan|0|0.5|0.5|0)' "${d[@]}"
expect "θγ (field 3, column 8): 'x' is not a number" analyze --theta '(0.5|0|x|0|0.5|0.5|0)' "${d[@]}"
expect "needs d_in and d_out" analyze --theta '(0.5|0|0.5|0|0.5|0.5|0)'
expect "sizing 'fancy' must be 'round' or 'exact'" analyze --theta '(0.5|0|0.5|0|0.5|0.5|0)' "${d[@]}" --sizing fancy
expect "pads d_in 6 -> 4 (33.3%)" analyze --theta '(0.5|0|0.5|0|0.5|0.5|0)' --d-in 6 --d-out 16
# Bad einsum strings: unknown letter, repeated output index, size mismatch.
expect "unexpected character '1' at column 2" analyze --einsum 'g1,fga,feg->fe' --sizes g=2,a=2,f=2,e=2
expect "output index 'f' repeated at column 14" analyze --einsum 'ga,fga,feg->ff' --sizes g=2,a=2,f=2,e=2
expect "'z' is not an index of the einsum" analyze --einsum 'ga,fga,feg->fe' --sizes g=2,a=2,f=2,e=2,z=2
expect "no size given for index 'e'" analyze --einsum 'ga,fga,feg->fe' --sizes g=2,a=2,f=2
expect "term 2 maps 32 -> 64 but term 1 maps 64 -> 64" analyze "$work/mismatch.json"
# Impossible sizes: 0, huge, overflow.
expect "size of 'e' at column 15 is 0" analyze --einsum 'ga,fga,feg->fe' --sizes g=2,a=2,f=2,e=0
expect "d_in = 0 is outside [1, 2^40]" analyze --structure dense --d-in 0 --d-out 4
expect "exceeds the limit 2^40" analyze --einsum 'ga,fga,feg->fe' --sizes g=2,a=2,f=2,e=99999999999999
expect "overflows 64 bits" analyze --theta '(1|0|0|0|0|1|0)' --d-in 1099511627776 --d-out 1099511627776
# Unknown names and bad parameters.
expect "unknown structure 'circulant'" analyze --structure circulant "${d[@]}"
expect "blocks = 5 does not divide d_in = 4096" analyze --structure 'monarch(5)' "${d[@]}"
# Bad JSON and bad fields.
expect "invalid JSON at byte" analyze "$work/broken.json"
expect "bad.json[1].theta: θ has 6 fields" analyze "$work/bad.json"
expect "cannot open the file" analyze "$work/missing.json"
# Usage errors.
expect "give spec files or one inline spec" analyze
expect "give only one of theta, einsum, structure" analyze --theta '(1|0|0|0|0|1|0)' --structure dense "${d[@]}"
expect "--d-in: 'four' is not an integer" analyze --structure dense --d-in four --d-out 4
# Numbers at the edges of 64 bits: refused as written, never saturated,
# wrapped into unsigned options, or taken as inf/nan.
expect "--d-in: '9223372036854775808' is not an integer in [-2^63, 2^63)" analyze --structure dense --d-in 9223372036854775808 --d-out 4
expect "d_in = 9223372036854775807 is outside [1, 2^40]" analyze --structure dense --d-in 9223372036854775807 --d-out 4
expect "--top: '-1' is not an integer in [0, 2^63)" search --d-in 64 --d-out 64 --top -1
expect "--max-flops-ratio: 'nan' is not a finite number above 0" search --d-in 64 --d-out 64 --max-flops-ratio nan
expect "--max-flops-ratio: '1e400' is not a finite number" search --d-in 64 --d-out 64 --max-flops-ratio 1e400
expect "--min-psi: '1.5' is not a number in [0, 1]" search --d-in 64 --d-out 64 --min-psi 1.5
expect "--max-flops -5 must be at least 1" search --d-in 64 --d-out 64 --max-flops -5
expect "--seed: '-1' is not an integer in [0, 2^63)" run --structure dense --d-in 4 --d-out 4 --seed -1
expect "--batch 9223372036854775807 must be in [1, 2^24]" run --structure dense --d-in 4 --d-out 4 --batch 9223372036854775807
expect "--batch 16777216 × d_in 1048576 is too large" run --structure 'low-rank(1)' --d-in 1048576 --d-out 4 --batch 16777216
expect "--aux-weight: 'nan' is not a finite number >= 0" run --structure 'btt-moe(experts=4, top_k=2)' --d-in 16 --d-out 16 --aux-weight nan
expect "no_such_router.npy: cannot open the file" run --structure 'btt-moe(experts=4, top_k=2)' --d-in 16 --d-out 16 --router no_such_router.npy
expect "θα+θβ+θγ = 0.989, must be 1 (±0.01)" analyze --theta '(0.989|0|0|0|0|1|0)' --d-in 64 --d-out 64
expect "θα = 1e+308 is outside [0, 1]" analyze --theta '(1e308|0|0|0|0|1|0)' --d-in 64 --d-out 64
expect "θα (field 1, column 2): division by zero" analyze --theta '(1/0|0|1|0|0|1|0)' --d-in 64 --d-out 64
expect "size of 'g' at column 3 exceeds the limit 2^40" analyze --einsum 'ga,fga,feg->fe' --sizes g=99999999999999999999999,a=2,f=2,e=2
printf '{"shapes": [[64, 64]], "budgets": [{"max_flops_ratio": 0.5}], "objectives": ["paper"], "tokens": 2e10995116}' >"$work/overflow.json"
expect "overflow.json: invalid JSON: [json.exception.out_of_range.406] number overflow" sweep "$work/overflow.json"

# Search errors.
expect "unknown objective 'fastest'" search --d-in 64 --d-out 64 --objective fastest
expect "--family: unknown family 'circulant'" search --d-in 64 --d-out 64 --family circulant
expect "no structure meets the constraints" search --d-in 64 --d-out 64 --max-params 1
expect "search needs --d-in and --d-out" search
expect "d_in = 1 is outside [2, 2^24] for search" search --d-in 1 --d-out 64
expect "--moe: '8:9' must be EXPERTS:TOP_K" search --d-in 64 --d-out 64 --moe 8:9
expect "cannot open the file" search --model "$work/nope.json"
expect "unknown device 'tpu'" search --d-in 64 --d-out 64 --objective roofline --device tpu
expect "--grid: '0x10' is not an integer" search --d-in 64 --d-out 64 --grid 0x10
expect "--grid: ' 12' is not an integer" search --d-in 64 --d-out 64 --grid ' 12'
expect "the space holds more than 500000 distinct structures (grid 48 with rounded sizes)" \
  search --d-in 4096 --d-out 4096 --grid 48 --include-rounded
expect "--repeat: '0x3' is not an integer" run --structure 'monarch(8)' --d-in 64 --d-out 64 --repeat 0x3
# Arrays past what this process may use are refused up front: a 16 GiB
# dense weight under a 4 GiB address-space limit (was std::bad_alloc).
# (Not under AddressSanitizer: its shadow memory needs more address space
# than such a limit leaves.)
if [ -n "${ASAN_OPTIONS:-}" ]; then
  echo "note: the 4 GiB address-space case is skipped under AddressSanitizer"
else
  if (ulimit -v 4194304 && "$EINSTRUCT" run --structure dense --d-in 65536 \
        --d-out 65536 --batch 1 >"$work/stdout" 2>"$work/stderr"); then rc=0; else rc=$?; fi
  if [[ $rc -eq 2 ]] && grep -q "^einstruct: error: the arrays need 16.0 GiB, more than the 4.0 GiB this process may use$" "$work/stderr"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1)); echo "FAIL: 16 GiB under a 4 GiB limit -> rc=$rc, stderr: $(cat "$work/stderr")"
  fi
fi

# compile: bad flags and structures the CUDA emitter does not take.
m=(--structure 'monarch(8)' --d-in 64 --d-out 64)
expect "--dtype: unknown 'f64'" compile "${m[@]}" --dtype f64
expect "--arch: unknown 'sm_70'" compile "${m[@]}" --arch sm_70
expect "--target: unknown 'rocm'" compile "${m[@]}" --target rocm
expect "--name: '9x' is not a C identifier" compile "${m[@]}" --name 9x
expect "--emit: unknown 'onnx'" compile "${m[@]}" --emit onnx
expect "--hopper-tile: '16:1': expected FC:NWG:STAGES[:CL] (2 number(s) given)" \
  compile "${m[@]}" --hopper-tile 16:1
expect "--hopper-tile: 'x:1:7': expected FC:NWG:STAGES[:CL], integers below 10000 (column 1)" \
  compile "${m[@]}" --hopper-tile x:1:7
expect "monarch: hopper tile 16:1:7:1: the forward cannot run the sm_90a kernel: a, r·g and e must be multiples of 64" \
  compile "${m[@]}" --hopper-tile 16:1:7
expect "monarch: hopper tile 32:1:2:1: the forward cannot run the sm_90a kernel: 304160 B of shared memory exceed the budget of 225280" \
  compile --structure 'monarch(64)' --d-in 4096 --d-out 4096 --hopper-tile 32:1:2
expect "--name: '2x' is not a Python identifier" compile "${m[@]}" --emit torch --name 2x
expect "--emit torch: --target 'cuda' does not apply" compile "${m[@]}" --emit torch --target cuda
expect "needs two weight tensors" compile --einsum 'abc,xap,pybq,qzc->xyz' \
  --sizes a=2,b=2,c=2,x=2,y=2,z=2,p=2,q=2
expect "term 1 (ki,oik->ko): the weight's innermost letter is the block letter" \
  compile --einsum 'ki,oik->ko' --sizes k=3,i=5,o=7
expect "class β has size 128; the CUDA kernels take at most 64" compile \
  --einsum 'gba,fdrga,fergb->fed' --sizes g=1,b=128,a=2,f=1,d=1,r=1,e=2

/usr/bin/python3 -c "import json; json.dump({'shapes': {'d_in': list(range(2, 4002)), 'd_out': list(range(2, 4002))}, 'budgets': [{'max_flops_ratio': 0.5}], 'objectives': ['paper']}, open('$work/huge_sweep.json', 'w'))"
expect "4000 × 4000 shapes exceed the 10000000 rows a config may hold" sweep "$work/huge_sweep.json"

# project: a missing weight file and structures it does not take.
/usr/bin/python3 -c "import numpy; numpy.save('$work/w16.npy', numpy.zeros((16, 16), 'f4'))"
expect "cannot open the file" project --structure 'monarch(4)' --d-in 16 --d-out 16 --weight "$work/none.npy"
expect "sums of terms (DYAD) are not projected" project --structure 'dyad(4, DT)' --d-in 16 --d-out 16 --weight "$work/w16.npy"
expect "the dense weight is all zeros" project --structure 'monarch(4)' --d-in 16 --d-out 16 --weight "$work/w16.npy"
# Weights name the layer they were written for: m2's Monarch spelling (block
# index last in y) has the same weight shapes and is refused, not run.
/usr/bin/python3 -c "import numpy; numpy.save('$work/w64.npy', numpy.arange(4096, dtype='f4').reshape(64, 64) % 7)"
"$EINSTRUCT" project --structure 'monarch(8)' --d-in 64 --d-out 64 --weight "$work/w64.npy" -o "$work/m.safetensors" >/dev/null
"$EINSTRUCT" project --structure 'monarch(8)' --d-in 64 --d-out 64 --weight "$work/w64.npy" -o "$work/mdir" >/dev/null
m2=(--einsum 'ga,fga,feg->ef' --sizes g=8,a=8,f=8,e=8)
expect "m.safetensors: written for the layer 'ga,fga,feg->fe a=8,e=8,f=8,g=8 d_in=64 d_out=64' (its __metadata__), but this layer is 'ga,fga,feg->ef a=8,e=8,f=8,g=8 d_in=64 d_out=64'" \
  run "${m2[@]}" --weights "$work/m.safetensors:w1,$work/m.safetensors:w2"
expect "mdir/w1.npy: written for the layer 'ga,fga,feg->fe a=8,e=8,f=8,g=8 d_in=64 d_out=64' ($work/mdir/einstruct.json)" \
  run "${m2[@]}" --weights "$work/mdir/w1.npy,$work/mdir/w2.npy"
if "$EINSTRUCT" run --structure 'monarch(8)' --d-in 64 --d-out 64 --repeat 1 \
     --weights "$work/mdir/w1.npy,$work/mdir/w2.npy" >/dev/null; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: run with the weights project wrote for the layer"
fi

# A bias of another length; the layout spelled in a spec.
/usr/bin/python3 -c "import numpy; numpy.save('$work/b15.npy', numpy.zeros(15, 'f4'))"
expect "b15.npy: shape (15) must be (d_out = 16)" run --structure 'monarch(4)' --d-in 16 --d-out 16 --bias "$work/b15.npy"
expect "monarch: nblocks is fly's count of square blocks" analyze --structure 'monarch(nblocks=4)' --d-in 16 --d-out 16
expect "layout = 'flax' must be one of: einstruct, fly" analyze --structure 'monarch(4, layout=flax)' --d-in 16 --d-out 16
# An output directory that is a file is refused; a nested one is made with
# its parents.
printf x >"$work/plainfile"
err=$("$EINSTRUCT" compile --structure 'monarch(4)' --d-in 16 --d-out 16 -o "$work/plainfile" 2>&1 >/dev/null)
if [[ $? -eq 2 && "$err" == *"plainfile: exists and is not a directory"* ]]; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: output directory that is a file: $err"
fi
if "$EINSTRUCT" compile --structure 'monarch(4)' --d-in 16 --d-out 16 -o "$work/a/b/c" >/dev/null &&
   ls "$work/a/b/c"/*.cu >/dev/null 2>&1; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: compile -o a/b/c did not make the nested directory"
fi
# Sequence mixers.
expect "--mixer needs --seq-len L" analyze --mixer 'ssd(4, 8, 16)'
expect "--mixer: unknown mixer 'mamba'; known: ssd, hydra, m2-conv, monarch-seq, dense-seq, toeplitz, low-rank-seq, hydra-block, m2-block" analyze --mixer mamba --seq-len 64
expect "--mixer dense-seq: needs --d-model" analyze --mixer dense-seq --seq-len 64
expect "--mixer ssd(4, 8, 16, 128): ssd: chunk = 128 exceeds the sequence length 64" analyze --mixer 'ssd(4, 8, 16, 128)' --seq-len 64
expect "m2-conv: the DFT size 2L = 8192 is not a square b² and pad=false" analyze --mixer 'm2-conv(pad=false)' --seq-len 4096 --d-model 8
expect "monarch-seq: blocks = 7 does not divide the sequence length 64" analyze --mixer 'monarch-seq(7)' --seq-len 64 --d-model 8
expect "--mixer-family: unknown mixer family 'mamba'" search --mixer-family ssd,mamba --seq-len 64 --d-model 8
expect "--mixer-family needs --seq-len L and --d-model D" search --mixer-family ssd --seq-len 64
expect "no mixer meets the constraints" search --mixer-family dense-seq --seq-len 64 --d-model 8 --max-flops 10
expect "--mixer needs --seq-len L (or --input with the operands)" run --mixer 'ssd(2, 4, 8)'
expect "--mixer: toeplitz is costed by analyze and search; the CPU runs ssd, hydra, m2-conv, monarch-seq, hydra-block and m2-block" run --mixer toeplitz --seq-len 16
# Whole blocks: their sizes checked (for the CPU and CUDA alike), not search
# candidates.
expect "--mixer: hydra-block: d_model = 0 must be in [1, 2^20]" run --mixer 'hydra-block(state=4, head_dim=4)' --seq-len 16
expect "hydra-block: conv = 4 must be odd (the reference pads conv // 2 on each side" run --mixer 'hydra-block(state=4, head_dim=4, conv=4)' --seq-len 16 --d-model 8
expect "hydra-block: head_dim = 5 does not divide expand × d_model = 16" analyze --mixer 'hydra-block(state=4, head_dim=5)' --seq-len 16 --d-model 8
expect "--mixer-family: hydra-block is a whole block (its projections included); search ranks the mixers inside blocks" search --mixer-family hydra,hydra-block --seq-len 64 --d-model 8
expect "--mixer: hydra-block: head_dim = 5 does not divide expand × d_model = 16" compile --mixer 'hydra-block(state=4, head_dim=5)' --seq-len 16 --d-model 8
expect "--mixer: m2-block: l_max = 8 is shorter than the sequence length 16" run --mixer 'm2-block(l_max=8)' --seq-len 16 --d-model 4
expect "--mixer: hydra-block: proj = 'monarch(blocks=3)' as in_proj (8 -> 56): monarch: blocks = 3 does not divide d_in = 8" run --mixer 'hydra-block(state=4, head_dim=4, proj=monarch(blocks=3))' --seq-len 16 --d-model 8
expect "--mixer: hydra-block: out_proj = 'low-rank(rank=99)' as out_proj (16 -> 8)" run --mixer 'hydra-block(state=4, head_dim=4, out_proj=low-rank(rank=99))' --seq-len 16 --d-model 8
expect "--mixer: m2-block: proj = 'search(0.001)': max_flops_ratio = 0.001 of the dense projections' 64 MACs per token is under one" run --mixer 'm2-block(proj=search(0.001))' --seq-len 16 --d-model 4
expect "m2-block: out_linear = 'search(0.5)': the search chooses the projections together; give it as proj = search(0.5)" analyze --mixer 'm2-block(out_linear=search(0.5))' --seq-len 16 --d-model 4
expect "m2-block: parameter w_mod = 'fast' must be a finite number" analyze --mixer 'm2-block(w_mod=fast)' --seq-len 16 --d-model 4
expect "--mixer: m2-conv mixes each of d_model channels: d_model = 0 must be in [1, 2^20]" run --mixer m2-conv --seq-len 16
expect "--mixer: d_model = 7 but ssd has heads · head_dim = 8" run --mixer 'ssd(2, 4, 8)' --seq-len 16 --d-model 7
expect "--mixer: monarch-seq: monarch: layout=fly with nblocks = 4 and d_in = 24" run --mixer 'monarch-seq(4)' --seq-len 24 --d-model 2
expect "--mixer: m2-conv mixes each of d_model channels: d_model = 0" compile --mixer 'm2-conv' --seq-len 16 --emit torch
expect "--mixer runs a sequence mixer; --theta/--einsum/--structure/--sizes/--d-in/--d-out belongs to a layer" run --mixer 'ssd(2, 4, 8)' --seq-len 16 --structure 'monarch(4)'
expect "--mixer runs a sequence mixer; --check belongs to a layer" run --mixer 'ssd(2, 4, 8)' --seq-len 16 --check
expect "ssd: chunk = 32 exceeds the sequence length 16" run --mixer 'ssd(2, 4, 8, 32)' --seq-len 16
expect "ssd: parameter state = '-1' must be a positive integer" run --mixer 'ssd(2, 4, -1)' --seq-len 16
expect "--seq-len: Value 0 not in range" run --mixer 'ssd(2, 4, 8)' --seq-len 0
expect "--mixer needs --seq-len L" compile --mixer 'ssd(2, 4, 8)' --emit torch
expect "give --mixer or a layer spec, not both" compile --mixer 'ssd(2, 4, 8)' --seq-len 16 --structure 'monarch(4)' --emit torch
expect "--mixer: ssd: chunk = 32 exceeds the sequence length 16" compile --mixer 'ssd(2, 4, 8, 32)' --seq-len 16 --emit torch
expect "--mixer analyses mixers only" analyze --mixer dense-seq --seq-len 64 --d-model 8 --structure dense --d-in 4 --d-out 4
# import and export: a located error, nothing written.
expect "--from: unknown checkpoint source 'jax'" import --from jax "$work/m.safetensors"
expect "no fly structured layer in the checkpoint (2 floating tensors: w1 (8, 8, 8), w2 (8, 8, 8))" import --from fly "$work/m.safetensors"
/usr/bin/python3 -c "import numpy; numpy.save('$work/w444.npy', numpy.ones((4, 4, 4), 'f4'))"
expect "einsum-search's OptBlockTT stores BTT layers" export --to einsum-search --structure 'dyad(4, DT)' --d-in 16 --d-out 16 --weights "$work/w444.npy,$work/w444.npy"

# A successful run writes its output file whole.
if "$EINSTRUCT" analyze --structure dense --d-in 4 --d-out 4 --json -o "$work/ok.json" \
   && grep -q '"params":16' "$work/ok.json"; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: -o did not write the analysis"
fi

# report: every field it reads is type-checked (FILE:LINE: field: problem),
# deep nesting is refused before parsing, a torn last line is left out.
report_case() { # WANT LINE
  printf '%s\n' "$2" >"$work/r.jsonl"
  expect "r.jsonl:1: $1" report "$work/r.jsonl"
}
report_case "top: must be an array" '{"row":0,"front":[],"top":"x"}'
report_case "d_in: must be a positive whole number" '{"row":0,"d_in":"5","front":[],"top":[]}'
report_case "front[0]: must be an object" '{"row":0,"front":[1,2],"top":[]}'
report_case "top[0].sizes.b: must be a whole number or null" '{"row":0,"front":[],"top":[{"sizes":{"a":1}}]}'
report_case "row: missing" '{"front":[],"top":[]}'
report_case "nested deeper than 128 levels" \
  "{\"row\":0,\"front\":[],\"top\":[],\"x\":$(printf '[%.0s' {1..5000})$(printf ']%.0s' {1..5000})}"
printf '{"row":0,"front":[],"top":[]}\n{"row":1,"fr' >"$work/torn.jsonl"
if "$EINSTRUCT" report "$work/torn.jsonl" -o "$work/rep" >/dev/null 2>&1 &&
    grep -q "^1 rows" "$work/rep/report.md"; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: report with a torn last line"
fi
rm -rf "$work/rep"

# Files that are read must be regular files: a FIFO would block forever.
mkfifo "$work/in.fifo"
expect "in.fifo: not a regular file (a FIFO); give a file" analyze "$work/in.fifo"
expect "in.fifo: not a regular file (a FIFO); give a file" \
  run --structure 'monarch(8)' --d-in 64 --d-out 64 --input "$work/in.fifo"
# A large file of something else is refused by its first bytes, not read.
truncate -s 4G "$work/big.bin"
expect "big.bin: byte 0: not a .npy file" \
  run --structure 'monarch(8)' --d-in 64 --d-out 64 --input "$work/big.bin"
printf '\377\377\377\377\377\377\377\177' >"$work/big.safetensors"
truncate -s 4G "$work/big.safetensors"
expect "big.safetensors: byte 0: header length 9223372036854775807 exceeds the format's 100 MB limit" \
  run --structure 'monarch(8)' --d-in 64 --d-out 64 --input "$work/big.safetensors"
rm -f "$work/big.bin" "$work/big.safetensors"
# sweep reads its output back to resume: a FIFO there is an error, not a hang.
if timeout 20 "$EINSTRUCT" sweep "$(dirname "$0")/../../examples/sweep/gpt2_sweep.json" \
    -o "$work/in.fifo" >/dev/null 2>"$work/stderr"; then rc=0; else rc=$?; fi
if [[ $rc -eq 2 ]] && grep -q "not a regular file (a FIFO)" "$work/stderr"; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: sweep -o FIFO -> rc=$rc, stderr: $(cat "$work/stderr")"
fi
# An output that is a FIFO (or /dev/null, /dev/stdout) is written into, not
# replaced by a regular file.
mkfifo "$work/out.fifo"
cat "$work/out.fifo" >"$work/got.json" &
reader=$!
if timeout 20 "$EINSTRUCT" analyze --structure 'monarch(8)' --d-in 64 --d-out 64 \
    --json -o "$work/out.fifo" && wait $reader && [ -p "$work/out.fifo" ] &&
    grep -q '"d_in":64' "$work/got.json"; then
  pass=$((pass + 1))
else
  fail=$((fail + 1)); echo "FAIL: -o FIFO was not written into (or was replaced)"
fi

# What a command prints on standard output is its result: a full device is
# an error with exit code 2, not a silent 0.
if [ -w /dev/full ]; then
  for cmd in "analyze --structure monarch(8) --d-in 64 --d-out 64 --json" \
             "search --d-in 64 --d-out 64 --top 3"; do
    # shellcheck disable=SC2086
    "$EINSTRUCT" $cmd >/dev/full 2>"$work/stderr"
    rc=$?
    if [[ $rc -eq 2 ]] && grep -q "^einstruct: error: writing standard output failed: No space left on device$" "$work/stderr"; then
      pass=$((pass + 1))
    else
      fail=$((fail + 1))
      echo "FAIL: einstruct $cmd >/dev/full -> rc=$rc, stderr: $(cat "$work/stderr")"
    fi
  done
fi

# The JIT cache is best effort: on a full file system the run still
# succeeds (was "LLVM ERROR: IO failure on output stream"). Needs a private
# mount namespace and a small tmpfs, so root with CAP_SYS_ADMIN.
mkdir -p "$work/full"
if unshare -m sh -c "mount -t tmpfs -o size=16k tmpfs '$work/full'" 2>/dev/null; then
  if unshare -m sh -c "mount -t tmpfs -o size=16k tmpfs '$work/full' &&
      { dd if=/dev/zero of='$work/full/fill' bs=4k 2>/dev/null; true; } &&
      EINSTRUCT_CACHE_DIR='$work/full' '$EINSTRUCT' run --structure 'monarch(8)' \
        --d-in 64 --d-out 64 --repeat 1" >"$work/stdout" 2>"$work/stderr" &&
      grep -q "^forward" "$work/stdout" && [ ! -s "$work/stderr" ]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1)); echo "FAIL: run with the cache on a full disk: $(cat "$work/stderr")"
  fi
else
  echo "note: the full-cache-disk case is skipped (no tmpfs mount in a private namespace here)"
fi

echo "cli_errors: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
