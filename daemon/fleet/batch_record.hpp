#pragma once
// The fleet's batch records and where its objects live (issue 16 item 3, docs/import.md "Fleet").
// All under one folder of the fleet's bucket, fleet_dir() = "<prefix>/fleet/<fleet>/":
//
//   lease.json                                 fleet::Lease (lease.hpp)
//   ready.json                                 fleet::Manifest (manifest.hpp)
//   batches/<batch>.json                       BatchRecord: members, ClientToken, JobName, the job
//                                              id once started, the outcome once terminal
//   batches/<batch>/<gateway>/<export>/<File>  the members' import objects, copied server-side:
//                                              the job's InputDataConfig.S3Uri is batches/<batch>/
//   members/<gateway>/<export>.json            {"batch":"<batch>"}: where a member finds its batch
//                                              after the holder removed its ready.json entry
//
// The batch id is the job's ClientToken ("fb-" + 32 hex digits, random, made once when the
// holder claims the entries): a holder that resumes a batch sends the same token, so HealthLake
// never makes a second job for it. The record is written by the lease holder only; members read
// it. Pure functions and JSON: no I/O, any thread.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fe::fleet {

std::string fleet_dir(std::string_view prefix, std::string_view fleet);  // ends with '/'
std::string batch_record_key(std::string_view prefix, std::string_view fleet,
                             std::string_view batch_id);
// The key prefix of the batch's copies (ends with '/').
std::string batch_copy_prefix(std::string_view prefix, std::string_view fleet,
                              std::string_view batch_id);
std::string member_pointer_key(std::string_view prefix, std::string_view fleet,
                               std::string_view gateway, std::string_view export_id);
// "fb-" + 32 hex digits.
std::string new_batch_id();
// HealthLake JobName of a fleet batch: "fleet-<fleet>-<12 hex of the id>-<members>" (≤ 64).
std::string fleet_job_name(std::string_view fleet, std::string_view batch_id, std::size_t members);

struct BatchMember {
  std::string gateway;
  std::string export_id;
  std::string s3_uri;  // the member's own import/ prefix (what the holder copies)
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
  std::string input_kms_key_id;
};

// What the job ended with, as DescribeFHIRImportJob said (written by the holder once terminal).
struct BatchOutcome {
  std::string job_status;
  std::string output_s3_uri;     // JobOutputDataConfig.S3Configuration.S3Uri
  std::string validation_level;  // as reported ("" = none)
  std::string message;
};

struct BatchRecord {
  std::string batch_id;  // = client_token
  std::string fleet;
  std::string holder;       // the gateway that last wrote it
  std::uint64_t epoch = 0;  // its lease epoch then (fencing: which tenure wrote it)
  std::string client_token, job_name, input_uri;
  std::string datastore_id, validation_level, role_arn, output_s3_uri, output_kms_key_id;
  std::vector<BatchMember> members;
  std::string job_id;      // "" until Start answered
  std::string job_status;  // as Start answered
  std::optional<BatchOutcome> outcome;
  std::int64_t created_at_ms = 0, updated_at_ms = 0;

  const BatchMember* member(std::string_view gateway, std::string_view export_id) const {
    for (const auto& m : members)
      if (m.gateway == gateway && m.export_id == export_id) return &m;
    return nullptr;
  }
  std::string to_json() const;
  static std::optional<BatchRecord> parse(std::string_view json);
};

}  // namespace fe::fleet
