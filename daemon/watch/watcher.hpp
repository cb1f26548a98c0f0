#pragma once
// The watcher: finds complete exports under one pipeline's root directory and hands them over.
//
// Runs entirely on the caller's io_context (the daemon's control thread): inotify is read through
// a boost::asio::posix::stream_descriptor, settle checks and periodic rescans are steady_timers.
// No other threads, no blocking besides directory listings and small metadata reads.
//
// Units (DESIGN "Units of work"): an export is a subdirectory of the root (its regular files at
// the top level), or a single file dropped directly into the root (an export of its own, named
// after the file without its last extension, and without a compression suffix first). A
// subdirectory of an export that holds anything is not taken: it is listed in ReadyExport::nested
// and the pipeline parks the export saying so (nested files are never dropped in silence).
//
// Files: regular files matching one of `patterns` (fnmatch) only. Every other regular file of a
// complete export (no pattern matches it, or the bulk manifest does not name it) is reported once
// (log warning and on_skipped) and listed in ReadyExport::skipped with the reason.
// Compressed NDJSON (`.ndjson.gz`, `.ndjson.zst`: the default patterns take them) is read
// decompressed and imported as plain `<name>.ndjson` (plain_name()); a compressed file whose plain
// name is also a file of the export is skipped (both would be the same import object). Never
// followed: symlinks (lstat; watches use IN_DONT_FOLLOW). Ignored silently: temporary names (".*",
// "*.part",
// "*.tmp", "*~"). FIFOs, sockets, devices and symlinks are reported once (log warning and
// on_skipped) and skipped. So are names that cannot become spool paths and S3 keys (see
// name_problem(): control characters such as a newline, invalid UTF-8, more than kMaxNameBytes)
// — export directories and single root files as a whole, files inside an export one by one.
// docs/hostile-input.md lists what happens to each kind of bad entry. The client log (`log.ndjson`)
// and the manifest (`manifest.json`) are metadata: never in the file list even when they match a
// pattern.
//
// Completion (any enabled rule), checked whenever something changes in the export, at every
// rescan, and when a settle timer fires:
//  - bulk_manifest: `manifest.json` parses as a FHIR Bulk Data manifest and every file it names
//    (last segment of each output[].url) is present as a regular file; the export's files are
//    then exactly the named ones.
//  - marker: the marker file (default ".done") exists.
//  - client_log: `log.ndjson`'s last event is "export_complete".
//  - settle (settle > 0): no change (inotify event, or a file's size/mtime/inode) for `settle`.
// In every case no file of the export may be open for writing. Unprivileged processes cannot see
// other processes' open files, so "open for writing" is tracked from inotify: a file with
// IN_CREATE or IN_MODIFY and no IN_CLOSE_WRITE since is open. A file that already existed when
// the daemon started, that was written into a new directory before the directory's watch was in
// place, or that was there at an overflow, has an unknown writer state: it must stay unchanged
// (size, mtime, inode) for `scan_quiet` (default 5 s) before it is taken. A writer that may pause
// longer than that without writing should write to a temporary name and rename, as bulk-data
// clients do (or the settle rule can be given a longer period).
// A single root file is complete when it is not open for writing (closed after writing, moved in,
// or found at a scan), and, with settle > 0, unchanged for `settle`.
//
// Rescans: a full rescan at start(), after IN_Q_OVERFLOW and every `rescan_interval`, so nothing
// is missed while the daemon was down or the queue overflowed. When the root is missing or
// unreadable at start() (one warning is logged), or is deleted or moved away later, it is looked
// for every `root_retry` until it can be watched, then watched and rescanned; meanwhile
// unwatched_reason() says why (metrics count such roots, /healthz names them).
//
// Waiting exports (issue 17 item 3): every export checked and found not complete is kept in a
// waiting set with the rule it waits for, what is missing and since when (wall clock, first check
// that found it waiting), until it is ready or gone. on_waiting gets the whole set when it changed,
// at most once per waiting_report_delay (the pipeline journals it for `status` and /metrics), and
// once after the first scan of start() even when nothing waits (so an older report is replaced).
//
// Output: on_ready(ReadyExport) once per distinct content: the same export is reported again
// only when its file identities differ from those last reported (a changed export is re-taken;
// the pipeline decides with the journal's content digest whether it is new).
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "watch/identity.hpp"
#include "watch/settings.hpp"

namespace fe::watch {

// The configured rules (pipelines[].complete_when: marker, bulk_manifest, client_log, settle;
// watch/settings.hpp) and the names of the files they look for.
struct CompletionRules : CompleteWhen {
  std::string manifest_name = "manifest.json";
  std::string client_log_name = "log.ndjson";
};

// The configured `watch:` section (Settings: rescan_interval; scan_quiet: a file found by a scan
// (at start, after an overflow, or written into a new directory before its watch was in place)
// may still be open for writing without inotify having said so, so it is taken only once its
// size/mtime/inode stayed unchanged for that long, or inotify saw it closed) and one pipeline's
// root, patterns and rules.
struct WatchOptions : Settings {
  std::string pipeline;  // for log fields
  std::filesystem::path root;
  std::vector<std::string> patterns{"*.ndjson", "*.ndjson.gz", "*.ndjson.zst"};
  CompletionRules rules;
  // An export held back this long by a file that is open for writing (no IN_CLOSE_WRITE seen)
  // gets one warning naming the file; it still waits for the close. 0 disables the warning.
  std::chrono::seconds open_warn_after{600};
  // While the watch root is missing (deleted, moved away), how often to look for it again.
  std::chrono::milliseconds root_retry{1000};
  // Changes of the waiting set are reported (on_waiting) at most this often: one journal write
  // for a burst of files closing. 0 reports each change at once (tests).
  std::chrono::milliseconds waiting_report_delay{1000};
};

// An export seen but not complete yet: which rule it waits for and what is missing.
struct Waiting {
  std::string name;            // as it will be taken (ReadyExport::name)
  std::filesystem::path path;  // the export directory, or the single file
  // "bulk_manifest" (a manifest names a file not there yet, or is malformed), "settle" (the quiet
  // period runs), "open_file" (a file is open for writing), "scan_quiet" (a file found by a scan
  // must stay unchanged), "no_data" (no data file), or the enabled completion rules joined by
  // '|' ("bulk_manifest|marker|client_log") while none of them holds.
  std::string rule;
  std::string missing;  // for a person: the on_pending text
  std::chrono::system_clock::time_point since;
  bool operator==(const Waiting&) const = default;
};

struct Skipped {
  std::filesystem::path path;
  // "symlink (never followed)", "FIFO", "socket", "device", "not a regular file",
  // "unusable name (<name_problem()>)", "does not match patterns (...)", "not named by the bulk
  // manifest", or "same import name as <file>"
  std::string reason;
};

struct ReadyExport {
  std::string name;            // directory name, or file stem for a single root file
  std::filesystem::path path;  // the export directory, or the single file
  bool single_file = false;
  std::string rule;              // "bulk_manifest" | "marker" | "client_log" | "settle" | "file"
  std::vector<TakenFile> files;  // sorted by name
  std::vector<std::filesystem::path> metadata;  // manifest / client log present, kept as metadata
  std::vector<Skipped> skipped;                 // entries of the export not taken, with the reason
  std::vector<std::string> nested;  // "sub/ (N entries)": subdirectories that hold something
};

class Watcher {
 public:
  using ReadyFn = std::function<void(const ReadyExport&)>;

  Watcher(boost::asio::io_context& io, WatchOptions options, ReadyFn on_ready);
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Sets up inotify and runs the first full rescan (exports already complete are reported from
  // inside start(), through on_ready). A missing or unreadable root is waited for (see above);
  // throws std::runtime_error only when inotify itself cannot be set up.
  void start();
  // "" while the root is watched (or the watcher is stopped); else why it is not ("does not
  // exist", "is not readable by user fhir-edge (...)", "disappeared (deleted or moved away)").
  std::string unwatched_reason() const;
  void stop();
  void rescan();  // full rescan now

  // Optional observers (tests, metrics, status).
  void on_skipped(std::function<void(const Skipped&)> f) { on_skipped_ = std::move(f); }
  // An export was checked and is not complete yet; `why` says what is missing.
  void on_pending(std::function<void(const std::string& name, const std::string& why)> f) {
    on_pending_ = std::move(f);
  }

  // The waiting set changed (see above): every export waiting now, oldest first.
  void on_waiting(std::function<void(const std::vector<Waiting>&)> f) {
    on_waiting_ = std::move(f);
  }
  std::vector<Waiting> waiting() const;

  uint64_t overflows() const { return overflows_; }
  uint64_t rescans() const { return rescans_; }
  const WatchOptions& options() const { return opt_; }

  // Name rules, exposed for tests and for the CLI: temporary names and pattern matching.
  static bool is_temporary_name(std::string_view name);
  // Longest export or file name taken: the spool adds up to 12 bytes (".zst.idx.tmp") to a file
  // name and NAME_MAX is 255; S3 keys (<= 1024 bytes) hold an export and a file name each.
  static constexpr std::size_t kMaxNameBytes = 240;
  // Why a name cannot be an export or file name ("" when it can): a control character (newline,
  // tab, ESC...: unsafe in S3 keys, logs and terminals), invalid UTF-8 (S3 keys are UTF-8), or
  // longer than kMaxNameBytes.
  static std::string name_problem(std::string_view name);
  bool matches(std::string_view name) const;
  // The name without a compression suffix (".gz", ".zst", ".zstd"): "Patient.ndjson.gz" →
  // "Patient.ndjson". The spool and the S3 keys use it (the import object is plain NDJSON).
  static std::string plain_name(std::string_view name);

 private:
  struct Tracked;  // per export state
  void read_events();
  void handle_buffer(const char* data, size_t size);
  void add_export_dir(const std::string& name);
  void remove_export(const std::string& name);
  void scan_root();
  void evaluate(const std::string& name);
  void schedule_settle(const std::string& name, std::chrono::steady_clock::time_point at);
  void schedule_rescan();
  void schedule_root_check();
  void report_skip(const std::filesystem::path& p, const std::string& reason);
  void pending(const std::string& key, const std::string& name, const std::string& rule,
               const std::string& why);
  void not_waiting(const std::string& key);
  void waiting_changed();
  void report_waiting();
  std::string enabled_rules() const;

  boost::asio::io_context& io_;
  WatchOptions opt_;
  ReadyFn on_ready_;
  std::function<void(const Skipped&)> on_skipped_;
  std::function<void(const std::string&, const std::string&)> on_pending_;
  int inotify_fd_ = -1;
  int root_wd_ = -1;
  std::unique_ptr<boost::asio::posix::stream_descriptor> stream_;
  std::vector<char> buffer_;
  boost::asio::steady_timer rescan_timer_;
  boost::asio::steady_timer root_timer_;
  std::map<std::string, std::unique_ptr<Tracked>> exports_;  // by export name (dir or file name)
  std::map<int, std::string> wd_to_export_;
  std::set<std::string> skipped_reported_;
  uint64_t overflows_ = 0;
  uint64_t rescans_ = 0;
  bool running_ = false;
  bool ever_watched_ = false;
  std::string unwatched_reason_;
  std::shared_ptr<bool> alive_;
  std::function<void(const std::vector<Waiting>&)> on_waiting_;
  std::map<std::string, Waiting> waiting_;  // by export key (entry name in the root)
  boost::asio::steady_timer waiting_timer_;
  bool waiting_armed_ = false;
};

}  // namespace fe::watch
