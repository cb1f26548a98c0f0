#pragma once
// Every S3 key, S3 URI and HealthLake JobName the daemon makes or reads, in one place (issue 14
// item 4). The layout is DESIGN's "S3 layout", per pipeline (bucket, prefix; prefix may be empty,
// then keys start at the export):
//
//   <prefix>/<export>/import/<File>.ndjson            import_key    HealthLake's input
//   <prefix>/<export>/import/part-NNNN/<File>.ndjson  import_key + import_part_dir (see below)
//   <prefix>/<export>/archive/<File>.ndjson.zst       archive_key   s3.archive
//   <prefix>/<export>/rejected/<File>.ndjson.zst      rejected_key  s3.upload_rejects
//   <prefix>/<export>/report.json                     report_key    s3.upload_rejects
//   <output_s3_uri>/<DatastoreId>-FHIR_IMPORT-<JobId>/ job_output_uri (HealthLake writes
//                                                       manifest.json, FAILURE/, SUCCESS/ there)
//
// Where the code differs from DESIGN (also in docs/architecture.md):
// - <File> is the source's name read decompressed: a.ndjson.gz and a.ndjson.zst give a.ndjson
//   (ndjson_name), and a name without .ndjson gets it.
// - An export over max_files_per_job (HealthLake's 10,000 files per job) is laid out in
//   import/part-NNNN/ folders, one import job each. Batches of several exports (DESIGN) import
//   copies under <prefix>/batches/<token>/ (below).
// - JobName: DESIGN says "the export id"; it is the export name made safe for HealthLake (
//   job_name_for) with ".part<P>" and ".retry<A>" suffixes (import_job_name).
// - DESIGN says the daemon never deletes remote objects; the objects a superseded version
//   uploaded are deleted (daemon/upload/cleanup.hpp), by the keys its file rows journaled.
// Pure functions: no I/O, any thread.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fe::import {

// HealthLake's limit of input files per import job (exports with more are split into parts).
inline constexpr std::int64_t kMaxFilesPerImportJob = 10000;

// "<prefix>/<export>/<mid>[/<leaf>]" (no prefix: "<export>/<mid>[/<leaf>]").
std::string join_key(std::string_view prefix, std::string_view export_name, std::string_view mid,
                     std::string_view leaf);
// The name of a source file's objects: decompressed name (.gz/.zst dropped), ending in .ndjson.
std::string ndjson_name(std::string_view file_name);

// Object keys of one export. `file_name` may carry an import_part_dir ("part-0002/a.ndjson").
std::string import_key(std::string_view prefix, std::string_view export_name,
                       std::string_view file_name);  // .../import/<File>.ndjson
std::string archive_key(std::string_view prefix, std::string_view export_name,
                        std::string_view file_name);  // .../archive/<File>.ndjson.zst
std::string rejected_key(std::string_view prefix, std::string_view export_name,
                         std::string_view file_name);  // .../rejected/<File>.ndjson.zst
std::string report_key(std::string_view prefix, std::string_view export_name);  // .../report.json

// The export an upload key belongs to when it has this layout's shape (<prefix>/<export>/import/...
// or .../archive/..., the objects uploaded in parts), else "". The orphan sweep uses it.
std::string export_of_upload_key(std::string_view prefix, std::string_view key);

// The part folder of an export over max_files_per_job files: the file at `file_index` (0-based,
// in Journal::files order) goes to import/part-NNNN/ with NNNN = file_index / max_files_per_job
// + 1; "" (directly under import/) when the export is small enough for one job.
std::string import_part_dir(std::int64_t file_index, std::int64_t files,
                            std::int64_t max_files_per_job);

// "s3://bucket/prefix/<export>/import/" (prefix may be empty).
std::string import_input_uri(std::string_view bucket, std::string_view prefix,
                             std::string_view export_name);
// "<output uri>/<DatastoreId>-FHIR_IMPORT-<JobId>/" (one slash between the pieces).
std::string job_output_uri(std::string_view output_s3_uri, std::string_view datastore_id,
                           std::string_view job_id);
// "s3://bucket/prefix" -> bucket, prefix (no surrounding slashes). Empty bucket when malformed.
std::pair<std::string, std::string> split_s3_uri(std::string_view uri);

// HealthLake JobName from an export name: characters outside [A-Za-z0-9_.:/=+%@-] become '_',
// cut to 64; never empty.
std::string job_name_for(std::string_view export_name);
// JobName of one job: job_name_for(export) + ".part<P>" when split + ".retry<A>" from attempt 2
// (the suffix is kept whole; the base is cut so the name stays within 64 characters).
std::string import_job_name(std::string_view export_name, int attempt, int part, int parts);

// ---- batches (issue 16 item 2, docs/import.md "Batches") ----
// HealthLake imports every object under InputDataConfig.S3Uri, and S3 has no rename, so a job
// over several exports needs one prefix that holds exactly their import objects. The members'
// import objects are copied (server-side CopyObject, no upload from the gateway) to
//   <prefix>/batches/<token>/<export>/<File>.ndjson             batch_object_key
// and the job reads s3://<bucket>/<prefix>/batches/<token>/       batch_input_uri
// The token is derived from the members (batch_client_token), so nothing else is ever written
// under that prefix: it holds only this batch's copies. A batch of one imports the export's own
// import/ prefix (no copy), as before batching.

// "fe-b" + 48 hex digits of SHA-256 over the members' own ClientTokens (journal::
// import_client_token, attempt and part 1) in batch order: the same members give the same token
// after a crash, another member set another token. At most 52 characters of [a-z0-9-].
std::string batch_client_token(const std::vector<std::string>& member_tokens);
// JobName of a batch job: "batch-" + 16 hex digits of its token + "-" + member count.
std::string batch_job_name(std::string_view batch_token, std::size_t members);
// "s3://bucket/prefix/batches/<token>/".
std::string batch_input_uri(std::string_view bucket, std::string_view prefix,
                            std::string_view batch_token);
// "<prefix>/batches/<token>/<export>/<File>.ndjson": `rel` is the import object's key below the
// export's import/ folder (keeps part-NNNN/ when there is one).
std::string batch_object_key(std::string_view prefix, std::string_view batch_token,
                             std::string_view export_name, std::string_view rel);

}  // namespace fe::import
