// The import stage's writes (ImportLedger, daemon/import/): the export from `uploaded` on (its
// state, park, error and import attempt, in `imports` from schema 6) and its import jobs.
#include "journal/ledgers.hpp"
#include "journal/sql.hpp"

namespace fe::journal {

using detail::Access;
using detail::Owner;
using detail::Stmt;
using detail::Tx;

namespace {
// The rows of the export's current attempt (?1 = export id).
std::string current_job(const Journal& j) {
  return std::string(" FROM import_jobs WHERE export_id=?1 AND attempt=") +
         detail::current_attempt(Access::schema(j));
}

std::string part_label(int part) {
  return part == 1 ? std::string() : " (part " + std::to_string(part) + ")";
}

// The imports row of an export (schema 6), or the exports row in a journal held below it.
const char* import_table(const Journal& j) {
  return Access::schema(j) >= detail::kStageTables ? "imports" : "exports";
}
const char* import_key(const Journal& j) {
  return Access::schema(j) >= detail::kStageTables ? "export_id" : "id";
}
void ensure_import_row(const Journal& j, int64_t export_id) {
  if (Access::schema(j) < detail::kStageTables) return;
  Stmt(j, "INSERT OR IGNORE INTO imports(export_id,state,updated_at) VALUES(?,'uploaded',?)")
      .bind(1, export_id)
      .bind(2, now_ms())
      .run();
}
}  // namespace

// ---------------------------------------------------------------- the export's state

void ImportLedger::set_export_state(int64_t export_id, ExportState to, std::string_view message) {
  detail::require_writable(j_);
  if (to == ExportState::parked) return park_export(export_id, message);
  detail::owned_state_change(j_, Owner::import, export_id, to, "state", message);
}

void ImportLedger::park_export(int64_t export_id, std::string_view reason) {
  detail::owned_state_change(j_, Owner::import, export_id, ExportState::parked, "park", reason);
}

void ImportLedger::unpark_export(int64_t export_id, std::string_view why) {
  detail::owned_state_change(j_, Owner::import, export_id, ExportState::parked, "unpark", why);
}

void ImportLedger::fail_export(int64_t export_id, std::string_view error) {
  detail::owned_state_change(j_, Owner::import, export_id, ExportState::failed, "error", error);
}

void ImportLedger::set_export_error(int64_t export_id, std::string_view error) {
  Tx tx(j_);
  auto row = j_.get_export(export_id);
  detail::require_owner(j_, Owner::import, row);
  ensure_import_row(j_, export_id);
  Stmt s(j_, std::string("UPDATE ") + import_table(j_) + " SET last_error=?, updated_at=? WHERE " +
                 import_key(j_) + "=?");
  s.bind(1, error).bind(2, now_ms()).bind(3, export_id).run();
  detail::insert_event(j_, export_id, std::nullopt, "error", error);
  tx.commit();
}

int ImportLedger::new_attempt(int64_t export_id, std::string_view event) {
  detail::require_writable(j_);
  Tx tx(j_);
  auto row = j_.get_export(export_id);
  detail::require_owner(j_, Owner::import, row);
  const int attempt = row.import_attempt + 1;
  ensure_import_row(j_, export_id);
  Stmt s(j_, std::string("UPDATE ") + import_table(j_) +
                 " SET state=?, import_attempt=?, updated_at=?, finished_at=NULL, "
                 "parked_from=NULL, parked_reason='', last_error='' WHERE " +
                 import_key(j_) + "=?");
  s.bind(1, to_string(ExportState::uploaded)).bind(2, static_cast<int64_t>(attempt));
  s.bind(3, now_ms()).bind(4, export_id).run();
  detail::insert_event(j_, export_id, std::nullopt, "retry", event);
  tx.commit();
  return attempt;
}

// ---------------------------------------------------------------- import jobs

void ImportLedger::record_import_token(int64_t export_id, std::string_view client_token,
                                       std::string_view job_name, int part,
                                       std::string_view input_uri,
                                       std::string_view validation_level) {
  Tx tx(j_);
  auto row = j_.get_export(export_id);
  TimeMs now = now_ms();
  {
    Stmt q(j_, std::string("SELECT client_token") + current_job(j_) + " AND part=?2");
    q.bind(1, export_id).bind(2, static_cast<int64_t>(part));
    if (q.step()) {
      if (q.text(0) == client_token) return;  // idempotent: the same token again
      throw Error("journal: export " + row.name + " already has an import client token for part " +
                  std::to_string(part) + "; refusing to replace it");
    }
  }
  // A writer held below schema 5 (a test hook) has no validation_level column.
  Stmt s(j_, Access::schema(j_) >= 5
                 ? "INSERT INTO import_jobs(export_id,attempt,part,input_uri,client_token,"
                   "job_name,submitted_at,updated_at,validation_level) "
                   "VALUES(?,?,?,?,?,?,?,?,?)"
                 : "INSERT INTO import_jobs(export_id,attempt,part,input_uri,client_token,"
                   "job_name,submitted_at,updated_at) VALUES(?,?,?,?,?,?,?,?)");
  s.bind(1, export_id).bind(2, static_cast<int64_t>(row.import_attempt));
  s.bind(3, static_cast<int64_t>(part)).bind(4, input_uri).bind(5, client_token);
  s.bind(6, job_name).bind(7, now).bind(8, now);
  if (Access::schema(j_) >= 5) s.bind(9, validation_level);
  s.run();
  detail::insert_event(
      j_, export_id, std::nullopt, "import",
      "import job " + std::string(job_name) + " prepared" +
          (validation_level.empty() ? std::string()
                                    : " (ValidationLevel " + std::string(validation_level) + ")") +
          part_label(part));
  tx.commit();
}

void ImportLedger::record_import_job(int64_t export_id, std::string_view job_id,
                                     std::string_view status, int part) {
  Tx tx(j_);
  Stmt s(j_,
         "UPDATE import_jobs SET job_id=?3, status=?4, updated_at=?5 WHERE export_id=?1 AND "
         "part=?2 AND attempt=" +
             std::string(detail::current_attempt(Access::schema(j_))));
  s.bind(1, export_id).bind(2, static_cast<int64_t>(part)).bind(3, job_id).bind(4, status);
  s.bind(5, now_ms()).run();
  if (sqlite3_changes(Access::db(j_)) == 0)
    throw Error("journal: export id " + std::to_string(export_id) + " has no import token" +
                part_label(part));
  detail::insert_event(
      j_, export_id, std::nullopt, "import",
      "import job " + std::string(job_id) + " " + std::string(status) + part_label(part));
  tx.commit();
}

void ImportLedger::record_import_status(int64_t export_id, std::string_view status,
                                        std::string_view progress_json, int part) {
  Tx tx(j_);
  std::string old;
  {
    Stmt q(j_, std::string("SELECT status") + current_job(j_) + " AND part=?2");
    q.bind(1, export_id).bind(2, static_cast<int64_t>(part));
    if (!q.step())
      throw Error("journal: export id " + std::to_string(export_id) + " has no import job" +
                  part_label(part));
    old = q.text(0);
  }
  Stmt s(j_,
         "UPDATE import_jobs SET status=?3, progress_json=?4, updated_at=?5 WHERE "
         "export_id=?1 AND part=?2 AND attempt=" +
             std::string(detail::current_attempt(Access::schema(j_))));
  s.bind(1, export_id).bind(2, static_cast<int64_t>(part)).bind(3, status).bind(4, progress_json);
  s.bind(5, now_ms()).run();
  // Polls repeat the same status; only changes go to the event log.
  if (old != status)
    detail::insert_event(
        j_, export_id, std::nullopt, "import",
        "import job status " + old + " -> " + std::string(status) + part_label(part));
  tx.commit();
}

void ImportLedger::record_import_reported(int64_t export_id, std::string_view reported_level,
                                          std::string_view message, int part) {
  if (Access::schema(j_) < 5)
    return;  // a writer held below schema 5 (test hook): nowhere to put it
  Tx tx(j_);
  std::string old_level;
  {
    Stmt q(j_, std::string("SELECT reported_level") + current_job(j_) + " AND part=?2");
    q.bind(1, export_id).bind(2, static_cast<int64_t>(part));
    if (!q.step())
      throw Error("journal: export id " + std::to_string(export_id) + " has no import job" +
                  part_label(part));
    old_level = q.text(0);
  }
  Stmt s(j_,
         "UPDATE import_jobs SET reported_level=?3, message=?4, updated_at=?5 WHERE "
         "export_id=?1 AND part=?2 AND attempt=" +
             std::string(detail::current_attempt(Access::schema(j_))));
  s.bind(1, export_id).bind(2, static_cast<int64_t>(part)).bind(3, reported_level);
  s.bind(4, message).bind(5, now_ms()).run();
  if (old_level != reported_level)
    detail::insert_event(
        j_, export_id, std::nullopt, "import",
        "HealthLake reports ValidationLevel " +
            (reported_level.empty() ? std::string("(none)") : std::string(reported_level)) +
            part_label(part));
  tx.commit();
}

void ImportLedger::record_import_outcome(int64_t export_id, std::string_view outcome, int part) {
  Tx tx(j_);
  Stmt s(j_,
         "UPDATE import_jobs SET outcome=?3, updated_at=?4 WHERE export_id=?1 AND part=?2 "
         "AND attempt=" +
             std::string(detail::current_attempt(Access::schema(j_))));
  s.bind(1, export_id).bind(2, static_cast<int64_t>(part)).bind(3, outcome).bind(4, now_ms());
  s.run();
  if (sqlite3_changes(Access::db(j_)) == 0)
    throw Error("journal: export id " + std::to_string(export_id) + " has no import job" +
                part_label(part));
  detail::insert_event(j_, export_id, std::nullopt, "import",
                       "import outcome recorded" + part_label(part));
  tx.commit();
}

}  // namespace fe::journal
