#pragma once
// The HealthLake half of healthlake-local (AWS JSON 1.0, X-Amz-Target: HealthLake.<Op>):
// DescribeFHIRDatastore, StartFHIRImportJob, DescribeFHIRImportJob, ListFHIRImportJobs.
//
// Rules kept as AWS documents them:
//  - inputs checked against the API's length limits and patterns (ValidationException);
//  - ClientToken idempotency: the same token on the same data store returns the same job (a reuse
//    with different parameters is a ConflictException); with --client-token-ttl a token is
//    forgotten that many seconds after its Start and then makes a new job;
//  - one IN_PROGRESS import job per account and Region (the AWS quota "concurrent
//    StartFHIRImportJob jobs: 1", not adjustable), the others wait QUEUED in FIFO (submission)
//    order across all data stores; --import-slots datastore relaxes it to one per data store;
//  - SUBMITTED -> QUEUED -> IN_PROGRESS -> COMPLETED | COMPLETED_WITH_ERRORS | FAILED, each step
//    after the configured minimum time (JobTiming); IN_PROGRESS lasts a fixed per-job overhead
//    plus a per-MB rate over the input, so queueing behind the one slot looks as it does on AWS;
//  - the import really runs: every object under InputDataConfig.S3Uri in the emulator's own S3
//    store is read line by line and validated at the job's ValidationLevel with the project's
//    validator; outputs go to <output>/<DatastoreId>-FHIR_IMPORT-<JobId>/ (manifest.json,
//    SUCCESS/<file>, FAILURE/<file> with one OperationOutcome per failed resource).
//  - imported resources are recorded per data store in <data>/healthlake/<ds>/resources.jsonl
//    ({"resourceType","id","jobId","file","line"}) and counted per resource, so a duplicate
//    import is visible (imports_of()).
// Time is passed in (tick(now)), so the state machine is unit-testable without sleeping.
// Single-threaded: the server calls it from its io_context thread (an import runs inline).
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "s3_store.hpp"

namespace fe::fhir {
class Validator;
}

namespace fe::hll {

struct HlError : std::exception {
  int status;        // 400, or 500 for InternalServerException
  std::string type;  // "ValidationException", ...
  std::string message;
  HlError(int s, std::string t, std::string m)
      : status(s), type(std::move(t)), message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

// Minimum seconds a job spends in each phase (--job-timing submitted=0.2s,queued=0.5s,run=1s,
// per_mb=0.05s). IN_PROGRESS lasts run + per_mb x input megabytes (10^6 bytes scanned): a fixed
// per-job overhead plus a rate. The defaults keep tests fast; docs/scale.md gives AWS-like values.
struct JobTiming {
  double submitted = 0.1;
  double queued = 0.1;
  double run = 0.3;
  double per_mb = 0;
  static JobTiming parse(std::string_view spec);  // throws std::invalid_argument
};

struct ImportReport {
  uint64_t scanned_files = 0, imported_files = 0, files_with_customer_error = 0;
  uint64_t scanned_bytes = 0, imported_bytes = 0;
  uint64_t resources_scanned = 0, resources_imported = 0, resources_customer_error = 0;
  uint64_t resources_server_error = 0;
  double seconds = 0;
};

struct Job {
  std::string id, name, datastore, status;
  std::string input_uri, output_uri, kms_key, role_arn, client_token, validation_level;
  std::string message;
  SysTime submit_time;
  std::optional<SysTime> end_time;
  double phase_since = 0;   // tick time the current status began
  double run_seconds = 0;   // how long IN_PROGRESS lasts (JobTiming run + per_mb x input MB)
  uint64_t seq = 0;         // FIFO order
  std::string fingerprint;  // request parameters, for ClientToken reuse checks
  std::optional<ImportReport> report;
  std::string final_status;  // decided by the import, shown once the run time has passed
  // manifest.json is written when the job turns terminal, as HealthLake does at the end.
  std::string manifest_bucket, manifest_key, manifest;
};

// Where the one-running-import limit applies.
enum class ImportSlots {
  account,   // one per account and Region, as AWS enforces (the default)
  datastore  // one per data store (healthlake-local before the quota was modelled)
};

struct HealthLakeOptions {
  std::string region = "us-east-1";
  std::string account = "123456789012";
  JobTiming timing;
  ImportSlots import_slots = ImportSlots::account;
  std::vector<std::filesystem::path> fhir_packages;  // for ValidationLevel strict
  bool require_sse_kms = false;  // input objects without SSE-KMS are files read with customer error
  // Seconds a ClientToken is remembered after the Start that used it (0 = forever). AWS documents
  // no retention; tests set one to prove that exactly-once does not rest on the token alone.
  double client_token_ttl = 0;
  // ListFHIRImportJobs returns at most this many jobs per page even when MaxResults allows more
  // (AWS may return fewer than MaxResults), so tests can prove that NextToken is followed. 0: off.
  int64_t list_page_size = 0;
  // Every job ends with this status once its import ran (its manifest and outputs are written as
  // usual), e.g. CANCEL_FAILED: a cancel was asked for, failed, and the job ran on. "": off.
  std::string final_status_override;
  // DescribeFHIRImportJob and ListFHIRImportJobs answer this ValidationLevel for every job,
  // whatever it was started with (the import itself still runs at the requested level), as a
  // proxy rewriting the answers would: clients must notice. "none" leaves the field out. "": off.
  std::string report_validation_level;
  // DescribeFHIRDatastore status per data store id (--datastore-status ID=STATUS); absent: ACTIVE.
  // A data store that is not ACTIVE refuses StartFHIRImportJob with a ValidationException (the
  // API reference: imports go into an ACTIVE data store).
  std::map<std::string, std::string> datastore_status;
  // Data-access role ARNs the caller may not pass (--refuse-role ARN): StartFHIRImportJob with one
  // is an AccessDeniedException naming iam:PassRole, as AWS answers a caller without it.
  std::vector<std::string> refused_roles;
};

class HealthLake {
 public:
  HealthLake(S3Store& s3, std::filesystem::path dir, HealthLakeOptions options);
  ~HealthLake();

  void add_datastore(const std::string& id);
  static bool valid_datastore_id(std::string_view id);

  // Handles one AWS JSON 1.0 call; returns the response body. Throws HlError.
  std::string call(std::string_view operation, std::string_view body, double now);
  // Advances every job whose phase time has passed (and runs imports that start).
  void tick(double now);

  const Job* job(const std::string& id) const;
  // The import slot a job runs in: "" for the account (the AWS quota), else its data store.
  std::string slot(const Job& j) const;
  uint64_t imports_of(const std::string& datastore, const std::string& type_slash_id) const;
  std::string resources_json(const std::string& datastore) const;  // {"Patient/1":2,...}
  static const std::vector<std::string>& operations();

 private:
  std::string start(std::string_view body, double now);
  std::string describe_job(std::string_view body);
  std::string list_jobs(std::string_view body);
  std::string describe_datastore(std::string_view body);
  std::string datastore_status(const std::string& id) const;
  std::string job_json(const Job& j) const;
  void run_import(Job& j);
  const fe::fhir::Validator& validator(const std::string& level);

  S3Store& s3_;
  std::filesystem::path dir_;
  HealthLakeOptions opt_;
  SysTime created_;
  std::map<std::string, std::map<std::string, uint64_t>> resources_;  // ds -> "Type/id" -> n
  std::map<std::string, Job> jobs_;
  std::map<std::pair<std::string, std::string>, std::string> tokens_;  // (ds, token) -> job id
  std::map<std::pair<std::string, std::string>, double> token_time_;   // ... -> Start time
  uint64_t seq_ = 0;
  std::map<std::string, std::shared_ptr<const fe::fhir::Validator>> validators_;
  std::map<std::string, double> free_at_;  // slot (see slot()) -> when its last job ended
};

}  // namespace fe::hll
