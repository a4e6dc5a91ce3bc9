// OutputFiles: a command's outputs are written all or none, and earlier
// outputs survive a failure (issue: commands that write several files lost
// or mixed them).
#include "compiler/frontend/OutputFiles.h"

#include <catch2/catch.hpp>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <ctime>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace einstruct;

namespace {

std::string slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void put(const std::string &path, const std::string &text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::vector<std::string> entries(const std::string &dir) {
  std::vector<std::string> out;
  DIR *d = opendir(dir.c_str());
  REQUIRE(d);
  while (dirent *e = readdir(d))
    if (e->d_name[0] != '.')
      out.push_back(e->d_name);
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/einstruct-outputs-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    path = tmpl;
  }
  ~TempDir() {
    for (const auto &e : entries(path)) {
      const std::string p = path + "/" + e;
      struct stat st;
      if (stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        rmdir(p.c_str());
      else
        unlink(p.c_str());
    }
    rmdir(path.c_str());
  }
};

} // namespace

TEST_CASE("outputs: all are replaced together", "[files]") {
  TempDir t;
  put(t.path + "/y.npy", "old y");
  put(t.path + "/dx.npy", "old dx");
  OutputFiles out;
  out.add(t.path + "/y.npy", "new y");
  out.add(t.path + "/dx.npy", "new dx");
  out.add(t.path + "/dw1.npy", "new dw1");
  REQUIRE(out.commit());
  CHECK(slurp(t.path + "/y.npy") == "new y");
  CHECK(slurp(t.path + "/dx.npy") == "new dx");
  CHECK(slurp(t.path + "/dw1.npy") == "new dw1");
  CHECK(entries(t.path) == std::vector<std::string>{"dw1.npy", "dx.npy", "y.npy"});
}

TEST_CASE("outputs: a failure keeps every earlier output and no temp file",
          "[files]") {
  TempDir t;
  put(t.path + "/y.npy", "old y");
  put(t.path + "/dx.npy", "old dx");
  REQUIRE(mkdir((t.path + "/dw1.npy").c_str(), 0755) == 0); // cannot be a file
  OutputFiles out;
  out.add(t.path + "/y.npy", "new y");
  out.add(t.path + "/dx.npy", "new dx");
  out.add(t.path + "/dw1.npy", "new dw1");
  auto r = out.commit();
  REQUIRE(!r);
  CHECK_THAT(r.error(), Catch::Contains("dw1.npy: is a directory"));
  CHECK(slurp(t.path + "/y.npy") == "old y");
  CHECK(slurp(t.path + "/dx.npy") == "old dx");
  CHECK(entries(t.path) == std::vector<std::string>{"dw1.npy", "dx.npy", "y.npy"});

  // A later file that cannot be written (no such directory): the earlier
  // ones' temporary files are removed, their targets untouched.
  OutputFiles out2;
  out2.add(t.path + "/y.npy", "new y");
  out2.add(t.path + "/missing/dx.npy", "new dx");
  r = out2.commit();
  REQUIRE(!r);
  CHECK_THAT(r.error(), Catch::Contains("missing/dx.npy: cannot write the output"));
  CHECK(slurp(t.path + "/y.npy") == "old y");
  CHECK(entries(t.path) == std::vector<std::string>{"dw1.npy", "dx.npy", "y.npy"});
}

TEST_CASE("outputs: a device is written into, never replaced", "[files]") {
  OutputFiles out;
  out.add("/dev/null", "discarded");
  REQUIRE(out.commit());
  struct stat st;
  REQUIRE(stat("/dev/null", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
}

TEST_CASE("outputs: temp files of dead writers are cleared, live ones kept",
          "[files]") {
  TempDir t;
  // A child that exits at once leaves a PID no process holds.
  const pid_t dead = fork();
  REQUIRE(dead >= 0);
  if (dead == 0)
    _exit(0);
  REQUIRE(waitpid(dead, nullptr, 0) == dead);
  const std::string stale = "y.npy.tmp." + std::to_string(dead);
  const std::string live = "y.npy.tmp." + std::to_string(getppid());
  const std::string staleThread = stale + ".3";
  const std::string other = "x.npy.tmp." + std::to_string(dead);
  const std::string recent = "y.npy.tmp." + std::to_string(dead) + ".9";
  put(t.path + "/" + stale, "left by a SIGKILLed run");
  put(t.path + "/" + staleThread, "left by one of its threads");
  put(t.path + "/" + live, "a running writer's");
  put(t.path + "/" + other, "another target's");
  put(t.path + "/" + recent, "maybe another host's live writer");
  // All but `recent` an hour old: only old files of dead PIDs are stale.
  const timespec hourAgo[2] = {{time(nullptr) - 3600, 0},
                               {time(nullptr) - 3600, 0}};
  for (const auto &f : {stale, staleThread, live, other})
    REQUIRE(utimensat(AT_FDCWD, (t.path + "/" + f).c_str(), hourAgo, 0) == 0);
  OutputFiles out;
  out.add(t.path + "/y.npy", "new y");
  REQUIRE(out.commit());
  CHECK(slurp(t.path + "/y.npy") == "new y");
  std::vector<std::string> kept = {live, other, recent, "y.npy"};
  std::sort(kept.begin(), kept.end());
  CHECK(entries(t.path) == kept);
}
