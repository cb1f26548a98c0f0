// The watcher: inotify on the root and each export directory, scans, rescans and timers. The
// readiness decision for one candidate is evaluate.cpp; shared pieces are watcher_internal.hpp.
#include "watch/watcher.hpp"
#include "watch/watcher_internal.hpp"

#include "watch/roots.hpp"

#include <fnmatch.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "service/log.hpp"
#include "watch/manifest.hpp"

namespace fe::watch {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace detail;

namespace {

constexpr uint32_t kDirMask = IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                              IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                              IN_EXCL_UNLINK;

}  // namespace

Watcher::Watcher(boost::asio::io_context& io, WatchOptions options, ReadyFn on_ready)
    : io_(io),
      opt_(std::move(options)),
      on_ready_(std::move(on_ready)),
      buffer_(64 * 1024),
      rescan_timer_(io),
      root_timer_(io),
      alive_(std::make_shared<bool>(true)),
      waiting_timer_(io) {}

Watcher::~Watcher() {
  stop();
}

bool Watcher::is_temporary_name(std::string_view n) {
  return n.empty() || n.front() == '.' || n.ends_with(".part") || n.ends_with(".tmp") ||
         n.back() == '~';
}

std::string Watcher::name_problem(std::string_view n) {
  for (unsigned char c : n)
    if (c < 0x20 || c == 0x7f) return "name contains a control character";
  // UTF-8 well-formedness (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
  for (size_t i = 0; i < n.size();) {
    auto c = static_cast<unsigned char>(n[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > n.size()) return "name is not valid UTF-8";
    uint32_t cp = len == 1 ? c : c & (0x7f >> len);
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(n[i + k]);
      if ((cc & 0xc0) != 0x80) return "name is not valid UTF-8";
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return "name is not valid UTF-8";
    i += len;
  }
  if (n.size() > kMaxNameBytes)
    return "name of " + std::to_string(n.size()) + " bytes is longer than " +
           std::to_string(kMaxNameBytes) + " (spool file names and S3 keys need the room)";
  return {};
}

std::string Watcher::plain_name(std::string_view name) {
  for (std::string_view suffix : {".gz", ".zst", ".zstd"})
    if (name.size() > suffix.size() && name.ends_with(suffix))
      return std::string(name.substr(0, name.size() - suffix.size()));
  return std::string(name);
}

bool Watcher::matches(std::string_view name) const {
  std::string n(name);
  for (const auto& p : opt_.patterns)
    if (::fnmatch(p.c_str(), n.c_str(), FNM_PERIOD) == 0) return true;
  return false;
}

void Watcher::start() {
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0)
    throw std::runtime_error(std::string("inotify_init1: ") + std::strerror(errno));
  stream_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, inotify_fd_);
  running_ = true;
  // A root that is missing or unreadable (not created yet, a late mount, wrong permissions) is
  // not fatal: one warning now, then scan_root() looks for it every root_retry and starts
  // watching when it can (issue 17). Until then watching() is false (metrics, /healthz).
  if (auto why = root_problem(opt_.root); !why.empty()) {
    unwatched_reason_ = why;
    fe::log::warning("watch root " + opt_.root.string() + " " + why +
                         "; nothing is taken from it until it can be watched (checked every " +
                         std::to_string(opt_.root_retry.count()) + " ms)",
                     {{"PIPELINE", opt_.pipeline}, {"WATCH_ROOT", opt_.root.string()}});
  }
  read_events();
  // The root itself may be a symlink set up by the administrator; what is inside is never followed.
  scan_root();  // adds the root's watch (root_wd_ is -1), or schedules the next look
  schedule_rescan();
  // The first report replaces what an earlier run left (exports taken or gone since).
  report_waiting();
}

std::string Watcher::unwatched_reason() const {
  if (!running_ || root_wd_ >= 0) return "";
  return unwatched_reason_.empty() ? "is not being watched" : unwatched_reason_;
}

void Watcher::stop() {
  if (!running_) return;
  running_ = false;
  *alive_ = false;
  alive_ = std::make_shared<bool>(false);
  rescan_timer_.cancel();
  root_timer_.cancel();
  waiting_timer_.cancel();
  waiting_armed_ = false;
  waiting_.clear();
  for (auto& [k, t] : exports_)
    if (t->settle_timer) t->settle_timer->cancel();
  exports_.clear();
  wd_to_export_.clear();
  if (stream_) {
    boost::system::error_code ec;
    stream_->close(ec);  // closes the inotify fd, removing every watch
    stream_.reset();
  }
  inotify_fd_ = -1;
}

void Watcher::rescan() {
  if (running_) scan_root();
}

void Watcher::read_events() {
  std::weak_ptr<bool> alive = alive_;
  stream_->async_read_some(
      boost::asio::buffer(buffer_), [this, alive](boost::system::error_code ec, size_t n) {
        auto a = alive.lock();
        if (!a || !*a) return;
        if (ec) {
          if (ec == boost::asio::error::operation_aborted) return;
          if (ec != boost::asio::error::would_block && ec != boost::asio::error::try_again) {
            fe::log::error("inotify read failed; rescanning periodically only",
                           {{"PIPELINE", opt_.pipeline}, {"ERROR", ec.message()}});
            return;
          }
        } else {
          handle_buffer(buffer_.data(), n);
        }
        if (running_ && *a) read_events();
      });
}

void Watcher::handle_buffer(const char* data, size_t size) {
  std::set<std::string> to_evaluate;
  bool overflow = false;
  size_t off = 0;
  while (off + sizeof(inotify_event) <= size) {
    inotify_event ev;
    std::memcpy(&ev, data + off, sizeof ev);
    std::string name;
    if (ev.len > 0) name = std::string(data + off + sizeof(inotify_event));  // NUL-padded
    off += sizeof(inotify_event) + ev.len;

    if (ev.mask & IN_Q_OVERFLOW) {
      overflow = true;
      continue;
    }
    if (ev.wd == root_wd_) {
      if (ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
        if (ev.mask & IN_MOVE_SELF) {
          // The watch would follow the directory to its new name; paths are built from the
          // configured root, so drop it and let the rescan watch whatever is at the root path.
          ::inotify_rm_watch(inotify_fd_, root_wd_);
        }
        if (ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF))
          fe::log::error("watch root disappeared; waiting for it to come back",
                         {{"PIPELINE", opt_.pipeline}, {"WATCH_ROOT", opt_.root.string()}});
        root_wd_ = -1;
        unwatched_reason_ = "disappeared (deleted or moved away)";
        schedule_root_check();
        continue;
      }
      if (name.empty() || is_temporary_name(name)) continue;
      if (auto why = name_problem(name); !why.empty()) {
        if ((ev.mask & (IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE)) &&
            ((ev.mask & IN_ISDIR) || matches(name)))
          report_skip(opt_.root / name, "unusable name (" + why + ")");
        continue;
      }
      if (ev.mask & IN_ISDIR) {
        if (ev.mask & (IN_CREATE | IN_MOVED_TO)) {
          add_export_dir(name);
          to_evaluate.insert(name);
        } else if (ev.mask & (IN_DELETE | IN_MOVED_FROM)) {
          remove_export(name);
          to_evaluate.erase(name);
        }
        continue;
      }
      if (!matches(name)) continue;
      if (ev.mask & (IN_DELETE | IN_MOVED_FROM)) {
        remove_export(name);
        to_evaluate.erase(name);
        continue;
      }
      auto& t = exports_[name];
      if (!t) {
        t = std::make_unique<Tracked>();
        t->key = name;
        t->single_file = true;
        t->path = opt_.root / name;
      }
      t->last_change = Clock::now();
      t->known.insert(name);
      // A write to a file already known to be open changes nothing that could complete it:
      // skip the re-check (a large file being written produces a stream of IN_MODIFY).
      bool still_writing = ev.mask == IN_MODIFY && t->open_for_write.count(name);
      if (ev.mask & (IN_CREATE | IN_MODIFY)) t->open_for_write.insert(name);
      if (ev.mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) t->open_for_write.erase(name);
      if (!still_writing) to_evaluate.insert(name);
      continue;
    }
    auto w = wd_to_export_.find(ev.wd);
    if (w == wd_to_export_.end()) continue;
    std::string key = w->second;
    auto it = exports_.find(key);
    if (it == exports_.end()) continue;
    Tracked& t = *it->second;
    if (ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
      if (ev.mask & IN_IGNORED) wd_to_export_.erase(ev.wd), t.wd = -1;
      continue;  // the root's IN_DELETE / IN_MOVED_FROM removes the export
    }
    if (ev.mask & IN_ISDIR) continue;  // nested directories are not part of an export
    t.last_change = Clock::now();
    t.known.insert(name);
    bool still_writing = ev.mask == IN_MODIFY && t.open_for_write.count(name);
    if (ev.mask & (IN_CREATE | IN_MODIFY)) t.open_for_write.insert(name);
    if (ev.mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM))
      t.open_for_write.erase(name);
    if (!still_writing) to_evaluate.insert(key);
  }
  if (overflow) {
    ++overflows_;
    fe::log::warning("inotify queue overflowed; rescanning",
                     {{"PIPELINE", opt_.pipeline}, {"WATCH_ROOT", opt_.root.string()}});
    // Open-for-write tracking is unreliable after lost events: start over from the scan.
    for (auto& [k, t] : exports_) {
      t->open_for_write.clear();
      t->known.clear();
    }
    scan_root();
    return;
  }
  for (const auto& k : to_evaluate)
    if (exports_.count(k)) evaluate(k);
}

void Watcher::add_export_dir(const std::string& name) {
  auto& t = exports_[name];
  if (!t) {
    t = std::make_unique<Tracked>();
    t->key = name;
    t->path = opt_.root / name;
  }
  if (t->wd >= 0) return;
  // IN_DONT_FOLLOW: a symlinked "export" directory is refused here, and reported by the scan.
  int wd = ::inotify_add_watch(inotify_fd_, t->path.c_str(), kDirMask | IN_DONT_FOLLOW);
  if (wd < 0) {
    if (errno != ENOENT && errno != ENOTDIR)
      fe::log::warning("cannot watch export directory", {{"PIPELINE", opt_.pipeline},
                                                         {"EXPORT_DIR", t->path.string()},
                                                         {"ERROR", std::strerror(errno)}});
    return;
  }
  t->wd = wd;
  wd_to_export_[wd] = name;
}

void Watcher::remove_export(const std::string& name) {
  auto it = exports_.find(name);
  if (it == exports_.end()) return;
  if (it->second->wd >= 0) {
    ::inotify_rm_watch(inotify_fd_, it->second->wd);
    wd_to_export_.erase(it->second->wd);
  }
  if (it->second->settle_timer) it->second->settle_timer->cancel();
  exports_.erase(it);
  not_waiting(name);
}

void Watcher::report_skip(const fs::path& p, const std::string& reason) {
  // Memory stays bounded however many bad entries a hostile writer creates: past the cap the
  // set starts over (some entries are then reported a second time).
  if (skipped_reported_.size() >= 10000) skipped_reported_.clear();
  if (!skipped_reported_.insert(p.string() + "\n" + reason).second) return;
  fe::log::warning("skipping " + reason, {{"PIPELINE", opt_.pipeline}, {"FHIR_FILE", p.string()}});
  if (on_skipped_) on_skipped_({p, reason});
}

void Watcher::pending(const std::string& key, const std::string& name, const std::string& rule,
                      const std::string& why) {
  fe::log::debug("export not complete yet: " + why,
                 {{"PIPELINE", opt_.pipeline}, {"EXPORT_ID", name}});
  auto it = exports_.find(key);
  if (it != exports_.end()) {
    auto w = waiting_.find(key);
    if (w == waiting_.end()) {
      waiting_[key] = {name, it->second->path, rule, why, std::chrono::system_clock::now()};
      waiting_changed();
    } else if (w->second.rule != rule || w->second.missing != why || w->second.name != name) {
      w->second.name = name;
      w->second.rule = rule;
      w->second.missing = why;
      waiting_changed();
    }
  }
  if (on_pending_) on_pending_(name, why);
}

void Watcher::not_waiting(const std::string& key) {
  if (waiting_.erase(key)) waiting_changed();
}

std::string Watcher::enabled_rules() const {
  const auto& r = opt_.rules;
  std::string out;
  auto add = [&](const char* rule) { out += (out.empty() ? "" : "|") + std::string(rule); };
  if (r.bulk_manifest) add("bulk_manifest");
  if (!r.marker.empty()) add("marker");
  if (r.client_log) add("client_log");
  if (r.settle.count() > 0) add("settle");
  return out;
}

std::vector<Waiting> Watcher::waiting() const {
  std::vector<Waiting> out;
  for (const auto& [k, w] : waiting_) out.push_back(w);
  std::stable_sort(out.begin(), out.end(),
                   [](const Waiting& a, const Waiting& b) { return a.since < b.since; });
  return out;
}

// Coalesced: a burst of changes (files of an export closing one after another) is one report.
void Watcher::waiting_changed() {
  if (!on_waiting_ || !running_ || waiting_armed_) return;
  if (opt_.waiting_report_delay.count() <= 0) return report_waiting();
  waiting_armed_ = true;
  waiting_timer_.expires_after(opt_.waiting_report_delay);
  std::weak_ptr<bool> alive = alive_;
  waiting_timer_.async_wait([this, alive](boost::system::error_code ec) {
    auto a = alive.lock();
    if (ec || !a || !*a) return;
    waiting_armed_ = false;
    report_waiting();
  });
}

void Watcher::report_waiting() {
  if (on_waiting_ && running_) on_waiting_(waiting());
}

void Watcher::scan_root() {
  ++rescans_;
  if (root_wd_ < 0 && inotify_fd_ >= 0) {
    // Only a directory: inotify would watch a file as well, and the scans need a directory.
    struct stat st {};
    int add_errno = 0;
    if (::stat(opt_.root.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      root_wd_ = ::inotify_add_watch(inotify_fd_, opt_.root.c_str(), kDirMask);
      if (root_wd_ < 0) add_errno = errno;
    }
    if (root_wd_ < 0) {
      if (unwatched_reason_.empty()) {
        unwatched_reason_ = root_problem(opt_.root);
        if (unwatched_reason_.empty()) {
          // A usable directory inotify refuses (the watch limit, fs.inotify.max_user_watches):
          // said once, like a missing root.
          unwatched_reason_ =
              std::string("cannot be watched: inotify_add_watch: ") + std::strerror(add_errno);
          fe::log::warning("watch root " + opt_.root.string() + " " + unwatched_reason_ +
                               "; nothing is taken from it until it can be watched",
                           {{"PIPELINE", opt_.pipeline}, {"WATCH_ROOT", opt_.root.string()}});
        }
      }
      schedule_root_check();  // still gone: look again soon
      return;
    }
    if (!unwatched_reason_.empty())
      fe::log::notice(ever_watched_ ? "watch root is back" : "watch root appeared; watching it",
                      {{"PIPELINE", opt_.pipeline}, {"WATCH_ROOT", opt_.root.string()}});
    unwatched_reason_.clear();
  }
  ever_watched_ = true;
  std::set<std::string> present;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(opt_.root, ec)) {
    std::string name = e.path().filename().string();
    if (is_temporary_name(name)) continue;
    Kind k = kind_of(e.path());
    if (auto why = name_problem(name); !why.empty()) {
      if (k == Kind::directory || matches(name))
        report_skip(e.path(), "unusable name (" + why + ")");
      continue;
    }
    if (k == Kind::directory) {
      present.insert(name);
      add_export_dir(name);
    } else if (k == Kind::regular) {
      if (!matches(name)) continue;
      present.insert(name);
      auto& t = exports_[name];
      if (!t) {
        t = std::make_unique<Tracked>();
        t->key = name;
        t->single_file = true;
        t->path = e.path();
      }
    } else if (k != Kind::missing) {
      report_skip(e.path(), kind_name(k));
    }
  }
  if (ec)
    fe::log::warning(
        "cannot list watch root",
        {{"PIPELINE", opt_.pipeline}, {"WATCH_ROOT", opt_.root.string()}, {"ERROR", ec.message()}});
  std::vector<std::string> gone;
  for (const auto& [k, t] : exports_)
    if (!present.count(k)) gone.push_back(k);
  for (const auto& k : gone) remove_export(k);
  for (const auto& k : present)
    if (exports_.count(k)) evaluate(k);
}

void Watcher::schedule_rescan() {
  if (opt_.rescan_interval.count() <= 0) return;
  rescan_timer_.expires_after(opt_.rescan_interval);
  std::weak_ptr<bool> alive = alive_;
  rescan_timer_.async_wait([this, alive](boost::system::error_code ec) {
    auto a = alive.lock();
    if (ec || !a || !*a) return;
    scan_root();
    schedule_rescan();
  });
}

void Watcher::schedule_root_check() {
  if (!running_ || opt_.root_retry.count() <= 0) return;
  root_timer_.expires_after(opt_.root_retry);
  std::weak_ptr<bool> alive = alive_;
  root_timer_.async_wait([this, alive](boost::system::error_code ec) {
    auto a = alive.lock();
    if (ec || !a || !*a) return;
    if (root_wd_ < 0) scan_root();  // re-watches the root when it is back, else re-arms
  });
}

void Watcher::schedule_settle(const std::string& name, Clock::time_point at) {
  auto& t = *exports_.at(name);
  if (!t.settle_timer) t.settle_timer = std::make_unique<boost::asio::steady_timer>(io_);
  t.settle_timer->expires_at(at);
  std::weak_ptr<bool> alive = alive_;
  t.settle_timer->async_wait([this, alive, name](boost::system::error_code ec) {
    auto a = alive.lock();
    if (ec || !a || !*a) return;
    if (exports_.count(name)) evaluate(name);
  });
}

}  // namespace fe::watch
