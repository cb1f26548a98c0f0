#pragma once
// HealthLake control-plane client (AWS JSON 1.0): POST / with X-Amz-Target: HealthLake.<Op>,
// Content-Type: application/x-amz-json-1.0, SigV4 service "healthlake", endpoint
// https://healthlake.<region>.amazonaws.com or ClientConfig::healthlake_endpoint.
//
// Contract:
// - Asynchronous like S3Client: callbacks on the io_context thread, exactly once, with
//   HlResult<T> (value or typed AwsError from `__type`, `ns#` and `:uri` stripped).
// - Request bodies are built with full JSON string escaping; responses parsed with simdjson.
//   Timestamps (SubmitTime, EndTime, CreatedAt, SubmittedAfter/Before) are epoch seconds in the
//   JSON 1.0 protocol and are exposed as double seconds.
// - Requests are retried per AWS standard mode (ThrottlingException, InternalServerException,
//   5xx, transport errors). ConflictException / Validation / AccessDenied / ResourceNotFound
//   come back typed for the pipeline (wait, or park and alert).
// - StartFHIRImportJob is idempotent through ClientToken (1-64 of [a-zA-Z0-9-]), which the caller
//   derives from the export identity and journals before the call.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "aws/http_call.hpp"
#include "aws/result.hpp"

namespace fe::aws {

// context: "HealthLake StartFHIRImportJob" (aws/result.hpp).
template <class T>
using HlResult = AwsResult<T>;

struct DatastoreProperties {
  std::string datastore_id;
  std::string datastore_arn;
  std::string datastore_name;
  std::string datastore_status;        // CREATING | ACTIVE | DELETING | DELETED | CREATE_FAILED
  std::string datastore_type_version;  // "R4"
  std::string datastore_endpoint;
  double created_at = 0;
  std::string kms_key_id;  // SseConfiguration.KmsEncryptionConfig.KmsKeyId
  std::string cmk_type;    // CUSTOMER_MANAGED_KMS_KEY | AWS_OWNED_KMS_KEY
};

struct StartImportRequest {
  std::string job_name;           // optional (1-64)
  std::string input_s3_uri;       // s3://bucket/prefix/
  std::string output_s3_uri;      // JobOutputDataConfig.S3Configuration.S3Uri
  std::string output_kms_key_id;  // JobOutputDataConfig.S3Configuration.KmsKeyId
  std::string datastore_id;
  std::string data_access_role_arn;
  std::string client_token;      // optional but the daemon always sends one
  std::string validation_level;  // strict | structure-only | minimal; empty = service default
};
struct StartImportResult {
  std::string job_id;
  std::string job_status;
  std::string datastore_id;
};

struct JobProgressReport {
  std::int64_t total_number_of_scanned_files = 0;
  double total_size_of_scanned_files_in_mb = 0;
  std::int64_t total_number_of_imported_files = 0;
  std::int64_t total_number_of_resources_scanned = 0;
  std::int64_t total_number_of_resources_imported = 0;
  std::int64_t total_number_of_resources_with_customer_error = 0;
  std::int64_t total_number_of_files_read_with_customer_error = 0;
  double throughput = 0;
};

struct ImportJobProperties {
  std::string job_id;
  std::string job_name;
  std::string job_status;  // SUBMITTED QUEUED IN_PROGRESS COMPLETED COMPLETED_WITH_ERRORS FAILED
                           // CANCEL_SUBMITTED CANCEL_IN_PROGRESS CANCEL_COMPLETED CANCEL_FAILED
  double submit_time = 0;
  double end_time = 0;  // 0 when not ended
  std::string datastore_id;
  std::string input_s3_uri;
  std::string output_s3_uri;
  std::string output_kms_key_id;
  std::string data_access_role_arn;
  std::string message;
  std::string validation_level;
  std::optional<JobProgressReport> progress;
};

// COMPLETED, COMPLETED_WITH_ERRORS, FAILED, CANCEL_COMPLETED, CANCEL_FAILED.
bool is_terminal_job_status(std::string_view status);
// ClientToken syntax: 1-64 of [a-zA-Z0-9-].
bool valid_client_token(std::string_view token);

struct ListImportJobsRequest {
  std::string datastore_id;
  std::string job_name;
  std::string job_status;
  std::optional<double> submitted_after;   // epoch seconds
  std::optional<double> submitted_before;  // epoch seconds
  int max_results = 0;                     // 0 = service default (1-500)
  std::string next_token;
};
struct ListImportJobsResult {
  std::vector<ImportJobProperties> jobs;
  std::string next_token;
};

class HealthLakeClient {
 public:
  template <class T>
  using Done = std::function<void(HlResult<T>)>;

  explicit HealthLakeClient(AwsCaller& caller);

  void describe_datastore(std::string datastore_id, Done<DatastoreProperties> done);
  void start_import_job(StartImportRequest req, Done<StartImportResult> done);
  void describe_import_job(std::string datastore_id, std::string job_id,
                           Done<ImportJobProperties> done);
  void list_import_jobs(ListImportJobsRequest req, Done<ListImportJobsResult> done);

  // Exposed for tests: the exact JSON bodies sent.
  static std::string start_import_body(const StartImportRequest& req);
  static std::string list_import_jobs_body(const ListImportJobsRequest& req);

 private:
  void post(std::string op, std::string body, std::function<void(CallResult)> done);
  AwsCaller& caller_;
};

// JSON string literal with every character that needs escaping escaped ("a\"b\n" ->
// "\"a\\\"b\\n\""). Kept for pipeline/importer.cpp until its JSON is built with
// common/json_writer.hpp; new code uses json::Writer or json::quote.
std::string json_quote(std::string_view s);

}  // namespace fe::aws
