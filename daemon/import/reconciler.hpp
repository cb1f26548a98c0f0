#pragma once
// Reconciliation of one finished import job (issue 14 item 4, docs/import.md "reconcile"):
// manifest.json, then every FAILURE/ object, then (when asked) every SUCCESS/ object under the
// job's output folder are streamed into a plain ImportOutcome. The Reconciler reads; it writes
// nothing (no journal, no file): the importer journals the outcome (record_import_outcome) and
// the report writer (report.hpp) turns it into import-report.json.
//
// Memory is bounded by the limits, never by the size of the outputs: objects are read one at a
// time through a sink that holds only the current line, cut at max_line_bytes (a longer line is
// counted, not parsed); at most max_reasons failure reasons are kept, each cut to
// max_reason_chars; manifest.json is read up to 1 MiB.
//
// Errors: a manifest.json that cannot be read because of a retryable error ends the run with
// `retry_later` set (the importer reconciles again after retry_delay). Any other read error is
// recorded in `output_error` and reconciliation goes on with what can be read (a FAILED job may
// have written no manifest).
//
// Threading: start() and every callback run on the thread the OutputReader calls back on (the
// control thread). `live` is asked before each step: once it says false the run stops and `done`
// is never called.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "aws/s3.hpp"

namespace fe::import {

// The two S3 calls the reconciler makes (aws::S3Client in the daemon, a fake in tests).
class OutputReader {
 public:
  virtual ~OutputReader() = default;
  virtual void get_object(aws::GetObjectRequest req,
                          std::function<void(aws::S3Result<aws::GetObjectResult>)> done) = 0;
  virtual void list_objects_v2(aws::ListObjectsRequest req,
                               std::function<void(aws::S3Result<aws::ListObjectsResult>)> done) = 0;
};

// The daemon's reader: the shared S3 client.
class S3OutputReader : public OutputReader {
 public:
  explicit S3OutputReader(aws::S3Client& s3) : s3_(s3) {}
  void get_object(aws::GetObjectRequest req,
                  std::function<void(aws::S3Result<aws::GetObjectResult>)> done) override {
    s3_.get_object(std::move(req), std::move(done));
  }
  void list_objects_v2(aws::ListObjectsRequest req,
                       std::function<void(aws::S3Result<aws::ListObjectsResult>)> done) override {
    s3_.list_objects_v2(std::move(req), std::move(done));
  }

 private:
  aws::S3Client& s3_;
};

// manifest.json's totals (HealthLake's names in the comments of report.cpp).
struct Manifest {
  bool present = false;
  std::int64_t scanned_files = 0, files_imported = 0, resources_scanned = 0, resources_imported = 0,
               customer_errors = 0, server_errors = 0;
  double scanned_mb = 0, imported_mb = 0;
};

struct FileCounts {
  std::int64_t imported = 0;
  std::int64_t failed = 0;
};

// What one job's outputs say.
struct ImportOutcome {
  Manifest manifest;
  std::map<std::string, FileCounts> files;  // by path relative to SUCCESS/ or FAILURE/
  std::vector<std::string> reasons;         // the first max_reasons failure reasons
  std::int64_t failure_lines = 0, success_lines = 0;
  std::string output_error;  // output could not be read completely (recorded, not fatal)
  bool read_success = true;  // SUCCESS/ was read (else imported = valid - failed per file)
  // One member of a batch job: manifest.json is the job's, so the counts (job_counts) are this
  // export's lines (success_lines, failure_lines) instead.
  bool batch_member = false;
  // manifest.json failed with a retryable error: nothing else was read; reconcile again later.
  std::string retry_later;
};

// One source file behind an import object: failure lines are reported as its lines.
struct SourceFile {
  std::int64_t id = 0;  // journal file id (for source_line)
  std::string name;
  std::int64_t resources_valid = 0;  // imported count when SUCCESS/ is not read
};

struct ReconcileInput {
  std::string bucket;  // output bucket
  std::string dir;     // "<prefix>/<ds>-FHIR_IMPORT-<job>/" (ends with '/')
  bool read_success = true;
  // The job's files by path relative to its input prefix (= relative to FAILURE/ and SUCCESS/).
  std::map<std::string, SourceFile> sources;
  // Journal::source_line: the source line of import object line `import_line` of file `file_id`.
  std::function<std::int64_t(std::int64_t file_id, std::int64_t import_line)> source_line;
  // A member of a batch job (docs/import.md "Batches"): only FAILURE/<only> and SUCCESS/<only>
  // are read, and the counts are the member's own lines, not the job-wide manifest's. "" = the
  // whole job is this export's.
  std::string only;
};

struct ReconcileLimits {
  std::size_t max_reasons = 20;
  std::size_t max_reason_chars = 400;
  std::size_t max_line_bytes = 256 * 1024;
};

class Reconciler {
 public:
  using Done = std::function<void(ImportOutcome)>;
  // Reads the outputs and calls `done` once (unless `live` turned false). `reader` must outlive
  // the run.
  static void start(OutputReader& reader, ReconcileInput input, ReconcileLimits limits,
                    std::function<bool()> live, Done done);

  // One FAILURE/ line into a reason: "<source>:<line>: <diagnostics> (at <expression>) (import
  // object line N)" when the line and source are known, else "<object>: <diagnostics>"; cut to
  // max_reason_chars. `whole` false: the line was over max_line_bytes and is not parsed.
  static std::string failure_reason(const std::string& rel, std::string_view line, bool whole,
                                    const ReconcileInput& input, std::size_t max_reason_chars);
};

}  // namespace fe::import
