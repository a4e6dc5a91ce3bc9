// The files a command writes, all or none. Each is first written completely
// beside its target (an unnamed O_TMPFILE, else NAME.tmp.PID.N; stale
// NAME.tmp.PID[.N] files, of dead processes and 10 minutes old, are
// removed); only when every one
// is written are they renamed into place, so a failure leaves the previous
// outputs as they were and removes only the temporary files. A target that
// exists and is not a regular file — /dev/null, a FIFO, /dev/stdout into a
// pipe — is written straight into, never replaced. "-" or an empty path is
// standard output.
#pragma once
#include "search/Result.h"

#include <string>
#include <utility>
#include <vector>

namespace einstruct {

class OutputFiles {
public:
  void add(std::string path, std::string bytes);
  // Writes every file; on failure an error naming the path, nothing replaced.
  Result<bool> commit();

private:
  std::vector<std::pair<std::string, std::string>> files_;
};

} // namespace einstruct
