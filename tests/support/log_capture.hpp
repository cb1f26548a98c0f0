#pragma once
// The one stderr capture for tests: the log of components run in the test's own process goes to
// a scratch file until restore() (or the end of the object), as plain lines ("<level>: <message>
// KEY=value ...", service/log.hpp), at the given level (default: as it is). What a stage logs is
// an observable event to wait on ("export not complete yet: ...", "fhir-edge started"), in place
// of sleeping and hoping. Link fe_log (fe::log).
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "service/log.hpp"

namespace fe::test {

class LogCapture {
 public:
  explicit LogCapture(fe::log::Level level = fe::log::level()) : saved_level_(fe::log::level()) {
    char tmpl[] = "/tmp/fe-log-XXXXXX";
    fd_ = ::mkstemp(tmpl);
    if (fd_ < 0) throw std::runtime_error("mkstemp failed");
    path_ = tmpl;
    std::fflush(stderr);
    saved_fd_ = ::dup(STDERR_FILENO);
    ::dup2(fd_, STDERR_FILENO);
    fe::log::redetect_sink();  // plain lines on this stderr, never the host's journal
    fe::log::set_level(level);
  }
  ~LogCapture() {
    restore();
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  // Puts stderr and the log level back (idempotent); returns everything captured.
  std::string restore() {
    if (saved_fd_ >= 0) {
      std::fflush(stderr);
      ::dup2(saved_fd_, STDERR_FILENO);
      ::close(saved_fd_);
      saved_fd_ = -1;
      fe::log::redetect_sink();
      fe::log::set_level(saved_level_);
    }
    return text();
  }
  // The scratch file's descriptor (e.g. its dev:ino as JOURNAL_STREAM).
  int fd() const { return fd_; }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // Everything logged so far (read on from where the last call stopped: cheap to poll).
  const std::string& text() const {
    std::fflush(stderr);
    std::ifstream in(path_, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(text_.size()));
    std::ostringstream ss;
    ss << in.rdbuf();
    text_ += ss.str();
    return text_;
  }
  // A mark for "from now on": lines() and has() can start there.
  std::size_t mark() const { return text().size(); }
  // Lines logged since `from` holding every one of `needles`.
  std::vector<std::string> lines(std::initializer_list<std::string_view> needles,
                                 std::size_t from = 0) const {
    std::vector<std::string> out;
    const std::string& all = text();
    for (std::size_t at = from, end; at < all.size(); at = end + 1) {
      end = all.find('\n', at);
      if (end == std::string::npos) break;  // a line still being written
      std::string_view line(all.data() + at, end - at);
      bool found = true;
      for (auto n : needles) found = found && line.find(n) != std::string_view::npos;
      if (found) out.emplace_back(line);
    }
    return out;
  }
  bool has(std::initializer_list<std::string_view> needles, std::size_t from = 0) const {
    return !lines(needles, from).empty();
  }

 private:
  fe::log::Level saved_level_;
  int fd_ = -1, saved_fd_ = -1;
  std::string path_;
  mutable std::string text_;
};

}  // namespace fe::test
