// The pipeline's ingest writes (IngestLedger): an export from its discovery until the pipeline
// hands it over in `uploaded`, its files, their line anchors and the part plan.
#include <algorithm>

#include "journal/digest.hpp"
#include "journal/ledgers.hpp"
#include "journal/sql.hpp"

namespace fe::journal {

using detail::Access;
using detail::Owner;
using detail::Stmt;
using detail::Tx;

namespace detail {

// The export's totals follow its files (counts and sizes). bytes_uploaded follows the parts: from
// schema 6 export_view derives it (the upload ledger writes no exports row); a journal held below
// that stores it.
void recompute_totals(const Journal& j, int64_t export_id) {
  Stmt s(j,
         std::string("UPDATE exports SET "
                     " files=(SELECT COUNT(*) FROM files WHERE export_id=?1),"
                     " resources_valid=(SELECT COALESCE(SUM(resources_valid),0) FROM files WHERE "
                     "   export_id=?1),"
                     " resources_rejected=(SELECT COALESCE(SUM(resources_rejected),0) FROM files"
                     "   WHERE export_id=?1),"
                     " bytes_source=(SELECT COALESCE(SUM(size),0) FROM files WHERE export_id=?1),"
                     " bytes_spooled=(SELECT COALESCE(SUM(bytes_spooled),0) FROM files WHERE "
                     "   export_id=?1),") +
             (Access::schema(j) >= detail::kStageTables
                  ? ""
                  : " bytes_uploaded=(SELECT COALESCE(SUM(p.length),0) FROM parts p JOIN "
                    "   files f ON p.file_id=f.id WHERE f.export_id=?1 AND "
                    "   p.state='uploaded'),") +
             " updated_at=?2 WHERE id=?1");
  s.bind(1, export_id).bind(2, now_ms()).run();
}

}  // namespace detail

// ---------------------------------------------------------------- exports

Taken IngestLedger::take_export(std::string_view pipeline, std::string_view source_path,
                                std::string_view digest, std::string_view base_name,
                                const std::vector<std::pair<std::string, SourceIdentity>>& files) {
  Tx tx(j_);
  {
    Stmt s(j_, detail::select_exports(Access::schema(j_)) +
                   " WHERE pipeline=? AND source_path=? AND digest=?");
    s.bind(1, pipeline).bind(2, source_path).bind(3, digest);
    if (s.step()) return {detail::read_export(s), true};
  }
  if (Access::schema(j_) >= 4) {
    // Compacted: the export is gone but its tombstone says it was taken (and how it ended).
    Stmt s(j_, (std::string("SELECT ") + detail::kTombstoneCols +
                " FROM tombstones WHERE pipeline=? AND source_path=? AND digest=?")
                   .c_str());
    s.bind(1, pipeline).bind(2, source_path).bind(3, digest);
    if (s.step()) return {detail::read_tombstone(s), true, true};
  }
  return insert_export(pipeline, source_path, digest, base_name, files, tx);
}

std::optional<Taken> IngestLedger::take_new_source(
    std::string_view pipeline, std::string_view source_path, std::string_view base_name,
    const std::vector<std::pair<std::string, SourceIdentity>>& files) {
  Tx tx(j_);
  if (j_.source_seen(pipeline, source_path)) return std::nullopt;
  return insert_export(pipeline, source_path, {}, base_name, files, tx);
}

// The new export's row (its version and unique name), its files and its first event; commits.
// An empty digest: taken before it (kPendingDigestPrefix + the name).
Taken IngestLedger::insert_export(std::string_view pipeline, std::string_view source_path,
                                  std::string_view digest, std::string_view base_name,
                                  const std::vector<std::pair<std::string, SourceIdentity>>& files,
                                  detail::Tx& tx) {
  int version = 1;
  {
    Stmt s(j_, Access::schema(j_) >= 4
                   ? "SELECT (SELECT COUNT(*) FROM exports WHERE pipeline=?1 AND "
                     "source_path=?2) + (SELECT COUNT(*) FROM tombstones WHERE pipeline=?1 "
                     "AND source_path=?2)"
                   : "SELECT COUNT(*) FROM exports WHERE pipeline=?1 AND source_path=?2");
    s.bind(1, pipeline).bind(2, source_path);
    s.step();
    version = static_cast<int>(s.i64(0)) + 1;
  }
  // The name is the S3 key component and the JobName: it must be unique across the journal. A
  // new version of the same source gets ".v<N>"; a clash with another pipeline's export gets the
  // next free suffix.
  std::string name(base_name);
  if (version > 1) name += ".v" + std::to_string(version);
  for (int n = 2;; ++n) {
    Stmt s(j_, Access::schema(j_) >= 4
                   ? "SELECT 1 FROM exports WHERE name=?1 UNION ALL SELECT 1 FROM tombstones "
                     "WHERE name=?1"
                   : "SELECT 1 FROM exports WHERE name=?1");
    s.bind(1, name);
    if (!s.step()) break;
    name = std::string(base_name) + ".v" + std::to_string(version) + "-" + std::to_string(n);
  }
  TimeMs now = now_ms();
  int64_t id;
  const std::string stored =
      digest.empty() ? std::string(kPendingDigestPrefix) + name : std::string(digest);
  {
    Stmt s(j_,
           "INSERT INTO exports(name,pipeline,source_path,digest,version,state,created_at,"
           "updated_at) VALUES(?,?,?,?,?,?,?,?)");
    s.bind(1, name).bind(2, pipeline).bind(3, source_path).bind(4, stored).bind(5, version);
    s.bind(6, to_string(ExportState::discovered)).bind(7, now).bind(8, now).run();
    id = sqlite3_last_insert_rowid(Access::db(j_));
  }
  for (const auto& [fname, ident] : files) {
    Stmt s(j_,
           "INSERT INTO files(export_id,name,size,mtime_ns,inode,dev,state) VALUES(?,?,?,?,?,?,?)");
    s.bind(1, id).bind(2, fname).bind(3, static_cast<int64_t>(ident.size));
    s.bind(4, ident.mtime_ns).bind(5, static_cast<int64_t>(ident.inode));
    s.bind(6, static_cast<int64_t>(ident.dev)).bind(7, to_string(FileState::pending)).run();
  }
  detail::recompute_totals(j_, id);
  detail::insert_event(j_, id, std::nullopt, "state",
                       "discovered " + std::string(source_path) + " (" +
                           std::to_string(files.size()) + " files, version " +
                           std::to_string(version) +
                           (digest.empty() ? "; content digest computed as it spools" : "") + ")");
  tx.commit();
  return {j_.get_export(id), false};
}

bool IngestLedger::record_digest(int64_t export_id, std::string_view digest) {
  Tx tx(j_);
  auto row = j_.get_export(export_id);
  if (row.digest == digest) return true;  // recorded before (a redo)
  if (!is_pending_digest(row.digest) || is_pending_digest(digest) || digest.empty())
    throw Error("journal: export " + row.name + ": content digest " + row.digest +
                " cannot become " + std::string(digest));
  {
    // Another version of this source with the same content (UNIQUE(pipeline, source_path,
    // digest)): this one is not recorded; the caller ends it.
    Stmt s(j_, Access::schema(j_) >= 4
                   ? "SELECT 1 FROM exports WHERE pipeline=?1 AND source_path=?2 AND digest=?3 "
                     "UNION ALL SELECT 1 FROM tombstones WHERE pipeline=?1 AND source_path=?2 "
                     "AND digest=?3"
                   : "SELECT 1 FROM exports WHERE pipeline=?1 AND source_path=?2 AND digest=?3");
    s.bind(1, row.pipeline).bind(2, row.source_path).bind(3, digest);
    if (s.step()) return false;
  }
  Stmt s(j_, "UPDATE exports SET digest=?, updated_at=? WHERE id=?");
  s.bind(1, digest).bind(2, now_ms()).bind(3, export_id).run();
  detail::insert_event(j_, export_id, std::nullopt, "state",
                       "content digest " + std::string(digest));
  tx.commit();
  return true;
}

void IngestLedger::set_export_state(int64_t export_id, ExportState to, std::string_view message) {
  detail::require_writable(j_);
  if (to == ExportState::parked) return park_export(export_id, message);
  detail::owned_state_change(j_, Owner::ingest, export_id, to, "state", message);
}

void IngestLedger::park_export(int64_t export_id, std::string_view reason) {
  detail::owned_state_change(j_, Owner::ingest, export_id, ExportState::parked, "park", reason);
}

void IngestLedger::unpark_export(int64_t export_id, std::string_view why) {
  detail::owned_state_change(j_, Owner::ingest, export_id, ExportState::parked, "unpark", why);
}

void IngestLedger::fail_export(int64_t export_id, std::string_view error) {
  detail::owned_state_change(j_, Owner::ingest, export_id, ExportState::failed, "error", error);
}

void IngestLedger::set_export_error(int64_t export_id, std::string_view error) {
  Tx tx(j_);
  auto row = j_.get_export(export_id);
  detail::require_owner(j_, Owner::ingest, row);
  Stmt s(j_, "UPDATE exports SET last_error=?, updated_at=? WHERE id=?");
  s.bind(1, error).bind(2, now_ms()).bind(3, export_id).run();
  detail::insert_event(j_, export_id, std::nullopt, "error", error);
  tx.commit();
}

// ---------------------------------------------------------------- files

void IngestLedger::set_file_state(int64_t file_id, FileState to, std::string_view message) {
  Tx tx(j_);
  auto f = j_.get_file(file_id);
  if (!allowed(f.state, to))
    throw Error("journal: file " + f.name + ": illegal transition " +
                std::string(to_string(f.state)) + " -> " + std::string(to_string(to)));
  Stmt s(j_, "UPDATE files SET state=?, last_error=? WHERE id=?");
  s.bind(1, to_string(to));
  s.bind(2, to == FileState::failed ? message : std::string_view{}).bind(3, file_id).run();
  std::string text =
      f.name + ": " + std::string(to_string(f.state)) + " -> " + std::string(to_string(to));
  if (!message.empty()) text += ": " + std::string(message);
  detail::insert_event(j_, f.export_id, file_id, "file", text);
  detail::recompute_totals(j_, f.export_id);
  tx.commit();
}

void IngestLedger::record_spooled(int64_t file_id, const SpoolOutcome& o,
                                  const std::function<bool(LineAnchor&)>& next_anchor) {
  Tx tx(j_);
  auto f = j_.get_file(file_id);
  if (!allowed(f.state, FileState::spooled))
    throw Error("journal: file " + f.name + ": illegal transition " +
                std::string(to_string(f.state)) + " -> spooled");
  if (Access::schema(j_) >= 4) {
    // A redo after a crash writes the same anchors again: start from none.
    Stmt(j_, "DELETE FROM line_map WHERE file_id=?").bind(1, file_id).run();
    if (next_anchor) {
      sqlite3_stmt* ins = nullptr;
      if (sqlite3_prepare_v2(Access::db(j_),
                             "INSERT OR REPLACE INTO line_map(file_id,import_line,source_line) "
                             "VALUES(?,?,?)",
                             -1, &ins, nullptr) != SQLITE_OK)
        throw Error("journal " + Access::path(j_).string() + ": " + sqlite3_errmsg(Access::db(j_)));
      struct Finalize {
        sqlite3_stmt* st;
        ~Finalize() { sqlite3_finalize(st); }
      } fin{ins};
      LineAnchor a;
      while (next_anchor(a)) {
        sqlite3_bind_int64(ins, 1, file_id);
        sqlite3_bind_int64(ins, 2, a.import_line);
        sqlite3_bind_int64(ins, 3, a.source_line);
        if (sqlite3_step(ins) != SQLITE_DONE)
          throw Error("journal " + Access::path(j_).string() + ": " +
                      sqlite3_errmsg(Access::db(j_)));
        sqlite3_reset(ins);
      }
    }
  }
  Stmt s(j_,
         "UPDATE files SET state='spooled', resources_valid=?, resources_rejected=?, "
         "bytes_uncompressed=?, bytes_spooled=?, checksum=?, last_error='' WHERE id=?");
  s.bind(1, o.resources_valid).bind(2, o.resources_rejected).bind(3, o.bytes_uncompressed);
  s.bind(4, o.bytes_spooled).bind(5, o.checksum).bind(6, file_id).run();
  detail::insert_event(j_, f.export_id, file_id, "file",
                       f.name + ": spooled (" + std::to_string(o.resources_valid) + " valid, " +
                           std::to_string(o.resources_rejected) + " rejected, " +
                           std::to_string(o.bytes_spooled) + " bytes)");
  detail::recompute_totals(j_, f.export_id);
  tx.commit();
}

void IngestLedger::record_file_rejected(int64_t file_id, int64_t invalid_lines,
                                        std::string_view message) {
  Tx tx(j_);
  auto f = j_.get_file(file_id);
  if (!allowed(f.state, FileState::rejected))
    throw Error("journal: file " + f.name + ": illegal transition " +
                std::string(to_string(f.state)) + " -> rejected");
  Stmt s(j_,
         "UPDATE files SET state='rejected', resources_valid=0, resources_rejected=?, "
         "last_error='' WHERE id=?");
  s.bind(1, invalid_lines).bind(2, file_id).run();
  std::string text = f.name + ": " + std::string(to_string(f.state)) + " -> rejected";
  if (!message.empty()) text += ": " + std::string(message);
  detail::insert_event(j_, f.export_id, file_id, "file", text);
  detail::recompute_totals(j_, f.export_id);
  tx.commit();
}

void IngestLedger::set_file_error(int64_t file_id, std::string_view error) {
  Tx tx(j_);
  auto f = j_.get_file(file_id);
  Stmt s(j_, "UPDATE files SET last_error=? WHERE id=?");
  s.bind(1, error).bind(2, file_id).run();
  detail::insert_event(j_, f.export_id, file_id, "error", f.name + ": " + std::string(error));
  tx.commit();
}

// ---------------------------------------------------------------- the part plan

// The spooler knows each part's byte range (and, for the archive, its CRC32C from the frame
// index) when the file is spooled; the upload ledger records how each part's upload went.
void IngestLedger::plan_parts(int64_t file_id, PartKind kind, const std::vector<PartPlan>& parts,
                              bool whole) {
  Tx tx(j_);
  j_.get_file(file_id);
  int64_t last = 0;
  for (const auto& p : parts) {
    // A row with the same range and CRC32C keeps its state and ETag (a part streamed while its
    // file was spooling, a re-plan after a crash). One that differs belongs to other content (the
    // file spooled again after a restart with another validation level): it is pending again.
    Stmt s(j_,
           "INSERT INTO parts(file_id,kind,part_number,offset,length,crc32c,state) "
           "VALUES(?,?,?,?,?,?,'pending') ON CONFLICT(file_id,kind,part_number) DO UPDATE SET "
           "offset=excluded.offset, length=excluded.length, crc32c=excluded.crc32c, "
           "state='pending', etag='' WHERE offset!=excluded.offset OR length!=excluded.length OR "
           "crc32c!=excluded.crc32c");
    s.bind(1, file_id).bind(2, to_string(kind)).bind(3, p.part_number).bind(4, p.offset);
    s.bind(5, p.length).bind(6, p.crc32c).run();
    last = std::max<int64_t>(last, p.part_number);
  }
  if (whole) {
    Stmt d(j_, "DELETE FROM parts WHERE file_id=? AND kind=? AND part_number>?");
    d.bind(1, file_id).bind(2, to_string(kind)).bind(3, last).run();
  }
  tx.commit();
}

}  // namespace fe::journal
