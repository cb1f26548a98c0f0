#pragma once
// The watcher's private pieces (daemon/watch): what an entry is (lstat, never following
// symlinks) and the state kept per export candidate, shared by watcher.cpp (inotify, scans,
// timers) and evaluate.cpp (the readiness decision for one candidate). See watcher.hpp.
#include <sys/stat.h>

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "watch/watcher.hpp"

namespace fe::watch {

namespace fs = std::filesystem;

namespace detail {

// What lstat says an entry is, without following symlinks.
enum class Kind { missing, regular, directory, symlink, fifo, socket, device, other };

inline Kind kind_of(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return Kind::missing;
  if (S_ISREG(st.st_mode)) return Kind::regular;
  if (S_ISDIR(st.st_mode)) return Kind::directory;
  if (S_ISLNK(st.st_mode)) return Kind::symlink;
  if (S_ISFIFO(st.st_mode)) return Kind::fifo;
  if (S_ISSOCK(st.st_mode)) return Kind::socket;
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return Kind::device;
  return Kind::other;
}

inline const char* kind_name(Kind k) {
  switch (k) {
    case Kind::symlink:
      return "symlink (never followed)";
    case Kind::fifo:
      return "FIFO";
    case Kind::socket:
      return "socket";
    case Kind::device:
      return "device";
    default:
      return "not a regular file";
  }
}

inline std::string stem_of(const std::string& compressed) {
  std::string file = Watcher::plain_name(compressed);  // "x.ndjson.gz" is export "x"
  auto dot = file.rfind('.');
  return dot == std::string::npos || dot == 0 ? file : file.substr(0, dot);
}

}  // namespace detail

using Clock = std::chrono::steady_clock;

struct Watcher::Tracked {
  std::string key;  // entry name in the root
  bool single_file = false;
  fs::path path;
  int wd = -1;
  std::set<std::string> open_for_write;
  // Names inotify has reported since the watch was in place: their writer state is known. Other
  // files were found by a scan; `unverified` holds the identity and time each was first seen
  // unchanged, until it has stayed so for scan_quiet.
  std::set<std::string> known;
  std::map<std::string, std::pair<FileIdentity, Clock::time_point>> unverified;
  std::map<std::string, FileIdentity> snapshot;  // everything seen at the last check
  Clock::time_point last_change = Clock::now();
  std::optional<std::vector<TakenFile>> reported;
  std::string manifest_error;  // reported once per distinct message
  std::unique_ptr<boost::asio::steady_timer> settle_timer;
  std::optional<Clock::time_point> open_since;  // first check that found a file open for writing
  bool open_warned = false;
};

}  // namespace fe::watch
