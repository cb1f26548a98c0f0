// The importer's pure rules, declared in importer.hpp: how an export's jobs are cut into parts
// (import_parts), when an export has nothing to import, the level check, and the importer's
// options from the config.
#include <algorithm>
#include <cctype>
#include <map>

#include "config/config.hpp"
#include "import/importer.hpp"

namespace fe::import {

std::vector<std::string> import_parts(const std::vector<journal::FileRow>& files,
                                      const journal::ExportRow& e, std::string_view bucket,
                                      std::string_view prefix, std::int64_t max_files_per_job,
                                      std::string& why) {
  std::string base =
      import_input_uri(bucket, prefix, e.name);               // s3://bucket/prefix/<export>/import/
  std::string key_base = base.substr(5 + bucket.size() + 1);  // prefix/<export>/import/
  std::map<std::string, std::int64_t> groups;                 // "" = directly under import/
  std::int64_t keyed = 0;
  for (const auto& f : files) {
    if (f.import_key.empty()) continue;
    ++keyed;
    std::string_view k = f.import_key;
    std::string group;
    if (k.starts_with(key_base)) {
      auto rest = k.substr(key_base.size());
      if (auto slash = rest.find('/'); slash != std::string_view::npos)
        group = std::string(rest.substr(0, slash + 1));
    }
    ++groups[group];
  }
  // Journals that hold no keys (or files without import objects): the export's file count.
  std::int64_t total = keyed > 0 ? keyed : e.files;
  bool split = !groups.empty() && !groups.count("");
  if (!split) {
    if (groups.size() > 1) {
      why = "export has import objects both directly under " + base +
            " and in part folders; one job on " + base + " would import the part folders too";
      return {};
    }
    if (total > max_files_per_job) {
      why = "export has " + std::to_string(total) + " files, over HealthLake's " +
            std::to_string(max_files_per_job) +
            " per import job, and they were uploaded under one prefix (" + base +
            "); the upload stage must place them in part-NNNN/ folders (docs/import.md)";
      return {};
    }
    return {base};
  }
  std::vector<std::string> out;
  for (const auto& [g, n] : groups) {
    if (n > max_files_per_job) {
      why = "part " + base + g + " has " + std::to_string(n) + " files, over " +
            std::to_string(max_files_per_job) + " per import job";
      return {};
    }
    out.push_back(base + g);
  }
  return out;
}

std::string validation_level_mismatch(std::string_view export_name, std::string_view job_id,
                                      std::string_view started, std::string_view reported) {
  // An answer without the field says nothing about the level: it is journaled as not reported
  // and shown so, not taken for a mismatch. Case is not a level.
  auto same = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) ==
                    std::tolower(static_cast<unsigned char>(y));
           });
  };
  if (reported.empty() || started.empty() || same(started, reported)) return "";
  return "import job " + std::string(job_id) + " runs at ValidationLevel '" +
         std::string(reported) + "', but it was started with '" + std::string(started) +
         "': HealthLake does not validate this export at the level the pipeline asked for, so it "
         "is not counted as imported (the source is kept, after_upload is not applied). Check "
         "the job in HealthLake; `fhir-edge retry --reimport " +
         std::string(export_name) + "` starts a new job at '" + std::string(started) +
         "' (what this job imported is imported again), `fhir-edge retry` checks the level again";
}

bool nothing_to_import(const std::vector<journal::FileRow>& files) {
  using journal::FileState;
  for (const auto& f : files) {
    if (!f.import_key.empty() || f.resources_valid > 0) return false;
    if (f.state != FileState::uploaded && f.state != FileState::rejected &&
        f.state != FileState::failed)
      return false;
  }
  return true;
}

ImporterOptions importer_options(const config::Config& config) {
  ImporterOptions o;
  o.spool_dir = config.spool.dir;
  for (const auto& p : config.pipelines) {
    ImportTarget t;
    t.pipeline = p.name;
    t.bucket = p.s3.bucket;
    t.prefix = p.s3.prefix;
    t.datastore_id = p.healthlake.datastore_id;
    t.data_access_role_arn = p.healthlake.data_access_role_arn;
    t.output_s3_uri = p.healthlake.output_s3_uri;
    t.output_kms_key_id = p.healthlake.output_kms_key_id;
    t.validation_level = std::string(config::to_string(p.validation_level));
    t.accept_statuses = p.healthlake.accept_statuses;
    t.max_outstanding_starts = p.healthlake.max_outstanding_starts;
    t.min_imported_share = config.import_jobs.min_imported_share;
    t.input_kms_key_id = p.s3.kms_key_id.value_or("");
    o.targets.push_back(std::move(t));
  }
  o.batch.max_exports = static_cast<std::size_t>(std::max(1, config.import_jobs.batch_max_exports));
  o.batch.max_files = kMaxFilesPerImportJob;
  o.batch.max_bytes = static_cast<std::int64_t>(
      std::min<std::uint64_t>(config.import_jobs.batch_max_bytes, INT64_MAX));
  o.batch.max_wait = config.import_jobs.batch_max_wait;
  o.fleet = config.fleet;
  return o;
}

}  // namespace fe::import
