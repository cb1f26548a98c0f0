#pragma once
// Internal to daemon/journal/ (no stage includes it): the SQLite plumbing the journal's files
// share — prepared statements, transactions, the row readers, the event log append and the one
// function that moves an export's state. The public API is journal.hpp and ledgers.hpp.
#include <sqlite3.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "journal/journal.hpp"

namespace fe::journal::detail {

// The private parts of a Journal the journal's own files use (one friend instead of many).
struct Access {
  static sqlite3* db(const Journal& j) { return j.db_; }
  static const std::filesystem::path& path(const Journal& j) { return j.path_; }
  static int schema(const Journal& j) { return j.schema_; }
  static bool read_only(const Journal& j) { return j.read_only_; }
};

// A prepared statement with positional binding; finalized on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::filesystem::path& path, const char* sql);
  Stmt(const Journal& j, const char* sql) : Stmt(Access::db(j), Access::path(j), sql) {}
  Stmt(const Journal& j, const std::string& sql) : Stmt(j, sql.c_str()) {}
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  Stmt& bind(int i, std::string_view v) {
    // A null data() would bind SQL NULL; an empty view is an empty string here.
    sqlite3_bind_text(st_, i, v.data() ? v.data() : "", static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind_null(int i) {
    sqlite3_bind_null(st_, i);
    return *this;
  }
  bool step();  // true while there is a row
  void run() {
    while (step()) {
    }
  }
  void reset() { sqlite3_reset(st_); }
  int64_t i64(int c) const { return sqlite3_column_int64(st_, c); }
  bool is_null(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  std::string text(int c) const;

 private:
  sqlite3* db_;
  const std::filesystem::path& path_;
  sqlite3_stmt* st_ = nullptr;
};

// One transaction; rolled back unless commit() was called. BEGIN IMMEDIATE takes the write lock
// up front so a transaction never fails half-way on a busy database. Opened inside another
// transaction (an operator's retry is one transaction that calls the owner's ledger) it joins it:
// the outer one commits or rolls back everything, so an error inside must reach it.
class Tx {
 public:
  Tx(sqlite3* db, const std::filesystem::path& path);
  explicit Tx(const Journal& j) : Tx(Access::db(j), Access::path(j)) {}
  ~Tx();
  void commit();

 private:
  sqlite3* db_;
  const std::filesystem::path& path_;
  bool done_ = false;
  bool joined_ = false;
};

void exec(sqlite3* db, const std::filesystem::path& path, const char* sql);
[[noreturn]] void throw_read_only(const Journal& j);
inline void require_writable(const Journal& j) {
  if (Access::read_only(j)) throw_read_only(j);
}

// The first schema with the import stage's own tables (imports, request_answers, export_view).
inline constexpr int kStageTables = 6;

// Where the export columns are read from: export_view (the exports row joined with the import
// stage's imports row) from schema 6, the exports table before.
std::string select_exports(int schema);  // "SELECT <cols> FROM <source> e"
ExportRow read_export(const Stmt& s);
extern const char* const kFileCols;
FileRow read_file(const Stmt& s);
extern const char* const kTombstoneCols;
ExportRow read_tombstone(const Stmt& s);

// The SQL expression of an export's current import attempt (?1 = export id).
const char* current_attempt(int schema);

void insert_event(const Journal& j, std::optional<int64_t> export_id,
                  std::optional<int64_t> file_id, std::string_view kind, std::string_view message);

// The import stage owns an export from `uploaded` on (the pipeline's last state is the hand-off):
// in that state or a later one (parked or failed from one of them included), or once it has an
// imports row (schema 6).
bool import_phase(const Journal& j, const ExportRow& row);

// Which stage's table holds the export's state being changed.
enum class Owner { ingest, import };

// Moves an export's state in its owner's table, inside the caller's transaction: checks the
// transition (states.hpp; a parked export resumes only to the state it was parked from, or fails
// or is superseded), writes the row and appends the event. Ingest writes `exports`; import writes
// `imports` (created at its first write) from schema 6, `exports` in a journal held below it.
void change_export_state(Journal& j, Owner owner, const ExportRow& row, ExportState to,
                         std::string_view kind, std::string_view message);

// The export's totals from its files (and, in a journal held below schema 6, bytes_uploaded from
// its parts; export_view derives that from 6 on). Written by the ingest ledger.
void recompute_totals(const Journal& j, int64_t export_id);

// Throws unless `owner` owns the export now (see import_phase).
void require_owner(const Journal& j, Owner owner, const ExportRow& row);

// One state change by its owner in its own transaction: reads the export, checks the owner, then
// change_export_state. ExportState::parked with kind "unpark" resumes the state it was parked
// from (and throws when the export is not parked). The ledgers' state methods are this.
void owned_state_change(Journal& j, Owner owner, int64_t export_id, ExportState to,
                        std::string_view kind, std::string_view message);

}  // namespace fe::journal::detail
