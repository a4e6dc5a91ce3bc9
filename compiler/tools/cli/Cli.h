// What every subcommand of the einstruct command line shares: exit codes,
// the checked numeric flag validators, error reporting, all-or-none output,
// the one-spec flags. Each subcommand lives in its own file (NameCommand.cpp)
// and registers itself through add*Command; einstruct.cpp only dispatches.
#pragma once
#include "compiler/frontend/Npy.h"
#include "compiler/frontend/OutputFiles.h"
#include "compiler/frontend/SpecReader.h"
#include "search/Layer.h"

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace einstruct::cli {

constexpr int kUsageError = 2;

// Numeric flags are checked as text before CLI11 converts them: on its own it
// saturates integers beyond 64 bits, wraps negatives into unsigned options
// and takes inf/nan for reals.
extern const CLI::Validator kInt64;           // an integer in [-2^63, 2^63)
extern const CLI::Validator kCount;           // an integer in [0, 2^63)
extern const CLI::Validator kPositiveReal;    // finite, above 0
extern const CLI::Validator kNonNegativeReal; // finite, >= 0
extern const CLI::Validator kUnitReal;        // in [0, 1]

// Prints "einstruct: error: MSG" and returns kUsageError.
int fail(const std::string &msg);

// Writes every file of `out` or none (compiler/frontend/OutputFiles.h).
int commit(OutputFiles &out);

// One output: stdout for "" or "-", else `path`, through a temporary file
// renamed into place so that a failure never leaves a partial output.
int emit(const std::string &text, const std::string &path);

// Creates the output directory `dir` and its missing parents unless it
// exists: 0, or kUsageError with "DIR: cannot create the directory" or "DIR:
// exists and is not a directory".
int makeOutputDirectory(const std::string &dir);

// "a,b,c" -> {a, b, c}; "" -> {}.
std::vector<std::string> splitList(const std::string &s);

// "(2, 3)".
std::string shapeText(const std::vector<int64_t> &s);

// The one layer of `run`, `compile` and `project`: from the inline flags or
// a one-spec file.
Result<Layer> singleLayer(const std::string &file, const SpecArgs &args,
                          const char *command);

// The weights "a.npy,b.safetensors:T,..." of `layer`, in its weight order,
// each checked against the layer its file names (WeightFiles.h) and against
// its shape up to size-1 axes; returned with the shapes the files have.
Result<std::vector<NpyArray>> readLayerWeights(const std::string &list,
                                               const Layer &layer);

// The spec flags of a one-spec command.
void addSpecOptions(CLI::App *cmd, std::string &file, SpecArgs &args);

// A registered subcommand and what runs it once it was parsed.
struct Command {
  CLI::App *app;
  std::function<int()> run;
};

Command addAnalyzeCommand(CLI::App &app);
Command addSearchCommand(CLI::App &app);
Command addSweepCommand(CLI::App &app);
Command addReportCommand(CLI::App &app);
Command addRunCommand(CLI::App &app);
Command addCompileCommand(CLI::App &app);
Command addProjectCommand(CLI::App &app);
Command addImportCommand(CLI::App &app);
Command addExportCommand(CLI::App &app);

} // namespace einstruct::cli
