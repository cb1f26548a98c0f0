#pragma once
// Test harness for the daemon as systemd runs it: a real `fhir-edge run` process, a real AF_UNIX
// datagram socket as NOTIFY_SOCKET, real signals. Time limits here only bound a hung test; no
// test asserts how fast anything happens.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "temp_dir.hpp"

namespace fe::test {

namespace fs = std::filesystem;

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

using TempDir = fe::test::TempDir;

// The datagram socket systemd would own: every sd_notify() message is one datagram.
class NotifySocket {
 public:
  explicit NotifySocket(const fs::path& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      throw std::runtime_error("cannot bind notify socket " + path.string());
  }
  ~NotifySocket() { close(fd_); }
  const fs::path& path() const { return path_; }

  // Next message, or nullopt after `limit` (only a guard against a hung daemon).
  std::optional<std::string> next(std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(limit.count())) <= 0) return std::nullopt;
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    std::string m(buf, static_cast<size_t>(n));
    all.push_back(m);
    return m;
  }

  // Reads until a message contains `needle` (as a whole line); returns that message.
  std::optional<std::string> wait_for(const std::string& needle,
                                      std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      auto m = next(left);
      if (!m) return std::nullopt;
      std::istringstream lines(*m);
      for (std::string l; std::getline(lines, l);)
        if (l == needle || (needle.back() == '=' && l.starts_with(needle))) return m;
    }
    return std::nullopt;
  }

  std::vector<std::string> all;  // every message received so far

 private:
  fs::path path_;
  int fd_ = -1;
};

inline std::string field(const std::string& message, const std::string& key) {
  std::istringstream lines(message);
  for (std::string l; std::getline(lines, l);)
    if (l.starts_with(key + "=")) return l.substr(key.size() + 1);
  return "";
}

// `fhir-edge run` as a child process with the given environment additions; stderr to a file.
class Daemon {
 public:
  // `wrapper` (e.g. {"/usr/bin/setpriv", "--reuid=65534", ...}) is exec'd with the daemon's
  // command line appended.
  Daemon(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
         const fs::path& stderr_file, const std::vector<std::string>& wrapper = {}) {
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, STDERR_FILENO);
      dup2(fd, STDOUT_FILENO);
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      std::vector<std::string> line = wrapper;
      line.push_back(FE_EXE);
      line.insert(line.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : line) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Daemon() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  void signal(int s) { kill(pid_, s); }

  // Exit code (or 128+signal); nullopt if it did not exit within `limit` (a hung daemon).
  std::optional<int> wait(std::chrono::milliseconds limit = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
      }
      usleep(20'000);
    }
    return std::nullopt;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
};

// A valid config with everything under `root`; `extra` is appended (top-level keys).
inline std::string config_text(const fs::path& root, int pipelines = 1,
                               const std::string& extra = "") {
  std::string y = "pipelines:\n";
  for (int i = 0; i < pipelines; ++i) {
    // The daemon does not create its watch roots (issue 17: it waits for a missing one).
    fs::create_directories(root / ("in" + std::to_string(i)));
    y += "  - name: p" + std::to_string(i) + "\n";
    y += "    watch: " + (root / ("in" + std::to_string(i))).string() + "\n";
    y += "    s3: { bucket: landing-bucket }\n";
    y += "    healthlake:\n";
    y += "      datastore_id: 0123456789abcdef0123456789abcdef\n";
    y += "      data_access_role_arn: arn:aws:iam::123456789012:role/Import\n";
    y += "      output_s3_uri: s3://results-bucket/imports/\n";
    y += "      output_kms_key_id: alias/healthlake\n";
  }
  y += "spool: { dir: " + (root / "state/spool").string() + " }\n";
  y += "journal: { path: " + (root / "state/db/journal.db").string() + " }\n";
  y += "metrics: { listen: off }\n";
  return y + extra;
}

}  // namespace fe::test
