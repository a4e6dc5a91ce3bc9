#include "Cli.h"
#include "compiler/frontend/WeightFiles.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>

namespace einstruct::cli {

namespace {

// An integer flag's text in [min, 2^63).
CLI::Validator integerFrom(int64_t min, const char *range, const char *name) {
  return CLI::Validator(
      [=](std::string &v) -> std::string {
        int64_t x;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (ec != std::errc() || end != v.data() + v.size() || x < min)
          return fmt::format("'{}' is not an integer in {}", v, range);
        return "";
      },
      name);
}

// A real flag's text: finite and in [min, max], or above min when `open`.
CLI::Validator realIn(double min, double max, bool open, const char *what,
                      const char *name) {
  return CLI::Validator(
      [=](std::string &v) -> std::string {
        char *end = nullptr;
        double x = std::strtod(v.c_str(), &end);
        if (v.empty() || *end || !std::isfinite(x) || x < min || x > max ||
            (open && x == min))
          return fmt::format("'{}' is not {}", v, what);
        return "";
      },
      name);
}

} // namespace

const CLI::Validator kInt64 = integerFrom(INT64_MIN, "[-2^63, 2^63)", "INT64");
const CLI::Validator kCount = integerFrom(0, "[0, 2^63)", "COUNT");
const CLI::Validator kPositiveReal =
    realIn(0, HUGE_VAL, true, "a finite number above 0", "REAL>0");
const CLI::Validator kNonNegativeReal =
    realIn(0, HUGE_VAL, false, "a finite number >= 0", "REAL>=0");
const CLI::Validator kUnitReal =
    realIn(0, 1, false, "a number in [0, 1]", "[0,1]");

int fail(const std::string &msg) {
  std::fprintf(stderr, "einstruct: error: %s\n", msg.c_str());
  return kUsageError;
}

int commit(OutputFiles &out) {
  auto r = out.commit();
  return r ? 0 : fail(r.error());
}

int emit(const std::string &text, const std::string &path) {
  OutputFiles out;
  out.add(path, text);
  return commit(out);
}

int makeOutputDirectory(const std::string &dir) {
  // With its missing parents, as mkdir -p.
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (std::filesystem::is_directory(dir))
    return 0;
  if (std::filesystem::exists(dir))
    return fail(fmt::format("{}: exists and is not a directory", dir));
  return fail(fmt::format("{}: cannot create the directory{}", dir,
                          ec ? " (" + ec.message() + ")" : ""));
}

std::vector<std::string> splitList(const std::string &s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size() && !s.empty()) {
    size_t comma = s.find(',', pos);
    out.push_back(s.substr(pos, comma == std::string::npos ? std::string::npos
                                                           : comma - pos));
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return out;
}

std::string shapeText(const std::vector<int64_t> &s) {
  return fmt::format("({})", fmt::join(s, ", "));
}

Result<Layer> singleLayer(const std::string &file, const SpecArgs &args,
                          const char *command) {
  bool inline_ = args.theta || args.einsum || args.structure;
  if (inline_ == !file.empty())
    return Error{"give one spec: a JSON file or --theta/--einsum/--structure"};
  if (inline_)
    return layerFromArgs(args);
  auto ls = readSpecFile(file);
  if (!ls)
    return Error{ls.error()};
  if (ls->size() != 1)
    return Error{fmt::format("{}: holds {} specs; {} takes one", file,
                             ls->size(), command)};
  return ls->front();
}

void addSpecOptions(CLI::App *cmd, std::string &file, SpecArgs &args) {
  cmd->add_option("file", file, "JSON spec file holding one spec");
  cmd->add_option("--theta", args.theta, "θ text (α|β|γ|δ|ε|φ|ρ)");
  cmd->add_option("--einsum", args.einsum, "einsum 'x,W1,W2->y'");
  cmd->add_option("--sizes", args.sizes, "index sizes for --einsum");
  cmd->add_option("--structure", args.structure, "named structure");
  cmd->add_option("--d-in", args.dIn, "input dimension")
      ->check(kInt64);
  cmd->add_option("--d-out", args.dOut, "output dimension")
      ->check(kInt64);
  cmd->add_option("--sizing", args.sizing, "θ → sizes: round or exact")
      ->capture_default_str();
}

Result<std::vector<NpyArray>> readLayerWeights(const std::string &list,
                                               const Layer &layer) {
  const auto shapes = weightShapes(layer);
  const auto files = splitList(list);
  if (files.size() != shapes.size())
    return Error{fmt::format("--weights: {} files for {} weight tensors",
                             files.size(), shapes.size())};
  // Shapes equal once size-1 axes are dropped from both.
  auto squeezed = [](std::vector<int64_t> s) {
    s.erase(std::remove(s.begin(), s.end(), 1), s.end());
    return s;
  };
  std::vector<NpyArray> ws;
  for (size_t k = 0; k < files.size(); ++k) {
    auto w = readWeightFile(files[k], layer);
    if (!w)
      return Error{w.error()};
    if (squeezed(w->shape) != squeezed(shapes[k]))
      return Error{fmt::format("{}: shape {} but weight {} is {}", files[k],
                               shapeText(w->shape), k + 1,
                               shapeText(shapes[k]))};
    ws.push_back(std::move(*w));
  }
  return ws;
}

} // namespace einstruct::cli
