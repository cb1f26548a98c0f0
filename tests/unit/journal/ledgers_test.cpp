// One writer per table (issue 14, docs/journal.md "Who writes what"): the typed ledgers, the
// import stage's own `imports` table, the mailbox's `request_answers`, and the migration of a real
// schema-5 journal (written by the fhir-edge before schema 6) to them.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <map>
#include <sstream>

#include "journal/journal.hpp"
#include "journal/ledgers.hpp"
#include "journal/status.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace fe::journal;
using namespace fe::journal::test;

namespace {

// Everything a reader sees of an export, as one comparable string.
std::string render(const ExportRow& e) {
  std::ostringstream o;
  o << e.id << '|' << e.name << '|' << e.pipeline << '|' << e.source_path << '|' << e.digest << '|'
    << e.version << '|' << to_string(e.state) << '|'
    << (e.parked_from ? std::string(to_string(*e.parked_from)) : "-") << '|' << e.parked_reason
    << '|' << e.last_error << '|' << e.files << '|' << e.resources_valid << '|'
    << e.resources_rejected << '|' << e.bytes_source << '|' << e.bytes_spooled << '|'
    << e.bytes_uploaded << '|' << e.created_at << '|' << e.updated_at << '|'
    << (e.finished_at ? std::to_string(*e.finished_at) : "-") << '|' << e.import_attempt;
  return o.str();
}

std::string render(const ImportJobRow& j) {
  return std::to_string(j.attempt) + "|" + std::to_string(j.part) + "|" + j.client_token + "|" +
         j.job_name + "|" + j.job_id + "|" + j.status + "|" + j.outcome + "|" + j.validation_level +
         "|" + j.reported_level;
}

std::string render(const RequestRow& r) {
  return std::to_string(r.id) + "|" + r.kind + "|" + r.target + "|" + r.args + "|" + r.state + "|" +
         r.result + "|" + (r.done_at ? "answered" : "-");
}

// Everything the readers see: exports, their current jobs, requests.
std::map<std::string, std::string> snapshot(const Journal& j) {
  std::map<std::string, std::string> out;
  for (const auto& e : j.exports(true)) {
    out["export " + e.name] = render(e);
    for (const auto& job : j.import_jobs(e.id))
      out["job " + e.name + " " + std::to_string(job.part)] = render(job);
    for (const auto& f : j.files(e.id))
      out["file " + e.name + " " + f.name] =
          f.import_key + "|" + f.import_upload_id + "|" + std::string(to_string(f.state));
  }
  for (int64_t id = 1; id <= 3; ++id)
    if (auto r = j.request(id)) out["request " + std::to_string(id)] = render(*r);
  return out;
}

// Loads data/schema5.sql (a real schema-5 journal, see make_schema5.cpp) into `db`.
void load_schema5(const fs::path& db) {
  std::ifstream in(std::string(FE_JOURNAL_TEST_DATA) + "/schema5.sql");
  ASSERT_TRUE(in) << FE_JOURNAL_TEST_DATA;
  std::stringstream sql;
  sql << in.rdbuf();
  exec_sql(db, sql.str());
}

int64_t walk_to_uploaded(Journal& j, const std::string& name) {
  auto id = j.take_export("p", "/in/" + name, "d-" + name, name, two_files()).row.id;
  for (auto s : {ExportState::complete, ExportState::spooling, ExportState::spooled,
                 ExportState::uploading, ExportState::uploaded})
    j.set_export_state(id, s);
  return id;
}

}  // namespace

// The whole life of a schema-5 journal written by the fhir-edge before this one: every export,
// job and request reads exactly the same after the migration; the import stage's part moved to
// `imports`, the answers to `request_answers`; and every stage goes on from where it was.
TEST(JournalMigration, Schema5FileWrittenByTheLastVersionMigratesTo6) {
  fe::test::TempDir dir;
  auto db = dir / "journal.db";
  load_schema5(db);
  std::map<std::string, std::string> before;
  {
    auto r = Journal::open(db, {.read_only = true});  // status before the daemon migrated it
    ASSERT_EQ(r.schema_version(), 5);
    before = snapshot(r);
    EXPECT_EQ(r.get_export(r.find_export("importing")->id).state, ExportState::importing);
  }
  ASSERT_EQ(before.count("export retried"), 1u);
  auto j = Journal::open(db);
  ASSERT_EQ(j.schema_version(), kSchemaVersion);  // and on to the newest
  EXPECT_EQ(snapshot(j), before);

  // Where it lives now: the exports row of every export the import stage had is `uploaded` (the
  // hand-off); its state, park, error and attempt are in imports.
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM imports"), "8");
  EXPECT_EQ(query_text(db,
                       "SELECT COUNT(*) FROM exports WHERE state IN ('import_starting',"
                       "'importing','imported','import_failed','nothing_to_import')"),
            "0");
  EXPECT_EQ(query_text(db, "SELECT state FROM exports WHERE name='parked-import'"), "uploaded");
  EXPECT_EQ(query_text(db,
                       "SELECT i.state||' '||i.parked_from FROM imports i JOIN exports e ON "
                       "e.id=i.export_id WHERE e.name='parked-import'"),
            "parked importing");
  EXPECT_EQ(query_text(db,
                       "SELECT i.import_attempt FROM imports i JOIN exports e ON "
                       "e.id=i.export_id WHERE e.name='retried'"),
            "2");
  // Parked before the hand-off: still the pipeline's row.
  EXPECT_EQ(
      query_text(db, "SELECT state||' '||parked_from FROM exports WHERE name='parked-upload'"),
      "parked uploading");
  EXPECT_EQ(query_text(db,
                       "SELECT COUNT(*) FROM imports i JOIN exports e ON e.id=i.export_id "
                       "WHERE e.name IN ('parked-upload','uploading','given-up')"),
            "0");
  // The columns no stage writes any more are gone, so nothing can write them by mistake.
  EXPECT_EQ(query_text(db,
                       "SELECT COUNT(*) FROM pragma_table_info('exports') WHERE name IN "
                       "('import_attempt','bytes_uploaded')"),
            "0");
  EXPECT_EQ(query_text(db,
                       "SELECT COUNT(*) FROM pragma_table_info('requests') WHERE name IN "
                       "('state','result','done_at')"),
            "0");
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM request_answers"), "2");
  EXPECT_EQ(query_text(db, "PRAGMA foreign_key_check"), "");
  bool migrated = false;
  for (const auto& ev : j.events(std::nullopt, 1000))
    if (ev.kind == "migration" && ev.message.find("version 6") != std::string::npos)
      migrated = true;
  EXPECT_TRUE(migrated);

  // Each stage goes on. The import stage follows its job to the end...
  const auto importing = j.find_export("importing")->id;
  j.record_import_status(importing, "COMPLETED", "{}");
  ImportLedger(j).set_export_state(importing, ExportState::imported, "done");
  EXPECT_EQ(j.get_export(importing).state, ExportState::imported);
  EXPECT_TRUE(j.get_export(importing).finished_at.has_value());
  // ...starts the retried attempt's job with the token journaled before the migration...
  const auto retried = j.find_export("retried")->id;
  j.record_import_token(retried, "tok-retried-2", "retried-2", 1);  // the same token: a no-op
  j.record_import_job(retried, "job-retried-2", "SUBMITTED");
  j.set_export_state(retried, ExportState::importing);
  EXPECT_EQ(j.import_job(retried)->job_id, "job-retried-2");
  EXPECT_EQ(j.import_job(retried)->attempt, 2);
  // ...and the operator's retry of a failed import is a new attempt.
  auto o = j.retry_export("failed-import", false);
  ASSERT_TRUE(o.applied) << o.message;
  EXPECT_EQ(j.find_export("failed-import")->import_attempt, 2);
  EXPECT_EQ(j.find_export("failed-import")->state, ExportState::uploaded);
  EXPECT_FALSE(j.import_job(j.find_export("failed-import")->id).has_value());
  // The pipeline resumes the export parked mid-upload (the retry is the pipeline's unpark) and
  // hands it over; the pending request is answered in request_answers.
  auto p = j.retry_export("parked-upload", false);
  ASSERT_TRUE(p.applied) << p.message;
  const auto parked_upload = j.find_export("parked-upload")->id;
  EXPECT_EQ(j.get_export(parked_upload).state, ExportState::uploading);
  IngestLedger(j).set_export_state(parked_upload, ExportState::uploaded);
  ImportLedger(j).set_export_state(parked_upload, ExportState::import_starting);
  ASSERT_EQ(j.pending_requests().size(), 1u);
  j.finish_request(j.pending_requests()[0].id, true, "compacted 0");
  EXPECT_TRUE(j.pending_requests().empty());
  EXPECT_EQ(j.request(3)->state, "done");
  // A compacted source is still recognised (its tombstone came through).
  EXPECT_TRUE(j.take_export("p", "/in/old", "sha256:old", "old", two_files()).compacted);
  // status reads it.
  auto table = format_status_table(read_status(j, true));
  EXPECT_NE(table.find("parked-import"), std::string::npos) << table;
}

// Which ledger may write what is a matter of type: a stage holding its ledger cannot even name
// another stage's writes.
template <class L>
concept WritesExportIdentity = requires(L l) {
  l.take_export("", "", "", "", {});
};
template <class L>
concept WritesFiles = requires(L l) {
  l.set_file_state(1, FileState::spooling);
};
template <class L>
concept WritesSpool = requires(L l) {
  l.record_spooled(1, SpoolOutcome{});
};
template <class L>
concept WritesObjects = requires(L l) {
  l.set_file_upload(1, PartKind::import, "", "");
};
template <class L>
concept WritesParts = requires(L l) {
  l.record_part_uploaded(1, PartKind::import, 1, "", "");
};
template <class L>
concept WritesImportJobs = requires(L l) {
  l.record_import_token(1, "", "");
};
template <class L>
concept StartsAttempts = requires(L l) {
  l.new_attempt(1, "");
};
template <class L>
concept WritesExportState = requires(L l) {
  l.set_export_state(1, ExportState::complete);
};
template <class L>
concept InsertsRequests = requires(L l) {
  l.add("retry", "", "");
};
template <class L>
concept AnswersRequests = requires(L l) {
  l.answer(1, true, "");
};

TEST(JournalOwnership, EachLedgerCanNameOnlyItsOwnStagesWrites) {
  static_assert(WritesExportIdentity<IngestLedger> && WritesFiles<IngestLedger> &&
                WritesSpool<IngestLedger> && WritesExportState<IngestLedger>);
  static_assert(!WritesObjects<IngestLedger> && !WritesParts<IngestLedger> &&
                !WritesImportJobs<IngestLedger> && !StartsAttempts<IngestLedger> &&
                !InsertsRequests<IngestLedger> && !AnswersRequests<IngestLedger>);

  static_assert(WritesObjects<UploadLedger> && WritesParts<UploadLedger>);
  static_assert(!WritesExportIdentity<UploadLedger> && !WritesFiles<UploadLedger> &&
                !WritesSpool<UploadLedger> && !WritesExportState<UploadLedger> &&
                !WritesImportJobs<UploadLedger> && !AnswersRequests<UploadLedger>);

  // The import ledger cannot write what the pipeline owns (identity, files, spool counts,
  // objects, parts) nor touch requests.
  static_assert(WritesImportJobs<ImportLedger> && StartsAttempts<ImportLedger> &&
                WritesExportState<ImportLedger>);
  static_assert(!WritesExportIdentity<ImportLedger> && !WritesFiles<ImportLedger> &&
                !WritesSpool<ImportLedger> && !WritesObjects<ImportLedger> &&
                !WritesParts<ImportLedger> && !InsertsRequests<ImportLedger> &&
                !AnswersRequests<ImportLedger>);

  // The CLI inserts requests and cannot answer them; the mailbox answers and cannot insert.
  static_assert(InsertsRequests<RequestLedger> && !AnswersRequests<RequestLedger> &&
                !WritesExportState<RequestLedger> && !WritesImportJobs<RequestLedger>);
  static_assert(AnswersRequests<MailboxLedger> && !InsertsRequests<MailboxLedger> &&
                !WritesExportState<MailboxLedger> && !WritesImportJobs<MailboxLedger>);
  SUCCEED();
}

// The export's state has one owner at a time: the pipeline until it hands the export over in
// `uploaded`, the import stage from then on. Either ledger refuses the other's export and changes
// nothing; the Journal methods route each call to the owner.
TEST(JournalOwnership, TheExportStateHasOneOwnerAtATime) {
  fe::test::TempDir dir;
  auto db = dir / "journal.db";
  auto j = Journal::open(db);
  IngestLedger ingest(j);
  ImportLedger import(j);

  auto id = ingest.take_export("p", "/in/a", "d-a", "a", two_files()).row.id;
  ingest.set_export_state(id, ExportState::complete);
  ingest.set_export_state(id, ExportState::spooling);
  auto msg = error_of([&] { import.set_export_state(id, ExportState::spooled); });
  EXPECT_NE(msg.find("belongs to the pipeline"), std::string::npos) << msg;
  msg = error_of([&] { import.park_export(id, "x"); });
  EXPECT_NE(msg.find("belongs to the pipeline"), std::string::npos) << msg;
  msg = error_of([&] { import.set_export_error(id, "x"); });
  EXPECT_NE(msg.find("belongs to the pipeline"), std::string::npos) << msg;
  EXPECT_EQ(j.get_export(id).state, ExportState::spooling);
  EXPECT_EQ(j.get_export(id).last_error, "");

  for (auto s : {ExportState::spooled, ExportState::uploading, ExportState::uploaded})
    ingest.set_export_state(id, s);
  // Handed over: the pipeline can no longer move it, park it or record an error on it.
  msg = error_of([&] { ingest.set_export_state(id, ExportState::import_starting); });
  EXPECT_NE(msg.find("belongs to the import stage"), std::string::npos) << msg;
  msg = error_of([&] { ingest.park_export(id, "x"); });
  EXPECT_NE(msg.find("belongs to the import stage"), std::string::npos) << msg;
  msg = error_of([&] { ingest.fail_export(id, "x"); });
  EXPECT_NE(msg.find("belongs to the import stage"), std::string::npos) << msg;
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM imports"), "0");

  import.set_export_error(id, "ThrottlingException");
  EXPECT_EQ(j.get_export(id).last_error, "ThrottlingException");
  import.record_import_token(id, "tok-a", "a");
  import.set_export_state(id, ExportState::import_starting);
  // Journal's method of the same name routes to the owner.
  j.set_export_state(id, ExportState::importing);
  j.park_export(id, "ResourceNotFound");
  EXPECT_EQ(j.get_export(id).state, ExportState::parked);
  EXPECT_EQ(j.get_export(id).parked_from, ExportState::importing);
  // States are still checked (states.hpp), in the owner's table too.
  msg = error_of([&] { import.set_export_state(id, ExportState::imported); });
  EXPECT_NE(msg.find("parked from importing"), std::string::npos) << msg;
  j.unpark_export(id);
  msg = error_of([&] { import.set_export_state(id, ExportState::uploaded); });
  EXPECT_NE(msg.find("illegal transition importing -> uploaded"), std::string::npos) << msg;
  import.set_export_state(id, ExportState::imported, "10 imported");

  // The exports row was not written after the hand-off; the imports row holds the rest.
  EXPECT_EQ(query_text(db,
                       "SELECT state||'|'||last_error||'|'||IFNULL(finished_at,'-') FROM "
                       "exports WHERE name='a'"),
            "uploaded||-");
  EXPECT_EQ(query_text(db, "SELECT state FROM imports"), "imported");
  EXPECT_EQ(query_text(db, "SELECT state FROM export_view WHERE name='a'"), "imported");
  EXPECT_EQ(j.exports_in(ExportState::imported).size(), 1u);
  EXPECT_TRUE(j.exports_in(ExportState::uploaded).empty());
  // Each change still appended its event.
  int state_events = 0;
  for (const auto& ev : j.events(id, 100))
    if (ev.kind == "state" || ev.kind == "park" || ev.kind == "unpark") ++state_events;
  EXPECT_EQ(state_events, 11);
}

// bytes_uploaded follows the parts without the upload ledger writing the exports row.
TEST(JournalOwnership, UploadLedgerWritesNoExportRow) {
  fe::test::TempDir dir;
  auto db = dir / "journal.db";
  auto j = Journal::open(db);
  auto id = j.take_export("p", "/in/b", "d-b", "b", two_files()).row.id;
  for (auto s : {ExportState::complete, ExportState::spooling, ExportState::spooled})
    j.set_export_state(id, s);
  auto f = j.files(id)[0];
  IngestLedger(j).plan_parts(f.id, PartKind::import, {{1, 0, 60, ""}, {2, 60, 40, ""}}, false);
  const auto updated = query_text(db, "SELECT updated_at FROM exports WHERE name='b'");
  UploadLedger up(j);
  up.set_file_upload(f.id, PartKind::import, "pre/b/import/x", "up-1");
  up.record_part_uploaded(f.id, PartKind::import, 1, "e1", "c1");
  EXPECT_EQ(j.get_export(id).bytes_uploaded, 60);
  up.record_part_uploaded(f.id, PartKind::import, 2, "e2", "c2");
  EXPECT_EQ(j.get_export(id).bytes_uploaded, 100);
  EXPECT_EQ(query_text(db, "SELECT updated_at FROM exports WHERE name='b'"), updated);
  up.restart_upload(f.id, PartKind::import, "pre/b/import/x", "up-2");
  EXPECT_EQ(j.get_export(id).bytes_uploaded, 0);
  EXPECT_EQ(j.get_file(f.id).import_upload_id, "up-2");
}

// The CLI inserts a request; the mailbox's answer goes to request_answers, once.
TEST(JournalOwnership, RequestsAreAnsweredInTheMailboxsTable) {
  fe::test::TempDir dir;
  auto db = dir / "journal.db";
  int64_t id = 0;
  {
    auto j = Journal::open(db);
    walk_to_uploaded(j, "c");
  }
  {
    auto j = Journal::open(db);
    id = RequestLedger::submit(db, "retry", "c", "");  // a second connection, as the CLI does
    MailboxLedger box(j);
    ASSERT_EQ(box.pending().size(), 1u);
    auto [ok, result] = j.apply_request(box.pending()[0]);
    EXPECT_FALSE(ok);  // uploaded: in progress, nothing to retry
    box.answer(id, ok, result);
    box.answer(id, true, "a second answer");  // the first one stands
    EXPECT_TRUE(box.pending().empty());
    auto r = j.request(id);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->state, "refused");
    EXPECT_EQ(r->result, result);
    EXPECT_TRUE(r->done_at.has_value());
    EXPECT_EQ(RequestLedger(j).add("compact", "", "0"), id + 1);
  }
  EXPECT_EQ(query_text(db, "SELECT state||'|'||result FROM request_answers WHERE request_id=" +
                               std::to_string(id)),
            "refused|" + Journal::open(db, {.read_only = true}).request(id)->result);
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM request_answers"), "1");
  // A compaction removes answered requests (and their answers) and keeps the pending one.
  auto j = Journal::open(db);
  j.compact(std::chrono::seconds(0));
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM requests"), "1");
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM request_answers"), "0");
  EXPECT_EQ(j.pending_requests().size(), 1u);
}
