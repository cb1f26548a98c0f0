// Reading the journal: every query any stage, `status` and metrics make. Nothing here writes. A
// read-only journal of an older schema (status before the daemon migrated it) is read as it is:
// each query knows which columns and tables a version has.
#include <algorithm>

#include "journal/digest.hpp"
#include "journal/sql.hpp"

namespace fe::journal {

using detail::Stmt;

// ---------------------------------------------------------------- exports

std::optional<ExportRow> Journal::find_export(int64_t id) const {
  Stmt s(*this, detail::select_exports(schema_) + " WHERE id=?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return detail::read_export(s);
}

std::optional<ExportRow> Journal::find_export(std::string_view name) const {
  Stmt s(*this, detail::select_exports(schema_) + " WHERE name=?");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return detail::read_export(s);
}

ExportRow Journal::get_export(int64_t id) const {
  auto r = find_export(id);
  if (!r) throw Error("journal " + path_.string() + ": no export with id " + std::to_string(id));
  return *r;
}

std::vector<ExportRow> Journal::exports(bool include_finished) const {
  Stmt s(*this, detail::select_exports(schema_) + " ORDER BY created_at DESC, id DESC");
  std::vector<ExportRow> out;
  while (s.step()) {
    auto r = detail::read_export(s);
    if (include_finished || !is_terminal(r.state)) out.push_back(std::move(r));
  }
  return out;
}

std::vector<ExportRow> Journal::exports_in(ExportState state) const {
  Stmt s(*this, detail::select_exports(schema_) + " WHERE state=? ORDER BY id");
  s.bind(1, to_string(state));
  std::vector<ExportRow> out;
  while (s.step()) out.push_back(detail::read_export(s));
  return out;
}

bool Journal::has_legacy_digest(std::string_view pipeline, std::string_view source_path) const {
  // substr, not LIKE: '_' would be a wildcard and LIKE is case-insensitive.
  Stmt s(*this, schema_ >= 4
                    ? "SELECT 1 FROM exports WHERE pipeline=?1 AND source_path=?2 AND "
                      "substr(digest,1,length(?3))=?3 UNION ALL SELECT 1 FROM tombstones WHERE "
                      "pipeline=?1 AND source_path=?2 AND substr(digest,1,length(?3))=?3"
                    : "SELECT 1 FROM exports WHERE pipeline=?1 AND source_path=?2 AND "
                      "substr(digest,1,length(?3))=?3");
  s.bind(1, pipeline).bind(2, source_path).bind(3, kLegacyDigestPrefix);
  return s.step();
}

bool Journal::source_seen(std::string_view pipeline, std::string_view source_path) const {
  Stmt s(*this, schema_ >= 4 ? "SELECT 1 FROM exports WHERE pipeline=?1 AND source_path=?2 UNION "
                               "ALL SELECT 1 FROM tombstones WHERE pipeline=?1 AND source_path=?2"
                             : "SELECT 1 FROM exports WHERE pipeline=?1 AND source_path=?2");
  s.bind(1, pipeline).bind(2, source_path);
  return s.step();
}

std::optional<ExportRow> Journal::pending_export(std::string_view pipeline,
                                                 std::string_view source_path) const {
  Stmt s(*this, detail::select_exports(schema_) +
                    " WHERE pipeline=? AND source_path=? AND substr(digest,1,length(?))=? AND "
                    "state!=? ORDER BY id DESC LIMIT 1");
  s.bind(1, pipeline).bind(2, source_path).bind(3, kPendingDigestPrefix);
  s.bind(4, kPendingDigestPrefix).bind(5, to_string(ExportState::superseded));
  if (!s.step()) return std::nullopt;
  return detail::read_export(s);
}

std::optional<ExportRow> Journal::find_tombstone(std::string_view name) const {
  if (schema_ < 4) return std::nullopt;
  Stmt s(*this, std::string("SELECT ") + detail::kTombstoneCols + " FROM tombstones WHERE name=?");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return detail::read_tombstone(s);
}

// ---------------------------------------------------------------- files and parts

std::vector<FileRow> Journal::files(int64_t export_id) const {
  Stmt s(*this, std::string("SELECT ") + detail::kFileCols +
                    " FROM files WHERE export_id=? ORDER BY name");
  s.bind(1, export_id);
  std::vector<FileRow> out;
  while (s.step()) out.push_back(detail::read_file(s));
  return out;
}

FileRow Journal::get_file(int64_t file_id) const {
  Stmt s(*this, std::string("SELECT ") + detail::kFileCols + " FROM files WHERE id=?");
  s.bind(1, file_id);
  if (!s.step())
    throw Error("journal " + path_.string() + ": no file with id " + std::to_string(file_id));
  return detail::read_file(s);
}

int64_t Journal::source_line(int64_t file_id, int64_t import_line) const {
  if (schema_ < 4) return import_line;
  Stmt s(*this,
         "SELECT import_line, source_line FROM line_map WHERE file_id=? AND import_line<=? "
         "ORDER BY import_line DESC LIMIT 1");
  s.bind(1, file_id).bind(2, import_line);
  if (!s.step()) return import_line;
  return s.i64(1) + (import_line - s.i64(0));
}

std::vector<PartRow> Journal::parts(int64_t file_id, PartKind kind) const {
  Stmt s(*this,
         "SELECT part_number,offset,length,etag,crc32c,state FROM parts WHERE file_id=? AND "
         "kind=? ORDER BY part_number");
  s.bind(1, file_id).bind(2, to_string(kind));
  std::vector<PartRow> out;
  while (s.step()) {
    PartRow r;
    r.file_id = file_id;
    r.kind = kind;
    r.part_number = static_cast<int>(s.i64(0));
    r.offset = s.i64(1);
    r.length = s.i64(2);
    r.etag = s.text(3);
    r.crc32c = s.text(4);
    r.state = parse_part_state(s.text(5)).value_or(PartState::pending);
    out.push_back(std::move(r));
  }
  return out;
}

// ---------------------------------------------------------------- import jobs

namespace {
constexpr const char* kJobCols =
    "attempt,part,input_uri,client_token,job_name,job_id,status,progress_json,submitted_at,"
    "outcome,updated_at,validation_level,reported_level,message";
// Schema 3 and 4 (read-only, not migrated yet): no levels, no message.
constexpr const char* kJobColsV4 =
    "attempt,part,input_uri,client_token,job_name,job_id,status,progress_json,submitted_at,"
    "outcome,updated_at,'','',''";
// Schema 2 (read-only, not migrated yet): one job per export, no attempt/part/input_uri.
constexpr const char* kJobColsV2 =
    "1,1,'',client_token,job_name,job_id,status,progress_json,submitted_at,outcome,updated_at,'',"
    "'',''";

ImportJobRow read_job(const Stmt& s, int64_t export_id) {
  ImportJobRow r;
  r.export_id = export_id;
  r.attempt = static_cast<int>(s.i64(0));
  r.part = static_cast<int>(s.i64(1));
  r.input_uri = s.text(2);
  r.client_token = s.text(3);
  r.job_name = s.text(4);
  r.job_id = s.text(5);
  r.status = s.text(6);
  r.progress_json = s.text(7);
  r.submitted_at = s.i64(8);
  r.outcome = s.text(9);
  r.updated_at = s.i64(10);
  r.validation_level = s.text(11);
  r.reported_level = s.text(12);
  r.message = s.text(13);
  return r;
}
}  // namespace

std::optional<ImportJobRow> Journal::import_job(int64_t export_id, int part) const {
  for (auto& j : import_jobs(export_id))
    if (j.part == part) return std::move(j);
  return std::nullopt;
}

std::vector<ImportJobRow> Journal::import_jobs(int64_t export_id) const {
  std::string sql =
      schema_ >= 3 ? std::string("SELECT ") + (schema_ >= 5 ? kJobCols : kJobColsV4) +
                         " FROM import_jobs WHERE export_id=?1 AND attempt=" +
                         detail::current_attempt(schema_) + " ORDER BY part"
                   : std::string("SELECT ") + kJobColsV2 + " FROM import_jobs WHERE export_id=?1";
  Stmt s(*this, sql);
  s.bind(1, export_id);
  std::vector<ImportJobRow> out;
  while (s.step()) out.push_back(read_job(s, export_id));
  return out;
}

// ---------------------------------------------------------------- requests

namespace {
// From schema 6 the daemon's answer is a row of request_answers (none: pending).
std::string select_requests(int schema) {
  if (schema >= detail::kStageTables)
    return "SELECT r.id,r.time,r.kind,r.target,r.args,COALESCE(a.state,'pending'),"
           "COALESCE(a.result,''),a.done_at FROM requests r LEFT JOIN request_answers a ON "
           "a.request_id=r.id";
  return "SELECT r.id,r.time,r.kind,r.target,r.args,r.state,r.result,r.done_at FROM requests r";
}

RequestRow read_request(const Stmt& s) {
  RequestRow r;
  r.id = s.i64(0);
  r.time = s.i64(1);
  r.kind = s.text(2);
  r.target = s.text(3);
  r.args = s.text(4);
  r.state = s.text(5);
  r.result = s.text(6);
  if (!s.is_null(7)) r.done_at = s.i64(7);
  return r;
}
}  // namespace

std::optional<RequestRow> Journal::request(int64_t id) const {
  if (schema_ < 3) return std::nullopt;
  Stmt s(*this, select_requests(schema_) + " WHERE r.id=?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_request(s);
}

std::vector<RequestRow> Journal::pending_requests() const {
  std::vector<RequestRow> out;
  if (schema_ < 3) return out;
  Stmt s(*this, select_requests(schema_) + (schema_ >= detail::kStageTables
                                                ? " WHERE a.request_id IS NULL ORDER BY r.id"
                                                : " WHERE r.state='pending' ORDER BY r.id"));
  while (s.step()) out.push_back(read_request(s));
  return out;
}

// ---------------------------------------------------------------- events

std::vector<EventRow> Journal::events(std::optional<int64_t> export_id, size_t limit) const {
  const char* sql = export_id
                        ? "SELECT id,time,export_id,file_id,kind,message FROM events WHERE "
                          "export_id=? ORDER BY id DESC LIMIT ?"
                        : "SELECT id,time,export_id,file_id,kind,message FROM events ORDER BY "
                          "id DESC LIMIT ?";
  Stmt s(*this, sql);
  int i = 1;
  if (export_id) s.bind(i++, *export_id);
  s.bind(i, static_cast<int64_t>(limit));
  std::vector<EventRow> out;
  while (s.step()) {
    EventRow e;
    e.id = s.i64(0);
    e.time = s.i64(1);
    if (!s.is_null(2)) e.export_id = s.i64(2);
    if (!s.is_null(3)) e.file_id = s.i64(3);
    e.kind = s.text(4);
    e.message = s.text(5);
    out.push_back(std::move(e));
  }
  std::reverse(out.begin(), out.end());  // oldest first
  return out;
}

}  // namespace fe::journal
