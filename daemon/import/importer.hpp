#pragma once
// The import lifecycle (issue 7): an export in journal state `uploaded` is imported into
// HealthLake exactly once, followed to a terminal job status and reconciled. docs/import.md has
// the full argument; in short:
//
//   nothing    an export where no file has a valid resource (no import object was uploaded;
//              nothing_to_import()) starts no job: it moves uploaded → nothing_to_import
//              (terminal) with spool/<export>/import-report.json saying so. Its report.json and
//              rejects were uploaded before `uploaded`; after_upload is not applied (source kept).
//   start      one job per part (import_parts: one part unless the export is over 10,000
//              files, whose import objects then sit in part-NNNN/ folders). For every part the
//              ClientToken = journal::import_client_token(pipeline, path, digest, version,
//              attempt, part) and JobName (import_job_name) are journaled (record_import_token)
//              and the export moves to import_starting BEFORE the first StartFHIRImportJob is
//              sent. Parts are started one after another; each answer is journaled
//              (record_import_job); when every part has a job the export moves to importing.
//   recovery   an export found in import_starting (outcome of the Start unknown) first asks
//              ListFHIRImportJobs(JobName, SubmittedAfter = token time - margin), every page
//              (NextToken followed), and adopts the oldest job with the same input URI; only if
//              none exists is Start re-sent, with the SAME token (HealthLake answers a repeated
//              token with the job it already made).
//   limit      at most max_outstanding_starts non-terminal jobs per data store (HealthLake runs
//              one job per store and queues the rest FIFO; the daemon does not flood it). Others
//              wait in a FIFO queue in the importer.
//   batch      with ImporterOptions::batch.max_exports > 1 (config import.batch_*), the exports
//              waiting for a data store's slot are formed into batches by the BatchFormer
//              (batch_former.hpp: same data store, level, role and output; caps on exports, files,
//              bytes; the first export's wait). A batch of one is the plain start above. A batch
//              of several is journaled whole (Journal::record_batch: batch, members, every
//              member's job row with the batch's token, all → import_starting) BEFORE anything is
//              copied or sent; its first member still starting (the leader) copies every member's
//              import objects server-side under <prefix>/batches/<token>/ (again before every
//              Start, also after a crash) and sends the one Start (or adopts the job after a
//              crash); the job id is then journaled for every member. The batch holds one slot.
//              A Start that is refused parks every member still starting. Each member polls the
//              job, reconciles only its own outputs (FAILURE/<export>/, SUCCESS/<export>/) and
//              finishes on its own (report, state, ExportEvent::imported).
//   follow     DescribeFHIRImportJob every poll_min..poll_max (uniform jitter) per job, status and
//              JobProgressReport journaled (record_import_status) when they change.
//   level      every job's ValidationLevel is journaled with its token (re-sends use the journaled
//              one), and what Describe or (after a crash) ListFHIRImportJobs reports is journaled
//              with the job's Message (record_import_reported). A reported level other than the
//              started one (validation_level_mismatch) parks the export at once with one error
//              naming both levels and the job: it is never reconciled, never imported, and
//              after_upload is not applied. `retry --reimport` starts a new job; plain `retry`
//              checks again. A job whose answer carries no level is not compared.
//   reconcile  at a terminal status (the Reconciler, reconciler.hpp): manifest.json, then every
//              FAILURE/ and SUCCESS/ object is streamed (ListObjectsV2 + GetObject; memory bounded
//              by max_line_bytes and max_reasons, never by output size), per-file counts and the
//              first failure reasons (named by source file and line: Journal::source_line maps
//              HealthLake's import object line back through the spool's line anchors) go to the
//              journal (record_import_outcome), to spool/<export>/import-report.json
//              (spool::write_durable) and to one log line (warning unless COMPLETED); the export
//              moves to imported (status in accept_statuses) or import_failed. CANCEL_FAILED means
//              the cancel failed and the job ran on: with a manifest.json it is judged as COMPLETED
//              (no failed resource) or COMPLETED_WITH_ERRORS; without one, whether anything was
//              imported is unknown and it is import_failed (retry then needs
//              --reimport, Journal::retry_export). An accepted status that imported nothing, or
//              less than min_imported_share, is import_failed too (source kept; status says why).
//   errors     Throttling/InternalServer are retried by the AWS layer; when its attempts run out
//              the step is retried after retry_delay. ConflictException waits conflict_delay and
//              retries with the same token, max_conflicts times in a row, then parks (a token
//              reused with other parameters never stops conflicting). Validation / AccessDenied
//              / ResourceNotFound / other → park_export with the message (never dropped). A job
//              that Describe no longer finds (ResourceNotFound) is parked as vanished: `retry
//              --reimport` starts a new attempt (new token, new job); plain `retry` polls it again.
//   requests   `fhir-edge retry` / `fhir-edge journal compact` while the daemon runs: pending
//              journal requests are applied at resume() and every request_interval by the
//              RequestMailbox (mailbox.hpp); a retried export continues (kick, or
//              ExportEvent::resumed for states before `uploaded`).
//   finish     when every part has its outcome: spool/<export>/import-report.json (one job:
//              its outcome; several: a summary with every job's outcome), then imported (every
//              status in accept_statuses) or import_failed (terminal; `fhir-edge retry` starts a
//              new attempt with new tokens). On imported, ExportEvent::imported is emitted.
// Files of the stage (docs/import.md "Where the code is"): the lifecycle here and in
// importer.cpp / importer_follow.cpp; the outputs are read by the Reconciler (reconciler.hpp) into
// an ImportOutcome that this importer journals; the report is report.hpp; CLI requests are the
// RequestMailbox (mailbox.hpp); keys and job names are s3_layout.hpp; after_upload and spool
// retention are Housekeeping (housekeeping.hpp), which subscribes ExportEvent::imported.
// Threading: every method, callback, journal write and AWS call runs on the io_context given to
// the constructor (the daemon's control thread). The importer owns no journal and no client: the
// composition root (app/stages.hpp) builds it after the pipeline has opened the journal, on that
// single writer Journal, the clients' S3Client and a HealthLakeClient the root owns.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "common/export_events.hpp"
#include "fleet/settings.hpp"
#include "import/batch_former.hpp"
#include "import/fleet_holder.hpp"
#include "import/s3_layout.hpp"
#include "journal/journal.hpp"

namespace fe::config {
struct Config;
}
namespace fe::aws {
class HealthLakeClient;
class S3Client;
}  // namespace fe::aws

namespace fe::import {

// What the importer needs from one configured pipeline (config::Pipeline s3 + healthlake).
struct ImportTarget {
  std::string pipeline;  // journal ExportRow::pipeline
  std::string bucket;    // s3.bucket
  std::string prefix;    // s3.prefix ("" allowed)
  std::string datastore_id;
  std::string data_access_role_arn;
  std::string output_s3_uri;  // s3://bucket[/prefix]
  std::string output_kms_key_id;
  std::string validation_level;  // "strict" | "structure-only" | "minimal"
  std::string input_kms_key_id;  // s3.kms_key_id: SSE-KMS of the batch copies ("" = default)
  std::vector<std::string> accept_statuses = {"COMPLETED", "COMPLETED_WITH_ERRORS"};
  int max_outstanding_starts = 1;
  // import.min_imported_share: an accepted job that imported less than this share of the
  // export's resources is import_failed (one that imported nothing always is).
  double min_imported_share = 0.0;
};

struct ImporterOptions {
  std::vector<ImportTarget> targets;
  std::filesystem::path spool_dir;  // import-report.json goes to spool/<export>/
  std::chrono::milliseconds poll_min = std::chrono::seconds(15);
  std::chrono::milliseconds poll_max = std::chrono::seconds(60);
  std::chrono::milliseconds conflict_delay = std::chrono::seconds(60);
  int max_conflicts = 30;  // ConflictException answers in a row to one Start before parking
  std::chrono::milliseconds retry_delay = std::chrono::seconds(60);
  // SubmittedAfter = token recorded time - list_margin (clock differences between us and AWS).
  std::chrono::seconds list_margin = std::chrono::minutes(10);
  std::size_t max_reasons = 20;             // first failure reasons kept
  std::size_t max_reason_chars = 400;       // each reason cut to this
  std::size_t max_line_bytes = 256 * 1024;  // longer output lines are counted, not parsed
  std::int64_t max_files_per_job = kMaxFilesPerImportJob;  // tests lower it
  // Also stream SUCCESS/ (per-file imported counts). It holds one line per imported resource, so
  // it costs a download proportional to the export; false = counts from the manifest only.
  bool read_success_outputs = true;
  // ... but only for jobs whose input (the files' valid NDJSON bytes) is at most this: for larger
  // ones a file's imported count is its valid resources (journal) minus its FAILURE lines, which
  // the manifest's totals confirm. (bench/e2e: reading SUCCESS/ of a 1 GB import cost ~15 s.)
  std::int64_t success_outputs_max_bytes = 64ll << 20;
  std::function<void()> on_change;  // status line may have changed (control thread)
  // How often pending CLI requests (journal `requests`) are looked for; 0 = only at resume().
  std::chrono::milliseconds request_interval = std::chrono::seconds(2);
  // The event hub (common/export_events.hpp), owned by the caller and outliving the importer;
  // null: no events. The importer subscribes `uploaded` (→ kick) and emits `imported` (the
  // export reached a status the pipeline accepts: housekeeping applies after_upload) and, from
  // its request mailbox, `resumed` (`fhir-edge retry` unparked an export to a state before
  // `uploaded`: ingest continues it; no subscriber: it continues at the next start).
  ExportEvents* events = nullptr;
  // Batches (docs/import.md "Batches"): uploaded exports waiting for one data store with the
  // same level, role and output go into one job. max_exports 1 (the default here; the config's
  // import.batch_max_exports is 100) = one job per export.
  BatchCaps batch{};
  // The fleet (config `fleet`, docs/import.md "Fleet"): enabled, this gateway starts no import
  // job of its own for an export the fleet can batch; it lists it in the fleet's ready.json,
  // the lease holder (any gateway, fleet_holder.hpp) starts one job for the fleet's exports, and
  // this gateway reconciles its own exports from that job's outcome. Disabled: nothing changes.
  fleet::Settings fleet{};
};

// One ImportTarget per configured pipeline, spool dir from config.spool.dir.
ImporterOptions importer_options(const config::Config& config);

// The InputDataConfig S3 URIs of an export's jobs, from the import keys the upload journaled:
// one per part-NNNN/ folder, or the export's import/ prefix when its objects sit directly there.
// Empty (with `why`) when that cannot be imported within max_files_per_job per job.
std::vector<std::string> import_parts(const std::vector<journal::FileRow>& files,
                                      const journal::ExportRow& e, std::string_view bucket,
                                      std::string_view prefix, std::int64_t max_files_per_job,
                                      std::string& why);
// True when the upload stage left nothing to import: every file is finished (uploaded, rejected
// or failed) with no valid resource and no import object. Such an export starts no job. Files
// still pending/spooling, or with valid resources (journals that predate import keys), are not.
bool nothing_to_import(const std::vector<journal::FileRow>& files);
// The level check (issue 12): the ValidationLevel HealthLake reports for a job
// (DescribeFHIRImportJob / ListFHIRImportJobs) must equal the one it was started with. Returns
// the park reason (naming both levels, the job and what to do), or "" when they are equal (case
// aside) or HealthLake reported none.
std::string validation_level_mismatch(std::string_view export_name, std::string_view job_id,
                                      std::string_view started, std::string_view reported);
struct ImporterStats {
  std::uint64_t starts_sent = 0;   // StartFHIRImportJob calls (incl. re-sends with the same token)
  std::uint64_t jobs_adopted = 0;  // found by ListFHIRImportJobs after a crash
  std::uint64_t polls = 0;
  std::uint64_t imported = 0;
  std::uint64_t import_failed = 0;
  std::uint64_t nothing_to_import = 0;  // exports that started no job (no valid resource)
  std::uint64_t parked = 0;
  std::uint64_t conflicts = 0;
  std::uint64_t retries = 0;
  // Exports whose jobs the importer starts or follows now (holding a data store slot), as of
  // the stats() call. 0 with nothing queued: no HealthLake call goes out until a kick (tests
  // wait on this instead of a fixed time).
  std::uint64_t following = 0;
  std::uint64_t batches = 0;           // batches of two or more exports journaled
  std::uint64_t batch_copies = 0;      // CopyObject calls made for batches
  std::uint64_t fleet_appended = 0;    // exports listed in the fleet's ready.json
  std::uint64_t fleet_reconciled = 0;  // exports reconciled from a fleet batch's outcome
};

class Importer {
 public:
  Importer(boost::asio::io_context& io, journal::Journal& journal, aws::HealthLakeClient& hl,
           aws::S3Client& s3, ImporterOptions options);
  ~Importer();  // = stop(); callbacks still in flight are ignored when they arrive
  Importer(const Importer&) = delete;
  Importer& operator=(const Importer&) = delete;

  // DescribeFHIRDatastore for every configured data store; `done` gets one message per store
  // that is not ACTIVE or cannot be described (empty: all ACTIVE). Problems are also logged.
  void check_datastores(std::function<void(std::vector<std::string> problems)> done);
  // An export reached `uploaded` (ExportEvent::uploaded, subscribed in the constructor), or
  // was unparked (the mailbox): start/continue it.
  void kick(std::int64_t export_id);
  // At start-up: every export in uploaded, import_starting or importing, oldest first.
  void resume();
  // Cancels timers; work in flight is abandoned (the journal says where to resume).
  void stop();
  // A clean stop (the daemon's SIGTERM path, app::Stages::stop): stop(), then the fleet's
  // holder gives its lease up (FleetHolder::release: after its requests in flight answered,
  // If-Match on its last lease write) so that the next holder need not wait for it to lapse.
  // done() runs once that is settled (posted at once without a fleet); the S3 client must stay
  // open until then. A crash, or the destructor, leaves the lease to lapse.
  void stop(std::function<void()> done);
  // "1 import starting, 2 importing, 3 queued".
  std::string status_line() const;
  const ImporterStats& stats() const;
  // The fleet's holder side (null without a fleet).
  const FleetHolder* fleet_holder() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace fe::import
