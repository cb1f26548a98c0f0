#pragma once
// The watch stage's settings: the YAML section `watch` and each pipeline's `complete_when`
// (docs/configuration.md). None is live: the watchers are set up once at start, so a reload that
// changes one is refused, naming the key.
#include <chrono>
#include <string>
#include <tuple>

#include "common/fields.hpp"

namespace fe::watch {

// The watcher's safety nets beside inotify (DESIGN: watch stage).
struct Settings {
  // Full rescan of every watched directory this often; 0 = only at start and after an inotify
  // queue overflow (not advised: inotify misses changes made on NFS/SMB servers).
  std::chrono::seconds rescan_interval{60};
  // A file found by a scan (not seen being written through inotify) is taken only after it stayed
  // unchanged (size, mtime, inode) this long.
  std::chrono::milliseconds scan_quiet{5000};
  bool operator==(const Settings&) const = default;
};

// pipelines[].complete_when: when an export directory counts as complete.
struct CompleteWhen {
  std::string marker = ".done";    // a file with this name in the export dir; "" = off
  bool bulk_manifest = true;       // a FHIR Bulk Data manifest names all of its output files
  bool client_log = true;          // a bulk-data client's log records the export as finished
  std::chrono::seconds settle{0};  // settle_seconds: quiet period with no writers; 0 = off
  bool operator==(const CompleteWhen&) const = default;
};

// YAML names and reload behaviour (common/fields.hpp).
constexpr auto fields(const Settings*) {
  using enum settings::Reload;
  return std::tuple{settings::field("rescan_interval", &Settings::rescan_interval, restart),
                    settings::field("scan_quiet", &Settings::scan_quiet, restart)};
}
static_assert(settings::described<Settings>());

constexpr auto fields(const CompleteWhen*) {
  using enum settings::Reload;
  using C = CompleteWhen;
  return std::tuple{settings::field("marker", &C::marker, restart),
                    settings::field("bulk_manifest", &C::bulk_manifest, restart),
                    settings::field("client_log", &C::client_log, restart),
                    settings::field("settle_seconds", &C::settle, restart)};
}
static_assert(settings::described<CompleteWhen>());

}  // namespace fe::watch
