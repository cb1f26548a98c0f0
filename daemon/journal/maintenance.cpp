// Keeping the journal: compaction of finished exports (the one writer of `tombstones`, and the
// one operation that deletes rows of the stages' tables: only of exports in a terminal state,
// which no stage writes again, and of answered requests) and online backup.
#include "journal/sql.hpp"

namespace fe::journal {

size_t Journal::compact(std::chrono::seconds older_than) {
  TimeMs cutoff =
      now_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(older_than).count();
  detail::Tx tx(*this);
  std::vector<int64_t> ids;
  {
    const std::string from =
        schema_ >= detail::kStageTables ? "export_view" : "exports";  // one state per export
    detail::Stmt s(*this,
                   "SELECT id FROM " + from +
                       " exports WHERE state IN "
                       "('imported','import_failed','nothing_to_import','failed',"
                       "'superseded') AND finished_at IS NOT NULL AND finished_at <= ? "
                       // A superseded version whose uploaded objects are not all deleted yet keeps
                       // the keys the pipeline still has to delete.
                       "AND NOT (state='superseded' AND EXISTS(SELECT 1 FROM files WHERE "
                       "files.export_id=exports.id AND (import_key<>'' OR archive_key<>''))) "
                       // An export whose archive copy, rejects or report.json still trail its
                       // import (a file `uploading`) keeps what the pipeline resumes them from.
                       "AND NOT EXISTS(SELECT 1 FROM files WHERE files.export_id=exports.id AND "
                       "files.state='uploading') "
                       // The newest imported export of each pipeline stays: it is what
                       // fhir_edge_last_successful_import_timestamp_seconds reads, so a "no import
                       // for 24 h" alert does not fire because the history was compacted.
                       "AND NOT (state='imported' AND exports.id = (SELECT e2.id FROM " +
                       from +
                       " e2 WHERE e2.pipeline=exports.pipeline AND e2.state='imported' "
                       "ORDER BY e2.finished_at DESC, e2.id DESC LIMIT 1))");
    s.bind(1, cutoff);
    while (s.step()) ids.push_back(s.i64(0));
  }
  for (int64_t id : ids) {
    if (schema_ >= 4) {
      // The tombstone first: from now on it is all that says this source was taken.
      detail::Stmt t(
          *this,
          "INSERT OR REPLACE INTO tombstones(pipeline,source_path,digest,name,version,state,"
          "files,resources_valid,resources_rejected,created_at,finished_at,compacted_at) "
          "SELECT pipeline,source_path,digest,name,version,state,files,resources_valid,"
          "resources_rejected,created_at,finished_at,? FROM " +
              std::string(schema_ >= detail::kStageTables ? "export_view" : "exports") +
              " WHERE id=?");
      t.bind(1, now_ms()).bind(2, id).run();
      detail::Stmt(*this,
                   "DELETE FROM line_map WHERE file_id IN (SELECT id FROM files WHERE export_id=?)")
          .bind(1, id)
          .run();
    }
    // Children first; the foreign keys cascade too, but explicit deletes keep this correct on a
    // connection where foreign_keys is off.
    detail::Stmt(*this,
                 "DELETE FROM parts WHERE file_id IN (SELECT id FROM files WHERE export_id=?)")
        .bind(1, id)
        .run();
    detail::Stmt(*this, "DELETE FROM files WHERE export_id=?").bind(1, id).run();
    detail::Stmt(*this, "DELETE FROM import_jobs WHERE export_id=?").bind(1, id).run();
    if (schema_ >= detail::kStageTables)
      detail::Stmt(*this, "DELETE FROM imports WHERE export_id=?").bind(1, id).run();
    detail::Stmt(*this, "DELETE FROM events WHERE export_id=?").bind(1, id).run();
    detail::Stmt(*this, "DELETE FROM exports WHERE id=?").bind(1, id).run();
  }
  if (schema_ >= detail::kStageTables) {
    detail::Stmt(*this,
                 "DELETE FROM requests WHERE id IN (SELECT request_id FROM request_answers WHERE "
                 "done_at <= ?)")
        .bind(1, cutoff)
        .run();
    detail::Stmt(*this, "DELETE FROM request_answers WHERE done_at <= ?").bind(1, cutoff).run();
  } else if (schema_ >= 3) {
    detail::Stmt(*this, "DELETE FROM requests WHERE state<>'pending' AND done_at <= ?")
        .bind(1, cutoff)
        .run();
  }
  if (!ids.empty())
    detail::insert_event(
        *this, std::nullopt, std::nullopt, "compact",
        "removed " + std::to_string(ids.size()) +
            " finished exports (tombstones kept: their sources are not taken again)");
  tx.commit();
  return ids.size();
}

void Journal::backup_to(const std::filesystem::path& dest) const {
  sqlite3* out = nullptr;
  if (sqlite3_open_v2(dest.c_str(), &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string m = out ? sqlite3_errmsg(out) : "out of memory";
    sqlite3_close_v2(out);
    throw Error("journal backup " + dest.string() + ": " + m);
  }
  sqlite3_backup* b = sqlite3_backup_init(out, "main", db_, "main");
  int rc = b ? sqlite3_backup_step(b, -1) : SQLITE_ERROR;
  if (b) sqlite3_backup_finish(b);
  std::string m = sqlite3_errmsg(out);
  sqlite3_close_v2(out);
  if (rc != SQLITE_DONE) throw Error("journal backup " + dest.string() + ": " + m);
}

}  // namespace fe::journal
