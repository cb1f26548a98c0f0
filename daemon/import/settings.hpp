#pragma once
// The import stage's settings: the YAML section `import` and each pipeline's `healthlake` target
// and `after_upload` policy (docs/configuration.md). None is live: the importer and its pollers
// are set up at start, so a reload that changes one is refused, naming the key (they were once
// "reloaded" with no effect).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "common/fields.hpp"

namespace fe::import {

// How the import stage follows HealthLake jobs (DESIGN: "Poll Describe every 15-60 s with jitter").
struct Settings {
  std::chrono::seconds poll_min{15};  // DescribeFHIRImportJob interval, jittered (>= 1s)
  std::chrono::seconds poll_max{60};
  // An import job whose status is accepted (accept_statuses) but that imported fewer than this
  // share of the export's resources (imported / max(scanned, valid)) is not `imported`: the
  // export ends import_failed, the source is kept and status says why. An import that imported
  // nothing is never `imported`, whatever this says. 0..1 ("0.9" or "90%"); 0 = any share > 0.
  double min_imported_share = 0.0;
  // Batching (issue 16 item 2, docs/import.md "Batches"): uploaded exports that wait for the same
  // data store, ValidationLevel, role and output go into one StartFHIRImportJob (HealthLake runs
  // one import at a time per account and Region, with minutes of fixed overhead per job).
  // batch_max_exports 1 = off: one job per export, as before. HealthLake's 10,000 files per job
  // always apply; batch_max_bytes caps a job's import bytes (0 = no cap); batch_max_wait is how
  // long the first export of a batch may wait for others while the slot is free (0 = start at
  // once: what arrives while a job runs is batched anyway, because the slot is busy meanwhile).
  int batch_max_exports = 100;
  std::uint64_t batch_max_bytes = std::uint64_t{50} << 30;  // 50 GiB
  std::chrono::seconds batch_max_wait{0};
  bool operator==(const Settings&) const = default;
};

// pipelines[].healthlake: the data store a pipeline imports into.
struct HealthLake {
  std::string datastore_id;          // 32 characters [A-Za-z0-9]
  std::string data_access_role_arn;  // arn:aws(-part)?:iam::<12 digits>:role/<name>
  std::string output_s3_uri;         // s3://bucket[/prefix], where HealthLake writes results
  std::string output_kms_key_id;     // required by StartFHIRImportJob (S3Configuration.KmsKeyId)
  int max_outstanding_starts = 1;    // import jobs in flight for this pipeline (1..10)
  // Terminal statuses that count as "imported" (subset of COMPLETED, COMPLETED_WITH_ERRORS).
  std::vector<std::string> accept_statuses = {"COMPLETED", "COMPLETED_WITH_ERRORS"};
  bool operator==(const HealthLake&) const = default;
};

// pipelines[].after_upload: what happens to the source files once the import is accepted.
enum class AfterUploadKind { keep, remove, move };

// One YAML value ("keep" | "delete" | "move:/path"), compared and named as one key.
struct AfterUpload {
  AfterUploadKind kind = AfterUploadKind::keep;
  std::filesystem::path move_to;  // absolute, only for kind == move ("move:/path")
  bool operator==(const AfterUpload&) const = default;
};

// YAML names and reload behaviour (common/fields.hpp).
constexpr auto fields(const Settings*) {
  using enum settings::Reload;
  using S = Settings;
  return std::tuple{settings::field("poll_min", &S::poll_min, restart),
                    settings::field("poll_max", &S::poll_max, restart),
                    settings::field("min_imported_share", &S::min_imported_share, restart),
                    settings::field("batch_max_exports", &S::batch_max_exports, restart),
                    settings::field("batch_max_bytes", &S::batch_max_bytes, restart),
                    settings::field("batch_max_wait", &S::batch_max_wait, restart)};
}
static_assert(settings::described<Settings>());

constexpr auto fields(const HealthLake*) {
  using enum settings::Reload;
  using H = HealthLake;
  return std::tuple{settings::field("datastore_id", &H::datastore_id, restart),
                    settings::field("data_access_role_arn", &H::data_access_role_arn, restart),
                    settings::field("output_s3_uri", &H::output_s3_uri, restart),
                    settings::field("output_kms_key_id", &H::output_kms_key_id, restart),
                    settings::field("max_outstanding_starts", &H::max_outstanding_starts, restart),
                    settings::field("accept_statuses", &H::accept_statuses, restart)};
}
static_assert(settings::described<HealthLake>());

}  // namespace fe::import
