// Import batches (schema 7, issue 16 item 2): one StartFHIRImportJob for several exports. The
// batch and its members are journaled in one transaction with every member's job row and state,
// before the Start (contract in journal.hpp, "import batches").
#include "journal/journal.hpp"
#include "journal/ledgers.hpp"
#include "journal/sql.hpp"

namespace fe::journal {

using detail::Stmt;
using detail::Tx;

namespace {

std::optional<BatchRow> read_batch(const Journal& j, const char* where, int64_t key) {
  if (detail::Access::schema(j) < 8) return std::nullopt;
  Stmt s(j, std::string("SELECT id,client_token,job_name,input_uri,group_key,validation_level,"
                        "created_at FROM import_batches WHERE ") +
                where);
  s.bind(1, key);
  if (!s.step()) return std::nullopt;
  BatchRow b;
  b.id = s.i64(0);
  b.client_token = s.text(1);
  b.job_name = s.text(2);
  b.input_uri = s.text(3);
  b.group_key = s.text(4);
  b.validation_level = s.text(5);
  b.created_at = s.i64(6);
  Stmt m(j,
         "SELECT m.export_id FROM import_batch_members m JOIN import_jobs i ON "
         "i.export_id=m.export_id AND i.attempt=m.attempt AND i.part=1 "
         "WHERE m.batch_id=?1 ORDER BY i.id");
  m.bind(1, b.id);
  while (m.step()) b.members.push_back(m.i64(0));
  return b;
}

}  // namespace

int64_t ImportLedger::record_batch(const BatchPlan& plan) {
  detail::require_writable(j_);
  if (detail::Access::schema(j_) < 8)
    throw Error("journal " + detail::Access::path(j_).string() + ": import batches need schema 7");
  if (plan.members.empty()) throw Error("journal: an import batch needs at least one member");
  Tx tx(j_);
  {
    Stmt q(j_, "SELECT id FROM import_batches WHERE client_token=?1");
    q.bind(1, plan.client_token);
    if (q.step()) return q.i64(0);  // journaled already (idempotent): nothing changes
  }
  TimeMs now = now_ms();
  Stmt ins(j_,
           "INSERT INTO import_batches(client_token,job_name,input_uri,group_key,validation_level,"
           "created_at) VALUES(?,?,?,?,?,?)");
  ins.bind(1, plan.client_token).bind(2, plan.job_name).bind(3, plan.input_uri);
  ins.bind(4, plan.group_key).bind(5, plan.validation_level).bind(6, now);
  ins.run();
  int64_t batch_id = 0;
  {
    Stmt q(j_, "SELECT last_insert_rowid()");
    q.step();
    batch_id = q.i64(0);
  }
  std::string names;
  for (auto id : plan.members) {
    auto row = j_.get_export(id);
    if (row.state != ExportState::uploaded)
      throw Error("journal: export " + row.name + " is " + std::string(to_string(row.state)) +
                  ", not uploaded: it cannot join import batch " + plan.job_name);
    {
      Stmt q(j_,
             "SELECT b.job_name FROM import_batch_members m JOIN import_batches b ON "
             "b.id=m.batch_id WHERE m.export_id=?1 AND m.attempt=?2");
      q.bind(1, id).bind(2, static_cast<int64_t>(row.import_attempt));
      if (q.step())
        throw Error("journal: export " + row.name + " is in import batch " + q.text(0) +
                    " already; an export is in one batch per attempt");
    }
    Stmt m(j_, "INSERT INTO import_batch_members(batch_id,export_id,attempt) VALUES(?,?,?)");
    m.bind(1, batch_id).bind(2, id).bind(3, static_cast<int64_t>(row.import_attempt));
    m.run();
    record_import_token(id, plan.client_token, plan.job_name, 1, plan.input_uri,
                        plan.validation_level);
    set_export_state(id, ExportState::import_starting,
                     "StartFHIRImportJob for batch " + plan.job_name + " (" +
                         std::to_string(plan.members.size()) + " exports)");
    names += (names.empty() ? "" : ", ") + row.name;
  }
  detail::insert_event(j_, std::nullopt, std::nullopt, "batch",
                       "import batch " + plan.job_name + " journaled with " +
                           std::to_string(plan.members.size()) + " exports: " + names);
  tx.commit();
  return batch_id;
}

int64_t Journal::record_batch(const BatchPlan& plan) {
  return ImportLedger(*this).record_batch(plan);
}

std::optional<BatchRow> Journal::batch(int64_t batch_id) const {
  return read_batch(*this, "id=?1", batch_id);
}

std::optional<BatchRow> Journal::batch_of(int64_t export_id) const {
  if (detail::Access::schema(*this) < 8) return std::nullopt;
  Stmt s(*this, std::string("SELECT batch_id FROM import_batch_members WHERE export_id=?1 AND "
                            "attempt=") +
                    detail::current_attempt(detail::Access::schema(*this)));
  s.bind(1, export_id);
  if (!s.step()) return std::nullopt;
  return batch(s.i64(0));
}

}  // namespace fe::journal
