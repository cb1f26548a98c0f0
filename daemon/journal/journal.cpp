// Journal's write methods as the stages call them today: each one routes to the ledger of the
// stage that owns what it writes (ledgers.hpp). The export-state methods look at the export: up
// to `uploaded` it is the pipeline's (IngestLedger), from `uploaded` on the import stage's
// (ImportLedger). Stages moving to the typed ledgers call those directly.
#include "journal/journal.hpp"

#include "journal/ledgers.hpp"
#include "journal/sql.hpp"

namespace fe::journal {

namespace {
bool owned_by_import(const Journal& j, int64_t export_id) {
  return detail::import_phase(j, j.get_export(export_id));
}
}  // namespace

// ---------------------------------------------------------------- exports

Taken Journal::take_export(std::string_view pipeline, std::string_view source_path,
                           std::string_view digest, std::string_view base_name,
                           const std::vector<std::pair<std::string, SourceIdentity>>& files) {
  return IngestLedger(*this).take_export(pipeline, source_path, digest, base_name, files);
}

std::optional<Taken> Journal::take_new_source(
    std::string_view pipeline, std::string_view source_path, std::string_view base_name,
    const std::vector<std::pair<std::string, SourceIdentity>>& files) {
  detail::require_writable(*this);
  return IngestLedger(*this).take_new_source(pipeline, source_path, base_name, files);
}

bool Journal::record_digest(int64_t export_id, std::string_view digest) {
  detail::require_writable(*this);
  return IngestLedger(*this).record_digest(export_id, digest);
}

void Journal::set_export_state(int64_t export_id, ExportState to, std::string_view message) {
  detail::require_writable(*this);
  if (owned_by_import(*this, export_id))
    ImportLedger(*this).set_export_state(export_id, to, message);
  else
    IngestLedger(*this).set_export_state(export_id, to, message);
}

void Journal::park_export(int64_t export_id, std::string_view reason) {
  if (owned_by_import(*this, export_id))
    ImportLedger(*this).park_export(export_id, reason);
  else
    IngestLedger(*this).park_export(export_id, reason);
}

void Journal::unpark_export(int64_t export_id) {
  if (owned_by_import(*this, export_id))
    ImportLedger(*this).unpark_export(export_id);
  else
    IngestLedger(*this).unpark_export(export_id);
}

void Journal::fail_export(int64_t export_id, std::string_view error) {
  if (owned_by_import(*this, export_id))
    ImportLedger(*this).fail_export(export_id, error);
  else
    IngestLedger(*this).fail_export(export_id, error);
}

void Journal::set_export_error(int64_t export_id, std::string_view error) {
  if (owned_by_import(*this, export_id))
    ImportLedger(*this).set_export_error(export_id, error);
  else
    IngestLedger(*this).set_export_error(export_id, error);
}

// ---------------------------------------------------------------- files (pipeline)

void Journal::set_file_state(int64_t file_id, FileState to, std::string_view message) {
  IngestLedger(*this).set_file_state(file_id, to, message);
}

void Journal::record_spooled(int64_t file_id, const SpoolOutcome& outcome,
                             const std::function<bool(LineAnchor&)>& next_anchor) {
  IngestLedger(*this).record_spooled(file_id, outcome, next_anchor);
}

void Journal::record_file_rejected(int64_t file_id, int64_t invalid_lines,
                                   std::string_view message) {
  IngestLedger(*this).record_file_rejected(file_id, invalid_lines, message);
}

void Journal::set_file_error(int64_t file_id, std::string_view error) {
  IngestLedger(*this).set_file_error(file_id, error);
}

void Journal::plan_parts(int64_t file_id, PartKind kind, const std::vector<PartPlan>& parts,
                         bool whole) {
  IngestLedger(*this).plan_parts(file_id, kind, parts, whole);
}

// ---------------------------------------------------------------- objects and parts (upload)

void Journal::set_file_upload(int64_t file_id, PartKind kind, std::string_view key,
                              std::string_view upload_id) {
  UploadLedger(*this).set_file_upload(file_id, kind, key, upload_id);
}

void Journal::record_object_deleted(int64_t file_id, PartKind kind, std::string_view bucket) {
  UploadLedger(*this).record_object_deleted(file_id, kind, bucket);
}

void Journal::restart_upload(int64_t file_id, PartKind kind, std::string_view key,
                             std::string_view upload_id) {
  UploadLedger(*this).restart_upload(file_id, kind, key, upload_id);
}

void Journal::set_part_state(int64_t file_id, PartKind kind, int part_number, PartState to) {
  UploadLedger(*this).set_part_state(file_id, kind, part_number, to);
}

void Journal::record_part_uploaded(int64_t file_id, PartKind kind, int part_number,
                                   std::string_view etag, std::string_view crc32c) {
  UploadLedger(*this).record_part_uploaded(file_id, kind, part_number, etag, crc32c);
}

// ---------------------------------------------------------------- import jobs (import)

void Journal::record_import_token(int64_t export_id, std::string_view client_token,
                                  std::string_view job_name, int part, std::string_view input_uri,
                                  std::string_view validation_level) {
  ImportLedger(*this).record_import_token(export_id, client_token, job_name, part, input_uri,
                                          validation_level);
}

void Journal::record_import_job(int64_t export_id, std::string_view job_id, std::string_view status,
                                int part) {
  ImportLedger(*this).record_import_job(export_id, job_id, status, part);
}

void Journal::record_import_status(int64_t export_id, std::string_view status,
                                   std::string_view progress_json, int part) {
  ImportLedger(*this).record_import_status(export_id, status, progress_json, part);
}

void Journal::record_import_reported(int64_t export_id, std::string_view reported_level,
                                     std::string_view message, int part) {
  ImportLedger(*this).record_import_reported(export_id, reported_level, message, part);
}

void Journal::record_import_outcome(int64_t export_id, std::string_view outcome, int part) {
  ImportLedger(*this).record_import_outcome(export_id, outcome, part);
}

// ---------------------------------------------------------------- events

// The audit log: a note of what a stage did that changes no state (e.g. the pipeline's
// "skipped", after_upload's outcome). State changes append their own event in their transaction.
void Journal::add_event(std::optional<int64_t> export_id, std::optional<int64_t> file_id,
                        std::string_view kind, std::string_view message) {
  detail::Tx tx(*this);
  detail::insert_event(*this, export_id, file_id, kind, message);
  tx.commit();
}

}  // namespace fe::journal
