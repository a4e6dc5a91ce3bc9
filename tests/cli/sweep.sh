#!/usr/bin/env bash
# Sweeps: shard union equals the unsharded run, a killed run resumes to the
# identical file, scheduler variables pick the shard, bad configs fail clearly.
set -u
EINSTRUCT=$1
CONFIG=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

"$EINSTRUCT" sweep "$CONFIG" -o "$work/full.jsonl" -q || bad "full sweep"
rows=$(wc -l <"$work/full.jsonl")
[[ $rows -eq 42 ]] && ok || bad "expected 42 rows, got $rows"

# Shards 0..2 of 3, by flag, by Slurm array variables and by Kubernetes index.
"$EINSTRUCT" sweep "$CONFIG" -o "$work/s0.jsonl" -q --shard 0/3 || bad "shard 0"
SLURM_ARRAY_TASK_ID=11 SLURM_ARRAY_TASK_MIN=10 SLURM_ARRAY_TASK_COUNT=3 \
  "$EINSTRUCT" sweep "$CONFIG" -o "$work/s1.jsonl" -q || bad "slurm shard"
JOB_COMPLETION_INDEX=2 "$EINSTRUCT" sweep "$CONFIG" -o "$work/s2.jsonl" -q \
  --shards 3 || bad "k8s shard"
if cmp -s <(sort "$work/full.jsonl") <(cat "$work"/s?.jsonl | sort); then ok
else bad "shard union differs from the unsharded run"; fi
# Each shard holds exactly its rows: row % 3 == shard.
for i in 0 1 2; do
  if grep -o '"row":[0-9]*' "$work/s$i.jsonl" | cut -d: -f2 |
     awk -v i=$i '$1 % 3 != i { exit 1 }'; then ok; else bad "shard $i rows"; fi
done

# Kill a run part-way, tear its last line as a crash mid-write would, resume.
"$EINSTRUCT" sweep "$CONFIG" -o "$work/killed.jsonl" -q &
pid=$!
for _ in $(seq 100); do
  [[ -s "$work/killed.jsonl" ]] && break
  sleep 0.02
done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
size=$(stat -c %s "$work/killed.jsonl")
[[ $size -gt 10 ]] && truncate -s $((size - 7)) "$work/killed.jsonl"
"$EINSTRUCT" sweep "$CONFIG" -o "$work/killed.jsonl" -q || bad "resume"
cmp -s "$work/full.jsonl" "$work/killed.jsonl" && ok ||
  bad "resumed run differs from the uninterrupted one"
# Resuming a finished sweep writes nothing new.
"$EINSTRUCT" sweep "$CONFIG" -o "$work/killed.jsonl" 2>"$work/err" || bad "rerun"
grep -q "0 written, 42 already done" "$work/err" && ok || bad "rerun wrote rows"

# The report reads the shards together.
"$EINSTRUCT" report "$work"/s?.jsonl -o "$work/rep" >/dev/null || bad "report"
grep -q '^42 rows' "$work/rep/report.md" && grep -q '<polyline' "$work/rep/pareto.svg" \
  && ok || bad "report content"

# Bad configs and bad shard settings: exit 2 and a message naming the place.
expect() {
  local want=$1; shift
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  if [[ $rc -eq 2 && "$err" == *"$want"* ]]; then ok
  else bad "$* -> rc=$rc, '$err' (wanted '$want')"; fi
}
printf '{"shapes": [[768, 1]]}' >"$work/c1.json"
expect "c1.json.shapes[0][1]: must be an integer in [2, 2^24]" "$EINSTRUCT" sweep "$work/c1.json" -o "$work/x"
printf '{"shapes": [[8, 8]], "objectives": ["fast"]}' >"$work/c2.json"
expect "c2.json.objectives[0]: unknown objective 'fast'" "$EINSTRUCT" sweep "$work/c2.json" -o "$work/x"
printf '{"shapes": [[8, 8]], "budgets": [{"max_flop": 3}]}' >"$work/c3.json"
expect "c3.json.budgets[0].max_flop: unknown field" "$EINSTRUCT" sweep "$work/c3.json" -o "$work/x"
printf '{"shapes": [[8, 8], [8, 8]]}' >"$work/c4.json"
expect "appears twice" "$EINSTRUCT" sweep "$work/c4.json" -o "$work/x"
printf '{"shapes": [[8, 8]]' >"$work/c5.json"
expect "c5.json: invalid JSON at byte" "$EINSTRUCT" sweep "$work/c5.json" -o "$work/x"
expect "shard 3/3: the index must be below the count" "$EINSTRUCT" sweep "$CONFIG" -o "$work/x" --shard 3/3
expect "JOB_COMPLETION_INDEX is set but the shard count is not" env JOB_COMPLETION_INDEX=1 "$EINSTRUCT" sweep "$CONFIG" -o "$work/x"
printf 'garbage\n' >"$work/foreign.jsonl"
expect "foreign.jsonl:1: not a sweep result line" "$EINSTRUCT" sweep "$CONFIG" -o "$work/foreign.jsonl"
[[ ! -e "$work/x" ]] && ok || bad "a failed sweep left an output file"

echo "sweep: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
