#pragma once
// The journal: every step of every export, in one SQLite file, so a crash never loses or
// duplicates data. Contract:
//  - SQLite in WAL mode with synchronous=FULL: a call that returns has reached the disk.
//  - Exactly one writer: the daemon's control thread owns the only read-write Journal. A lock file
//    next to the database (<db>.lock, flock) makes a second daemon on the same state refuse to
//    start. Readers (`fhir-edge status`) open read-only connections and take no lock.
//  - One writer stage per table (ledgers.hpp, docs/journal.md "Who writes what"): the pipeline
//    writes an export until it is `uploaded`, the import stage from then on (table `imports`);
//    the CLI inserts requests, the daemon's mailbox answers them. The write methods below keep
//    their meaning and route each call to the owning stage's ledger.
//  - The schema is versioned (PRAGMA user_version) and migrated in order at open, each step in its
//    own transaction. A journal written by a newer fhir-edge is refused, never downgraded.
//  - PRAGMA quick_check at open: a damaged journal throws journal::Error with a clear message and
//    is never reset or rewritten.
//  - Every state change is one transaction that also appends to the event log; illegal transitions
//    (see states.hpp) throw journal::Error and change nothing.
//  - No SQL outside daemon/journal/: stages use this typed API.
// All methods throw journal::Error on failure; messages name the journal path and the export.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/file_identity.hpp"
#include "journal/states.hpp"

struct sqlite3;

namespace fe::journal {

namespace detail {
struct Access;  // the journal's own files (sql.hpp)
}

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr int kSchemaVersion = 9;

// Milliseconds since the Unix epoch (UTC); every timestamp in the journal.
using TimeMs = int64_t;
TimeMs now_ms();

struct OpenOptions {
  bool read_only = false;  // status and other readers: no lock, no migration, no writes
  // Test hook: migrate no further than this version (to build an "older" journal in tests).
  int max_schema_version = kSchemaVersion;
};

// Source identity of one file as it was taken (see watch/identity.hpp).
struct SourceIdentity {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  uint64_t dev = 0;
  // The same identity as the watcher and the spool compare it.
  fe::FileIdentity file_identity() const { return {dev, inode, size, mtime_ns}; }
};

struct ExportRow {
  int64_t id = 0;
  std::string name;  // export id used in S3 keys and as JobName: base name, ".v<N>" from version 2
  std::string pipeline;
  std::string source_path;
  std::string digest;  // content digest (journal/digest.hpp)
  int version = 1;     // 1 + number of earlier exports taken from the same pipeline and path
  // The state, park, error, finished_at and import_attempt as every reader sees them: the import
  // stage's (table imports) from `uploaded` on, the pipeline's (exports) before.
  ExportState state = ExportState::discovered;
  std::optional<ExportState> parked_from;
  std::string parked_reason;
  std::string last_error;
  int64_t files = 0;
  int64_t resources_valid = 0;
  int64_t resources_rejected = 0;
  int64_t bytes_source = 0;    // sum of the source files' sizes
  int64_t bytes_spooled = 0;   // compressed bytes in spool/<export>/import
  int64_t bytes_uploaded = 0;  // sum of the lengths of uploaded parts (both kinds)
  TimeMs created_at = 0;
  TimeMs updated_at = 0;
  std::optional<TimeMs> finished_at;  // set when the export reached a terminal state
  // 1 + number of times `retry` re-drove the import (import_failed, or imported with --reimport).
  // Every attempt has its own ClientToken(s) and JobName(s) (import_client_token, import_job_name).
  int import_attempt = 1;
};

struct FileRow {
  int64_t id = 0;
  int64_t export_id = 0;
  std::string name;
  SourceIdentity source;
  FileState state = FileState::pending;
  int64_t resources_valid = 0;
  int64_t resources_rejected = 0;
  int64_t bytes_uncompressed = 0;  // valid NDJSON bytes (= size of the import object)
  int64_t bytes_spooled = 0;       // size of the .zst spool file (= size of the archive object)
  std::string checksum;            // CRC32C of the whole import object, as the caller records it
  std::string import_key, import_upload_id;
  std::string archive_key, archive_upload_id;
  std::string last_error;
};

struct PartRow {
  int64_t file_id = 0;
  PartKind kind = PartKind::import;
  int part_number = 0;  // 1-based, as S3
  int64_t offset = 0;   // byte range of the object this part covers
  int64_t length = 0;
  std::string etag;
  std::string crc32c;  // base64 as in x-amz-checksum-crc32c, or as the caller records it
  PartState state = PartState::pending;
};

// One HealthLake import job of an export: an export has one job per part (exports over
// HealthLake's 10,000 files per job are split into parts, each under its own S3 prefix) and per
// attempt (ExportRow::import_attempt). The API below works on the export's current attempt.
struct ImportJobRow {
  int64_t export_id = 0;
  int attempt = 1;
  int part = 1;           // 1-based
  std::string input_uri;  // InputDataConfig.S3Uri of this job ("" in journals before schema 3)
  std::string client_token;
  std::string job_name;
  std::string job_id;  // empty until StartFHIRImportJob answered
  std::string status;  // HealthLake JobStatus
  std::string progress_json;
  TimeMs submitted_at = 0;
  std::string outcome;  // free text / JSON summary written by reconcile
  TimeMs updated_at = 0;
  // The ValidationLevel the job was started with (StartFHIRImportJob; journaled with the token)
  // and the one HealthLake reports for it (DescribeFHIRImportJob / ListFHIRImportJobs; "" until
  // it answered, or when it sent none). They must be equal (issue 12). Journals from before
  // schema 5 have "" for both.
  std::string validation_level;
  std::string reported_level;
  std::string message;  // HealthLake's Message for the job (e.g. why it FAILED); "" when none
};

// A batch of exports imported by one StartFHIRImportJob (schema 7).
struct BatchPlan {
  std::string client_token;  // derived from the batch (import::batch_client_token)
  std::string job_name;
  std::string input_uri;  // InputDataConfig.S3Uri: a prefix that holds only the members' objects
  std::string group_key;  // import::batch_group_key
  std::string validation_level;
  std::vector<int64_t> members;  // export ids, in batch order
};
struct BatchRow {
  int64_t id = 0;
  std::string client_token, job_name, input_uri, group_key, validation_level;
  TimeMs created_at = 0;
  std::vector<int64_t> members;  // in batch order
};

// An export the fleet imports (schema 9, issue 16 item 3): its entry in the fleet's ready.json.
struct FleetExportRow {
  int64_t export_id = 0;
  int attempt = 1;
  std::string fleet;
  std::string entry_id;  // its export_id in ready.json (with this gateway's id)
  TimeMs appended_at = 0;
  std::string batch_id;  // the fleet batch that claimed it ("" = not known yet)
};

struct EventRow {
  int64_t id = 0;
  TimeMs time = 0;
  std::optional<int64_t> export_id;
  std::optional<int64_t> file_id;
  std::string kind;  // e.g. "state", "park", "error", "part", "import"
  std::string message;
};

// An export the watcher has seen that is not complete yet (table waiting_exports, schema 7):
// which completion rule it waits for, what is missing, since when (watch::Waiting).
struct WaitingRow {
  std::string pipeline;
  std::string name;  // the export's name as it will be taken (directory, or file stem)
  std::string path;  // the export directory or the single file
  // What it waits for: "bulk_manifest" | "marker" | "client_log" | "settle" (a completion rule),
  // "bulk_manifest|marker|client_log" (the enabled rules, none holds yet), "open_file" (a file
  // is open for writing), "scan_quiet" (a file found by a scan must stay unchanged), "no_data".
  std::string rule;
  std::string missing;    // what is missing, for a person
  TimeMs since = 0;       // first seen waiting (kept across daemon restarts)
  TimeMs updated_at = 0;  // when the daemon last reported it
};

// Result of take_export: the export row, and whether it already existed (a re-delivered
// identical export: same pipeline, path and digest).
struct Taken {
  ExportRow row;
  bool existing = false;
  // existing, and known only from its tombstone (the export was compacted away): `row` then has
  // id 0 and holds what the tombstone kept (name, version, state, counts, finished_at).
  bool compacted = false;
};

// Where an import object line came from: from import line `import_line` on, import lines map to
// consecutive source lines starting at `source_line`, up to the next anchor. A file whose valid
// lines were all consecutive from line 1 (nothing rejected, no blank line) has no anchor.
struct LineAnchor {
  int64_t import_line = 0;  // 1-based line of the import object (what HealthLake's FAILURE/ names)
  int64_t source_line = 0;  // 1-based line of the source file
};

// A request from the CLI to the daemon (`fhir-edge retry`, `fhir-edge journal compact`). The
// daemon holds the journal's lock, so the CLI does not change state itself while it runs: it
// inserts a row (Journal::submit_request, a second SQLite connection; WAL lets it write next to
// the daemon), the daemon applies pending requests on a short timer and at start-up, and writes
// the outcome back; the CLI waits for it. When no daemon runs the CLI applies the request itself.
struct RequestRow {
  int64_t id = 0;
  TimeMs time = 0;
  std::string kind;    // "retry" | "compact"
  std::string target;  // export name (retry)
  std::string args;    // retry: "" | "reimport"; compact: seconds
  std::string state;   // "pending" | "done" | "refused"
  std::string result;  // what was done, or why not
  std::optional<TimeMs> done_at;
};

// Outcome of Journal::retry_export.
struct RetryOutcome {
  bool applied = false;  // false: refused, `message` says why
  int64_t export_id = 0;
  ExportState from = ExportState::discovered;
  ExportState to = ExportState::discovered;
  bool new_token = false;  // a new import attempt: new ClientToken(s), a new job
  std::string message;
};

// What a spool pass produced for one file.
struct SpoolOutcome {
  int64_t resources_valid = 0;
  int64_t resources_rejected = 0;
  int64_t bytes_uncompressed = 0;
  int64_t bytes_spooled = 0;
  std::string checksum;
};

struct PartPlan {
  int part_number = 0;
  int64_t offset = 0;
  int64_t length = 0;
  std::string crc32c;  // may be known in advance (spool frame index)
};

class Journal {
 public:
  static Journal open(const std::filesystem::path& path, OpenOptions options = {});
  Journal(Journal&&) noexcept;
  Journal& operator=(Journal&&) noexcept;
  ~Journal();

  const std::filesystem::path& path() const { return path_; }
  int schema_version() const;
  bool read_only() const { return read_only_; }

  // --- exports ---
  // Records a newly complete export (state discovered) with its files, in one transaction, or
  // returns the existing row when the same pipeline/path/digest was taken before, also when that
  // export was compacted since (its tombstone; Taken::compacted). Versions and names count
  // compacted exports too, so a name is never used twice.
  Taken take_export(std::string_view pipeline, std::string_view source_path,
                    std::string_view digest, std::string_view base_name,
                    const std::vector<std::pair<std::string, SourceIdentity>>& files);
  // Whether any export or tombstone of this pipeline and source path has a digest of the legacy
  // scheme ("sha256:", journal/digest.hpp): such a path is digested that way again, so an export
  // taken before the digest changed is recognised after it.
  bool has_legacy_digest(std::string_view pipeline, std::string_view source_path) const;
  // Take before the digest (docs/pipeline.md "One pass"): records the export as take_export
  // does, with its digest pending (journal/digest.hpp kPendingDigestPrefix), but only when no
  // export or tombstone of this pipeline and source path exists (source_seen): such a take is
  // version 1 and there is no earlier content to compare with. nullopt: the path is known, its
  // digest must come first (take_export).
  std::optional<Taken> take_new_source(
      std::string_view pipeline, std::string_view source_path, std::string_view base_name,
      const std::vector<std::pair<std::string, SourceIdentity>>& files);
  bool source_seen(std::string_view pipeline, std::string_view source_path) const;
  // Records the content digest of an export taken before it (pending → digest; the same digest
  // again is a no-op). False, and nothing recorded, when another export or tombstone of the same
  // pipeline and source path has this digest (the same content taken meanwhile as a later
  // version): the caller ends this one. Throws when the export's digest is not pending.
  bool record_digest(int64_t export_id, std::string_view digest);
  // The export of this pipeline and source path whose digest is still pending, unless it was
  // superseded (at most one: only a path never seen is taken before its digest).
  std::optional<ExportRow> pending_export(std::string_view pipeline,
                                          std::string_view source_path) const;
  std::optional<ExportRow> find_export(int64_t id) const;
  std::optional<ExportRow> find_export(std::string_view name) const;
  ExportRow get_export(int64_t id) const;  // throws when absent
  // All exports, newest first; `include_finished` false hides terminal ones.
  std::vector<ExportRow> exports(bool include_finished = true) const;
  // Exports in a state, oldest first (what a stage picks up after a restart).
  std::vector<ExportRow> exports_in(ExportState state) const;

  void set_export_state(int64_t export_id, ExportState to, std::string_view message = {});
  void park_export(int64_t export_id, std::string_view reason);
  void unpark_export(int64_t export_id);  // back to the state it was parked from
  void fail_export(int64_t export_id, std::string_view error);
  // Records an error that will be retried (state unchanged), shown by status.
  void set_export_error(int64_t export_id, std::string_view error);

  // --- files ---
  std::vector<FileRow> files(int64_t export_id) const;
  FileRow get_file(int64_t file_id) const;
  void set_file_state(int64_t file_id, FileState to, std::string_view message = {});
  // spooling → spooled with the counts, in one transaction (after the spool files are durable).
  // `next_anchor` (optional) is pulled until it returns false: the file's line anchors in
  // ascending import_line order, stored in the same transaction (streamed: nothing is held).
  void record_spooled(int64_t file_id, const SpoolOutcome& outcome,
                      const std::function<bool(LineAnchor&)>& next_anchor = {});
  // pending|spooling → rejected (on_invalid: reject-file) with the counts, in one transaction:
  // resources_rejected = the invalid lines (as report.json), resources_valid = 0 (none of the
  // file is imported).
  void record_file_rejected(int64_t file_id, int64_t invalid_lines, std::string_view message);
  // The source line of an import object line (LineAnchor): the same number when the file has no
  // anchor before it. One indexed lookup; memory does not depend on the file's size.
  int64_t source_line(int64_t file_id, int64_t import_line) const;
  void set_file_upload(int64_t file_id, PartKind kind, std::string_view key,
                       std::string_view upload_id);
  void set_file_error(int64_t file_id, std::string_view error);
  // The file's import or archive object was deleted from S3 (a superseded version's early object,
  // issue 18): its key and upload id are cleared, so a non-empty key of a superseded export means
  // "still to delete"; an event keeps the key.
  void record_object_deleted(int64_t file_id, PartKind kind, std::string_view bucket);
  // The file's multipart upload is gone from S3 (NoSuchUpload) and no object was made from it
  // (aborted by a lifecycle rule or by hand): the new upload id is recorded and every part of
  // that kind goes back to pending with its ETag cleared, in one transaction (the one way a part
  // leaves `uploaded`: its bytes belonged to the upload that is gone). Written by the upload
  // stage only (daemon/upload/).
  void restart_upload(int64_t file_id, PartKind kind, std::string_view key,
                      std::string_view upload_id);

  // --- parts ---
  // Inserts the planned parts (pending). A part already present with the same offset, length and
  // CRC32C is kept as it is (state, ETag): a part streamed to S3 while its file was spooling, a
  // re-plan after a crash. One that differs (the file was spooled again with other content) is
  // replaced and pending again. `whole`: `parts` is the file's complete plan of that kind, and
  // rows past its last part are deleted; otherwise (one part at a time) they are left alone.
  void plan_parts(int64_t file_id, PartKind kind, const std::vector<PartPlan>& parts,
                  bool whole = false);
  void set_part_state(int64_t file_id, PartKind kind, int part_number, PartState to);
  void record_part_uploaded(int64_t file_id, PartKind kind, int part_number, std::string_view etag,
                            std::string_view crc32c);
  std::vector<PartRow> parts(int64_t file_id, PartKind kind) const;

  // --- import jobs (one per part of the export's current attempt) ---
  // Written before StartFHIRImportJob is called, so a retry after a crash reuses the token. The
  // same (export, attempt, part) with the same token is a no-op; with another token an error.
  // `validation_level` is the ValidationLevel the Start sends (re-sends use the journaled one).
  void record_import_token(int64_t export_id, std::string_view client_token,
                           std::string_view job_name, int part = 1, std::string_view input_uri = {},
                           std::string_view validation_level = {});
  void record_import_job(int64_t export_id, std::string_view job_id, std::string_view status,
                         int part = 1);
  void record_import_status(int64_t export_id, std::string_view status,
                            std::string_view progress_json, int part = 1);
  // What HealthLake reports for the job beyond its status: its ValidationLevel ("" = none sent)
  // and its Message. An event records a change of the level.
  void record_import_reported(int64_t export_id, std::string_view reported_level,
                              std::string_view message, int part = 1);
  void record_import_outcome(int64_t export_id, std::string_view outcome, int part = 1);
  std::optional<ImportJobRow> import_job(int64_t export_id, int part = 1) const;
  // Every job of the current attempt, by part.
  std::vector<ImportJobRow> import_jobs(int64_t export_id) const;

  // --- import batches (schema 7, issue 16 item 2; docs/import.md "Batches") ---
  // One transaction: the batch, its members (each export's current attempt, in at most one
  // batch), every member's import job row (part 1, the batch's token, JobName, input URI and
  // level) and every member uploaded → import_starting; BEFORE StartFHIRImportJob is sent. The
  // same token again returns the batch already journaled (nothing changes); a member that is not
  // `uploaded`, or already in a batch of its attempt, is an error and nothing is written.
  int64_t record_batch(const BatchPlan& plan);
  // The batch of the export's current attempt, if it is in one.
  std::optional<BatchRow> batch_of(int64_t export_id) const;
  std::optional<BatchRow> batch(int64_t batch_id) const;

  // --- the fleet (schema 9, issue 16 item 3; docs/import.md "Fleet") ---
  // The export's current attempt is listed in the fleet's ready.json as `entry_id` (idempotent:
  // a second call changes nothing). Needs schema 9.
  void record_fleet_appended(int64_t export_id, std::string_view fleet, std::string_view entry_id);
  // Forget the append (the entry vanished unclaimed: it is appended again).
  void forget_fleet_append(int64_t export_id);
  // The fleet batch that claimed the export (its current attempt).
  void record_fleet_batch(int64_t export_id, std::string_view batch_id);
  std::optional<FleetExportRow> fleet_export(int64_t export_id) const;
  // The fleet's job for the export, as the batch record says, in one transaction: the import
  // job row (part 1: the batch's ClientToken, JobName, input prefix, level; then its job id and
  // status) and uploaded → import_starting → importing. Idempotent once importing.
  void record_fleet_job(int64_t export_id, std::string_view client_token, std::string_view job_name,
                        std::string_view input_uri, std::string_view validation_level,
                        std::string_view job_id, std::string_view job_status);

  // --- operator actions ---
  // `fhir-edge retry`: parked → back to the state it was parked from (same tokens);
  // import_failed → uploaded with import_attempt + 1 (new tokens: the job must run again);
  // imported → the same, only with `reimport` (its resources are imported once more);
  // anything else is refused with the reason. One transaction; an event records it.
  RetryOutcome retry_export(std::string_view export_name, bool reimport);

  // --- requests (CLI → running daemon) ---
  // Inserts a pending request through a separate connection that takes no lock (the daemon may
  // hold it). Returns its id. Throws when the journal is missing or older than schema 3.
  static int64_t submit_request(const std::filesystem::path& path, std::string_view kind,
                                std::string_view target, std::string_view args);
  // True when a daemon (another process) holds the journal's lock right now.
  static bool locked_by_other(const std::filesystem::path& path);
  std::optional<RequestRow> request(int64_t id) const;
  std::vector<RequestRow> pending_requests() const;  // oldest first
  void finish_request(int64_t id, bool done, std::string_view result);
  // Inserts a request on this (writer) connection: the CLI when no daemon runs.
  int64_t add_request(std::string_view kind, std::string_view target, std::string_view args);
  // Applies one request: "retry" (args "" or "reimport") → retry_export; "compact" (args =
  // seconds) → compact. Returns {applied, what was done or why not}; does not finish the row.
  std::pair<bool, std::string> apply_request(const RequestRow& r);

  // --- exports waiting for their completion rule (schema 7) ---
  // Replaces the pipeline's waiting exports with `rows` in one transaction: a row already there
  // (same pipeline and path) keeps its `since` (the earlier of the two), rows not in `rows` are
  // removed. Written by the pipeline from the watcher's report (watch::Watcher::on_waiting).
  void record_waiting(std::string_view pipeline, const std::vector<WaitingRow>& rows);
  // Removes the waiting rows of every pipeline not in `pipelines` (dropped from the config).
  void forget_waiting_except(const std::vector<std::string>& pipelines);
  // Every waiting export, oldest `since` first; empty in a journal older than schema 7.
  std::vector<WaitingRow> waiting_exports() const;

  // --- events (append-only) ---
  void add_event(std::optional<int64_t> export_id, std::optional<int64_t> file_id,
                 std::string_view kind, std::string_view message);
  std::vector<EventRow> events(std::optional<int64_t> export_id, size_t limit = 100) const;

  // --- maintenance ---
  // Deletes exports in a terminal state (imported, import_failed, failed, superseded) that
  // finished more than `older_than` ago (a superseded one only once no object key is left to
  // delete, see record_object_deleted), with their files, parts, line anchors, import jobs and
  // events, and finished requests older than that. Each removed export leaves a tombstone
  // (pipeline, source path, digest, name, version, final state, counts) that compaction never
  // removes: take_export still recognises the source (a kept source is never taken twice) and a
  // new version never reuses its name. Returns how many exports were removed.
  size_t compact(std::chrono::seconds older_than);
  // The tombstone of a compacted export, by name (row.id is 0).
  std::optional<ExportRow> find_tombstone(std::string_view name) const;
  // Online backup to `dest` (SQLite backup API: consistent while the daemon runs).
  void backup_to(const std::filesystem::path& dest) const;

 private:
  friend struct detail::Access;
  Journal() = default;
  void migrate(int target);

  std::filesystem::path path_;
  int schema_ = 0;  // at open (after migration): older read-only journals lack newer columns
  sqlite3* db_ = nullptr;
  int lock_fd_ = -1;
  bool read_only_ = false;
};

}  // namespace fe::journal
