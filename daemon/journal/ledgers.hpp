#pragma once
// The journal's writers, one per stage (docs/journal.md "Who writes what"). Each stage gets the
// ledger of the tables it owns and nothing else: a ledger is a small handle on the daemon's one
// read-write Journal whose methods are the only writes that stage may make, so the type says who
// writes what (the import stage holds an ImportLedger and cannot name a file state or a request).
//
//   ledger          stage                         writes (tables; columns)
//   IngestLedger    pipeline: take, spool and     exports, files (identity, state, counts,
//                   the export until `uploaded`   checksum, error), line_map, parts (the plan)
//   UploadLedger    pipeline: the upload machine  files' object columns (import/archive key and
//                   it drives (daemon/upload/)    upload id), parts (state, ETag, CRC32C)
//   ImportLedger    import (daemon/import/)       imports (the export from `uploaded` on: state,
//                                                 park, error, attempt), import_jobs
//   RequestLedger   the CLI (fhir-edge retry,     requests (insert only)
//                   journal compact)
//   MailboxLedger   the daemon's request mailbox  request_answers
//
// The export's state is one value to every reader (ExportRow::state, export_view): the exports
// row's until the pipeline hands the export over in `uploaded`, the imports row's from then on.
// Every state change is still one transaction that appends its event and is checked against
// states.hpp; a ledger also refuses an export its stage does not own at that point (the pipeline
// cannot move an uploaded export, the import stage cannot move one that is not uploaded yet).
//
// Not a stage's state: `events` is the journal's append-only audit log (each ledger appends to it
// in the transaction of its change; no stage reads it to decide anything), and `tombstones` plus
// the deletion of finished rows belong to compaction (Journal::compact, an operator request).
//
// A ledger is cheap to make and holds a reference: it must not outlive its Journal. Errors are
// journal::Error, as for Journal. The Journal methods of the same names stay and route each call
// to the ledger that owns it.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "journal/journal.hpp"

namespace fe::journal {
namespace detail {
class Tx;
}

class IngestLedger {
 public:
  explicit IngestLedger(Journal& j) : j_(j) {}
  const Journal& journal() const { return j_; }

  Taken take_export(std::string_view pipeline, std::string_view source_path,
                    std::string_view digest, std::string_view base_name,
                    const std::vector<std::pair<std::string, SourceIdentity>>& files);
  std::optional<Taken> take_new_source(
      std::string_view pipeline, std::string_view source_path, std::string_view base_name,
      const std::vector<std::pair<std::string, SourceIdentity>>& files);
  bool record_digest(int64_t export_id, std::string_view digest);
  // discovered → … → uploaded, and parked / failed / superseded before `uploaded`.
  void set_export_state(int64_t export_id, ExportState to, std::string_view message = {});
  void park_export(int64_t export_id, std::string_view reason);
  void unpark_export(int64_t export_id, std::string_view why = "resumed");
  void fail_export(int64_t export_id, std::string_view error);
  void set_export_error(int64_t export_id, std::string_view error);

  void set_file_state(int64_t file_id, FileState to, std::string_view message = {});
  void record_spooled(int64_t file_id, const SpoolOutcome& outcome,
                      const std::function<bool(LineAnchor&)>& next_anchor = {});
  void record_file_rejected(int64_t file_id, int64_t invalid_lines, std::string_view message);
  void set_file_error(int64_t file_id, std::string_view error);
  void plan_parts(int64_t file_id, PartKind kind, const std::vector<PartPlan>& parts, bool whole);

 private:
  Taken insert_export(std::string_view pipeline, std::string_view source_path,
                      std::string_view digest, std::string_view base_name,
                      const std::vector<std::pair<std::string, SourceIdentity>>& files,
                      detail::Tx& tx);
  Journal& j_;
};

class UploadLedger {
 public:
  explicit UploadLedger(Journal& j) : j_(j) {}
  const Journal& journal() const { return j_; }

  void set_file_upload(int64_t file_id, PartKind kind, std::string_view key,
                       std::string_view upload_id);
  void restart_upload(int64_t file_id, PartKind kind, std::string_view key,
                      std::string_view upload_id);
  void record_object_deleted(int64_t file_id, PartKind kind, std::string_view bucket);
  void set_part_state(int64_t file_id, PartKind kind, int part_number, PartState to);
  void record_part_uploaded(int64_t file_id, PartKind kind, int part_number, std::string_view etag,
                            std::string_view crc32c);

 private:
  Journal& j_;
};

class ImportLedger {
 public:
  explicit ImportLedger(Journal& j) : j_(j) {}
  const Journal& journal() const { return j_; }

  // uploaded → import_starting → importing → imported | import_failed, uploaded →
  // nothing_to_import, and parked / failed from `uploaded` on.
  void set_export_state(int64_t export_id, ExportState to, std::string_view message = {});
  void park_export(int64_t export_id, std::string_view reason);
  void unpark_export(int64_t export_id, std::string_view why = "resumed");
  void fail_export(int64_t export_id, std::string_view error);
  void set_export_error(int64_t export_id, std::string_view error);
  // Back to `uploaded` with import_attempt + 1 (new ClientTokens, a new job): the operator's
  // retry of an import_failed or imported export, or of one parked while importing. `event` is
  // the retry event's text. Returns the new attempt.
  int new_attempt(int64_t export_id, std::string_view event);

  void record_import_token(int64_t export_id, std::string_view client_token,
                           std::string_view job_name, int part = 1, std::string_view input_uri = {},
                           std::string_view validation_level = {});
  void record_import_job(int64_t export_id, std::string_view job_id, std::string_view status,
                         int part = 1);
  void record_import_status(int64_t export_id, std::string_view status,
                            std::string_view progress_json, int part = 1);
  void record_import_reported(int64_t export_id, std::string_view reported_level,
                              std::string_view message, int part = 1);
  void record_import_outcome(int64_t export_id, std::string_view outcome, int part = 1);
  // Journal::record_batch (schema 7): batch, members, their job rows, → import_starting.
  int64_t record_batch(const BatchPlan& plan);

 private:
  Journal& j_;
};

// The CLI's side of a request: it only ever inserts one.
class RequestLedger {
 public:
  explicit RequestLedger(Journal& j) : j_(j) {}
  // Through a second connection that takes no lock (a daemon holds it); see
  // Journal::submit_request.
  static int64_t submit(const std::filesystem::path& path, std::string_view kind,
                        std::string_view target, std::string_view args);
  // On the CLI's own (locked) journal, when no daemon runs.
  int64_t add(std::string_view kind, std::string_view target, std::string_view args);

 private:
  Journal& j_;
};

// The daemon's side (or the CLI's, holding the lock when no daemon runs): it answers requests. An
// answer is written once; a request answered already keeps its first answer.
class MailboxLedger {
 public:
  explicit MailboxLedger(Journal& j) : j_(j) {}
  std::vector<RequestRow> pending() const { return j_.pending_requests(); }
  void answer(int64_t request_id, bool done, std::string_view result);

 private:
  Journal& j_;
};

}  // namespace fe::journal
