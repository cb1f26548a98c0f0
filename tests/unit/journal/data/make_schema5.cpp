// Not built: how data/schema5.sql was made, with the journal of main f579409 (schema 5):
//   g++ -std=c++20 -Idaemon -I<build>/daemon make_schema5.cpp
//   daemon/journal/{journal,states,digest}.cpp \
//       <build>/daemon/service/libfe_log.a -lsqlite3 -lsimdjson -lcrypto -lsystemd -o gen
//   ./gen s5.db && sqlite3 s5.db .dump > schema5.sql && echo 'PRAGMA user_version=5;' >>
//   schema5.sql
#include <iostream>
#include "journal/journal.hpp"
using namespace fe::journal;
int main(int argc, char** argv) {
  auto j = Journal::open(argv[1]);
  std::vector<std::pair<std::string, SourceIdentity>> files = {
      {"Patient.ndjson", {100, 1, 11, 1}}, {"Observation.ndjson", {300, 2, 12, 1}}};
  auto take = [&](const std::string& n) {
    return j.take_export("p", "/in/" + n, "sha256:" + n, n, files).row.id;
  };
  auto walk = [&](int64_t id, std::initializer_list<ExportState> ss) {
    for (auto s : ss) j.set_export_state(id, s);
  };
  using S = ExportState;
  auto spool_all = [&](int64_t id) {
    for (auto& f : j.files(id)) {
      j.set_file_state(f.id, FileState::spooling);
      j.plan_parts(f.id, PartKind::import, {{1, 0, 60, "AAAAAA=="}, {2, 60, 40, ""}});
      j.plan_parts(f.id, PartKind::archive, {{1, 0, 30, ""}});
      int64_t n = 0;
      j.record_spooled(f.id, {5, 1, 100, 30, "crc-" + f.name}, [&](LineAnchor& a) {
        if (n++) return false;
        a = {3, 4};
        return true;
      });
    }
  };
  auto upload_all = [&](int64_t id) {
    for (auto& f : j.files(id)) {
      j.set_file_state(f.id, FileState::uploading);
      j.set_file_upload(f.id, PartKind::import, "pre/x/import/" + f.name, "up-" + f.name);
      j.set_file_upload(f.id, PartKind::archive, "pre/x/archive/" + f.name + ".zst", "");
      j.set_part_state(f.id, PartKind::import, 1, PartState::uploading);
      j.record_part_uploaded(f.id, PartKind::import, 1, "etag1", "AAAAAA==");
      j.record_part_uploaded(f.id, PartKind::import, 2, "etag2", "BBBBBB==");
      j.record_part_uploaded(f.id, PartKind::archive, 1, "etag3", "CCCCCC==");
      j.set_file_state(f.id, FileState::uploaded);
    }
  };
  auto to_uploaded = [&](int64_t id) {
    walk(id, {S::complete, S::spooling});
    spool_all(id);
    walk(id, {S::spooled, S::uploading});
    upload_all(id);
    walk(id, {S::uploaded});
  };
  // Compacted long ago: a tombstone.
  {
    auto id = take("old");
    to_uploaded(id);
    j.record_import_token(id, "tok-old", "old", 1, "s3://b/pre/old/import/", "strict");
    walk(id, {S::import_starting});
    j.record_import_job(id, "job-old", "SUBMITTED");
    walk(id, {S::importing});
    j.record_import_status(id, "COMPLETED", "{}");
    walk(id, {S::imported});
    j.compact(std::chrono::seconds(0));
  }
  take("discovered");
  {
    auto id = take("spooling");
    walk(id, {S::complete, S::spooling});
    spool_all(id);
  }
  {
    auto id = take("uploading");
    walk(id, {S::complete, S::spooling});
    spool_all(id);
    walk(id, {S::spooled, S::uploading});
    j.set_export_error(id, "SlowDown (retrying)");
  }
  {
    auto id = take("parked-upload");
    walk(id, {S::complete, S::spooling});
    spool_all(id);
    walk(id, {S::spooled, S::uploading});
    j.park_export(id, "AccessDenied on PutObject");
  }
  {
    auto id = take("uploaded");
    to_uploaded(id);
  }
  {
    auto id = take("starting");
    to_uploaded(id);
    j.record_import_token(id, "tok-starting", "starting", 1, "s3://b/pre/starting/import/",
                          "strict");
    walk(id, {S::import_starting});
    j.set_export_error(id, "ThrottlingException (retrying later with the same token)");
  }
  {
    auto id = take("importing");
    to_uploaded(id);
    j.record_import_token(id, "tok-importing", "importing", 1, "s3://b/pre/importing/import/",
                          "strict");
    walk(id, {S::import_starting});
    j.record_import_job(id, "job-importing", "SUBMITTED");
    walk(id, {S::importing});
    j.record_import_status(id, "IN_PROGRESS", "{\"scanned\":3}");
    j.record_import_reported(id, "strict", "");
  }
  {
    auto id = take("imported");
    to_uploaded(id);
    j.record_import_token(id, "tok-imported", "imported", 1, "s3://b/pre/imported/import/",
                          "strict");
    walk(id, {S::import_starting});
    j.record_import_job(id, "job-imported", "SUBMITTED");
    walk(id, {S::importing});
    j.record_import_status(id, "COMPLETED", "{}");
    j.record_import_outcome(id, "{\"resources_imported\":10}");
    j.set_export_state(id, S::imported, "10 imported");
  }
  {
    auto id = take("failed-import");
    to_uploaded(id);
    j.record_import_token(id, "tok-failed", "failed-import", 1, "s3://b/pre/f/import/", "strict");
    walk(id, {S::import_starting});
    j.record_import_job(id, "job-failed", "SUBMITTED");
    walk(id, {S::importing});
    j.record_import_status(id, "FAILED", "{}");
    j.record_import_outcome(id, "{\"resources_imported\":0}");
    j.set_export_state(id, S::import_failed, "job FAILED: bad input");
  }
  {
    auto id = take("retried");
    to_uploaded(id);
    j.record_import_token(id, "tok-retried-1", "retried", 1, "s3://b/pre/r/import/", "strict");
    walk(id, {S::import_starting});
    j.record_import_job(id, "job-retried-1", "SUBMITTED");
    walk(id, {S::importing});
    j.record_import_status(id, "FAILED", "{}");
    j.record_import_outcome(id, "{\"resources_imported\":0}");
    j.set_export_state(id, S::import_failed, "job FAILED");
    auto o = j.retry_export("retried", false);
    if (!o.applied) {
      std::cerr << o.message << "\n";
      return 1;
    }
    j.record_import_token(id, "tok-retried-2", "retried-2", 1, "s3://b/pre/r/import/", "strict");
    walk(id, {S::import_starting});
  }
  {
    auto id = take("nothing");
    to_uploaded(id);
    j.set_export_state(id, S::nothing_to_import, "no file has a valid resource");
  }
  {
    auto id = take("parked-import");
    to_uploaded(id);
    j.record_import_token(id, "tok-parked", "parked-import", 1, "s3://b/pre/pi/import/", "strict");
    walk(id, {S::import_starting});
    j.record_import_job(id, "job-parked", "SUBMITTED");
    walk(id, {S::importing});
    j.park_export(id, "ResourceNotFoundException: job vanished");
  }
  {
    auto id = take("given-up");
    walk(id, {S::complete, S::spooling});
    j.fail_export(id, "on_invalid: fail-export");
  }
  {
    auto id = take("superseded");
    walk(id, {S::complete, S::spooling});
    j.set_export_state(id, S::superseded, "source changed");
  }
  // Requests: one answered, one refused, one pending.
  {
    auto r = j.add_request("retry", "parked-upload", "");
    j.finish_request(r, true, "resumed as uploading");
  }
  {
    auto r = j.add_request("retry", "imported", "");
    j.finish_request(r, false, "imported is terminal");
  }
  j.add_request("compact", "", "7776000");
  std::cout << "schema " << j.schema_version() << "\n";
}
