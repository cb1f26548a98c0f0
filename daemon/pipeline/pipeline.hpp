#pragma once
// The ingest and upload pipeline: the daemon's main loop up to the moment every file of an export
// is safely in S3 (DESIGN "The job, one export at a time", issue 6). It emits `uploaded` on the
// event hub; what follows (the import stage and the housekeeping after it) are peers built and
// wired by the composition root (daemon/app/stages.hpp), which also hands this component the
// hub and the AWS clients (Options::events, Options::clients, both required). Inside, two peers
// share one state (pipeline/core.hpp): Ingest (ingest.hpp: watch, take, spool) and UploadStage
// (upload_stage.hpp: upload, errors); the component builds them, opens the journal (the one
// writer Journal, lent to the import stage through journal()), resumes from the journal and
// keeps the spool quota (quota(); when it is full, Options::on_spool_full asks housekeeping to
// evict).
//
// One Component per daemon serves every configured pipeline:
//   watch      one watch::Watcher per pipeline on the control io_context → ReadyExport
//   take       content digest on the worker pool, then journal.take_export on the control thread:
//              an identical re-delivery is recognised (not redone), a changed one is a new version;
//              on_changed: hold parks a new version whose earlier one got past spooling (it
//              would import every resource again) until `fhir-edge retry` releases it
//   spool      per file on the worker pool (boost::asio::thread_pool; pool threads without a
//              job help validate, PoolHelp): LineReader → Validator at the pipeline's level →
//              valid lines to spool/<export>/import/<File>.zst, invalid ones
//              to rejected/<File>.zst, issues to spool/<export>/reports/<File>.json; then
//              report.json (write_durable). on_invalid: reject-resource | reject-file |
//              fail-export. The journal records a file only after its spool files are durable.
//   upload     per file on the control io_context with the async S3 client:
//                <prefix>/<export>/import/<File>.ndjson    part N = spool frame N decompressed
//                <prefix>/<export>/archive/<File>.ndjson.zst  raw spool bytes (s3.archive)
//                <prefix>/<export>/rejected/<File>.ndjson.zst and report.json (s3.upload_rejects)
//              PutObject for one part, multipart otherwise, x-amz-checksum-crc32c on every part,
//              SSE-KMS when configured; at most upload.concurrency part requests in flight
//              overall; import parts are decompressed while curl reads them (no part-size
//              buffers). Every finished part is
//              journaled; resume = ListParts (journal alone when the server lacks it) + missing
//              parts + Complete with If-None-Match: *; a 412 / NoSuchUpload is settled with
//              HeadObject's (composite) CRC32C, never by uploading again (NoSuchUpload with no
//              object: a new multipart upload). Each object is an upload::ObjectUpload, the
//              step machine of daemon/upload/object_upload.hpp; this component decides which
//              objects an export has and merges their upload::Outcome (done / retry_later /
//              park).
//   errors     retryable errors exhausted → the export keeps its state and is retried after a
//              backoff in minutes; auth / not-found / validation / other → park_export with the
//              message. Nothing is dropped.
//   quota      spool.max_bytes: writers wait (back-pressure) while uploads go on; under pressure
//              Options::on_spool_full runs on the control thread (the root wires it to
//              import::Housekeeping::evict: the spool of uploaded exports goes, oldest first).
//   restart    every non-terminal export is resumed from the journal (spooling → redo the files
//              not yet spooled; spooled/uploading → resume the upload).
//   orphans    (upload::Cleanup, daemon/upload/cleanup.hpp)
//              after recovery at start, and whenever a CreateMultipartUpload needed more than one
//              attempt (an earlier attempt may have created an upload whose answer was lost),
//              ListMultipartUploads under each pipeline's prefix; an upload is aborted only when
//              its key is <prefix>/<export>/{import,archive}/... of an export in the journal, no
//              file row of a journal export (superseded and failed ones excepted: nothing resumes
//              them) names its upload id, and no CreateMultipartUpload for that
//              key is in flight in this process (the sweep then runs again once it answered).
//   superseded a version superseded mid-spool may have completed early objects: each key its
//              file rows recorded (import_key, archive_key; never a listing) is deleted with
//              DeleteObject (404 = done), then cleared in the journal. A failure is logged and
//              retried at the next start or supersede; it blocks nothing. Run after every
//              supersede and after recovery at start, so a restart deletes what is left.
// Threading: every journal call, S3 call and state change happens on the control thread (the
// io_context the component was made with); the pool only reads sources and writes spool files.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "config/config.hpp"
#include "service/service.hpp"

namespace fe {
class ExportEvents;
namespace aws {
class Clients;
}
namespace journal {
class Journal;
}
namespace spool {
class Quota;
}
}  // namespace fe

namespace fe::pipeline {

// Knobs that are not in the config file (defaults are the production values; tests lower them).
struct Options {
  int worker_threads = 2;  // validate+spool pool
  // Smallest part size accepted (S3's rule is 5 MiB; tests use a lower one with healthlake-local
  // --min-part-size so multipart cases stay small).
  std::uint64_t min_part_size = 5ull << 20;
  // Auto part size: at least this, and large enough that a file stays under 10,000 parts.
  std::uint64_t auto_part_size = 8ull << 20;
  // Content digest: a file of more pieces than this (journal::kDigestPiece each) is hashed in
  // ranges of this many pieces, one pool job each, so one big file is digested by every worker.
  std::uint64_t digest_range_pieces = 8;
  // A source path the journal has never seen is taken at once and its content digest hashed by
  // the spool pass (docs/pipeline.md "One pass"); false: always digest first (tests of that path).
  bool take_before_digest = true;
  // First retry delay after an export's attempts ran out; doubles up to retry_max.
  std::chrono::milliseconds retry_base = std::chrono::minutes(1);
  std::chrono::milliseconds retry_max = std::chrono::minutes(30);
  // Watcher: how long a file found by a scan (not seen by inotify) must stay unchanged before it is
  // taken; unset = the watcher's default (5 s). Tests lower it.
  std::optional<std::chrono::milliseconds> scan_quiet;
  // Files per HealthLake import job (import::kMaxFilesPerImportJob); larger exports are laid out
  // in import/part-NNNN/ folders. Tests lower it; the root gives the importer the same value.
  std::int64_t max_files_per_import_job = 10000;
  // Hook run on the control thread whenever the status line may have changed.
  std::function<void()> on_change;
  // Called on the control thread when the spool quota is full (spool::Quota::on_full, posted
  // from the writer's thread); the root wires it to housekeeping's evict.
  std::function<void()> on_spool_full;
  // Called on the control thread when an export past `uploaded` finished its trailing objects
  // (archive copy, rejects, report.json); the root wires it to housekeeping's retention, which
  // keeps an export's spool while they are uploading.
  std::function<void()> on_trailing_done;
  // Wiring by the composition root (daemon/app/stages.hpp), which owns both and outlives the
  // component; the constructor refuses null. events: the hub the component emits `uploaded` on
  // and takes `resumed` from (subscribe()). clients: the AWS layer (aws::Clients); start()
  // starts its credentials, stop() closes it.
  ExportEvents* events = nullptr;
  aws::Clients* clients = nullptr;
};

// The part size used for a file of `source_bytes` (uncompressed bytes are never more than that):
// configured (or auto) but at least min_part_size and so that the file fits in 9,999 parts.
std::uint64_t choose_part_size(std::optional<std::uint64_t> configured, std::uint64_t source_bytes,
                               const Options& options = {});

// Object keys (DESIGN "S3 layout"): import/s3_layout.hpp.

// The counters of one pipeline (control thread): /metrics shows each with a pipeline label.
struct Counters {
  std::uint64_t exports_taken = 0;
  std::uint64_t exports_seen_again = 0;  // identical re-deliveries recognised (not redone)
  std::uint64_t exports_uploaded = 0;
  std::uint64_t files_spooled = 0;       // files validated and spooled (or rejected whole)
  std::uint64_t resources_valid = 0;     // lines of those files that passed validation
  std::uint64_t resources_rejected = 0;  // ... and that did not
  std::uint64_t parts_sent = 0;          // part/PutObject requests that succeeded
  std::uint64_t part_bytes_sent = 0;     // their body bytes
  std::uint64_t parts_skipped = 0;       // found uploaded (journal or ListParts) on resume
  std::uint64_t settled = 0;             // objects settled by HeadObject checksum
  std::uint64_t retries_scheduled = 0;
  std::uint64_t parked = 0;
};

// Counters (control thread), for status, tests and benchmarks. The Counters fields are the
// totals over every pipeline; by_pipeline has each pipeline's share (add() keeps both).
struct Stats : Counters {
  std::map<std::string, Counters> by_pipeline;
  // Adds `n` to a counter of `pipeline` and to the total.
  void add(const std::string& pipeline, std::uint64_t Counters::*counter, std::uint64_t n = 1) {
    static_cast<Counters&>(*this).*counter += n;
    by_pipeline[pipeline].*counter += n;
  }
  // Process-wide (the spool and the journal are shared by every pipeline):
  std::uint64_t evicted_bytes = 0;
  // Journal writes that failed on the control thread (disk full, read-only or failing file
  // system): the export waited and was retried, nothing was recorded as done without them.
  std::uint64_t journal_errors = 0;
  // Incomplete multipart uploads under a pipeline's prefix that the journal does not own (a lost
  // CreateMultipartUpload answer, a kill right after one), aborted by the orphan sweep.
  std::uint64_t orphan_uploads_aborted = 0;
  // Completed objects of superseded versions deleted (or found gone) from the landing bucket.
  std::uint64_t superseded_objects_deleted = 0;
  // Exports past `uploaded` whose trailing objects (archive copy, rejects, report.json) are
  // still uploading or wait to retry, as of the last stats() call.
  std::uint64_t exports_trailing = 0;
  // Watch roots not being watched now (missing, unreadable, gone), as of the last stats() call:
  // "pipeline <name>: <root> <why>" each. The watcher waits for them (issue 17).
  std::vector<std::string> unwatched_roots;
};

class Pipeline : public service::Component {
 public:
  Pipeline(boost::asio::io_context& io, const config::Config& config, Options options = {});
  ~Pipeline() override;

  std::string name() const override { return "pipeline"; }
  // Opens the journal (lock, integrity check), the credentials, builds validators, resumes every
  // non-terminal export, then starts the watchers. Throws on a fatal start-up error.
  void start(const config::Config& config) override;
  // Only log level and similar outside keys may change at run time; a change to pipelines, spool,
  // journal, upload or aws is refused (restart needed), leaving everything as it was.
  bool reload(const config::Config& old_config, const config::Config& new_config,
              std::string& why) override;
  // Stops watchers and timers, cancels spool work (it is redone from the journal at the next
  // start) and transfers in flight (parts are resumed), closes the journal, then done().
  void stop(std::function<void()> done) override;
  // "2 exports uploading, 1 queued, 0 parked".
  std::string status_line() const override;

  const Stats& stats() const;

  // What the component takes from the event hub (before start()): `resumed` → the export
  // continues from its journal state unless it is being worked on.
  void subscribe(ExportEvents& hub);

  // Between start() and stop(): the journal this component opened (the daemon's one writer,
  // which the import stage shares on the control thread) and the spool quota; null otherwise.
  fe::journal::Journal* journal();
  fe::spool::Quota* quota();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace fe::pipeline
