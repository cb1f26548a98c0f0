// Import batches in the journal (schema 7, issue 16 item 2): the batch and its members are
// journaled before the Start, in one transaction with every member's token and state; a restart
// finds the same batch and token; an export is in one batch per attempt; the 6 → 7 migration keeps
// every import job.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "journal/journal.hpp"
#include "test_util.hpp"

using namespace fe::journal;
using namespace fe::journal::test;

namespace {

// SQLite's error for `sql` run on a connection of its own ("" when it succeeded).
std::string sql_error(const std::filesystem::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr);
  char* err = nullptr;
  int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
  std::string e = rc == SQLITE_OK ? "" : (err ? err : "error");
  sqlite3_free(err);
  sqlite3_close(h);
  return e;
}

int64_t uploaded_export(Journal& j, const std::string& name) {
  auto id = j.take_export("p", "/in/" + name, "d-" + name, name, two_files()).row.id;
  for (auto s : {ExportState::complete, ExportState::spooling, ExportState::spooled,
                 ExportState::uploading, ExportState::uploaded})
    j.set_export_state(id, s);
  return id;
}

BatchPlan plan_of(std::vector<int64_t> members, std::string token = "fe-b0123") {
  BatchPlan p;
  p.client_token = std::move(token);
  p.job_name = "batch-0123-" + std::to_string(members.size());
  p.input_uri = "s3://bucket/x/batches/" + p.client_token + "/";
  p.group_key = "ds\nstrict\nrole\nout\nkey\n";
  p.validation_level = "strict";
  p.members = std::move(members);
  return p;
}

}  // namespace

TEST(JournalBatches, BatchAndMembersAreJournaledBeforeStartInOneTransaction) {
  fe::test::TempDir dir;
  auto db = dir / "journal.db";
  int64_t a, b, c, batch;
  {
    auto j = Journal::open(db);
    a = uploaded_export(j, "a");
    b = uploaded_export(j, "b");
    c = uploaded_export(j, "c");
    batch = j.record_batch(plan_of({a, b, c}));
    // Every member: the batch's token, JobName and input on its job row, and import_starting.
    for (auto id : {a, b, c}) {
      auto e = j.get_export(id);
      EXPECT_EQ(e.state, ExportState::import_starting) << e.name;
      auto job = j.import_job(id);
      ASSERT_TRUE(job) << e.name;
      EXPECT_EQ(job->client_token, "fe-b0123");
      EXPECT_EQ(job->job_name, "batch-0123-3");
      EXPECT_EQ(job->input_uri, "s3://bucket/x/batches/fe-b0123/");
      EXPECT_EQ(job->validation_level, "strict");
      EXPECT_TRUE(job->job_id.empty());  // nothing was sent yet
    }
  }
  // "Crash": a new process opens the journal and finds the same batch, members and token, so the
  // Start it sends (or the ListFHIRImportJobs it asks first) carries the same ClientToken.
  auto j = Journal::open(db);
  for (auto id : {a, b, c}) {
    auto found = j.batch_of(id);
    ASSERT_TRUE(found);
    EXPECT_EQ(found->id, batch);
    EXPECT_EQ(found->client_token, "fe-b0123");
    EXPECT_EQ(found->members, (std::vector<int64_t>{a, b, c}));
  }
  // Journaling the same batch again (a crash before the caller saw the id) changes nothing.
  EXPECT_EQ(j.record_batch(plan_of({a, b, c})), batch);
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM import_batches"), "1");
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM import_batch_members"), "3");
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM import_jobs"), "3");
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM events WHERE kind='batch'"), "1");
  // Once HealthLake answered, every member's row gets the one job.
  for (auto id : {a, b, c}) j.record_import_job(id, "job-1", "SUBMITTED");
  EXPECT_EQ(query_text(db, "SELECT COUNT(DISTINCT job_id) FROM import_jobs"), "1");
}

TEST(JournalBatches, AnExportIsInOneBatchPerAttempt) {
  fe::test::TempDir dir;
  auto db = dir / "journal.db";
  auto j = Journal::open(db);
  auto a = uploaded_export(j, "a");
  auto b = uploaded_export(j, "b");
  auto c = uploaded_export(j, "c");
  j.record_batch(plan_of({a, b}));
  // a is in a batch (and import_starting): a second batch with it is refused whole, so c is not
  // touched either.
  EXPECT_THROW(j.record_batch(plan_of({c, a}, "fe-b4567")), Error);
  EXPECT_EQ(j.get_export(c).state, ExportState::uploaded);
  EXPECT_FALSE(j.batch_of(c));
  EXPECT_TRUE(j.import_jobs(c).empty());
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM import_batches"), "1");
  // Not uploaded yet: refused, nothing written.
  auto d = j.take_export("p", "/in/d", "d-d", "d", two_files()).row.id;
  EXPECT_THROW(j.record_batch(plan_of({c, d}, "fe-b89ab")), Error);
  EXPECT_EQ(j.get_export(c).state, ExportState::uploaded);
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM import_batch_members"), "2");
  // The primary key holds it even against SQL that bypasses the API.
  EXPECT_NE(sql_error(db, "INSERT INTO import_batch_members(batch_id,export_id,attempt) VALUES(1," +
                              std::to_string(a) + ",1)"),
            "");
  // A retry's new attempt may join a new batch.
  j.record_import_job(a, "job-1", "SUBMITTED");
  j.set_export_state(a, ExportState::importing);
  j.set_export_state(a, ExportState::import_failed);
  ASSERT_TRUE(j.retry_export("a", false).applied);
  EXPECT_FALSE(j.batch_of(a));  // attempt 2 is in no batch yet
  j.record_batch(plan_of({a, c}, "fe-bcdef"));
  EXPECT_EQ(j.batch_of(a)->client_token, "fe-bcdef");
  EXPECT_EQ(j.batch_of(b)->client_token, "fe-b0123");
}

TEST(JournalMigration, Schema6JournalMigratesTo8KeepingEveryImportJob) {
  fe::test::TempDir dir;
  auto db = dir / "journal.db";
  int64_t a;
  std::string jobs_before;
  {
    auto j = Journal::open(db, {.max_schema_version = 6});
    ASSERT_EQ(j.schema_version(), 6);
    a = uploaded_export(j, "a");
    j.record_import_token(a, "fe-aaaa", "a", 1, "s3://b/a/import/", "strict");
    j.set_export_state(a, ExportState::import_starting);
    j.record_import_job(a, "job-a", "SUBMITTED");
    jobs_before = query_text(db,
                             "SELECT id||'|'||export_id||'|'||attempt||'|'||part||'|'||input_uri||"
                             "'|'||client_token||'|'||job_name||'|'||job_id||'|'||status||'|'||"
                             "validation_level FROM import_jobs");
  }
  auto j = Journal::open(db);
  ASSERT_EQ(j.schema_version(), kSchemaVersion);
  EXPECT_EQ(query_text(db,
                       "SELECT id||'|'||export_id||'|'||attempt||'|'||part||'|'||input_uri||"
                       "'|'||client_token||'|'||job_name||'|'||job_id||'|'||status||'|'||"
                       "validation_level FROM import_jobs"),
            jobs_before);
  EXPECT_EQ(j.import_job(a)->job_id, "job-a");
  EXPECT_FALSE(j.batch_of(a));
  EXPECT_EQ(query_text(db, "PRAGMA foreign_key_check"), "");
  // A batch token is on every member's row: two exports may now share one.
  auto b = uploaded_export(j, "b");
  auto c = uploaded_export(j, "c");
  j.record_batch(plan_of({b, c}));
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM import_jobs WHERE client_token='fe-b0123'"), "2");
  // ... but still not twice for one export.
  EXPECT_NE(sql_error(db,
                      "INSERT INTO import_jobs(export_id,attempt,part,client_token,job_name,"
                      "submitted_at,updated_at) VALUES(" +
                          std::to_string(b) + ",1,2,'fe-b0123','x',0,0)"),
            "");
}

// ---- the fleet (schema 9, issue 16 item 3) ----

// A schema-8 journal with an export waiting for import migrates to 9 keeping it; the fleet rows
// then record the append, the claiming batch and the fleet's job in one transaction, per attempt.
TEST(JournalMigration, Schema8JournalMigratesTo9AndRecordsFleetExports) {
  fe::test::TempDir dir;
  auto db = dir / "journal.db";
  int64_t a;
  {
    auto j = Journal::open(db, {.max_schema_version = 8});
    ASSERT_EQ(j.schema_version(), 8);
    a = uploaded_export(j, "a");
    EXPECT_FALSE(j.fleet_export(a));
    EXPECT_THROW(j.record_fleet_appended(a, "soak", "a"), Error);  // needs schema 9
  }
  auto j = Journal::open(db);
  ASSERT_EQ(j.schema_version(), 9);
  EXPECT_EQ(j.get_export(a).state, ExportState::uploaded);
  EXPECT_FALSE(j.fleet_export(a));
  j.record_fleet_appended(a, "soak", "a");
  auto f = j.fleet_export(a);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->fleet, "soak");
  EXPECT_EQ(f->entry_id, "a");
  EXPECT_GT(f->appended_at, 0);
  EXPECT_EQ(f->batch_id, "");
  auto first = f->appended_at;
  j.record_fleet_appended(a, "soak", "a");  // idempotent
  EXPECT_EQ(j.fleet_export(a)->appended_at, first);
  j.forget_fleet_append(a);
  EXPECT_EQ(j.fleet_export(a)->appended_at, 0);
  j.record_fleet_appended(a, "soak", "a");
  j.record_fleet_batch(a, "fb-1");
  j.forget_fleet_append(a);  // claimed: nothing to forget
  EXPECT_GT(j.fleet_export(a)->appended_at, 0);
  EXPECT_EQ(j.fleet_export(a)->batch_id, "fb-1");
  j.record_fleet_job(a, "fb-1", "fleet-soak-1", "s3://b/fleet/soak/batches/fb-1/", "minimal",
                     "job-1", "SUBMITTED");
  EXPECT_EQ(j.get_export(a).state, ExportState::importing);
  auto job = j.import_job(a);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->client_token, "fb-1");
  EXPECT_EQ(job->job_id, "job-1");
  EXPECT_EQ(job->input_uri, "s3://b/fleet/soak/batches/fb-1/");
  EXPECT_EQ(job->validation_level, "minimal");
  j.record_fleet_job(a, "fb-1", "fleet-soak-1", "s3://b/fleet/soak/batches/fb-1/", "minimal",
                     "job-1", "SUBMITTED");  // idempotent
  EXPECT_EQ(j.import_jobs(a).size(), 1u);
  // A retry's new attempt has no fleet row yet: it is appended anew.
  j.set_export_state(a, ExportState::import_failed);
  ASSERT_TRUE(j.retry_export("a", false).applied);
  EXPECT_FALSE(j.fleet_export(a));
  EXPECT_EQ(query_text(db, "SELECT COUNT(*) FROM fleet_exports"), "1");
  EXPECT_EQ(query_text(db, "PRAGMA foreign_key_check"), "");
}
