#pragma once
// Housekeeping after the import (issue 14 item 4): what happens to an export's source and spool
// once it is done. Moved out of the pipeline (pipeline.cpp's apply_after_upload, retention and
// evict); subscribes ExportEvent::imported on the hub.
//
//   after_upload  on `imported` (an accepted import, ExportEvent::imported): keep | delete |
//                 move:DIR the export's source, per its pipeline's after_upload. Only the files
//                 that were taken are touched, and only while each is still the file that was
//                 taken (watch identity: dev, inode, size, mtime): a file replaced since belongs
//                 to a newer export and is left alone, as is everything when any file changed.
//                 delete also removes the export directory's own metadata (complete_when.marker,
//                 manifest.json, log.ndjson) and the directory when it is then empty. move renames
//                 within one file system (EXDEV is reported, nothing is copied); a name taken in
//                 move_to gets the export name, then a time suffix. Every outcome (done, skipped,
//                 failed) is logged and journaled as an `after_upload` event; a failure leaves the
//                 source where it is. Never for import_failed, nothing_to_import or parked exports.
//   retention     spool.keep_for: the spool of a finished export (imported, nothing_to_import,
//                 failed or superseded) stays for replay and inspection, then goes. Exports in
//                 flight, parked or import_failed keep it. Runs at start(), after each `imported`
//                 (keep_for 0: at once), and every 10 minutes. keep_for is read from the live
//                 config at each run.
//   evict         the spool quota is full (spool::Quota::on_full, posted to the control thread):
//                 the spool of exports whose upload is finished (uploaded and later states) is
//                 removed, oldest first, until there is room; exports not yet uploaded are never
//                 evicted. While still full it looks again every second (uploads that finish make
//                 more room evictable) and logs "spool quota reached" once, then "room again".
// Threading: control thread only. The journal, config and quota belong to the owner (the
// pipeline: its journal and quota; app::Stages: its live config copy) and must outlive this
// object; after stop() nothing is touched.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/export_events.hpp"
#include "config/config.hpp"
#include "journal/journal.hpp"
#include "spool/spool.hpp"

namespace fe::import {

class Housekeeping : public std::enable_shared_from_this<Housekeeping> {
 public:
  struct Deps {
    boost::asio::io_context& io;
    journal::Journal& journal;
    // The live configuration (the owner's copy, updated on reload): spool.dir, spool.keep_for,
    // pipelines[].after_upload and complete_when.
    const config::Config& config;
    spool::Quota* quota = nullptr;
    std::function<void(std::uint64_t bytes)> on_evicted;  // counted in the pipeline's stats
    std::chrono::milliseconds retention_interval = std::chrono::minutes(10);
  };

  explicit Housekeeping(Deps deps);
  ~Housekeeping();
  Housekeeping(const Housekeeping&) = delete;
  Housekeeping& operator=(const Housekeeping&) = delete;

  // imported → after_upload(id), then retention().
  void subscribe(ExportEvents& events);
  // First retention run, then every retention_interval.
  void start();
  void stop();

  void after_upload(std::int64_t export_id);
  void retention();
  void evict();

 private:
  void arm_retention();

  Deps d_;
  std::unique_ptr<boost::asio::steady_timer> retention_timer_;
  bool stopped_ = false;
  bool quota_full_logged_ = false;
  bool evict_timer_armed_ = false;
};

}  // namespace fe::import
