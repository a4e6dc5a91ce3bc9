#!/usr/bin/env bash
# A Slurm array job: each task runs one shard of the sweep; einstruct reads
# SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT itself.
# Submit:   sbatch examples/sweep/slurm_array.sh
# Resume:   submit again; finished rows in each shard's file are skipped.
# Report:   einstruct report results/shard-*.jsonl -o report
#SBATCH --job-name=einstruct-sweep
#SBATCH --array=0-15
#SBATCH --cpus-per-task=1
#SBATCH --mem=2G
#SBATCH --time=00:30:00
#SBATCH --output=logs/%A_%a.log
set -euo pipefail
mkdir -p results
build/bin/einstruct sweep examples/sweep/gpt2_sweep.json \
  -o "results/shard-${SLURM_ARRAY_TASK_ID}.jsonl"
