// Exports the watcher has seen that wait for their completion rule (table waiting_exports,
// schema 7; issue 17 item 3). See journal.hpp.
#include <algorithm>
#include <set>

#include "journal/journal.hpp"
#include "journal/sql.hpp"

namespace fe::journal {

namespace {
constexpr int kWaitingSchema = 7;
}

void Journal::record_waiting(std::string_view pipeline, const std::vector<WaitingRow>& rows) {
  detail::require_writable(*this);
  const TimeMs now = now_ms();
  detail::Tx tx(*this);
  std::set<std::string> keep;
  {
    // An export still waiting keeps its first `since`, also across a restart of the daemon (the
    // watcher's clock starts again at each start).
    detail::Stmt up(*this,
                    "INSERT INTO waiting_exports(pipeline,path,name,rule,missing,since,updated_at) "
                    "VALUES(?1,?2,?3,?4,?5,?6,?7) ON CONFLICT(pipeline,path) DO UPDATE SET "
                    "name=excluded.name, rule=excluded.rule, missing=excluded.missing, "
                    "since=MIN(since, excluded.since), updated_at=excluded.updated_at");
    for (const auto& r : rows) {
      up.reset();
      up.bind(1, pipeline)
          .bind(2, r.path)
          .bind(3, r.name)
          .bind(4, r.rule)
          .bind(5, r.missing)
          .bind(6, r.since ? r.since : now)
          .bind(7, now)
          .run();
      keep.insert(r.path);
    }
  }
  std::vector<std::string> gone;
  {
    detail::Stmt s(*this, "SELECT path FROM waiting_exports WHERE pipeline=?1");
    s.bind(1, pipeline);
    while (s.step())
      if (auto p = s.text(0); !keep.count(p)) gone.push_back(std::move(p));
  }
  detail::Stmt del(*this, "DELETE FROM waiting_exports WHERE pipeline=?1 AND path=?2");
  for (const auto& p : gone) {
    del.reset();
    del.bind(1, pipeline).bind(2, p).run();
  }
  tx.commit();
}

void Journal::forget_waiting_except(const std::vector<std::string>& pipelines) {
  detail::require_writable(*this);
  std::vector<std::string> gone;
  {
    detail::Stmt s(*this, "SELECT DISTINCT pipeline FROM waiting_exports");
    while (s.step())
      if (auto p = s.text(0); std::find(pipelines.begin(), pipelines.end(), p) == pipelines.end())
        gone.push_back(std::move(p));
  }
  if (gone.empty()) return;
  detail::Tx tx(*this);
  detail::Stmt del(*this, "DELETE FROM waiting_exports WHERE pipeline=?1");
  for (const auto& p : gone) {
    del.reset();
    del.bind(1, p).run();
  }
  tx.commit();
}

std::vector<WaitingRow> Journal::waiting_exports() const {
  std::vector<WaitingRow> out;
  if (detail::Access::schema(*this) < kWaitingSchema) return out;
  detail::Stmt s(*this,
                 "SELECT pipeline,name,path,rule,missing,since,updated_at FROM waiting_exports "
                 "ORDER BY since, pipeline, path");
  while (s.step())
    out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.i64(5), s.i64(6)});
  return out;
}

}  // namespace fe::journal
