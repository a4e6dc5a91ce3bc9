// Training rows: one (structure, width, lr, seed) trained with checkpoints,
// and the shard's rows through the resumable row runner.
#include "TrainingSweep.h"
#include "compiler/frontend/OutputFiles.h"

#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

namespace einstruct {

using nlohmann::json;

namespace {

constexpr const char *kCheckpointMagic = "einstruct-train-checkpoint 1";

struct RowState {
  int64_t step = 0;
  json curve = json::array();
};

Result<bool> saveCheckpoint(const std::string &path, const std::string &key,
                            const RowState &st,
                            const std::vector<ParamTensor> &params) {
  json head = {{"key", key}, {"step", st.step}, {"curve", st.curve}};
  head["sizes"] = json::array();
  for (const auto &p : params)
    head["sizes"].push_back(p.value.size());
  std::string bytes = std::string(kCheckpointMagic) + "\n" + head.dump() + "\n";
  for (const auto &p : params)
    for (const auto *v : {&p.value, &p.m, &p.v})
      bytes.append(reinterpret_cast<const char *>(v->data()),
                   v->size() * sizeof(float));
  OutputFiles out;
  out.add(path, std::move(bytes));
  return out.commit();
}

// The row's state from its checkpoint; nullopt when there is none or it is
// another row's (a changed config), which then starts afresh.
Result<std::optional<RowState>>
loadCheckpoint(const std::string &path, const std::string &key,
               std::vector<ParamTensor> &params) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return std::optional<RowState>();
  std::string magic, head;
  std::getline(in, magic);
  std::getline(in, head);
  json h = json::parse(head, nullptr, false);
  if (magic != kCheckpointMagic || h.is_discarded() || !h.is_object() ||
      !h.contains("key") || !h.contains("step") || !h.contains("sizes"))
    return Error{fmt::format("{}: not a training checkpoint; remove it to "
                             "restart the row",
                             path)};
  if (h["key"] != key)
    return std::optional<RowState>();
  if (h["sizes"].size() != params.size())
    return Error{fmt::format("{}: holds {} tensors, the row's model {}",
                             path, h["sizes"].size(), params.size())};
  for (size_t i = 0; i < params.size(); ++i)
    if (h["sizes"][i] != params[i].value.size())
      return Error{fmt::format("{}: tensor {} ({}) has {} values, the "
                               "model's {}",
                               path, i, params[i].name,
                               h["sizes"][i].dump(), params[i].value.size())};
  for (auto &p : params)
    for (auto *v : {&p.value, &p.m, &p.v})
      if (!in.read(reinterpret_cast<char *>(v->data()),
                   std::streamsize(v->size() * sizeof(float))))
        return Error{fmt::format("{}: truncated; remove it to restart the "
                                 "row",
                                 path)};
  RowState st;
  st.step = h["step"].get<int64_t>();
  st.curve = h["curve"];
  return std::optional<RowState>(st);
}

double testLoss(ResidualMlp &m, const TrainingTask &task, int64_t chunk) {
  const int64_t rows = task.testRows();
  if (rows < 1)
    return std::nan("");
  double total = 0;
  std::vector<float> y;
  for (int64_t r = 0; r < rows; r += chunk) {
    int64_t n = std::min(chunk, rows - r);
    if (!m.forward(task.testX().data() + r * task.inputDim(), n, y))
      return std::nan("");
    total += lossOf(y, task.testTarget().data() + r * task.targetDim(), n,
                    task.outputDim(), task.loss(), nullptr) *
             double(n);
  }
  return total / double(rows);
}

json finiteOrNull(double v) { return std::isfinite(v) ? json(v) : json(); }

} // namespace

Result<std::string> runTrainingRow(const TrainingSweep &s,
                                   const TrainingRow &r,
                                   const TrainingTask &task, LayerCache &cache,
                                   const std::string &checkpointDir,
                                   SweepProgress &progress) {
  const TrainStructure &st = s.structures[r.structure];
  MlpShape shape = s.shape;
  shape.width = s.widths[r.width];
  const uint64_t seed = s.seeds[r.seed];
  auto built = ResidualMlp::build(
      shape,
      [&](int64_t in, int64_t out) { return trainLayer(st, in, out); }, seed,
      cache);
  if (!built)
    return Error{built.error()};
  ResidualMlp &m = *built;
  const double lr = s.lrs[r.lr];
  RowState state;
  std::string ckpt;
  if (!checkpointDir.empty()) {
    ckpt = fmt::format("{}/row-{}.ckpt", checkpointDir, r.index);
    auto loaded = loadCheckpoint(ckpt, r.key, m.params());
    if (!loaded)
      return Error{loaded.error()};
    if (*loaded)
      state = **loaded;
  }
  const int64_t macs = m.macsPerToken();
  auto structured = analyze(m.structuredLayer());
  std::vector<float> x, target;
  double intervalSum = 0;
  int64_t intervalCount = 0;
  bool diverged = false;
  const auto start = std::chrono::steady_clock::now();
  const int64_t firstStep = state.step + 1;
  double lastLoss = std::nan("");
  for (int64_t step = firstStep; step <= s.steps; ++step) {
    if (auto b = task.batch(seed, step, s.batch, x, target); !b)
      return Error{b.error()};
    auto loss = m.lossAndGradients(x.data(), target.data(), s.batch,
                                   task.loss(), s.auxWeight);
    if (!loss)
      return Error{loss.error()};
    lastLoss = *loss;
    if (!std::isfinite(*loss)) {
      diverged = true;
      state.curve.push_back({step, double(macs) * double(s.batch) * double(step),
                             nullptr, nullptr});
      break;
    }
    double rate = scheduledLr(lr, step, s.steps, s.warmup, s.cosine);
    for (auto &p : m.params())
      adamwStep(p, rate, step, s.adam);
    intervalSum += *loss;
    ++intervalCount;
    state.step = step;
    if (step % s.logEvery == 0 || step == s.steps) {
      double test = testLoss(m, task, s.batch);
      state.curve.push_back({step,
                             double(macs) * double(s.batch) * double(step),
                             intervalSum / double(intervalCount),
                             finiteOrNull(test)});
      intervalSum = 0;
      intervalCount = 0;
      if (!ckpt.empty() && s.checkpointEvery > 0 &&
          step % s.checkpointEvery == 0 && step < s.steps)
        if (auto c = saveCheckpoint(ckpt, r.key, state, m.params()); !c)
          return Error{c.error()};
    }
    progress.update(double(step) / double(s.steps),
                    fmt::format("step {}/{} loss {:.4g}", step, s.steps,
                                *loss));
  }
  double seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  int64_t ran = state.step - firstStep + 1;
  json j;
  j["row"] = r.index;
  j["kind"] = "train";
  j["key"] = r.key;
  j["structure"] = st.label;
  j["spec"] = st.text;
  j["family"] = structured ? structured->name : "";
  j["theta"] = structured && structured->theta ? json(structured->theta->str())
                                               : json();
  for (const char *k : {"omega", "psi", "nu"})
    j[k] = nullptr;
  if (structured && structured->metrics) {
    j["omega"] = structured->metrics->omega;
    j["psi"] = structured->metrics->psi;
    j["nu"] = structured->metrics->nu;
  }
  j["width"] = shape.width;
  j["lr"] = lr;
  j["seed"] = seed;
  j["steps"] = s.steps;
  j["batch"] = s.batch;
  j["params"] = m.paramCount();
  j["macs_per_token"] = macs;
  j["task"] = task.describe();
  j["curve"] = state.curve;
  j["final_loss"] = diverged ? json() : finiteOrNull(lastLoss);
  j["diverged"] = diverged;
  j["resumed_from"] = firstStep - 1;
  j["seconds"] = seconds;
  j["tokens_per_s"] =
      seconds > 0 ? json(double(ran * s.batch) / seconds) : json();
  if (!ckpt.empty())
    std::remove(ckpt.c_str());
  progress.update(1, diverged ? "diverged"
                              : fmt::format("loss {:.4g}", lastLoss));
  return j.dump();
}

Result<SweepStats> runTrainingSweep(const TrainingSweep &s,
                                    const std::string &outPath, Shard shard,
                                    std::FILE *progress) {
  std::unique_ptr<TrainingTask> task;
  if (s.teacher) {
    auto t = teacherTask(s.teacherSpec, s.testRows);
    if (!t)
      return Error{t.error()};
    task = std::move(*t);
  } else {
    auto t = dataTask(s.data);
    if (!t)
      return Error{t.error()};
    task = std::move(*t);
  }
  auto rows = trainingRows(s);
  std::vector<std::string> keys;
  std::vector<double> cost;
  // ETA weights: a step's multiply-adds (the model's forward and backward,
  // the teacher's forward) plus its elementwise work, times the steps.
  const int64_t teacherMacs =
      s.teacher ? s.teacherSpec.inputDim * s.teacherSpec.width +
                      (s.teacherSpec.depth - 1) * s.teacherSpec.width *
                          s.teacherSpec.width +
                      s.teacherSpec.width * s.teacherSpec.outputDim
                : 0;
  for (const auto &r : rows) {
    keys.push_back(r.key);
    const int64_t w = s.widths[r.width], hidden = s.shape.expansion * w;
    int64_t macs = s.shape.dIn * w + w * s.shape.dOut;
    for (auto [in, out] : {std::pair{w, hidden}, std::pair{hidden, w}})
      if (auto l = trainLayer(s.structures[r.structure], in, out))
        if (auto a = analyze(*l))
          macs += s.shape.depth * a->flops;
    cost.push_back(double(s.steps) *
                   double(3 * macs + teacherMacs + 40 * s.shape.depth * hidden));
  }
  std::string dir = outPath + ".checkpoints";
  if (s.checkpointEvery > 0 && mkdir(dir.c_str(), 0777) != 0 &&
      errno != EEXIST)
    return Error{fmt::format("{}: cannot create the checkpoint directory",
                             dir)};
  LayerCache cache(s.threads);
  auto st = runRows(keys, cost, outPath, shard, progress,
                    [&](size_t i, SweepProgress &p) {
                      return runTrainingRow(
                          s, rows[i], *task, cache,
                          s.checkpointEvery > 0 ? dir : std::string(), p);
                    });
  if (st && s.checkpointEvery > 0)
    rmdir(dir.c_str()); // when empty: every row of it done
  return st;
}

} // namespace einstruct
