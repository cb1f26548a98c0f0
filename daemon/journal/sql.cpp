// The SQLite plumbing shared by the journal's files (sql.hpp), and the one function that moves an
// export's state, used by the ingest and the import ledger each on its own table.
#include "journal/sql.hpp"

namespace fe::journal {

TimeMs now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace detail {

Stmt::Stmt(sqlite3* db, const std::filesystem::path& path, const char* sql) : db_(db), path_(path) {
  if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
    throw Error("journal " + path.string() + ": " + sqlite3_errmsg(db));
}

bool Stmt::step() {
  int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw Error("journal " + path_.string() + ": " + sqlite3_errmsg(db_));
}

std::string Stmt::text(int c) const {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, c));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, c))) : std::string();
}

void exec(sqlite3* db, const std::filesystem::path& path, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw Error("journal " + path.string() + ": " + m);
  }
}

Tx::Tx(sqlite3* db, const std::filesystem::path& path) : db_(db), path_(path) {
  joined_ = sqlite3_get_autocommit(db_) == 0;
  if (!joined_) exec(db_, path_, "BEGIN IMMEDIATE");
}
Tx::~Tx() {
  if (!done_ && !joined_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}
void Tx::commit() {
  if (!joined_) exec(db_, path_, "COMMIT");
  done_ = true;
}

void throw_read_only(const Journal& j) {
  throw Error("journal " + Access::path(j).string() + " is open read-only");
}

// Column lists read with read_export. A read-only journal older than schema 3 (status run before
// the daemon migrated it) has no import_attempt: it reads as 1.
#define FE_EXPORT_COLS                                                                            \
  "id,name,pipeline,source_path,digest,version,state,parked_from,parked_reason,last_error,files," \
  "resources_valid,resources_rejected,bytes_source,bytes_spooled,bytes_uploaded,created_at,"      \
  "updated_at,finished_at"

std::string select_exports(int schema) {
  if (schema >= kStageTables) return "SELECT " FE_EXPORT_COLS ",import_attempt FROM export_view e";
  if (schema >= 3) return "SELECT " FE_EXPORT_COLS ",import_attempt FROM exports e";
  return "SELECT " FE_EXPORT_COLS ",1 FROM exports e";
}
#undef FE_EXPORT_COLS

ExportRow read_export(const Stmt& s) {
  ExportRow r;
  r.id = s.i64(0);
  r.name = s.text(1);
  r.pipeline = s.text(2);
  r.source_path = s.text(3);
  r.digest = s.text(4);
  r.version = static_cast<int>(s.i64(5));
  r.state = parse_export_state(s.text(6)).value_or(ExportState::failed);
  if (!s.is_null(7)) r.parked_from = parse_export_state(s.text(7));
  r.parked_reason = s.text(8);
  r.last_error = s.text(9);
  r.files = s.i64(10);
  r.resources_valid = s.i64(11);
  r.resources_rejected = s.i64(12);
  r.bytes_source = s.i64(13);
  r.bytes_spooled = s.i64(14);
  r.bytes_uploaded = s.i64(15);
  r.created_at = s.i64(16);
  r.updated_at = s.i64(17);
  if (!s.is_null(18)) r.finished_at = s.i64(18);
  r.import_attempt = static_cast<int>(s.i64(19));
  return r;
}

const char* const kFileCols =
    "id,export_id,name,size,mtime_ns,inode,dev,state,resources_valid,resources_rejected,"
    "bytes_uncompressed,bytes_spooled,checksum,import_key,import_upload_id,archive_key,"
    "archive_upload_id,last_error";

FileRow read_file(const Stmt& s) {
  FileRow r;
  r.id = s.i64(0);
  r.export_id = s.i64(1);
  r.name = s.text(2);
  r.source = {static_cast<uint64_t>(s.i64(3)), s.i64(4), static_cast<uint64_t>(s.i64(5)),
              static_cast<uint64_t>(s.i64(6))};
  r.state = parse_file_state(s.text(7)).value_or(FileState::failed);
  r.resources_valid = s.i64(8);
  r.resources_rejected = s.i64(9);
  r.bytes_uncompressed = s.i64(10);
  r.bytes_spooled = s.i64(11);
  r.checksum = s.text(12);
  r.import_key = s.text(13);
  r.import_upload_id = s.text(14);
  r.archive_key = s.text(15);
  r.archive_upload_id = s.text(16);
  r.last_error = s.text(17);
  return r;
}

// A tombstone read as an export row (id 0: nothing else of it is left).
const char* const kTombstoneCols =
    "name,pipeline,source_path,digest,version,state,files,resources_valid,resources_rejected,"
    "created_at,finished_at,compacted_at";

ExportRow read_tombstone(const Stmt& s) {
  ExportRow r;
  r.name = s.text(0);
  r.pipeline = s.text(1);
  r.source_path = s.text(2);
  r.digest = s.text(3);
  r.version = static_cast<int>(s.i64(4));
  r.state = parse_export_state(s.text(5)).value_or(ExportState::failed);
  r.files = s.i64(6);
  r.resources_valid = s.i64(7);
  r.resources_rejected = s.i64(8);
  r.created_at = s.i64(9);
  if (!s.is_null(10)) r.finished_at = s.i64(10);
  r.updated_at = s.i64(11);
  return r;
}

const char* current_attempt(int schema) {
  return schema >= kStageTables
             ? "COALESCE((SELECT import_attempt FROM imports WHERE export_id=?1),1)"
             : "(SELECT import_attempt FROM exports WHERE id=?1)";
}

void insert_event(const Journal& j, std::optional<int64_t> export_id,
                  std::optional<int64_t> file_id, std::string_view kind, std::string_view message) {
  Stmt s(j, "INSERT INTO events(time,export_id,file_id,kind,message) VALUES(?,?,?,?,?)");
  s.bind(1, now_ms());
  if (export_id)
    s.bind(2, *export_id);
  else
    s.bind_null(2);
  if (file_id)
    s.bind(3, *file_id);
  else
    s.bind_null(3);
  s.bind(4, kind).bind(5, message).run();
}

namespace {
bool import_state(ExportState s) {
  switch (s) {
    case ExportState::uploaded:
    case ExportState::import_starting:
    case ExportState::importing:
    case ExportState::imported:
    case ExportState::import_failed:
    case ExportState::nothing_to_import:
      return true;
    default:
      return false;
  }
}
}  // namespace

bool import_phase(const Journal& j, const ExportRow& row) {
  if (import_state(row.state)) return true;
  if (row.state == ExportState::parked && row.parked_from && import_state(*row.parked_from))
    return true;
  if (Access::schema(j) < kStageTables) return false;
  // Failed or superseded after the hand-off: the imports row says so.
  Stmt s(j, "SELECT 1 FROM imports WHERE export_id=?");
  s.bind(1, row.id);
  return s.step();
}

void require_owner(const Journal& j, Owner owner, const ExportRow& row) {
  const bool imp = import_phase(j, row);
  if (owner == Owner::ingest && imp)
    throw Error("journal: export " + row.name + " is " + std::string(to_string(row.state)) +
                ": from `uploaded` on its state belongs to the import stage (ImportLedger), not "
                "to the pipeline");
  if (owner == Owner::import && !imp)
    throw Error("journal: export " + row.name + " is " + std::string(to_string(row.state)) +
                ": until it is `uploaded` its state belongs to the pipeline (IngestLedger), not "
                "to the import stage");
}

void owned_state_change(Journal& j, Owner owner, int64_t export_id, ExportState to,
                        std::string_view kind, std::string_view message) {
  Tx tx(j);
  auto row = j.get_export(export_id);
  if (kind == "unpark") {
    if (row.state != ExportState::parked || !row.parked_from)
      throw Error("journal: export " + row.name + " is not parked");
    to = *row.parked_from;
  }
  require_owner(j, owner, row);
  change_export_state(j, owner, row, to, kind, message);
  tx.commit();
}

void change_export_state(Journal& j, Owner owner, const ExportRow& row, ExportState to,
                         std::string_view kind, std::string_view message) {
  require_writable(j);
  if (to != ExportState::parked && row.state == ExportState::parked && row.parked_from &&
      *row.parked_from != to && to != ExportState::failed && to != ExportState::superseded)
    throw Error("journal: export " + row.name + ": parked from " +
                std::string(to_string(*row.parked_from)) + ", cannot resume as " +
                std::string(to_string(to)));
  if (!allowed(row.state, to))
    throw Error("journal: export " + row.name + ": illegal transition " +
                std::string(to_string(row.state)) + " -> " + std::string(to_string(to)));
  const bool imports = owner == Owner::import && Access::schema(j) >= kStageTables;
  TimeMs now = now_ms();
  if (imports) {
    // The import stage's row of the export, made at its first write (it starts at `uploaded`,
    // the state the pipeline handed it over in).
    Stmt(j, "INSERT OR IGNORE INTO imports(export_id,state,updated_at) VALUES(?,'uploaded',?)")
        .bind(1, row.id)
        .bind(2, now)
        .run();
  }
  Stmt s(j, std::string("UPDATE ") + (imports ? "imports" : "exports") +
                " SET state=?, updated_at=?, finished_at=?, parked_from=?, parked_reason=?, "
                "last_error=? WHERE " +
                (imports ? "export_id" : "id") + "=?");
  s.bind(1, to_string(to)).bind(2, now);
  if (is_terminal(to))
    s.bind(3, now);
  else
    s.bind_null(3);
  if (to == ExportState::parked) {
    s.bind(4, to_string(row.state)).bind(5, message).bind(6, message);
  } else {
    s.bind_null(4).bind(5, std::string_view{});
    // Moving forward clears a retried error; failing (or ending without an import) records it,
    // so status says why.
    bool why = to == ExportState::failed || to == ExportState::import_failed ||
               to == ExportState::nothing_to_import;
    s.bind(6, why ? message : std::string_view{});
  }
  s.bind(7, row.id).run();
  std::string text = std::string(to_string(row.state)) + " -> " + std::string(to_string(to));
  if (!message.empty()) text += ": " + std::string(message);
  insert_event(j, row.id, std::nullopt, kind, text);
}

}  // namespace detail
}  // namespace fe::journal
