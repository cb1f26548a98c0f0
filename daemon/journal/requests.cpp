// Operator requests (`fhir-edge retry`, `fhir-edge journal compact`): the CLI inserts a row into
// `requests` (RequestLedger); the daemon's mailbox (or the CLI holding the lock when no daemon
// runs) applies it and writes its answer (MailboxLedger), into `request_answers` from schema 6.
#include "journal/ledgers.hpp"
#include "journal/sql.hpp"

namespace fe::journal {

using detail::Access;

// ---------------------------------------------------------------- the CLI: insert

int64_t RequestLedger::submit(const std::filesystem::path& path, std::string_view kind,
                              std::string_view target, std::string_view args) {
  if (!std::filesystem::exists(path)) throw Error("journal " + path.string() + " does not exist");
  sqlite3* db = nullptr;
  struct Close {
    sqlite3*& db;
    ~Close() { sqlite3_close_v2(db); }
  } close{db};
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, nullptr) !=
      SQLITE_OK)
    throw Error("journal " + path.string() +
                ": cannot open for writing: " + (db ? sqlite3_errmsg(db) : "out of memory"));
  sqlite3_busy_timeout(db, 5000);  // the daemon's transactions are short
  int version = 0;
  {
    detail::Stmt v(db, path, "PRAGMA user_version");
    v.step();
    version = static_cast<int>(v.i64(0));
  }
  if (version < 3)
    throw Error("journal " + path.string() + " has schema version " + std::to_string(version) +
                "; the running daemon is older than this fhir-edge and cannot take requests "
                "(restart it with this version)");
  detail::Tx tx(db, path);
  detail::Stmt s(db, path, "INSERT INTO requests(time,kind,target,args) VALUES(?,?,?,?)");
  s.bind(1, now_ms()).bind(2, kind).bind(3, target).bind(4, args).run();
  int64_t id = sqlite3_last_insert_rowid(db);
  tx.commit();
  return id;
}

int64_t RequestLedger::add(std::string_view kind, std::string_view target, std::string_view args) {
  detail::Tx tx(j_);
  detail::Stmt s(j_, "INSERT INTO requests(time,kind,target,args) VALUES(?,?,?,?)");
  s.bind(1, now_ms()).bind(2, kind).bind(3, target).bind(4, args).run();
  int64_t id = sqlite3_last_insert_rowid(Access::db(j_));
  tx.commit();
  return id;
}

// ---------------------------------------------------------------- the mailbox: answer

void MailboxLedger::answer(int64_t request_id, bool done, std::string_view result) {
  detail::Tx tx(j_);
  const std::string_view state = done ? "done" : "refused";
  if (Access::schema(j_) >= detail::kStageTables) {
    // The first answer stands; a request that is not there (compacted) gets none.
    detail::Stmt s(j_,
                   "INSERT OR IGNORE INTO request_answers(request_id,state,result,done_at) "
                   "SELECT id,?,?,? FROM requests WHERE id=?");
    s.bind(1, state).bind(2, result).bind(3, now_ms()).bind(4, request_id).run();
  } else {
    detail::Stmt s(j_,
                   "UPDATE requests SET state=?, result=?, done_at=? WHERE id=? AND "
                   "state='pending'");
    s.bind(1, state).bind(2, result).bind(3, now_ms()).bind(4, request_id).run();
  }
  tx.commit();
}

// ---------------------------------------------------------------- Journal's names for them

int64_t Journal::submit_request(const std::filesystem::path& path, std::string_view kind,
                                std::string_view target, std::string_view args) {
  return RequestLedger::submit(path, kind, target, args);
}

int64_t Journal::add_request(std::string_view kind, std::string_view target,
                             std::string_view args) {
  return RequestLedger(*this).add(kind, target, args);
}

void Journal::finish_request(int64_t id, bool done, std::string_view result) {
  MailboxLedger(*this).answer(id, done, result);
}

// Applying a request is the operator's action itself: retry_export and compact write through the
// owners' ledgers and compaction; the answer is written after, by finish_request.
std::pair<bool, std::string> Journal::apply_request(const RequestRow& r) {
  if (r.kind == "retry") {
    auto o = retry_export(r.target, r.args == "reimport");
    return {o.applied, o.message};
  }
  if (r.kind == "compact") {
    int64_t secs = 0;
    try {
      secs = std::stoll(r.args);
    } catch (const std::exception&) {
      return {false, "compact: bad age '" + r.args + "'"};
    }
    if (secs < 0) return {false, "compact: negative age"};
    auto n = compact(std::chrono::seconds(secs));
    return {true, "removed " + std::to_string(n) + " finished export(s) older than " +
                      std::to_string(secs) + " s"};
  }
  return {false, "unknown request kind '" + r.kind + "'"};
}

}  // namespace fe::journal
