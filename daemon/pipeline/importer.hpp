#pragma once
// The import lifecycle (issue 7): an export in journal state `uploaded` is imported into
// HealthLake exactly once, followed to a terminal job status and reconciled. docs/import.md has
// the full argument; in short:
//
//   start      ClientToken = journal::client_token(pipeline, path, digest, version) and JobName
//              (the export name, sanitised to the API's pattern) are journaled
//              (record_import_token) and the export moves to import_starting BEFORE
//              StartFHIRImportJob is sent. The answer is journaled (record_import_job) and the
//              export moves to importing.
//   recovery   an export found in import_starting (outcome of the Start unknown) first asks
//              ListFHIRImportJobs(JobName, SubmittedAfter = token time - margin) and adopts a job
//              with the same input URI; only if none exists is Start re-sent, with the SAME token
//              (HealthLake answers a repeated token with the job it already made).
//   limit      at most max_outstanding_starts non-terminal jobs per data store (HealthLake runs
//              one job per store and queues the rest FIFO; the daemon does not flood it). Others
//              wait in a FIFO queue in the importer.
//   follow     DescribeFHIRImportJob every poll_min..poll_max (uniform jitter) per job, status and
//              JobProgressReport journaled (record_import_status) when they change.
//   reconcile  at a terminal status: manifest.json, then every FAILURE/ and SUCCESS/ object is
//              streamed (ListObjectsV2 + GetObject; memory bounded by max_line_bytes and
//              max_reasons, never by output size), per-file counts and the first failure reasons
//              go to the journal (record_import_outcome), to spool/<export>/import-report.json
//              (spool::write_durable) and to one log line (warning unless COMPLETED); the export
//              moves to imported (status in accept_statuses) or import_failed.
//   errors     Throttling/InternalServer are retried by the AWS layer; when its attempts run out
//              the step is retried after retry_delay. ConflictException waits conflict_delay and
//              retries. Validation / AccessDenied / ResourceNotFound / other → park_export with
//              the message (never dropped; `fhir-edge retry` unparks and kicks again).
//   limits     exports over 10,000 files are parked (the journal holds one import job per
//              export; splitting into several jobs is not implemented yet).
// Threading: every method, callback, journal write and AWS call runs on the io_context given to
// the constructor (the daemon's control thread). The importer owns no journal and no client: the
// Pipeline shares its single writer Journal and its HealthLakeClient/S3Client.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>

namespace fe::config {
struct Config;
}
namespace fe::journal {
class Journal;
}
namespace fe::aws {
class HealthLakeClient;
class S3Client;
}  // namespace fe::aws

namespace fe::pipeline {

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
  std::vector<std::string> accept_statuses = {"COMPLETED", "COMPLETED_WITH_ERRORS"};
  int max_outstanding_starts = 1;
};

struct ImporterOptions {
  std::vector<ImportTarget> targets;
  std::filesystem::path spool_dir;  // import-report.json goes to spool/<export>/
  std::chrono::milliseconds poll_min = std::chrono::seconds(15);
  std::chrono::milliseconds poll_max = std::chrono::seconds(60);
  std::chrono::milliseconds conflict_delay = std::chrono::seconds(60);
  std::chrono::milliseconds retry_delay = std::chrono::seconds(60);
  // SubmittedAfter = token recorded time - list_margin (clock differences between us and AWS).
  std::chrono::seconds list_margin = std::chrono::minutes(10);
  std::size_t max_reasons = 20;             // first failure reasons kept
  std::size_t max_reason_chars = 400;       // each reason cut to this
  std::size_t max_line_bytes = 256 * 1024;  // longer output lines are counted, not parsed
  std::int64_t max_files_per_job = 10000;   // HealthLake's limit
  // Also stream SUCCESS/ (per-file imported counts). It holds one line per imported resource, so
  // it costs a download proportional to the export; false = counts from the manifest only.
  bool read_success_outputs = true;
  std::function<void()> on_change;  // status line may have changed (control thread)
  // The export reached `imported` (a terminal status the pipeline accepts): the caller applies
  // after_upload to the source. Control thread.
  std::function<void(std::int64_t export_id)> on_imported;
};

// One ImportTarget per configured pipeline, spool dir from config.spool.dir.
ImporterOptions importer_options(const config::Config& config);

// HealthLake JobName from an export name: characters outside [A-Za-z0-9_.:/=+%@-] become '_',
// cut to 64; never empty.
std::string job_name_for(std::string_view export_name);
// "s3://bucket/prefix/<export>/import/" (prefix may be empty).
std::string import_input_uri(std::string_view bucket, std::string_view prefix,
                             std::string_view export_name);
// "<output uri>/<DatastoreId>-FHIR_IMPORT-<JobId>/" (one slash between the pieces).
std::string job_output_uri(std::string_view output_s3_uri, std::string_view datastore_id,
                           std::string_view job_id);

struct ImporterStats {
  std::uint64_t starts_sent = 0;   // StartFHIRImportJob calls (incl. re-sends with the same token)
  std::uint64_t jobs_adopted = 0;  // found by ListFHIRImportJobs after a crash
  std::uint64_t polls = 0;
  std::uint64_t imported = 0;
  std::uint64_t import_failed = 0;
  std::uint64_t parked = 0;
  std::uint64_t conflicts = 0;
  std::uint64_t retries = 0;
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
  // An export reached `uploaded` (Pipeline::on_uploaded), or was unparked: start/continue it.
  void kick(std::int64_t export_id);
  // At start-up: every export in uploaded, import_starting or importing, oldest first.
  void resume();
  // Cancels timers; work in flight is abandoned (the journal says where to resume).
  void stop();
  // "1 import starting, 2 importing, 3 queued".
  std::string status_line() const;
  const ImporterStats& stats() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace fe::pipeline
