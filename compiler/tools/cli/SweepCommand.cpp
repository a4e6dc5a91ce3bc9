// `einstruct sweep`: many shapes × budgets × objectives ranked by formula,
// or (a config with a "train" section) structures × widths × lrs × seeds
// trained; JSON lines out, resumable and sharded (Slurm arrays, Kubernetes
// Indexed Jobs).
#include "Cli.h"
#include "compiler/frontend/JsonFile.h"
#include "compiler/frontend/Sweep.h"
#include "compiler/train/TrainingSweep.h"

#include <cstdio>
#include <map>

extern char **environ;

namespace einstruct::cli {
namespace {

struct SweepOptions {
  std::string config, output, shard;
  size_t shards = 0;
  bool quiet = false;
};

int runSweepCommand(const SweepOptions &o) {
  auto text = readTextFile(o.config);
  if (!text)
    return fail(text.error());
  std::optional<SweepConfig> formulas;
  std::optional<TrainingSweep> training;
  if (isTrainingSweep(*text)) {
    auto t = readTrainingSweep(*text, o.config);
    if (!t)
      return fail(t.error());
    training = std::move(*t);
  } else {
    auto c = readSweepJson(*text, o.config);
    if (!c)
      return fail(c.error());
    formulas = std::move(*c);
  }
  std::map<std::string, std::string> env;
  for (char **e = environ; *e; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos)
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  auto shard = shardFromEnvironment(o.shard, o.shards, env);
  if (!shard)
    return fail(shard.error());
  std::FILE *progress = o.quiet ? nullptr : stderr;
  auto st = training ? runTrainingSweep(*training, o.output, *shard, progress)
                     : runSweep(*formulas, o.output, *shard, progress);
  if (!st)
    return fail(st.error());
  if (!o.quiet)
    std::fprintf(stderr,
                 "sweep: shard %zu/%zu: %zu rows, %zu written, %zu already "
                 "done -> %s\n",
                 shard->index, shard->count, st->rows, st->written,
                 st->skipped, o.output.c_str());
  return 0;
}

} // namespace

Command addSweepCommand(CLI::App &app) {
  auto o = std::make_shared<SweepOptions>();
  auto *sweep = app.add_subcommand(
      "sweep", "Search many shapes × budgets × objectives, or train "
               "structures × widths × learning rates (a config with a "
               "\"train\" section); JSON lines out, resumable, shardable "
               "(Slurm arrays, Kubernetes Indexed Jobs)");
  sweep->add_option("config", o->config, "sweep config JSON")->required();
  sweep->add_option("-o,--output", o->output, "results file (JSON lines)")
      ->required();
  sweep->add_option("--shard", o->shard,
                    "I/N: run rows with index % N == I (else taken from "
                    "SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX)");
  sweep->add_option("--shards", o->shards,
                    "shard count for JOB_COMPLETION_INDEX (Kubernetes)")
      ->check(kCount);
  sweep->add_flag("-q,--quiet", o->quiet, "no progress on stderr");
  return {sweep, [o] { return runSweepCommand(*o); }};
}

} // namespace einstruct::cli
