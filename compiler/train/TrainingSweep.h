// Sweeps that train (structures.md §6): the "train" section of a sweep
// config names a task (the teacher–student regression, or the user's
// arrays), a residual MLP template at several widths, the structures (a list,
// or "search": per MAC budget, the enumerator's best structure of each
// (ω, ψ, ν) class), and AdamW with µP multipliers over a base-lr grid under a
// cosine schedule. Each (structure, width, lr, seed) row trains through the
// compiled layers and logs (compute, loss) every log_every steps, compute
// being forward MACs × tokens as the reference counts it. Rows are resumable
// and shardable as formula sweeps are; a row killed midway restarts from its
// last checkpoint and ends with the same numbers.
#pragma once
#include "ResidualMlp.h"
#include "compiler/frontend/Sweep.h"
#include "compiler/frontend/SpecReader.h"

namespace einstruct {

struct TrainStructure {
  std::string label;
  SpecArgs spec; // theta or structure; d_in/d_out filled per layer
  std::string text; // as given (θ text or the named structure)
};

struct TrainingSweep {
  std::string source; // the config's path, for errors
  bool teacher = true;
  TeacherSpec teacherSpec;
  DataSpec data;
  int64_t testRows = 1024; // teacher: held-out inputs
  MlpShape shape;          // width set per row
  std::vector<int64_t> widths;
  std::vector<TrainStructure> structures;
  std::vector<double> lrs;
  AdamWSettings adam;
  bool cosine = true;
  int64_t warmup = 0, steps = 1000, batch = 256, logEvery = 50,
          checkpointEvery = 0;
  std::vector<uint64_t> seeds = {0};
  int threads = 0; // 0: EINSTRUCT_NUM_THREADS, else the hardware's
  double auxWeight = 0.01;
};

struct TrainingRow {
  size_t index;
  std::string key;
  size_t structure, width, lr, seed; // indices into the sweep's lists
};

// Whether a sweep config's JSON text has a "train" section.
bool isTrainingSweep(const std::string &text);

// Reads and checks everything a row needs before any row runs: every
// structure built at every width, the data files' shapes. Errors name the
// field ("config.json.train.optimizer.lr[1]: ...").
Result<TrainingSweep> readTrainingSweep(const std::string &text,
                                        const std::string &source);

std::vector<TrainingRow> trainingRows(const TrainingSweep &s);

// The structured layer of structure `s` for (d_in, d_out).
Result<Layer> trainLayer(const TrainStructure &s, int64_t dIn, int64_t dOut);

// Trains row `r` (resuming from `checkpointDir` when a checkpoint of it is
// there; none written when checkpointDir is empty) and returns its result
// line.
Result<std::string> runTrainingRow(const TrainingSweep &s,
                                   const TrainingRow &r,
                                   const TrainingTask &task, LayerCache &cache,
                                   const std::string &checkpointDir,
                                   SweepProgress &progress);

// The whole sweep (the shard's rows) into `outPath`; checkpoints live in
// `outPath`.checkpoints/.
Result<SweepStats> runTrainingSweep(const TrainingSweep &s,
                                    const std::string &outPath, Shard shard,
                                    std::FILE *progress);

} // namespace einstruct
