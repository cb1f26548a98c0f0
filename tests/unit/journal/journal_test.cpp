// The journal against real SQLite files in a temp directory.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sqlite3.h>

#include <sys/wait.h>
#include <unistd.h>
#include <cctype>
#include <fstream>
#include <future>

#include "journal/digest.hpp"
#include "journal/journal.hpp"
#include "journal/status.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace fe::journal;
using namespace fe::journal::test;

TEST(Journal, CreatesSchemaInWalMode) {
  TempDir dir;
  auto db = dir / "journal.db";
  {
    auto j = Journal::open(db);
    EXPECT_EQ(j.schema_version(), kSchemaVersion);
  }
  EXPECT_EQ(query_text(db, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(query_text(db, "PRAGMA user_version"), std::to_string(kSchemaVersion));
  EXPECT_TRUE(fs::exists(dir / "journal.db.lock"));
}

TEST(Journal, MigratesFromAnOlderVersionKeepingData) {
  TempDir dir;
  auto db = dir / "journal.db";
  {
    auto j = Journal::open(db, {.read_only = false, .max_schema_version = 1});
    EXPECT_EQ(j.schema_version(), 1);
  }
  // Rows as a version-1 fhir-edge wrote them (its columns only).
  exec_sql(db,
           "INSERT INTO exports(id,name,pipeline,source_path,digest,version,state,files,"
           "bytes_source,created_at,updated_at) VALUES(7,'a','p','/in/a','sha256:aa',1,"
           "'uploading',2,400,1,1);"
           "INSERT INTO files(export_id,name,size,mtime_ns,inode,dev,state) VALUES"
           "(7,'Patient.ndjson',100,1,11,1,'uploading'),(7,'Obs.ndjson',300,2,12,1,'spooled');");
  const int64_t id = 7;
  // Version 1 has no import_jobs table.
  EXPECT_EQ(query_text(db, "SELECT name FROM sqlite_master WHERE name='import_jobs'"), "");
  auto j = Journal::open(db);
  EXPECT_EQ(j.schema_version(), kSchemaVersion);
  auto e = j.get_export(id);
  EXPECT_EQ(e.name, "a");
  EXPECT_EQ(e.files, 2);
  EXPECT_EQ(e.bytes_source, 400);
  EXPECT_EQ(e.state, ExportState::uploading);
  EXPECT_FALSE(e.parked_from.has_value());
  // The new columns work on the migrated rows.
  j.park_export(id, "AccessDenied");
  EXPECT_EQ(j.get_export(id).parked_from, ExportState::uploading);
  j.record_import_token(id, "tok-1", "a");
  ASSERT_TRUE(j.import_job(id).has_value());
  EXPECT_EQ(j.import_job(id)->client_token, "tok-1");
  bool saw = false;
  for (const auto& ev : j.events(std::nullopt, 1000))
    if (ev.kind == "migration" && ev.message.find("version 2") != std::string::npos) saw = true;
  EXPECT_TRUE(saw);
}

TEST(Journal, RefusesAJournalFromANewerVersion) {
  TempDir dir;
  auto db = dir / "journal.db";
  { Journal::open(db); }
  exec_sql(db, "PRAGMA user_version=99");
  auto msg = error_of([&] { Journal::open(db); });
  EXPECT_NE(msg.find("schema version 99"), std::string::npos) << msg;
  EXPECT_NE(msg.find("newer"), std::string::npos) << msg;
}

TEST(Journal, LockRefusesASecondOpener) {
  TempDir dir;
  auto db = dir / "journal.db";
  {
    auto first = Journal::open(db);
    auto msg = error_of([&] { Journal::open(db); });
    EXPECT_NE(msg.find("in use by another fhir-edge process"), std::string::npos) << msg;
    // Readers take no lock.
    auto reader = Journal::open(db, {.read_only = true});
    EXPECT_EQ(reader.schema_version(), kSchemaVersion);
  }
  // Released when the first one closes.
  EXPECT_NO_THROW(Journal::open(db));
}

TEST(Journal, DamagedFileGivesAClearErrorAndIsNotReset) {
  TempDir dir;
  auto db = dir / "journal.db";
  {
    auto j = Journal::open(db);
    for (int i = 0; i < 200; ++i)
      j.take_export("p", "/in/" + std::to_string(i), "d" + std::to_string(i),
                    "e" + std::to_string(i), two_files());
  }
  auto size = fs::file_size(db);
  ASSERT_GT(size, 8192u);
  {
    // Scribble over the second page (a b-tree page): quick_check must notice.
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 + 8);
    std::string junk(2000, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  std::string before;
  {
    std::ifstream in(db, std::ios::binary);
    before.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto msg = error_of([&] { Journal::open(db); });
  EXPECT_NE(msg.find("is damaged"), std::string::npos) << msg;
  EXPECT_NE(msg.find(db.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("will not reset"), std::string::npos) << msg;
  std::string after;
  {
    std::ifstream in(db, std::ios::binary);
    after.assign(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_EQ(before, after) << "a damaged journal must be left exactly as it was";
}

TEST(Journal, NotADatabaseIsReportedAsDamaged) {
  TempDir dir;
  auto db = dir / "journal.db";
  {
    std::ofstream f(db, std::ios::binary);
    f << std::string(8192, 'x');
  }
  auto msg = error_of([&] { Journal::open(db); });
  EXPECT_NE(msg.find("is damaged"), std::string::npos) << msg;
}

TEST(Journal, IllegalTransitionsAreRejectedAndChangeNothing) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto e = j.take_export("p", "/in/a", "d1", "a", two_files()).row;
  auto msg = error_of([&] { j.set_export_state(e.id, ExportState::uploading); });
  EXPECT_NE(msg.find("illegal transition discovered -> uploading"), std::string::npos) << msg;
  EXPECT_EQ(j.get_export(e.id).state, ExportState::discovered);

  auto f = j.files(e.id).at(0);
  msg = error_of([&] { j.set_file_state(f.id, FileState::uploaded); });
  EXPECT_NE(msg.find("illegal transition pending -> uploaded"), std::string::npos) << msg;
  EXPECT_EQ(j.get_file(f.id).state, FileState::pending);

  j.plan_parts(f.id, PartKind::import, {{1, 0, 100, ""}});
  j.record_part_uploaded(f.id, PartKind::import, 1, "\"etag1\"", "crc");
  msg = error_of([&] { j.set_part_state(f.id, PartKind::import, 1, PartState::pending); });
  EXPECT_NE(msg.find("illegal transition uploaded -> pending"), std::string::npos) << msg;

  j.set_export_state(e.id, ExportState::complete);
  j.fail_export(e.id, "gave up");
  msg = error_of([&] { j.set_export_state(e.id, ExportState::spooling); });
  EXPECT_NE(msg.find("failed -> spooling"), std::string::npos) << msg;
  EXPECT_EQ(j.get_export(e.id).last_error, "gave up");
}

TEST(Journal, StateTablesAgreeWithTheDesign) {
  EXPECT_TRUE(allowed(ExportState::discovered, ExportState::complete));
  EXPECT_TRUE(allowed(ExportState::importing, ExportState::imported));
  EXPECT_TRUE(allowed(ExportState::importing, ExportState::import_failed));
  // import_failed is terminal: only an operator's retry (retry_export) leaves it.
  EXPECT_TRUE(is_terminal(ExportState::import_failed));
  for (auto to : {ExportState::import_starting, ExportState::uploaded, ExportState::parked,
                  ExportState::failed, ExportState::imported})
    EXPECT_FALSE(allowed(ExportState::import_failed, to)) << to_string(to);
  EXPECT_TRUE(allowed(ExportState::uploading, ExportState::parked));
  EXPECT_FALSE(allowed(ExportState::imported, ExportState::parked));
  EXPECT_FALSE(allowed(ExportState::spooled, ExportState::imported));
  EXPECT_FALSE(allowed(ExportState::parked, ExportState::parked));
  for (auto s : {ExportState::discovered, ExportState::import_failed, ExportState::superseded})
    EXPECT_EQ(parse_export_state(to_string(s)), s);
}

// Issue 15 defect 1: an export with nothing valid to import ends in a terminal state of its own.
TEST(Journal, NothingToImportIsTerminalAndOnlyFromUploaded) {
  EXPECT_TRUE(allowed(ExportState::uploaded, ExportState::nothing_to_import));
  EXPECT_TRUE(is_terminal(ExportState::nothing_to_import));
  for (auto from : {ExportState::spooled, ExportState::uploading, ExportState::import_starting,
                    ExportState::importing, ExportState::parked})
    EXPECT_FALSE(allowed(from, ExportState::nothing_to_import)) << to_string(from);
  for (auto to : {ExportState::uploaded, ExportState::import_starting, ExportState::parked,
                  ExportState::imported})
    EXPECT_FALSE(allowed(ExportState::nothing_to_import, to)) << to_string(to);
  EXPECT_EQ(to_string(ExportState::nothing_to_import), "nothing_to_import");
  EXPECT_EQ(parse_export_state("nothing_to_import"), ExportState::nothing_to_import);

  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto e = j.take_export("p", "/in/a", "d1", "a", two_files()).row;
  for (auto s : {ExportState::complete, ExportState::spooling, ExportState::spooled,
                 ExportState::uploading, ExportState::uploaded})
    j.set_export_state(e.id, s);
  j.set_export_state(e.id, ExportState::nothing_to_import, "no valid resource in 2 file(s)");
  auto row = j.get_export(e.id);
  EXPECT_TRUE(row.finished_at.has_value());
  EXPECT_EQ(row.last_error, "no valid resource in 2 file(s)");  // status shows why
  EXPECT_TRUE(j.exports(false).empty());                        // finished: hidden by --active
  auto r = j.retry_export("a", true);
  EXPECT_FALSE(r.applied);
  EXPECT_NE(r.message.find("nothing to import"), std::string::npos) << r.message;
}

TEST(Journal, LifecycleParkAndResume) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto e = j.take_export("p", "/in/a", "d1", "a", two_files()).row;
  for (auto s :
       {ExportState::complete, ExportState::spooling, ExportState::spooled, ExportState::uploading})
    j.set_export_state(e.id, s);
  j.park_export(e.id, "AccessDenied: bucket policy");
  auto row = j.get_export(e.id);
  EXPECT_EQ(row.state, ExportState::parked);
  EXPECT_EQ(row.parked_from, ExportState::uploading);
  EXPECT_EQ(row.parked_reason, "AccessDenied: bucket policy");
  // Resuming elsewhere than where it was parked is refused.
  auto msg = error_of([&] { j.set_export_state(e.id, ExportState::importing); });
  EXPECT_NE(msg.find("parked from uploading"), std::string::npos) << msg;
  j.unpark_export(e.id);
  row = j.get_export(e.id);
  EXPECT_EQ(row.state, ExportState::uploading);
  EXPECT_TRUE(row.parked_reason.empty());
  for (auto s : {ExportState::uploaded, ExportState::import_starting, ExportState::importing,
                 ExportState::imported})
    j.set_export_state(e.id, s);
  EXPECT_TRUE(j.get_export(e.id).finished_at.has_value());
  // Every transition left an event, in order.
  std::vector<std::string> states;
  for (const auto& ev : j.events(e.id)) states.push_back(ev.message);
  ASSERT_GE(states.size(), 11u);
  EXPECT_NE(states.back().find("importing -> imported"), std::string::npos);
}

TEST(Journal, IdenticalExportIsRecognisedAndAChangedOneIsANewVersion) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto first = j.take_export("p", "/in/a", "d1", "a", two_files());
  EXPECT_FALSE(first.existing);
  auto again = j.take_export("p", "/in/a", "d1", "a", two_files());
  EXPECT_TRUE(again.existing);
  EXPECT_EQ(again.row.id, first.row.id);
  auto changed = j.take_export("p", "/in/a", "d2", "a", two_files());
  EXPECT_FALSE(changed.existing);
  EXPECT_EQ(changed.row.version, 2);
  EXPECT_EQ(changed.row.name, "a.v2");
  // Same base name from another pipeline does not collide.
  auto other = j.take_export("q", "/other/a", "d9", "a", two_files());
  EXPECT_NE(other.row.name, "a");
  EXPECT_NE(other.row.name, "a.v2");
  EXPECT_EQ(j.exports().size(), 3u);
}

// plan_parts keeps a part planned again with the same range and CRC32C (streamed while its file
// spooled, then the whole plan at record time), replaces one that differs (the file spooled
// again with other content) and, with `whole`, drops rows past the plan's last part.
TEST(Journal, PlanPartsKeepsEqualPartsAndReplacesOthers) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto e = j.take_export("p", "/in/a", "d1", "a", two_files()).row;
  const auto f = j.files(e.id)[0];
  j.plan_parts(f.id, PartKind::import, {{1, 0, 600, "AAAAAQ=="}});  // streamed, one at a time
  j.plan_parts(f.id, PartKind::import, {{2, 600, 600, "AAAAAg=="}});
  j.plan_parts(f.id, PartKind::import, {{3, 1200, 100, "AAAAAw=="}});
  j.set_file_upload(f.id, PartKind::import, "x/a/import/Observation.ndjson", "upl-1");
  j.record_part_uploaded(f.id, PartKind::import, 1, "\"e1\"", "AAAAAQ==");
  j.record_part_uploaded(f.id, PartKind::import, 2, "\"e2\"", "AAAAAg==");
  // The whole plan: part 1 the same, part 2 other content, part 3 gone.
  j.plan_parts(f.id, PartKind::import, {{1, 0, 600, "AAAAAQ=="}, {2, 600, 500, "AAAABQ=="}}, true);
  auto parts = j.parts(f.id, PartKind::import);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].state, PartState::uploaded);
  EXPECT_EQ(parts[0].etag, "\"e1\"");
  EXPECT_EQ(parts[1].state, PartState::pending);
  EXPECT_EQ(parts[1].etag, "");
  EXPECT_EQ(parts[1].length, 500);
  EXPECT_EQ(parts[1].crc32c, "AAAABQ==");
  // Without `whole` nothing is dropped.
  j.plan_parts(f.id, PartKind::import, {{1, 0, 600, "AAAAAQ=="}});
  EXPECT_EQ(j.parts(f.id, PartKind::import).size(), 2u);
}

TEST(Journal, TotalsFollowFilesAndParts) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto e = j.take_export("p", "/in/a", "d1", "a", two_files()).row;
  auto files = j.files(e.id);
  ASSERT_EQ(files.size(), 2u);
  for (const auto& f : files) {
    j.set_file_state(f.id, FileState::spooling);
    j.record_spooled(f.id, {10, 2, 1000, 150, "crc"});
  }
  j.set_file_state(files[0].id, FileState::uploading);
  j.plan_parts(files[0].id, PartKind::import, {{1, 0, 600, ""}, {2, 600, 400, ""}});
  j.plan_parts(files[0].id, PartKind::import, {{1, 0, 600, ""}});  // re-plan keeps existing
  EXPECT_EQ(j.parts(files[0].id, PartKind::import).size(), 2u);
  j.set_file_upload(files[0].id, PartKind::import, "x/a/import/Observation.ndjson", "upl-1");
  j.record_part_uploaded(files[0].id, PartKind::import, 2, "\"e2\"", "AAAAAA==");
  auto row = j.get_export(e.id);
  EXPECT_EQ(row.resources_valid, 20);
  EXPECT_EQ(row.resources_rejected, 4);
  EXPECT_EQ(row.bytes_spooled, 300);
  EXPECT_EQ(row.bytes_uploaded, 400);
  auto parts = j.parts(files[0].id, PartKind::import);
  EXPECT_EQ(parts[0].state, PartState::pending);
  EXPECT_EQ(parts[1].state, PartState::uploaded);
  EXPECT_EQ(parts[1].etag, "\"e2\"");
  EXPECT_EQ(j.get_file(files[0].id).import_upload_id, "upl-1");
  auto msg =
      error_of([&] { j.record_part_uploaded(files[0].id, PartKind::archive, 1, "\"x\"", "c"); });
  EXPECT_NE(msg.find("no archive part 1 was planned"), std::string::npos) << msg;
}

TEST(Journal, ImportTokenIsStableAndNeverReplaced) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto e = j.take_export("p", "/in/a", "d1", "a", two_files()).row;
  j.record_import_token(e.id, "tok-a", "a");
  j.record_import_token(e.id, "tok-a", "a");  // idempotent after a crash
  EXPECT_FALSE(error_of([&] { j.record_import_token(e.id, "tok-b", "a"); }).empty());
  j.record_import_job(e.id, "job-1", "SUBMITTED");
  j.record_import_status(e.id, "IN_PROGRESS", "{\"pct\":10}");
  auto job = j.import_job(e.id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->client_token, "tok-a");
  EXPECT_EQ(job->job_id, "job-1");
  EXPECT_EQ(job->status, "IN_PROGRESS");
  EXPECT_EQ(job->progress_json, "{\"pct\":10}");
}

TEST(Journal, CompactionRemovesOnlyOldFinishedExports) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto done = j.take_export("p", "/in/a", "d1", "a", two_files()).row;
  auto live = j.take_export("p", "/in/b", "d2", "b", two_files()).row;
  j.fail_export(done.id, "x");
  EXPECT_EQ(j.compact(std::chrono::hours(1)), 0u);  // finished just now: kept
  EXPECT_EQ(j.compact(std::chrono::seconds(0)), 1u);
  EXPECT_FALSE(j.find_export(done.id));
  EXPECT_TRUE(j.find_export(live.id));
  EXPECT_TRUE(j.events(done.id).empty());
  EXPECT_EQ(j.files(live.id).size(), 2u);
  EXPECT_EQ(query_text(dir / "journal.db",
                       "SELECT COUNT(*) FROM files WHERE export_id=" + std::to_string(done.id)),
            "0");
}

// Issue 17 item 7: the last-successful-import gauge reads the newest imported export of each
// pipeline from the journal, so compaction keeps that one: a "no import for 24 h" alert must not
// fire because old history was compacted.
TEST(Journal, CompactionKeepsTheNewestImportedExportOfEachPipeline) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto import_one = [&](const std::string& pipeline, const std::string& name) {
    auto e = j.take_export(pipeline, "/in/" + name, "d-" + name, name, two_files()).row;
    for (auto st : {ExportState::complete, ExportState::spooling, ExportState::spooled,
                    ExportState::uploading, ExportState::uploaded, ExportState::import_starting,
                    ExportState::importing, ExportState::imported}) {
      if (st == ExportState::import_starting) j.record_import_token(e.id, "tok-" + name, name);
      j.set_export_state(e.id, st);
    }
    return e;
  };
  auto a1 = import_one("a", "a1");
  auto a2 = import_one("a", "a2");
  auto b1 = import_one("b", "b1");
  auto failed = j.take_export("a", "/in/f", "d-f", "f", two_files()).row;
  j.fail_export(failed.id, "x");
  EXPECT_EQ(j.compact(std::chrono::seconds(0)), 2u);  // a1 and the failed one
  EXPECT_FALSE(j.find_export(a1.id));
  EXPECT_FALSE(j.find_export(failed.id));
  EXPECT_TRUE(j.find_export(a2.id));
  EXPECT_TRUE(j.find_export(b1.id));
  EXPECT_EQ(j.compact(std::chrono::seconds(0)), 0u);  // stable
}

// Issue 13 item 5: an imported export whose archive copy / rejects / report.json still trail the
// import (a file `uploading`) keeps its rows: the pipeline resumes those uploads from them.
TEST(Journal, CompactionKeepsAnImportedExportWhoseTrailingUploadsAreNotDone) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto import_one = [&](const std::string& name, bool trailing) {
    auto e = j.take_export("p", "/in/" + name, "d-" + name, name, two_files()).row;
    for (auto st : {ExportState::complete, ExportState::spooling}) j.set_export_state(e.id, st);
    for (const auto& f : j.files(e.id)) {
      j.set_file_state(f.id, FileState::spooling);
      j.set_file_state(f.id, FileState::spooled);
      j.set_file_state(f.id, FileState::uploading);
      if (!trailing) j.set_file_state(f.id, FileState::uploaded);
    }
    for (auto st : {ExportState::spooled, ExportState::uploading, ExportState::uploaded,
                    ExportState::import_starting, ExportState::importing, ExportState::imported}) {
      if (st == ExportState::import_starting) j.record_import_token(e.id, "tok-" + name, name);
      j.set_export_state(e.id, st);
    }
    return e;
  };
  auto old_trailing = import_one("t", true);
  auto old_done = import_one("d", false);
  auto newest = import_one("n", false);  // the newest imported export is always kept
  EXPECT_EQ(j.compact(std::chrono::seconds(0)), 1u);
  EXPECT_TRUE(j.find_export(old_trailing.id));
  EXPECT_FALSE(j.find_export(old_done.id));
  EXPECT_TRUE(j.find_export(newest.id));
  EXPECT_EQ(j.files(old_trailing.id).size(), 2u);
}

TEST(Journal, BackupIsAUsableJournal) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  j.take_export("p", "/in/a", "d1", "a", two_files());
  j.backup_to(dir / "copy.db");
  auto copy = Journal::open(dir / "copy.db", {.read_only = true});
  ASSERT_EQ(copy.exports().size(), 1u);
  EXPECT_EQ(copy.exports()[0].name, "a");
}

TEST(Journal, StatusTableAndJson) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto a = j.take_export("epic", "/in/a", "d1", "2026-11-26-epic", two_files()).row;
  auto b = j.take_export("epic", "/in/b", "d2", "b\"quoted\"", two_files()).row;
  j.set_export_state(a.id, ExportState::complete);
  j.park_export(b.id, "NoSuchBucket: hospital-fhir-landing");
  auto rows = read_status(j);
  ASSERT_EQ(rows.size(), 2u);
  auto table = format_status_table(rows);
  EXPECT_NE(table.find("EXPORT"), std::string::npos);
  EXPECT_NE(table.find("2026-11-26-epic"), std::string::npos);
  EXPECT_NE(table.find("NoSuchBucket"), std::string::npos);
  EXPECT_NE(table.find("complete"), std::string::npos);

  auto json = format_status_json(rows, j.schema_version());
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  simdjson::dom::array exports;
  ASSERT_EQ(doc["exports"].get(exports), simdjson::SUCCESS);
  ASSERT_EQ(exports.size(), 2u);
  int found = 0;
  for (auto e : exports) {
    std::string_view name, state;
    ASSERT_EQ(e["name"].get(name), simdjson::SUCCESS);
    ASSERT_EQ(e["state"].get(state), simdjson::SUCCESS);
    int64_t files = 0;
    ASSERT_EQ(e["files"].get(files), simdjson::SUCCESS);
    EXPECT_EQ(files, 2);
    if (name == "b\"quoted\"") {
      ++found;
      EXPECT_EQ(state, "parked");
      std::string_view from;
      ASSERT_EQ(e["parked_from"].get(from), simdjson::SUCCESS);
      EXPECT_EQ(from, "discovered");
    } else if (name == "2026-11-26-epic") {
      ++found;
      EXPECT_EQ(state, "complete");
    }
  }
  EXPECT_EQ(found, 2);
}

TEST(Digest, StreamsContentAndNamesOrderIndependently) {
  TempDir dir;
  auto write = [&](const std::string& n, const std::string& content) {
    std::ofstream(dir / n, std::ios::binary) << content;
  };
  write("a.ndjson", "{\"resourceType\":\"Patient\"}\n");
  write("b.ndjson", std::string(200000, 'x'));
  auto d1 = content_digest(dir.path(), {"a.ndjson", "b.ndjson"});
  auto d2 = content_digest(dir.path(), {"b.ndjson", "a.ndjson"});
  EXPECT_EQ(d1, d2);
  EXPECT_EQ(d1.rfind("sha256-pieces:", 0), 0u);
  EXPECT_EQ(d1.size(), 14u + 64u);
  write("b.ndjson", std::string(199999, 'x') + "y");
  EXPECT_NE(content_digest(dir.path(), {"a.ndjson", "b.ndjson"}), d1);
  // Moving a byte from one file to the next changes the digest (sizes are part of it).
  write("c1", "ab");
  write("c2", "c");
  auto split1 = content_digest(dir.path(), {"c1", "c2"});
  write("c1", "a");
  write("c2", "bc");
  EXPECT_NE(content_digest(dir.path(), {"c1", "c2"}), split1);
  fs::create_symlink(dir / "a.ndjson", dir / "link.ndjson");
  EXPECT_THROW(content_digest(dir.path(), {"link.ndjson"}), std::runtime_error);
}

// The digest is the export's identity in every journal: it must never change. Pinned to the value
// of the documented format (digest.hpp) computed independently (Python hashlib), for files that
// span several reads; the per-file form (file_digest + combine_digest, files hashed on different
// threads, in any order) gives the same value. The legacy scheme, which journals from before
// issue 13 hold, keeps its value: a path taken with it is digested with it again.
TEST(Digest, LegacySchemeIsPinnedAndTheSameWhenFilesAreHashedSeparately) {
  TempDir dir;
  std::string b(3 * 1024 * 1024 + 5, '\0');
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>((i * 7) % 251);
  std::ofstream(dir / "a.ndjson", std::ios::binary)
      << "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n";
  std::ofstream(dir / "b.ndjson", std::ios::binary) << b;
  const std::string pinned =
      "sha256:3660bcdb463f422d41621417fa2609b121792a7734b057c066eba119b6d244dd";
  const auto legacy = DigestScheme::legacy;
  EXPECT_EQ(content_digest(dir.path(), {"b.ndjson", "a.ndjson"}, legacy), pinned);
  EXPECT_EQ(combine_digest({{"b.ndjson", file_digest(dir / "b.ndjson", legacy)},
                            {"a.ndjson", file_digest(dir / "a.ndjson", legacy)}},
                           legacy),
            pinned);
  EXPECT_EQ(scheme_of(pinned), legacy);
  EXPECT_EQ(file_digest(dir / "b.ndjson", legacy).size, b.size());
  EXPECT_EQ(file_digest(dir / "b.ndjson", legacy).pieces, nullptr);
  EXPECT_THROW(file_digest(dir / "missing.ndjson", legacy), std::runtime_error);
}

// The pieces scheme (digest.hpp), pinned the same way (Python hashlib over 8 MiB pieces), with a
// file of three pieces (the last one 5 bytes), a one-piece file and an empty one (no piece). The
// piece digests kept for the upload are the SHA-256 of each piece.
TEST(Digest, PiecesSchemeIsPinnedAndKeepsEachPiecesDigest) {
  TempDir dir;
  std::string b(2 * kDigestPiece + 5, '\0');
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>((i * 7) % 251);
  std::ofstream(dir / "a.ndjson", std::ios::binary)
      << "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n";
  std::ofstream(dir / "b.ndjson", std::ios::binary) << b;
  std::ofstream(dir / "empty.ndjson", std::ios::binary);
  const std::string pinned =
      "sha256-pieces:a144b8bc4479484e7a6b44f0059a7c16353bea9b87fd2e5510ad21a709c86bdf";
  EXPECT_EQ(content_digest(dir.path(), {"empty.ndjson", "b.ndjson", "a.ndjson"}), pinned);
  const auto fb = file_digest(dir / "b.ndjson");
  EXPECT_EQ(combine_digest({{"b.ndjson", fb},
                            {"empty.ndjson", file_digest(dir / "empty.ndjson")},
                            {"a.ndjson", file_digest(dir / "a.ndjson")}}),
            pinned);
  EXPECT_EQ(scheme_of(pinned), DigestScheme::pieces);
  EXPECT_EQ(fb.size, b.size());
  ASSERT_NE(fb.pieces, nullptr);
  ASSERT_EQ(fb.pieces->size(), 3u);
  EXPECT_EQ(fe::to_hex((*fb.pieces)[1]),
            "14aa98719b2da55e54b9321f218ac5aa997980867a808fe7db00036421e184c0");
  EXPECT_EQ((*fb.pieces)[0], fe::sha256(std::string_view(b).substr(0, kDigestPiece)));
  EXPECT_EQ((*fb.pieces)[2], fe::sha256(std::string_view(b).substr(2 * kDigestPiece)));
  EXPECT_EQ(file_digest(dir / "empty.ndjson").pieces->size(), 0u);
  // The identity of the file as it was read: the pipeline hands piece digests on only for it.
  EXPECT_EQ(fb.identity, fe::identity_of(dir / "b.ndjson"));
  // The same content under the legacy scheme is another digest: the schemes never compare.
  EXPECT_NE(
      content_digest(dir.path(), {"empty.ndjson", "b.ndjson", "a.ndjson"}, DigestScheme::legacy)
          .substr(7),
      pinned.substr(14));
}

TEST(Digest, ClientTokenIsDeterministicAndWithinHealthLakeRules) {
  auto t = client_token("epic", "/in/a", "sha256:ab", 1);
  EXPECT_EQ(t, client_token("epic", "/in/a", "sha256:ab", 1));
  EXPECT_NE(t, client_token("epic", "/in/a", "sha256:ab", 2));
  EXPECT_NE(t, client_token("epic", "/in/a", "sha256:ac", 1));
  EXPECT_NE(client_token("ab", "c", "d", 1), client_token("a", "bc", "d", 1));
  EXPECT_GE(t.size(), 1u);
  EXPECT_LE(t.size(), 64u);
  for (char c : t) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-') << t;
}

TEST(Journal, AFailedTransactionLeavesNothingBehind) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  // Two files with the same name violate UNIQUE(export_id, name) half-way through take_export.
  std::vector<std::pair<std::string, SourceIdentity>> dup = {{"A.ndjson", {1, 1, 1, 1}},
                                                             {"A.ndjson", {2, 2, 2, 1}}};
  EXPECT_THROW(j.take_export("p", "/in/a", "d1", "a", dup), Error);
  EXPECT_TRUE(j.exports().empty());
  EXPECT_EQ(query_text(dir / "journal.db", "SELECT COUNT(*) FROM files"), "0");
  // The journal is still usable afterwards.
  EXPECT_FALSE(j.take_export("p", "/in/a", "d1", "a", two_files()).existing);
}

TEST(Journal, ReaderWithoutWriteAccessToTheDirectoryCanReadStatus) {
  TempDir dir;
  auto state = dir / "state";
  fs::create_directory(state);
  auto db = state / "journal.db";
  {
    auto j = Journal::open(db);
    j.take_export("p", "/in/a", "d1", "a", two_files());
  }
  ASSERT_FALSE(fs::exists(db.string() + "-wal")) << "closing the last writer removes the WAL";
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(state, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                             fs::perms::group_exec | fs::perms::others_read |
                             fs::perms::others_exec);
  fs::permissions(db, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                          fs::perms::others_read);
  // Root ignores permissions: read as an unprivileged user in a child process then.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (geteuid() == 0 && setuid(65534) != 0) _exit(3);
    try {
      auto j = Journal::open(db, {.read_only = true});
      _exit(j.exports().size() == 1 ? 0 : 1);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      _exit(2);
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  fs::permissions(state, fs::perms::owner_all, fs::perm_options::add);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: the journal could not be opened read-only";
}

namespace {
// An export walked to `state` through the legal transitions (import states get a token first).
Taken walked(Journal& j, const std::string& name, ExportState last, std::string digest = {}) {
  if (digest.empty()) digest = "d-" + name;
  auto t = j.take_export("p", "/in/" + name, digest, name, two_files());
  for (auto s : {ExportState::complete, ExportState::spooling, ExportState::spooled,
                 ExportState::uploading, ExportState::uploaded, ExportState::import_starting,
                 ExportState::importing, ExportState::imported}) {
    if (s == ExportState::import_starting) j.record_import_token(t.row.id, "tok-" + name, name);
    if (s == ExportState::imported && last == ExportState::import_failed) s = last;
    j.set_export_state(t.row.id, s);
    if (s == last) break;
  }
  t.row = j.get_export(t.row.id);
  return t;
}
}  // namespace

TEST(Journal, MigratesFromVersion2KeepingImportJobs) {
  TempDir dir;
  auto db = dir / "journal.db";
  int64_t id = 0;
  {
    auto j = Journal::open(db, {.read_only = false, .max_schema_version = 2});
    id = j.take_export("p", "/in/a", "d1", "a", two_files()).row.id;
    for (auto s : {ExportState::complete, ExportState::spooling, ExportState::spooled,
                   ExportState::uploading, ExportState::uploaded, ExportState::import_starting})
      j.set_export_state(id, s);
  }
  // The job row as a version-2 fhir-edge wrote it (its columns only).
  exec_sql(db,
           "INSERT INTO import_jobs(export_id,client_token,job_name,job_id,status,submitted_at,"
           "updated_at) VALUES(" +
               std::to_string(id) + ",'fe-tok','a','job-7','SUBMITTED',1,1)");
  {
    // `status` before the new daemon migrated it: read-only, old columns.
    auto r = Journal::open(db, {.read_only = true});
    EXPECT_EQ(r.schema_version(), 2);
    auto row = r.get_export(id);
    EXPECT_EQ(row.import_attempt, 1);
    auto jobs = r.import_jobs(id);
    ASSERT_EQ(jobs.size(), 1u);
    EXPECT_EQ(jobs[0].job_id, "job-7");
    EXPECT_TRUE(r.pending_requests().empty());
  }
  auto j = Journal::open(db);
  EXPECT_EQ(j.schema_version(), kSchemaVersion);
  auto job = j.import_job(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->client_token, "fe-tok");
  EXPECT_EQ(job->job_id, "job-7");
  EXPECT_EQ(job->attempt, 1);
  EXPECT_EQ(job->part, 1);
  EXPECT_EQ(j.get_export(id).import_attempt, 1);
  // The migrated row goes on as before.
  j.record_import_status(id, "IN_PROGRESS", "{}");
  EXPECT_EQ(j.import_job(id)->status, "IN_PROGRESS");
}

TEST(Journal, SeveralImportJobsPerExportOnePerPart) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto e = walked(j, "big", ExportState::uploaded).row;
  auto t1 = import_client_token("p", "/in/big", "d-big", 1, 1, 1);
  auto t2 = import_client_token("p", "/in/big", "d-big", 1, 1, 2);
  EXPECT_EQ(t1, client_token("p", "/in/big", "d-big", 1));  // part 1 = the old token
  EXPECT_NE(t1, t2);
  EXPECT_LE(t2.size(), 64u);
  j.record_import_token(e.id, t1, "big.part1", 1, "s3://b/x/big/import/part-0001/");
  j.record_import_token(e.id, t2, "big.part2", 2, "s3://b/x/big/import/part-0002/");
  j.record_import_token(e.id, t2, "big.part2", 2, "s3://b/x/big/import/part-0002/");  // again
  EXPECT_FALSE(error_of([&] { j.record_import_token(e.id, "other", "big.part2", 2); }).empty());
  j.record_import_job(e.id, "job-2", "SUBMITTED", 2);
  auto jobs = j.import_jobs(e.id);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].part, 1);
  EXPECT_TRUE(jobs[0].job_id.empty());
  EXPECT_EQ(jobs[1].job_id, "job-2");
  EXPECT_EQ(jobs[1].input_uri, "s3://b/x/big/import/part-0002/");
  EXPECT_FALSE(error_of([&] { j.record_import_job(e.id, "job-3", "SUBMITTED", 3); }).empty());
  j.set_export_state(e.id, ExportState::import_starting);
  auto json = format_status_json(read_status(j), j.schema_version());
  EXPECT_NE(json.find("\"import_jobs\":[{\"part\":1"), std::string::npos) << json;
  EXPECT_NE(json.find("\"job_name\":\"big.part2\""), std::string::npos) << json;
  auto table = format_status_table(read_status(j));
  EXPECT_NE(table.find("2 jobs: 1 SUBMITTED, 1 starting"), std::string::npos) << table;
}

TEST(Journal, RetryResumesParkedWithTheSameTokenAndReimportsOnlyWhenAsked) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  // Parked while starting its import: back to import_starting, the journaled token kept.
  auto p = walked(j, "pk", ExportState::import_starting).row;
  j.park_export(p.id, "AccessDeniedException: not authorized");
  auto o = j.retry_export("pk", false);
  EXPECT_TRUE(o.applied) << o.message;
  EXPECT_FALSE(o.new_token);
  EXPECT_EQ(o.to, ExportState::import_starting);
  EXPECT_NE(o.message.find("same ClientToken"), std::string::npos) << o.message;
  EXPECT_EQ(j.get_export(p.id).state, ExportState::import_starting);
  EXPECT_EQ(j.import_job(p.id)->client_token, "tok-pk");

  // import_failed: a new attempt; the old job stays in the journal but is not current.
  auto f = walked(j, "fl", ExportState::import_failed).row;
  EXPECT_TRUE(f.finished_at.has_value());
  o = j.retry_export("fl", false);
  EXPECT_TRUE(o.applied) << o.message;
  EXPECT_TRUE(o.new_token);
  EXPECT_NE(o.message.find("NEW import job"), std::string::npos) << o.message;
  auto row = j.get_export(f.id);
  EXPECT_EQ(row.state, ExportState::uploaded);
  EXPECT_EQ(row.import_attempt, 2);
  EXPECT_FALSE(row.finished_at.has_value());
  EXPECT_FALSE(j.import_job(f.id).has_value());  // attempt 2 has no job yet
  j.record_import_token(f.id, "tok-fl-2", "fl.retry2");
  EXPECT_EQ(j.import_job(f.id)->attempt, 2);
  EXPECT_EQ(query_text(dir / "journal.db",
                       "SELECT COUNT(*) FROM import_jobs WHERE export_id=" + std::to_string(f.id)),
            "2");

  // imported: refused unless reimport.
  auto i = walked(j, "im", ExportState::imported).row;
  o = j.retry_export("im", false);
  EXPECT_FALSE(o.applied);
  EXPECT_NE(o.message.find("--reimport"), std::string::npos) << o.message;
  EXPECT_EQ(j.get_export(i.id).state, ExportState::imported);
  o = j.retry_export("im", true);
  EXPECT_TRUE(o.applied) << o.message;
  EXPECT_EQ(j.get_export(i.id).import_attempt, 2);

  // Refusals name the reason and change nothing.
  auto live = walked(j, "lv", ExportState::uploading).row;
  j.set_export_error(live.id, "503 SlowDown");
  o = j.retry_export("lv", false);
  EXPECT_FALSE(o.applied);
  EXPECT_NE(o.message.find("in progress"), std::string::npos) << o.message;
  EXPECT_NE(o.message.find("503 SlowDown"), std::string::npos) << o.message;
  auto gone = walked(j, "gn", ExportState::complete).row;
  j.fail_export(gone.id, "fail-export: 3 invalid resources");
  o = j.retry_export("gn", false);
  EXPECT_FALSE(o.applied);
  EXPECT_NE(o.message.find("drop it again"), std::string::npos) << o.message;
  o = j.retry_export("nope", false);
  EXPECT_FALSE(o.applied);
  EXPECT_NE(o.message.find("no export named 'nope'"), std::string::npos) << o.message;
  int retries = 0;
  for (const auto& ev : j.events(std::nullopt, 1000))
    if (ev.kind == "retry") ++retries;
  EXPECT_EQ(retries, 2);  // fl and im
}

TEST(Journal, RequestsFromASecondConnectionWhileTheDaemonHoldsTheLock) {
  TempDir dir;
  auto db = dir / "journal.db";
  auto j = Journal::open(db);  // "the daemon"
  EXPECT_TRUE(Journal::locked_by_other(db));
  auto e = walked(j, "pk", ExportState::import_starting).row;
  j.park_export(e.id, "AccessDenied");
  // The CLI's side: its own connection, no lock.
  auto rid = Journal::submit_request(db, "retry", "pk", "");
  auto cid = Journal::submit_request(db, "compact", "", "bogus");
  auto pending = j.pending_requests();
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].id, rid);
  EXPECT_EQ(pending[0].state, "pending");
  for (const auto& r : pending) {
    auto [ok, result] = j.apply_request(r);
    j.finish_request(r.id, ok, result);
  }
  EXPECT_TRUE(j.pending_requests().empty());
  auto reader = Journal::open(db, {.read_only = true});
  auto done = reader.request(rid);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->state, "done");
  EXPECT_NE(done->result.find("resumed as import_starting"), std::string::npos) << done->result;
  EXPECT_TRUE(done->done_at.has_value());
  EXPECT_EQ(reader.request(cid)->state, "refused");
  EXPECT_EQ(j.get_export(e.id).state, ExportState::import_starting);
}

TEST(Journal, LockIsFreeWhenNoDaemonRuns) {
  TempDir dir;
  auto db = dir / "journal.db";
  EXPECT_FALSE(Journal::locked_by_other(db));  // no lock file at all
  { auto j = Journal::open(db); }
  EXPECT_FALSE(Journal::locked_by_other(db));
  EXPECT_FALSE(
      error_of([&] { Journal::submit_request(dir / "missing.db", "retry", "x", ""); }).empty());
}

TEST(Journal, CompactionRemovesImportFailedAndFinishedRequests) {
  TempDir dir;
  auto db = dir / "journal.db";
  auto j = Journal::open(db);
  auto f = walked(j, "fl", ExportState::import_failed).row;
  auto live = walked(j, "lv", ExportState::importing).row;
  auto rid = j.add_request("retry", "lv", "");
  j.finish_request(rid, false, "in progress");
  auto pending = j.add_request("retry", "zz", "");
  RequestRow r;
  r.kind = "compact";
  r.args = "0";
  auto [ok, result] = j.apply_request(r);
  EXPECT_TRUE(ok);
  EXPECT_EQ(result, "removed 1 finished export(s) older than 0 s");
  EXPECT_FALSE(j.find_export(f.id));
  EXPECT_TRUE(j.find_export(live.id));
  EXPECT_FALSE(j.request(rid).has_value());     // finished: removed
  EXPECT_TRUE(j.request(pending).has_value());  // still pending: kept
}

// Issue 15, defect 3: compaction keeps a tombstone. The same source (pipeline, path, digest) is
// recognised after its export was compacted away (after_upload: keep leaves it in the watched
// directory, and a restart sees it again), and a changed one gets a name never used before.
TEST(Journal, CompactionKeepsATombstoneSoAKeptSourceIsNotTakenAgain) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto a = walked(j, "a", ExportState::uploaded).row;
  j.set_export_state(a.id, ExportState::import_starting);
  j.set_export_state(a.id, ExportState::importing);
  j.set_export_state(a.id, ExportState::imported);
  // A newer import of the pipeline: compaction keeps the newest imported export of each pipeline.
  walked(j, "z", ExportState::imported);
  ASSERT_EQ(j.compact(std::chrono::seconds(0)), 1u);
  EXPECT_FALSE(j.find_export(a.name));
  EXPECT_EQ(query_text(dir / "journal.db", "SELECT COUNT(*) FROM tombstones"), "1");

  auto again = j.take_export(a.pipeline, a.source_path, a.digest, a.name, two_files());
  EXPECT_TRUE(again.existing);
  EXPECT_TRUE(again.compacted);
  EXPECT_EQ(again.row.name, a.name);
  EXPECT_EQ(again.row.state, ExportState::imported);
  EXPECT_EQ(j.exports().size(), 1u);  // z; nothing new was taken
  // A second compaction keeps the tombstone.
  j.compact(std::chrono::seconds(0));
  EXPECT_TRUE(j.take_export(a.pipeline, a.source_path, a.digest, a.name, two_files()).compacted);

  // New content at the same path: a new version, and not the compacted export's name (its S3
  // prefix and JobName are taken).
  auto changed = j.take_export(a.pipeline, a.source_path, "d-new", a.name, two_files());
  EXPECT_FALSE(changed.existing);
  EXPECT_EQ(changed.row.version, 2);
  EXPECT_NE(changed.row.name, a.name);

  // retry names what happened to it.
  auto r = j.retry_export(a.name, true);
  EXPECT_FALSE(r.applied);
  EXPECT_NE(r.message.find("compacted"), std::string::npos) << r.message;
  ASSERT_TRUE(j.find_tombstone(a.name));
  EXPECT_EQ(j.find_tombstone(a.name)->state, ExportState::imported);
}

// Issue 15, defect 8: on_invalid reject-file records the file's invalid lines, so `status`
// shows what report.json says.
TEST(Journal, RejectedFileCountsAreRecorded) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto e = j.take_export("p", "/in/a", "d1", "a", two_files()).row;
  auto files = j.files(e.id);
  j.set_file_state(files[0].id, FileState::spooling);
  j.record_file_rejected(files[0].id, 12, "12 invalid line(s); whole file rejected");
  j.set_file_state(files[1].id, FileState::spooling);
  j.record_spooled(files[1].id, {30, 0, 1000, 150, "crc"});
  auto f = j.get_file(files[0].id);
  EXPECT_EQ(f.state, FileState::rejected);
  EXPECT_EQ(f.resources_rejected, 12);
  EXPECT_EQ(f.resources_valid, 0);
  auto row = j.get_export(e.id);
  EXPECT_EQ(row.resources_rejected, 12);
  EXPECT_EQ(row.resources_valid, 30);
  EXPECT_NE(format_status_table(read_status(j)).find(" 12 "), std::string::npos);
  // Only from pending/spooling, like the plain transition.
  EXPECT_FALSE(error_of([&] { j.record_file_rejected(files[1].id, 1, ""); }).empty());
}

// Issue 15, defect 7: import object line -> source line through the anchors the spool recorded.
TEST(Journal, SourceLineFollowsTheLineAnchors) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto e = j.take_export("p", "/in/a", "d1", "a", two_files()).row;
  auto files = j.files(e.id);
  // Source: 1 ok, 2 bad, 3 blank, 4 bad, 5 ok, 6 ok, 7 bad, 8 ok -> import lines 1..4 are source
  // lines 1, 5, 6, 8: anchors (2,5) and (4,8).
  std::vector<LineAnchor> anchors{{2, 5}, {4, 8}};
  size_t next = 0;
  j.set_file_state(files[0].id, FileState::spooling);
  j.record_spooled(files[0].id, {4, 3, 100, 50, "crc"}, [&](LineAnchor& a) {
    if (next == anchors.size()) return false;
    a = anchors[next++];
    return true;
  });
  EXPECT_EQ(j.source_line(files[0].id, 1), 1);
  EXPECT_EQ(j.source_line(files[0].id, 2), 5);
  EXPECT_EQ(j.source_line(files[0].id, 3), 6);
  EXPECT_EQ(j.source_line(files[0].id, 4), 8);
  // A file without anchors: the same number.
  EXPECT_EQ(j.source_line(files[1].id, 7), 7);
  // Compaction removes the anchors with the file.
  j.fail_export(e.id, "x");
  j.compact(std::chrono::seconds(0));
  EXPECT_EQ(query_text(dir / "journal.db", "SELECT COUNT(*) FROM line_map"), "0");
}

// Schema 5 (issue 12 item 4): the ValidationLevel each job was started with, the one HealthLake
// reports, and HealthLake's Message. A version-4 journal opens read-only as it is (status before
// the daemon migrated it) and migrates keeping its jobs; their levels read as not journaled.
TEST(Journal, MigratesFromVersion4AddingValidationLevels) {
  TempDir dir;
  auto db = dir / "journal.db";
  int64_t id = 0;
  {
    auto j = Journal::open(db, {.read_only = false, .max_schema_version = 4});
    EXPECT_EQ(j.schema_version(), 4);
    id = walked(j, "v4", ExportState::import_starting).row.id;
    j.record_import_job(id, "job-4", "IN_PROGRESS");
    j.set_export_state(id, ExportState::importing);
  }
  EXPECT_EQ(query_text(db,
                       "SELECT COUNT(*) FROM pragma_table_info('import_jobs') WHERE "
                       "name IN ('validation_level','reported_level','message')"),
            "0");
  {
    auto r = Journal::open(db, {.read_only = true});
    EXPECT_EQ(r.schema_version(), 4);
    auto jobs = r.import_jobs(id);
    ASSERT_EQ(jobs.size(), 1u);
    EXPECT_EQ(jobs[0].job_id, "job-4");
    EXPECT_EQ(jobs[0].validation_level, "");
    auto json = format_status_json(read_status(r), r.schema_version());
    EXPECT_NE(json.find("\"validation_level\":null"), std::string::npos) << json;
    EXPECT_NE(json.find("\"validation_level_match\":null"), std::string::npos) << json;
  }
  auto j = Journal::open(db);
  EXPECT_EQ(j.schema_version(), kSchemaVersion);
  EXPECT_GE(kSchemaVersion, 5);
  auto job = *j.import_job(id);
  EXPECT_EQ(job.job_id, "job-4");
  EXPECT_EQ(job.status, "IN_PROGRESS");
  EXPECT_EQ(job.validation_level, "");
  EXPECT_EQ(job.reported_level, "");
  EXPECT_EQ(job.message, "");
  // The migrated row takes what HealthLake reports.
  j.record_import_reported(id, "structure-only", "");
  EXPECT_EQ(j.import_job(id)->reported_level, "structure-only");
  bool migrated = false, reported = false;
  for (const auto& ev : j.events(std::nullopt, 1000)) {
    if (ev.kind == "migration" && ev.message.find("version 5") != std::string::npos)
      migrated = true;
    if (ev.message.find("HealthLake reports ValidationLevel structure-only") != std::string::npos)
      reported = true;
  }
  EXPECT_TRUE(migrated);
  EXPECT_TRUE(reported);
}

TEST(Journal, ImportJobLevelsAndMessageAreRecorded) {
  TempDir dir;
  auto db = dir / "journal.db";
  auto j = Journal::open(db);
  auto e = j.take_export("p", "/in/l", "d-l", "l", two_files()).row;
  for (auto s : {ExportState::complete, ExportState::spooling, ExportState::spooled,
                 ExportState::uploading, ExportState::uploaded})
    j.set_export_state(e.id, s);
  j.record_import_token(e.id, "tok-l", "l", 1, "s3://b/l/import/", "strict");
  EXPECT_EQ(query_text(db, "SELECT validation_level FROM import_jobs"), "strict");
  j.set_export_state(e.id, ExportState::import_starting);
  j.record_import_job(e.id, "job-l", "SUBMITTED");
  auto job = *j.import_job(e.id);
  EXPECT_EQ(job.validation_level, "strict");
  EXPECT_EQ(job.reported_level, "");  // not reported yet
  auto table = format_status_table(read_status(j));
  EXPECT_NE(table.find("strict (not reported)"), std::string::npos) << table;

  j.record_import_reported(e.id, "minimal", "");
  j.record_import_reported(e.id, "minimal", "");  // polls repeat it: one event
  job = *j.import_job(e.id);
  EXPECT_EQ(job.reported_level, "minimal");
  size_t events = 0;
  for (const auto& ev : j.events(e.id, 1000))
    if (ev.message.find("reports ValidationLevel minimal") != std::string::npos) ++events;
  EXPECT_EQ(events, 1u);
  table = format_status_table(read_status(j));
  EXPECT_NE(table.find("LEVEL"), std::string::npos) << table;
  EXPECT_NE(table.find("minimal (started strict)"), std::string::npos) << table;
  auto json = format_status_json(read_status(j), j.schema_version());
  EXPECT_NE(json.find("\"validation_level\":\"strict\",\"reported_validation_level\":\"minimal\","
                      "\"validation_level_match\":false"),
            std::string::npos)
      << json;

  j.record_import_reported(e.id, "strict", "Input S3 bucket x does not exist");
  job = *j.import_job(e.id);
  EXPECT_EQ(job.message, "Input S3 bucket x does not exist");
  table = format_status_table(read_status(j));
  EXPECT_EQ(table.find("(started"), std::string::npos) << table;
  json = format_status_json(read_status(j), j.schema_version());
  EXPECT_NE(json.find("\"validation_level_match\":true"), std::string::npos) << json;
}

// Issue 17 item 3: status shows the job progress HealthLake reported (scanned, imported, failed,
// throughput) and the Message of a FAILED job as the last error, in the table and in --json.
TEST(Journal, StatusShowsJobProgressAndTheMessageOfAFailedJob) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto e = walked(j, "prog", ExportState::import_starting).row;
  j.record_import_job(e.id, "job-p", "SUBMITTED");
  j.set_export_state(e.id, ExportState::importing);
  auto table = format_status_table(read_status(j));
  EXPECT_NE(table.find("PROGRESS"), std::string::npos) << table;
  auto json = format_status_json(read_status(j), j.schema_version());
  EXPECT_NE(json.find("\"import_progress\":null"), std::string::npos) << json;

  j.record_import_status(e.id, "IN_PROGRESS",
                         "{\"TotalNumberOfScannedFiles\":2,\"TotalSizeOfScannedFilesInMB\":3.5,"
                         "\"TotalNumberOfImportedFiles\":1,\"TotalNumberOfResourcesScanned\":42,"
                         "\"TotalNumberOfResourcesImported\":30,"
                         "\"TotalNumberOfResourcesWithCustomerError\":2,"
                         "\"TotalNumberOfFilesReadWithCustomerError\":0,\"Throughput\":1.5}");
  table = format_status_table(read_status(j));
  EXPECT_NE(table.find("42 scanned, 30 imported, 2 failed, 1.5 MB/s"), std::string::npos) << table;
  json = format_status_json(read_status(j), j.schema_version());
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  auto x = doc["exports"].at(0);
  for (auto p :
       {x["import_progress"], x["import_job"]["progress"], x["import_jobs"].at(0)["progress"]}) {
    EXPECT_EQ(int64_t(p["resources_scanned"]), 42);
    EXPECT_EQ(int64_t(p["resources_imported"]), 30);
    EXPECT_EQ(int64_t(p["resources_failed"]), 2);
    EXPECT_EQ(int64_t(p["files_scanned"]), 2);
    EXPECT_DOUBLE_EQ(double(p["throughput_mb_per_s"]), 1.5);
    EXPECT_DOUBLE_EQ(double(p["size_scanned_mb"]), 3.5);
  }

  // The job FAILED: HealthLake's Message is the last error even when the export recorded none.
  j.record_import_status(e.id, "FAILED", "");
  j.record_import_reported(e.id, "", "No input files found at s3://b/prog/import/");
  j.record_import_outcome(e.id, "{}");
  j.set_export_state(e.id, ExportState::import_failed);
  ASSERT_EQ(j.get_export(e.id).last_error, "");
  table = format_status_table(read_status(j));
  EXPECT_NE(table.find("import job job-p FAILED: No input files found"), std::string::npos)
      << table;
  json = format_status_json(read_status(j), j.schema_version());
  simdjson::dom::parser parser2;
  ASSERT_EQ(parser2.parse(json).get(doc), simdjson::SUCCESS) << json;
  x = doc["exports"].at(0);
  EXPECT_EQ(std::string_view(x["last_error"]),
            "import job job-p FAILED: No input files found at s3://b/prog/import/");
  EXPECT_EQ(std::string_view(x["import_job"]["message"]),
            "No input files found at s3://b/prog/import/");
}

// One big file hashed in ranges of its pieces on several threads (digest_pieces, then
// file_digest_of_pieces) is the same FileDigest as file_digest in one pass: root, size and piece
// digests, however the ranges are cut; the last range reads to the end (a file that grew is
// hashed whole); a range that finds fewer bytes than its pieces (the file shrank) throws, and so
// do ranges that saw different identities (the file changed between them).
TEST(Digest, PiecesHashedInRangesOnThreadsGiveTheSameDigest) {
  TempDir dir;
  std::string b(5 * kDigestPiece + 12345, '\0');
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>((i * 13) % 241);
  const auto path = dir / "big.ndjson";
  std::ofstream(path, std::ios::binary) << b;
  const auto whole = file_digest(path);
  for (std::uint64_t per : {1, 2, 4}) {
    SCOPED_TRACE(per);
    std::vector<std::future<PieceRange>> jobs;
    const std::uint64_t pieces = 6;
    for (std::uint64_t first = 0; first < pieces; first += per)
      jobs.push_back(std::async(std::launch::async, [&, first] {
        return digest_pieces(path, first, first + per >= pieces ? 0 : per);
      }));
    std::vector<PieceRange> ranges;
    for (auto& j : jobs) ranges.push_back(j.get());
    const auto d = file_digest_of_pieces(path, ranges);
    EXPECT_EQ(d.root, whole.root);
    EXPECT_EQ(d.size, b.size());
    EXPECT_EQ(*d.pieces, *whole.pieces);
    EXPECT_EQ(d.identity, whole.identity);
    EXPECT_EQ(combine_digest({{"big.ndjson", d}}), content_digest(dir.path(), {"big.ndjson"}));
  }
  // The file shrank below a range's pieces.
  EXPECT_THROW(digest_pieces(path, 4, 2), std::runtime_error);
  EXPECT_EQ(digest_pieces(path, 4, 0).pieces.size(), 2u);
  EXPECT_EQ(digest_pieces(path, 9, 0).bytes, 0u);  // beyond the end: nothing to the end
  // Ranges that saw another file (or the same file rewritten).
  auto a = digest_pieces(path, 0, 1);
  auto rest = digest_pieces(path, 1, 0);
  rest.identity.mtime_ns += 1;
  EXPECT_THROW(file_digest_of_pieces(path, {a, rest}), std::runtime_error);
  EXPECT_THROW(digest_pieces(dir / "missing", 0, 1), std::runtime_error);
}

// A path the journal holds with a legacy digest is digested with the legacy scheme again (the
// pipeline asks has_legacy_digest first), so an export taken before the upgrade is recognised
// after it, also once it was compacted to a tombstone; other paths and pipelines are not affected.
TEST(Digest, LegacyDigestsAreFoundPerPipelineAndPathAlsoInTombstones) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  auto old = walked(j, "old", ExportState::imported, "sha256:aa").row;
  walked(j, "new", ExportState::imported, "sha256-pieces:bb");
  EXPECT_TRUE(j.has_legacy_digest("p", "/in/old"));
  EXPECT_FALSE(j.has_legacy_digest("p", "/in/new"));
  EXPECT_FALSE(j.has_legacy_digest("q", "/in/old"));
  EXPECT_FALSE(j.has_legacy_digest("p", "/in/other"));
  // Compacted (a newer import of the pipeline is kept): the tombstone still says legacy.
  ASSERT_EQ(j.compact(std::chrono::seconds(0)), 1u);
  ASSERT_FALSE(j.find_export(old.name));
  EXPECT_TRUE(j.has_legacy_digest("p", "/in/old"));
  EXPECT_TRUE(j.take_export("p", "/in/old", "sha256:aa", "old", two_files()).compacted);
}

// The spool pass hashes the content digest from its own read (SourceHasher): fed in any chunks,
// it gives file_digest's root, size and piece digests, each piece as soon as its last byte came.
TEST(Digest, SourceHasherGivesTheFileDigestOfTheSameBytes) {
  TempDir dir;
  for (std::uint64_t size : {std::uint64_t{0}, std::uint64_t{5}, kDigestPiece, kDigestPiece + 1,
                             2 * kDigestPiece + 12345}) {
    SCOPED_TRACE(size);
    std::string b(size, '\0');
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>((i * 31) % 253);
    const auto path = dir / "f.ndjson";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << b;
    const auto want = file_digest(path);
    SourceHasher h;
    std::uint64_t at = 0, step = 1;
    while (at < size) {
      const std::uint64_t n = std::min<std::uint64_t>(step, size - at);
      h.update(b.data() + at, n);
      at += n;
      EXPECT_EQ(h.pieces()->size(), at / kDigestPiece);  // every piece ended so far, no more
      step = step * 3 + 7;                               // odd chunks across piece boundaries
    }
    const auto got = h.finish();
    EXPECT_EQ(got.root, want.root);
    EXPECT_EQ(got.size, want.size);
    ASSERT_NE(got.pieces, nullptr);
    EXPECT_EQ(*got.pieces, *want.pieces);
    EXPECT_EQ(combine_digest({{"f.ndjson", got}}), content_digest(dir.path(), {"f.ndjson"}));
  }
}

TEST(Digest, APendingDigestNeverMakesAClientToken) {
  EXPECT_TRUE(is_pending_digest("pending:a"));
  EXPECT_FALSE(is_pending_digest("sha256-pieces:ab"));
  EXPECT_EQ(scheme_of("pending:a"), DigestScheme::pieces);  // never taken for a legacy path
  EXPECT_THROW(client_token("p", "/in/a", "pending:a", 1), std::logic_error);
  EXPECT_THROW(import_client_token("p", "/in/a", "pending:a", 1, 2, 1), std::logic_error);
}

// Take before the digest (docs/pipeline.md "One pass"): only a source path the journal has never
// seen, as version 1 with its digest pending; the digest is recorded once; until then the path's
// pending export is found (for the watcher's next report), and a path known from a tombstone is
// never taken that way.
TEST(Journal, ANewSourceIsTakenBeforeItsDigestAndTheDigestRecordedOnce) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  EXPECT_FALSE(j.source_seen("p", "/in/a"));
  auto t = j.take_new_source("p", "/in/a", "a", two_files());
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->existing);
  EXPECT_EQ(t->row.version, 1);
  EXPECT_EQ(t->row.name, "a");
  EXPECT_EQ(t->row.digest, "pending:a");
  EXPECT_EQ(j.files(t->row.id).size(), 2u);
  EXPECT_TRUE(j.source_seen("p", "/in/a"));
  EXPECT_FALSE(j.source_seen("q", "/in/a"));
  EXPECT_FALSE(j.take_new_source("p", "/in/a", "a", two_files()));  // known now
  ASSERT_TRUE(j.pending_export("p", "/in/a"));
  EXPECT_EQ(j.pending_export("p", "/in/a")->id, t->row.id);
  EXPECT_FALSE(j.pending_export("q", "/in/a"));
  // A later report digests first: nothing matches a pending digest, so the same content would be
  // a new version; the pipeline prevents that by comparing the files with the pending export's.
  EXPECT_TRUE(j.record_digest(t->row.id, "sha256-pieces:aa"));
  EXPECT_EQ(j.get_export(t->row.id).digest, "sha256-pieces:aa");
  EXPECT_FALSE(j.pending_export("p", "/in/a"));
  EXPECT_TRUE(j.record_digest(t->row.id, "sha256-pieces:aa"));  // a redo: no-op
  EXPECT_THROW(j.record_digest(t->row.id, "sha256-pieces:bb"), Error);
  auto again = j.take_export("p", "/in/a", "sha256-pieces:aa", "a", two_files());
  EXPECT_TRUE(again.existing);
  EXPECT_EQ(again.row.id, t->row.id);

  // The same content taken meanwhile as a later version: not recorded twice.
  auto b = j.take_new_source("p", "/in/b", "b", two_files());
  ASSERT_TRUE(b);
  auto b2 = j.take_export("p", "/in/b", "sha256-pieces:cc", "b", two_files());
  EXPECT_EQ(b2.row.version, 2);
  EXPECT_THROW(j.record_digest(b->row.id, "pending:x"), Error);
  EXPECT_FALSE(j.record_digest(b->row.id, "sha256-pieces:cc"));
  EXPECT_EQ(j.get_export(b->row.id).digest, "pending:b");
  // Superseded with its digest pending: no longer the path's pending export.
  j.set_export_state(b->row.id, ExportState::complete);
  j.set_export_state(b->row.id, ExportState::spooling);
  j.set_export_state(b->row.id, ExportState::superseded, "changed");
  EXPECT_FALSE(j.pending_export("p", "/in/b"));

  // Known only from a tombstone: still seen, digest first.
  walked(j, "c", ExportState::imported, "sha256-pieces:dd");
  walked(j, "later", ExportState::imported, "sha256-pieces:ee");
  j.compact(std::chrono::seconds(0));
  ASSERT_FALSE(j.find_export(std::string_view("c")));
  EXPECT_TRUE(j.source_seen("p", "/in/c"));
  EXPECT_FALSE(j.take_new_source("p", "/in/c", "c", two_files()));
}
