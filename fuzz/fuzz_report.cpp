// Sweep result files as `einstruct report` reads them: any text is a report
// or a located error (FILE:LINE: field: problem), never a crash.
#include "FuzzCheck.h"
#include "compiler/frontend/SweepReport.h"

using namespace einstruct;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto r = buildReportFromText({{"r.jsonl", fuzzText(data, size)}});
  if (!r) {
    FUZZ_CHECK(r.error().rfind("r.jsonl:", 0) == 0 ||
               r.error() == "no sweep results to report");
    return 0;
  }
  FUZZ_CHECK(r->markdown.rfind("# einstruct sweep report", 0) == 0);
  FUZZ_CHECK(r->svg.find("<svg") != std::string::npos);
  return 0;
}
