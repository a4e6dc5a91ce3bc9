#!/usr/bin/env bash
# Training sweeps: a tiny row's loss falls, shards merge into the same report
# as one run, a row killed midway resumes from its checkpoint to the same
# numbers, a data task runs, bad training configs fail before any row runs.
set -u
EINSTRUCT=$1
REPRODUCTION=$2 # bench/scaling_mlp: committed rows, report and plot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
export EINSTRUCT_NUM_THREADS=1 # the same kernel splits in every run
PY=${PYTHON:-/usr/bin/python3}  # Debian's, with NumPy

# The curves of a results file, by row key: what must match between runs
# (times differ).
curves() {
  "$PY" -c '
import json, sys
for line in sorted(open(sys.argv[1])):
    j = json.loads(line)
    print(j["key"], json.dumps(j["curve"]))' "$1"
}

cat >"$work/tiny.json" <<'JSON'
{"train": {
  "task": {"teacher": {"input_dim": 4, "width": 32, "depth": 3}},
  "model": {"widths": [8, 16], "depth": 2, "base_width": 8},
  "sizing": "exact",
  "structures": ["dense", {"label": "btt", "theta": "(0.5|0|0.5|0|0.5|0.5|0)"}],
  "optimizer": {"lr": [3e-3, 1e-2]},
  "steps": 120, "batch": 32, "log_every": 10, "checkpoint_every": 20,
  "test_rows": 256
}}
JSON
"$EINSTRUCT" sweep "$work/tiny.json" -o "$work/full.jsonl" -q || bad "full sweep"
[[ $(wc -l <"$work/full.jsonl") -eq 8 ]] && ok || bad "expected 8 rows"
# Every row learns: its last logged loss is below half its first.
"$PY" - "$work/full.jsonl" <<'PY' && ok || bad "a tiny row's loss did not fall"
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    first, last = j["curve"][0][2], j["curve"][-1][2]
    assert last < 0.5 * first, (j["key"], first, last)
    assert j["curve"][-1][0] == 120 and not j["diverged"]
    # Compute = forward MACs per token × tokens (batch × steps).
    assert j["curve"][-1][1] == j["macs_per_token"] * 32 * 120
PY
[[ ! -e "$work/full.jsonl.checkpoints" ]] && ok || bad "checkpoints left after a finished sweep"

# Two shards (by flag and by Slurm's variables) hold the same rows and make
# the same report.
"$EINSTRUCT" sweep "$work/tiny.json" -o "$work/s0.jsonl" -q --shard 0/2 || bad "shard 0"
SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=2 \
  "$EINSTRUCT" sweep "$work/tiny.json" -o "$work/s1.jsonl" -q || bad "shard 1"
cat "$work/s0.jsonl" "$work/s1.jsonl" >"$work/union.jsonl"
cmp -s <(curves "$work/full.jsonl") <(curves "$work/union.jsonl") && ok ||
  bad "the shards' curves differ from the single run's"
"$EINSTRUCT" report "$work/full.jsonl" -o "$work/rep1" >/dev/null || bad "report"
"$EINSTRUCT" report "$work/s1.jsonl" "$work/s0.jsonl" -o "$work/rep2" >/dev/null ||
  bad "report of shards"
cmp -s "$work/rep1/report.md" "$work/rep2/report.md" &&
  cmp -s "$work/rep1/scaling.svg" "$work/rep2/scaling.svg" && ok ||
  bad "the shards' report differs from the single run's"
grep -q "| btt | (0.5\\\\|0\\\\|0.5" "$work/rep1/report.md" &&
  grep -q "exponent a" "$work/rep1/report.md" &&
  grep -q "<polyline" "$work/rep1/scaling.svg" && ok || bad "report content"

# Kill a row after its first checkpoint; the resumed run ends with the same
# curves as the uninterrupted one and says where it resumed.
sed 's/"steps": 120/"steps": 400/; s/"widths": \[8, 16\]/"widths": [16]/; s/"lr": \[3e-3, 1e-2\]/"lr": 3e-3/; s/"dense", //' \
  "$work/tiny.json" >"$work/long.json"
"$EINSTRUCT" sweep "$work/long.json" -o "$work/long.jsonl" -q || bad "long sweep"
"$EINSTRUCT" sweep "$work/long.json" -o "$work/killed.jsonl" -q &
pid=$!
for _ in $(seq 600); do
  [[ -e "$work/killed.jsonl.checkpoints/row-0.ckpt" ]] && break
  sleep 0.01
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
[[ -e "$work/killed.jsonl.checkpoints/row-0.ckpt" && ! -s "$work/killed.jsonl" ]] &&
  ok || bad "no checkpoint before the kill, or the row finished"
"$EINSTRUCT" sweep "$work/long.json" -o "$work/killed.jsonl" -q || bad "resume"
cmp -s <(curves "$work/long.jsonl") <(curves "$work/killed.jsonl") && ok ||
  bad "the resumed row's curve differs from the uninterrupted one"
grep -q '"resumed_from":[1-9]' "$work/killed.jsonl" && ok ||
  bad "the resumed row did not start from its checkpoint"

# The user's arrays: classification of two Gaussian blobs.
"$PY" - "$work" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(0)
y = rng.integers(0, 2, 600)
x = rng.normal(size=(600, 5)).astype(np.float32) + 2 * y[:, None]
np.save(sys.argv[1] + "/x.npy", x.astype(np.float32))
np.save(sys.argv[1] + "/y.npy", y.astype(np.float32))
np.save(sys.argv[1] + "/y_short.npy", y[:500].astype(np.float32))
PY
cat >"$work/data.json" <<'JSON'
{"train": {"task": {"data": {"x": "x.npy", "y": "y.npy", "classification": true}},
  "model": {"widths": [8], "depth": 1, "base_width": 8},
  "structures": ["dense"], "optimizer": {"lr": 1e-2},
  "steps": 60, "batch": 32, "log_every": 20}}
JSON
"$EINSTRUCT" sweep "$work/data.json" -o "$work/data.jsonl" -q || bad "data sweep"
"$PY" - "$work/data.jsonl" <<'PY' && ok || bad "classification did not learn"
import json, sys
j = json.loads(open(sys.argv[1]).readline())
assert j["curve"][-1][3] < 0.3, j["curve"]  # held-out cross-entropy
assert "classification" in j["task"]
PY

# "search": per budget, the enumerator's best structure of each class, all
# within the budget at the smallest width's block shape.
cat >"$work/search.json" <<'JSON'
{"train": {"task": {"teacher": {"input_dim": 4, "width": 16, "depth": 2}},
  "model": {"widths": [16, 32], "depth": 1, "base_width": 16},
  "structures": {"search": {"budgets": [{"max_flops_ratio": 0.4}],
                            "max_classes": 3}},
  "optimizer": {"lr": 3e-3}, "steps": 10, "batch": 16, "log_every": 10}}
JSON
"$EINSTRUCT" sweep "$work/search.json" -o "$work/search.jsonl" -q || bad "search sweep"
"$PY" - "$work/search.jsonl" <<'PY' && ok || bad "searched structures"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
classes = {}
for j in rows:
    if j["width"] == 16 and j["structure"] != "dense":
        classes.setdefault((round(j["omega"], 2), round(j["psi"], 2),
                            round(j["nu"], 2)), []).append(j)
        # Each block linear (16×64, 64×16) within 0.4 of dense MACs.
        block = j["macs_per_token"] - 4 * 16 - 16
        assert block <= 0.4 * 2 * 16 * 64, (j["structure"], block)
assert 1 <= len(classes) <= 3, classes.keys()
assert all(len(v) == 1 for v in classes.values())  # per_class 1
assert any(j["structure"] == "dense" for j in rows)
assert len(rows) == 2 * (len(classes) + 1)
PY

# Bad training configs: exit 2, the field named, before any row (no output).
expect() {
  local want=$1 config=$2
  local err rc
  printf '%s' "$config" >"$work/bad.json"
  err=$("$EINSTRUCT" sweep "$work/bad.json" -o "$work/x.jsonl" 2>&1 >/dev/null); rc=$?
  if [[ $rc -eq 2 && "$err" == *"$want"* && ! -e "$work/x.jsonl" ]]; then ok
  else bad "rc=$rc, '$err' (wanted '$want')"; fi
}
base='"task": {"teacher": {}}, "model": {"widths": [16]}, "structures": ["dense"]'
expect "bad.json.train.steps: must be a whole number in [1," \
  "{\"train\": {$base, \"optimizer\": {\"lr\": 1e-3}, \"steps\": -5}}"
expect "bad.json.train.optimizer.lr[1]: must be a number in (0, 10]" \
  "{\"train\": {$base, \"optimizer\": {\"lr\": [1e-3, 0]}}}"
expect "bad.json.train.structures[0] ('block-diagonal(blocks=5)'): does not fit width 16 (its 16×64 layer)" \
  '{"train": {"task": {"teacher": {}}, "model": {"widths": [16]}, "structures": ["block-diagonal(blocks=5)"], "optimizer": {"lr": 1e-3}}}'
expect "bad.json.train.task.data: $work/y_short.npy: y must have x's 600 rows" \
  '{"train": {"task": {"data": {"x": "x.npy", "y": "y_short.npy"}}, "model": {"widths": [8]}, "structures": ["dense"], "optimizer": {"lr": 1e-3}}}'
expect "bad.json.train.checkpoint_every: must be 0 (none) or a multiple of log_every (50)" \
  "{\"train\": {$base, \"optimizer\": {\"lr\": 1e-3}, \"checkpoint_every\": 75}}"
expect "bad.json.train.model.widths[0]: must be a whole number in [1, 65536]" \
  '{"train": {"task": {"teacher": {}}, "model": {"widths": [0]}, "structures": ["dense"], "optimizer": {"lr": 1e-3}}}'
expect "bad.json.train.optimizer.schedule: must be \"cosine\" or \"constant\"" \
  "{\"train\": {$base, \"optimizer\": {\"lr\": 1e-3, \"schedule\": \"step\"}}}"
expect "bad.json.train.task: must be {\"teacher\": {...}} or {\"data\": {...}}" \
  '{"train": {"task": {}, "model": {"widths": [8]}, "structures": ["dense"], "optimizer": {"lr": 1e-3}}}'
# A training line among formula lines is refused by the report.
head -1 "$work/full.jsonl" >"$work/mixed.jsonl"
echo '{"row": 9, "front": [], "top": []}' >>"$work/mixed.jsonl"
err=$("$EINSTRUCT" report "$work/mixed.jsonl" -o "$work/rep3" 2>&1); rc=$?
[[ $rc -eq 2 && "$err" == *"mixed.jsonl:2: a formula sweep's line among a training sweep's"* ]] &&
  ok || bad "mixed report: rc=$rc '$err'"

# The committed reproduction's report is what its committed rows give.
"$EINSTRUCT" report "$REPRODUCTION/results.jsonl" -o "$work/repro" >/dev/null &&
  cmp -s "$work/repro/report.md" "$REPRODUCTION/report.md" &&
  cmp -s "$work/repro/scaling.svg" "$REPRODUCTION/scaling.svg" && ok ||
  bad "bench/scaling_mlp's report is not what its rows give"

echo "train_sweep: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
