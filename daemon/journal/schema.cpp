// The journal's schema: every migration step, and running the ones a journal has not run yet.
#include <string>

#include "journal/sql.hpp"
#include "service/log.hpp"

namespace fe::journal {
namespace {

// Migration steps, in order: kMigrations[i] brings user_version i to i+1. Never edit a shipped
// step; add a new one (journals in the field only ever run the steps they have not run yet).
constexpr const char* kMigrations[] = {
    // 0 → 1: exports, files, parts, events.
    R"sql(
CREATE TABLE exports(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  pipeline TEXT NOT NULL,
  source_path TEXT NOT NULL,
  digest TEXT NOT NULL,
  version INTEGER NOT NULL,
  state TEXT NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  files INTEGER NOT NULL DEFAULT 0,
  resources_valid INTEGER NOT NULL DEFAULT 0,
  resources_rejected INTEGER NOT NULL DEFAULT 0,
  bytes_source INTEGER NOT NULL DEFAULT 0,
  bytes_spooled INTEGER NOT NULL DEFAULT 0,
  bytes_uploaded INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER,
  UNIQUE(pipeline, source_path, digest)
);
CREATE TABLE files(
  id INTEGER PRIMARY KEY,
  export_id INTEGER NOT NULL REFERENCES exports(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  inode INTEGER NOT NULL,
  dev INTEGER NOT NULL,
  state TEXT NOT NULL,
  resources_valid INTEGER NOT NULL DEFAULT 0,
  resources_rejected INTEGER NOT NULL DEFAULT 0,
  bytes_uncompressed INTEGER NOT NULL DEFAULT 0,
  bytes_spooled INTEGER NOT NULL DEFAULT 0,
  checksum TEXT NOT NULL DEFAULT '',
  import_key TEXT NOT NULL DEFAULT '',
  import_upload_id TEXT NOT NULL DEFAULT '',
  archive_key TEXT NOT NULL DEFAULT '',
  archive_upload_id TEXT NOT NULL DEFAULT '',
  last_error TEXT NOT NULL DEFAULT '',
  UNIQUE(export_id, name)
);
CREATE TABLE parts(
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK(kind IN ('import','archive')),
  part_number INTEGER NOT NULL,
  offset INTEGER NOT NULL,
  length INTEGER NOT NULL,
  etag TEXT NOT NULL DEFAULT '',
  crc32c TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL,
  PRIMARY KEY(file_id, kind, part_number)
);
CREATE TABLE events(
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  export_id INTEGER,
  file_id INTEGER,
  kind TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX events_export ON events(export_id);
)sql",
    // 1 → 2: import jobs; parking remembers where to resume.
    R"sql(
CREATE TABLE import_jobs(
  export_id INTEGER PRIMARY KEY REFERENCES exports(id) ON DELETE CASCADE,
  client_token TEXT NOT NULL UNIQUE,
  job_name TEXT NOT NULL,
  job_id TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT '',
  progress_json TEXT NOT NULL DEFAULT '',
  submitted_at INTEGER NOT NULL,
  outcome TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL
);
ALTER TABLE exports ADD COLUMN parked_from TEXT;
ALTER TABLE exports ADD COLUMN parked_reason TEXT NOT NULL DEFAULT '';
CREATE INDEX exports_state ON exports(state);
)sql",
    // 2 → 3: several import jobs per export (parts of an export over 10,000 files, and attempts
    // re-driven by `fhir-edge retry`); CLI requests to the running daemon.
    R"sql(
CREATE TABLE import_jobs3(
  id INTEGER PRIMARY KEY,
  export_id INTEGER NOT NULL REFERENCES exports(id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL DEFAULT 1,
  part INTEGER NOT NULL DEFAULT 1,
  input_uri TEXT NOT NULL DEFAULT '',
  client_token TEXT NOT NULL UNIQUE,
  job_name TEXT NOT NULL,
  job_id TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT '',
  progress_json TEXT NOT NULL DEFAULT '',
  submitted_at INTEGER NOT NULL,
  outcome TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL,
  UNIQUE(export_id, attempt, part)
);
INSERT INTO import_jobs3(export_id,attempt,part,client_token,job_name,job_id,status,progress_json,
                         submitted_at,outcome,updated_at)
  SELECT export_id,1,1,client_token,job_name,job_id,status,progress_json,submitted_at,outcome,
         updated_at FROM import_jobs;
DROP TABLE import_jobs;
ALTER TABLE import_jobs3 RENAME TO import_jobs;
ALTER TABLE exports ADD COLUMN import_attempt INTEGER NOT NULL DEFAULT 1;
CREATE TABLE requests(
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  target TEXT NOT NULL DEFAULT '',
  args TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL DEFAULT 'pending',
  result TEXT NOT NULL DEFAULT '',
  done_at INTEGER
);
CREATE INDEX requests_state ON requests(state);
)sql",
    // 3 → 4: tombstones of compacted exports (compaction never makes a kept source new again),
    // and where each import object line came from in its source file (FAILURE/ line numbers are
    // reported as source lines).
    R"sql(
CREATE TABLE tombstones(
  pipeline TEXT NOT NULL,
  source_path TEXT NOT NULL,
  digest TEXT NOT NULL,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  state TEXT NOT NULL,
  files INTEGER NOT NULL DEFAULT 0,
  resources_valid INTEGER NOT NULL DEFAULT 0,
  resources_rejected INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  finished_at INTEGER,
  compacted_at INTEGER NOT NULL,
  PRIMARY KEY(pipeline, source_path, digest)
) WITHOUT ROWID;
CREATE INDEX tombstones_name ON tombstones(name);
CREATE TABLE line_map(
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  import_line INTEGER NOT NULL,
  source_line INTEGER NOT NULL,
  PRIMARY KEY(file_id, import_line)
) WITHOUT ROWID;
)sql",
    // 4 → 5: the ValidationLevel each import job was started with and the one HealthLake reports
    // for it in DescribeFHIRImportJob / ListFHIRImportJobs (issue 12: they must be equal, else the
    // export is parked), and HealthLake's Message for the job (a FAILED job's reason). Rows from
    // before keep '' (level not journaled: the pipeline's configured level stands in for it).
    R"sql(
ALTER TABLE import_jobs ADD COLUMN validation_level TEXT NOT NULL DEFAULT '';
ALTER TABLE import_jobs ADD COLUMN reported_level TEXT NOT NULL DEFAULT '';
ALTER TABLE import_jobs ADD COLUMN message TEXT NOT NULL DEFAULT '';
)sql",
    // 5 → 6: one writer per table (issue 14). The import stage's part of an export's life moves
    // out of `exports` into its own table `imports` (state from `uploaded` on, park, error,
    // attempt); the export's state is read through export_view (the two joined). The daemon's
    // answers to CLI requests move out of `requests` into `request_answers`. bytes_uploaded is
    // derived from the parts instead of stored (the upload ledger no longer writes `exports`).
    R"sql(
CREATE TABLE imports(
  export_id INTEGER PRIMARY KEY REFERENCES exports(id) ON DELETE CASCADE,
  state TEXT NOT NULL,
  parked_from TEXT,
  parked_reason TEXT NOT NULL DEFAULT '',
  last_error TEXT NOT NULL DEFAULT '',
  import_attempt INTEGER NOT NULL DEFAULT 1,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER
);
INSERT INTO imports(export_id,state,parked_from,parked_reason,last_error,import_attempt,updated_at,
                    finished_at)
  SELECT id,state,parked_from,parked_reason,last_error,import_attempt,updated_at,finished_at
  FROM exports
  WHERE state IN ('uploaded','import_starting','importing','imported','import_failed',
                  'nothing_to_import')
     OR (state='parked' AND parked_from IN ('uploaded','import_starting','importing'));
UPDATE exports SET state='uploaded', parked_from=NULL, parked_reason='', last_error='',
                   finished_at=NULL
  WHERE id IN (SELECT export_id FROM imports);
ALTER TABLE exports DROP COLUMN import_attempt;
ALTER TABLE exports DROP COLUMN bytes_uploaded;
CREATE INDEX imports_state ON imports(state);
CREATE VIEW export_view AS
  SELECT e.id, e.name, e.pipeline, e.source_path, e.digest, e.version,
         COALESCE(i.state, e.state) AS state,
         CASE WHEN i.export_id IS NULL THEN e.parked_from ELSE i.parked_from END AS parked_from,
         COALESCE(i.parked_reason, e.parked_reason) AS parked_reason,
         COALESCE(i.last_error, e.last_error) AS last_error,
         e.files, e.resources_valid, e.resources_rejected, e.bytes_source, e.bytes_spooled,
         (SELECT COALESCE(SUM(p.length),0) FROM parts p JOIN files f ON p.file_id=f.id
           WHERE f.export_id=e.id AND p.state='uploaded') AS bytes_uploaded,
         e.created_at, MAX(e.updated_at, COALESCE(i.updated_at, 0)) AS updated_at,
         CASE WHEN i.export_id IS NULL THEN e.finished_at ELSE i.finished_at END AS finished_at,
         COALESCE(i.import_attempt, 1) AS import_attempt
  FROM exports e LEFT JOIN imports i ON i.export_id = e.id;
CREATE TABLE request_answers(
  request_id INTEGER PRIMARY KEY REFERENCES requests(id) ON DELETE CASCADE,
  state TEXT NOT NULL CHECK(state IN ('done','refused')),
  result TEXT NOT NULL DEFAULT '',
  done_at INTEGER NOT NULL
);
INSERT INTO request_answers(request_id,state,result,done_at)
  SELECT id,state,result,COALESCE(done_at,time) FROM requests WHERE state<>'pending';
DROP INDEX requests_state;
ALTER TABLE requests DROP COLUMN state;
ALTER TABLE requests DROP COLUMN result;
ALTER TABLE requests DROP COLUMN done_at;
)sql",
    // 6 → 7: exports the watcher has seen that wait for their completion rule (issue 17 item 3):
    // which rule, what is missing, since when. Written by the pipeline (the watcher's report,
    // replaced per pipeline), read by `fhir-edge status` and /metrics, also while no daemon runs.
    // Not an export's state: a waiting export has no exports row until it is complete and taken.
    R"sql(
CREATE TABLE waiting_exports(
  pipeline TEXT NOT NULL,
  path TEXT NOT NULL,
  name TEXT NOT NULL,
  rule TEXT NOT NULL,
  missing TEXT NOT NULL DEFAULT '',
  since INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY(pipeline, path)
) WITHOUT ROWID;
)sql",
    // 7 → 8: batched imports (issue 16 item 2). One StartFHIRImportJob can carry several
    // exports: the batch (its ClientToken, JobName and input prefix) and its members are journaled
    // before the Start, each export attempt in at most one batch (the primary key). Every member
    // has its own import_jobs row carrying the batch's token, so a token is unique per export,
    // not alone any more (the table is rebuilt without that constraint; same rows).
    R"sql(
CREATE TABLE import_batches(
  id INTEGER PRIMARY KEY,
  client_token TEXT NOT NULL UNIQUE,
  job_name TEXT NOT NULL,
  input_uri TEXT NOT NULL,
  group_key TEXT NOT NULL DEFAULT '',
  validation_level TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);
CREATE TABLE import_batch_members(
  batch_id INTEGER NOT NULL REFERENCES import_batches(id) ON DELETE CASCADE,
  export_id INTEGER NOT NULL REFERENCES exports(id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL,
  PRIMARY KEY(export_id, attempt)
);
CREATE INDEX import_batch_members_batch ON import_batch_members(batch_id);
CREATE TABLE import_jobs7(
  id INTEGER PRIMARY KEY,
  export_id INTEGER NOT NULL REFERENCES exports(id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL DEFAULT 1,
  part INTEGER NOT NULL DEFAULT 1,
  input_uri TEXT NOT NULL DEFAULT '',
  client_token TEXT NOT NULL,
  job_name TEXT NOT NULL,
  job_id TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT '',
  progress_json TEXT NOT NULL DEFAULT '',
  submitted_at INTEGER NOT NULL,
  outcome TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL,
  validation_level TEXT NOT NULL DEFAULT '',
  reported_level TEXT NOT NULL DEFAULT '',
  message TEXT NOT NULL DEFAULT '',
  UNIQUE(export_id, attempt, part),
  UNIQUE(client_token, export_id)
);
INSERT INTO import_jobs7(id,export_id,attempt,part,input_uri,client_token,job_name,job_id,status,
                         progress_json,submitted_at,outcome,updated_at,validation_level,
                         reported_level,message)
  SELECT id,export_id,attempt,part,input_uri,client_token,job_name,job_id,status,progress_json,
         submitted_at,outcome,updated_at,validation_level,reported_level,message FROM import_jobs;
DROP TABLE import_jobs;
ALTER TABLE import_jobs7 RENAME TO import_jobs;
CREATE INDEX import_jobs_token ON import_jobs(client_token);
)sql",
    // 8 → 9: the fleet (issue 16 item 3, docs/scale.md). What a member gateway must remember of
    // an export the fleet imports: that its entry in the fleet's ready.json is appended (so a
    // restart does not wonder), and the fleet batch that claimed it once known (the holder
    // removes the entry after the job, possibly while this gateway is down: the batch id is then
    // read from the member pointer). One row per export attempt; a retry appends anew.
    R"sql(
CREATE TABLE fleet_exports(
  export_id INTEGER NOT NULL REFERENCES exports(id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL,
  fleet TEXT NOT NULL,
  entry_id TEXT NOT NULL,
  appended_at INTEGER NOT NULL,
  batch_id TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL,
  PRIMARY KEY(export_id, attempt)
);
)sql",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

}  // namespace

int Journal::schema_version() const {
  detail::Stmt s(*this, "PRAGMA user_version");
  s.step();
  return static_cast<int>(s.i64(0));
}

void Journal::migrate(int target) {
  for (int v = schema_version(); v < target; ++v) {
    detail::Tx tx(*this);
    detail::exec(db_, path_, kMigrations[v]);
    // PRAGMA user_version cannot be bound; the value is our own integer.
    detail::exec(db_, path_, ("PRAGMA user_version=" + std::to_string(v + 1)).c_str());
    detail::insert_event(*this, std::nullopt, std::nullopt, "migration",
                         "journal schema migrated to version " + std::to_string(v + 1));
    tx.commit();
    fe::log::info("journal schema migrated",
                  {{"JOURNAL", path_.string()}, {"SCHEMA_VERSION", std::to_string(v + 1)}});
  }
}

}  // namespace fe::journal
