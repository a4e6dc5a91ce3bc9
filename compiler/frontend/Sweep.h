// Sweeps: many layer shapes × budgets × objectives, one JSON line per row,
// resumable, and splittable into shards for a cluster scheduler.
#pragma once
#include "search/Search.h"

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>

namespace einstruct {

struct SweepBudget {
  std::string label; // as given, or the canonical text of its constraints
  Constraints constraints;
  std::string json;  // the budget object as JSON text, echoed in each row
};

// Rows are held in memory (about 100 bytes each) by every shard, so a config
// holds at most this many; larger sweeps are several configs.
constexpr size_t kMaxSweepRows = 10'000'000;

struct SweepConfig {
  std::vector<std::pair<int64_t, int64_t>> shapes;
  std::vector<SweepBudget> budgets;
  std::vector<std::string> objectives;
  std::string device = "h100-sxm";
  int64_t tokens = 16384;
  SearchSpace space; // grid, include_rounded, moe (shape filled per row)
  size_t top = 5;
};

struct SweepRow {
  size_t index;
  std::string key; // "768x3072|<budget>|<objective>", unique
  size_t shape, budget, objective;
};

// A budget object ({"max_flops_ratio": 0.25, "label": ...}); `where` names
// it in errors.
Result<SweepBudget> readSweepBudget(const nlohmann::json &b,
                                   const std::string &where);

Result<SweepConfig> readSweepConfig(const std::string &path);
Result<SweepConfig> readSweepJson(const std::string &text,
                                  const std::string &source);
std::vector<SweepRow> sweepRows(const SweepConfig &c);

// Row `r` of `c` as the JSON line `sweep` writes (without its newline), from
// the candidates enumerated for its shape.
std::string sweepRowJson(const SweepConfig &c, const SweepRow &r,
                         const std::vector<Candidate> &all);

struct Shard {
  size_t index = 0, count = 1;
};
// From "--shard i/n", else SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT (minus
// SLURM_ARRAY_TASK_MIN), else JOB_COMPLETION_INDEX with `shards` (or
// EINSTRUCT_SHARDS) as the count; else the whole sweep.
Result<Shard> shardFromEnvironment(const std::string &flag, size_t shards,
                                   const std::map<std::string, std::string> &env);

struct SweepStats {
  size_t rows = 0, skipped = 0, written = 0;
};

// A shard's progress: on a terminal one line rewritten in place (rows done
// and remaining, the running row's status, the ETA), else a line per row.
// The ETA weighs rows by their cost (e.g. MACs × steps).
class SweepProgress {
public:
  SweepProgress(std::FILE *out, size_t rows, double totalCost);
  void startRow(const std::string &key, double cost);
  // Within a row: the share of it done and what to show (on a terminal,
  // at most a few times a second); the last status also ends the row's
  // line in a log.
  void update(double rowFraction, const std::string &status);
  void finishRow();
  void skipRow(double cost);
  void finish();

private:
  std::string eta(double doneCost) const;
  std::FILE *out_;
  bool tty_;
  size_t rows_, done_ = 0, resumed_ = 0;
  double totalCost_, doneCost_ = 0, resumedCost_ = 0, rowCost_ = 0;
  std::string key_, status_;
  std::chrono::steady_clock::time_point start_, lastDraw_;
};

// Row `i` of a sweep as its JSON line (without the newline).
using RowRunner =
    std::function<Result<std::string>(size_t row, SweepProgress &progress)>;

// Runs the shard's rows (row i has keys[i] and weighs cost[i] in the ETA),
// appending each line to `outPath`; rows already in the file are skipped,
// and a torn last line (a killed run) is cut off first.
Result<SweepStats> runRows(const std::vector<std::string> &keys,
                           const std::vector<double> &cost,
                           const std::string &outPath, Shard shard,
                           std::FILE *progress, const RowRunner &run);

// The formula sweep's rows through runRows.
Result<SweepStats> runSweep(const SweepConfig &c, const std::string &outPath,
                            Shard shard, std::FILE *progress);

} // namespace einstruct
