// The fleet's journal rows (schema 9, issue 16 item 3): what a member gateway must remember of an
// export the fleet imports across a crash (contract in journal.hpp, "the fleet").
#include "journal/journal.hpp"
#include "journal/sql.hpp"

namespace fe::journal {

using detail::Stmt;
using detail::Tx;

namespace {

void require_fleet_schema(const Journal& j) {
  if (detail::Access::schema(j) < 9)
    throw Error("journal " + detail::Access::path(j).string() + ": the fleet needs schema 9");
}

}  // namespace

void Journal::record_fleet_appended(int64_t export_id, std::string_view fleet,
                                    std::string_view entry_id) {
  detail::require_writable(*this);
  require_fleet_schema(*this);
  auto e = get_export(export_id);
  TimeMs now = now_ms();
  Stmt s(*this,
         "INSERT INTO fleet_exports(export_id,attempt,fleet,entry_id,appended_at,updated_at) "
         "VALUES(?1,?2,?3,?4,?5,?5) ON CONFLICT(export_id,attempt) DO UPDATE SET "
         "appended_at=CASE WHEN appended_at=0 THEN excluded.appended_at ELSE appended_at END, "
         "updated_at=excluded.updated_at");
  s.bind(1, export_id).bind(2, static_cast<int64_t>(e.import_attempt)).bind(3, fleet);
  s.bind(4, entry_id).bind(5, now);
  s.run();
}

void Journal::forget_fleet_append(int64_t export_id) {
  detail::require_writable(*this);
  require_fleet_schema(*this);
  auto e = get_export(export_id);
  Stmt s(*this,
         "UPDATE fleet_exports SET appended_at=0,updated_at=?3 WHERE export_id=?1 AND attempt=?2 "
         "AND batch_id=''");
  s.bind(1, export_id).bind(2, static_cast<int64_t>(e.import_attempt)).bind(3, now_ms());
  s.run();
}

void Journal::record_fleet_batch(int64_t export_id, std::string_view batch_id) {
  detail::require_writable(*this);
  require_fleet_schema(*this);
  auto e = get_export(export_id);
  Stmt s(*this,
         "UPDATE fleet_exports SET batch_id=?3,updated_at=?4 WHERE export_id=?1 AND attempt=?2");
  s.bind(1, export_id).bind(2, static_cast<int64_t>(e.import_attempt)).bind(3, batch_id);
  s.bind(4, now_ms());
  s.run();
}

std::optional<FleetExportRow> Journal::fleet_export(int64_t export_id) const {
  if (detail::Access::schema(*this) < 9) return std::nullopt;
  auto e = find_export(export_id);
  if (!e) return std::nullopt;
  Stmt s(*this,
         "SELECT fleet,entry_id,appended_at,batch_id FROM fleet_exports WHERE export_id=?1 AND "
         "attempt=?2");
  s.bind(1, export_id).bind(2, static_cast<int64_t>(e->import_attempt));
  if (!s.step()) return std::nullopt;
  FleetExportRow r;
  r.export_id = export_id;
  r.attempt = e->import_attempt;
  r.fleet = s.text(0);
  r.entry_id = s.text(1);
  r.appended_at = s.i64(2);
  r.batch_id = s.text(3);
  return r;
}

void Journal::record_fleet_job(int64_t export_id, std::string_view client_token,
                               std::string_view job_name, std::string_view input_uri,
                               std::string_view validation_level, std::string_view job_id,
                               std::string_view job_status) {
  detail::require_writable(*this);
  require_fleet_schema(*this);
  Tx tx(*this);
  auto e = get_export(export_id);
  if (e.state == ExportState::importing) return;  // journaled already
  if (e.state != ExportState::uploaded && e.state != ExportState::import_starting)
    throw Error("journal: export " + e.name + " is " + std::string(to_string(e.state)) +
                ", not uploaded: it cannot join fleet job " + std::string(job_name));
  if (e.state == ExportState::uploaded) {
    record_import_token(export_id, client_token, job_name, 1, input_uri, validation_level);
    set_export_state(export_id, ExportState::import_starting,
                     "fleet batch " + std::string(job_name));
  }
  record_import_job(export_id, job_id, job_status);
  set_export_state(export_id, ExportState::importing,
                   "fleet import job " + std::string(job_id) + " (" + std::string(job_name) + ")");
  tx.commit();
}

}  // namespace fe::journal
