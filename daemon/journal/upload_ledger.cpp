// The upload machine's writes (UploadLedger, daemon/upload/): which S3 object and multipart upload
// each file's import and archive copy go to, and how far each planned part got.
#include "journal/ledgers.hpp"
#include "journal/sql.hpp"

namespace fe::journal {

using detail::Access;
using detail::Stmt;
using detail::Tx;

namespace {
// A journal held below schema 6 stores bytes_uploaded in the exports row; from 6 export_view
// derives it from the parts, so the upload ledger writes no exports row.
void uploaded_bytes_changed(const Journal& j, int64_t export_id) {
  if (Access::schema(j) < detail::kStageTables) detail::recompute_totals(j, export_id);
}
}  // namespace

// ---------------------------------------------------------------- objects

void UploadLedger::set_file_upload(int64_t file_id, PartKind kind, std::string_view key,
                                   std::string_view upload_id) {
  Tx tx(j_);
  auto f = j_.get_file(file_id);
  Stmt s(j_, kind == PartKind::import
                 ? "UPDATE files SET import_key=?, import_upload_id=? WHERE id=?"
                 : "UPDATE files SET archive_key=?, archive_upload_id=? WHERE id=?");
  s.bind(1, key).bind(2, upload_id).bind(3, file_id).run();
  detail::insert_event(
      j_, f.export_id, file_id, "upload",
      f.name + ": " + std::string(to_string(kind)) + " upload " +
          (upload_id.empty() ? std::string("(single PUT)") : std::string(upload_id)) + " to " +
          std::string(key));
  tx.commit();
}

void UploadLedger::record_object_deleted(int64_t file_id, PartKind kind, std::string_view bucket) {
  Tx tx(j_);
  auto f = j_.get_file(file_id);
  const std::string& key = kind == PartKind::import ? f.import_key : f.archive_key;
  const std::string text = f.name + ": " + std::string(to_string(kind)) + " object s3://" +
                           std::string(bucket) + "/" + key +
                           " deleted (superseded version, never imported)";
  Stmt s(j_, kind == PartKind::import
                 ? "UPDATE files SET import_key='', import_upload_id='' WHERE id=?"
                 : "UPDATE files SET archive_key='', archive_upload_id='' WHERE id=?");
  s.bind(1, file_id).run();
  detail::insert_event(j_, f.export_id, file_id, "delete", text);
  tx.commit();
}

void UploadLedger::restart_upload(int64_t file_id, PartKind kind, std::string_view key,
                                  std::string_view upload_id) {
  Tx tx(j_);
  auto f = j_.get_file(file_id);
  Stmt s(j_, kind == PartKind::import
                 ? "UPDATE files SET import_key=?, import_upload_id=? WHERE id=?"
                 : "UPDATE files SET archive_key=?, archive_upload_id=? WHERE id=?");
  s.bind(1, key).bind(2, upload_id).bind(3, file_id).run();
  Stmt p(j_, "UPDATE parts SET state='pending', etag='' WHERE file_id=? AND kind=?");
  p.bind(1, file_id).bind(2, to_string(kind)).run();
  uploaded_bytes_changed(j_, f.export_id);
  detail::insert_event(j_, f.export_id, file_id, "upload",
                       f.name + ": " + std::string(to_string(kind)) +
                           " multipart upload gone (NoSuchUpload), restarted as " +
                           std::string(upload_id) + " to " + std::string(key) +
                           "; every part is sent again");
  tx.commit();
}

// ---------------------------------------------------------------- parts

void UploadLedger::set_part_state(int64_t file_id, PartKind kind, int part_number, PartState to) {
  Tx tx(j_);
  Stmt q(j_, "SELECT state FROM parts WHERE file_id=? AND kind=? AND part_number=?");
  q.bind(1, file_id).bind(2, to_string(kind)).bind(3, part_number);
  if (!q.step())
    throw Error("journal: no " + std::string(to_string(kind)) + " part " +
                std::to_string(part_number) + " for file id " + std::to_string(file_id));
  auto from = parse_part_state(q.text(0)).value_or(PartState::pending);
  if (!allowed(from, to))
    throw Error("journal: " + std::string(to_string(kind)) + " part " +
                std::to_string(part_number) + ": illegal transition " +
                std::string(to_string(from)) + " -> " + std::string(to_string(to)));
  Stmt s(j_, "UPDATE parts SET state=? WHERE file_id=? AND kind=? AND part_number=?");
  s.bind(1, to_string(to)).bind(2, file_id).bind(3, to_string(kind)).bind(4, part_number).run();
  tx.commit();
}

void UploadLedger::record_part_uploaded(int64_t file_id, PartKind kind, int part_number,
                                        std::string_view etag, std::string_view crc32c) {
  Tx tx(j_);
  auto f = j_.get_file(file_id);
  Stmt q(j_, "SELECT state FROM parts WHERE file_id=? AND kind=? AND part_number=?");
  q.bind(1, file_id).bind(2, to_string(kind)).bind(3, part_number);
  if (!q.step())
    throw Error("journal: file " + f.name + ": no " + std::string(to_string(kind)) + " part " +
                std::to_string(part_number) + " was planned");
  auto from = parse_part_state(q.text(0)).value_or(PartState::pending);
  if (!allowed(from, PartState::uploaded))
    throw Error("journal: file " + f.name + ": " + std::string(to_string(kind)) + " part " +
                std::to_string(part_number) + ": illegal transition " +
                std::string(to_string(from)) + " -> uploaded");
  Stmt s(j_,
         "UPDATE parts SET state='uploaded', etag=?, crc32c=? WHERE file_id=? AND kind=? AND "
         "part_number=?");
  s.bind(1, etag).bind(2, crc32c).bind(3, file_id).bind(4, to_string(kind)).bind(5, part_number);
  s.run();
  uploaded_bytes_changed(j_, f.export_id);
  tx.commit();
}

}  // namespace fe::journal
