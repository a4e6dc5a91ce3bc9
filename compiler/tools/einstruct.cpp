// The einstruct command line: one subcommand per file in cli/ (analyze,
// search, sweep, report, run, compile, project, import, export); this file
// parses and dispatches, and turns what escapes a command into exit code 2.
#include "cli/Cli.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

using namespace einstruct::cli;

int main(int argc, char **argv) {
  CLI::App app{"einstruct: a compiler for structured linear layers"};
  app.require_subcommand(1);
  const Command commands[] = {
      addAnalyzeCommand(app), addSearchCommand(app), addSweepCommand(app),
      addReportCommand(app),  addRunCommand(app),    addCompileCommand(app),
      addProjectCommand(app), addImportCommand(app), addExportCommand(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    return fail(e.what());
  }
  int rc = -1;
  try {
    for (const Command &c : commands)
      if (c.app->parsed())
        rc = c.run();
  } catch (const std::bad_alloc &) {
    // What the up-front bounds did not foresee: a message, not an abort.
    return fail("out of memory (a smaller batch or layer may fit)");
  }
  if (rc < 0)
    return fail("unknown command");
  // Results printed to standard output are output too: a full disk or a
  // closed pipe is an error, not a silent exit 0.
  if (std::fflush(stdout) != 0 || std::ferror(stdout))
    return fail(std::string("writing standard output failed: ") +
                std::strerror(errno));
  return rc;
}
