#include "journal/journal.hpp"

#include <simdjson.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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
};
static_assert(std::size(kMigrations) == kSchemaVersion);

// A prepared statement with positional binding; reset on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::filesystem::path& path, const char* sql) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
      throw Error("journal " + path.string() + ": " + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  Stmt& bind(int i, std::string_view v) {
    // A null data() would bind SQL NULL; an empty view is an empty string here.
    sqlite3_bind_text(st_, i, v.data() ? v.data() : "", static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind_null(int i) {
    sqlite3_bind_null(st_, i);
    return *this;
  }
  // True while there is a row.
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw Error("journal " + path_.string() + ": " + sqlite3_errmsg(db_));
  }
  void run() {
    while (step()) {
    }
  }
  int64_t i64(int c) const { return sqlite3_column_int64(st_, c); }
  bool is_null(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  std::string text(int c) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, c));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(st_, c))) : std::string();
  }

 private:
  sqlite3* db_;
  const std::filesystem::path& path_;
  sqlite3_stmt* st_ = nullptr;
};

// One transaction; rolled back unless commit() was called. BEGIN IMMEDIATE takes the write lock
// up front so a transaction never fails half-way on a busy database.
class Tx {
 public:
  Tx(sqlite3* db, const std::filesystem::path& path) : db_(db), path_(path) {
    exec("BEGIN IMMEDIATE");
  }
  ~Tx() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    exec("COMMIT");
    done_ = true;
  }

 private:
  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string m = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw Error("journal " + path_.string() + ": " + m);
    }
  }
  sqlite3* db_;
  const std::filesystem::path& path_;
  bool done_ = false;
};

void exec(sqlite3* db, const std::filesystem::path& path, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw Error("journal " + path.string() + ": " + m);
  }
}

std::string damaged(const std::filesystem::path& path, std::string_view detail) {
  return "journal " + path.string() + " is damaged (" + std::string(detail) +
         "); fhir-edge will not reset it: restore it from a backup, or move it aside to start "
         "with an empty journal (docs/journal.md)";
}

// Column lists read with read_export. A read-only journal older than schema 3 (status run before
// the daemon migrated it) has no import_attempt: it reads as 1.
#define FE_EXPORT_COLS                                                                            \
  "id,name,pipeline,source_path,digest,version,state,parked_from,parked_reason,last_error,files," \
  "resources_valid,resources_rejected,bytes_source,bytes_spooled,bytes_uploaded,created_at,"      \
  "updated_at,finished_at"
constexpr const char* kExportColsV3 = FE_EXPORT_COLS ",import_attempt";
constexpr const char* kExportColsV2 = FE_EXPORT_COLS ",1";
#undef FE_EXPORT_COLS

const char* export_cols(int schema) {
  return schema >= 3 ? kExportColsV3 : kExportColsV2;
}

ExportRow read_export(const Stmt& s) {
  ExportRow r;
  r.id = s.i64(0);
  r.name = s.text(1);
  r.pipeline = s.text(2);
  r.source_path = s.text(3);
  r.digest = s.text(4);
  r.version = static_cast<int>(s.i64(5));
  r.state = parse_export_state(s.text(6)).value_or(ExportState::failed);
  if (!s.is_null(7)) r.parked_from = parse_export_state(s.text(7));
  r.parked_reason = s.text(8);
  r.last_error = s.text(9);
  r.files = s.i64(10);
  r.resources_valid = s.i64(11);
  r.resources_rejected = s.i64(12);
  r.bytes_source = s.i64(13);
  r.bytes_spooled = s.i64(14);
  r.bytes_uploaded = s.i64(15);
  r.created_at = s.i64(16);
  r.updated_at = s.i64(17);
  if (!s.is_null(18)) r.finished_at = s.i64(18);
  r.import_attempt = static_cast<int>(s.i64(19));
  return r;
}

constexpr const char* kFileCols =
    "id,export_id,name,size,mtime_ns,inode,dev,state,resources_valid,resources_rejected,"
    "bytes_uncompressed,bytes_spooled,checksum,import_key,import_upload_id,archive_key,"
    "archive_upload_id,last_error";

FileRow read_file(const Stmt& s) {
  FileRow r;
  r.id = s.i64(0);
  r.export_id = s.i64(1);
  r.name = s.text(2);
  r.source = {static_cast<uint64_t>(s.i64(3)), s.i64(4), static_cast<uint64_t>(s.i64(5)),
              static_cast<uint64_t>(s.i64(6))};
  r.state = parse_file_state(s.text(7)).value_or(FileState::failed);
  r.resources_valid = s.i64(8);
  r.resources_rejected = s.i64(9);
  r.bytes_uncompressed = s.i64(10);
  r.bytes_spooled = s.i64(11);
  r.checksum = s.text(12);
  r.import_key = s.text(13);
  r.import_upload_id = s.text(14);
  r.archive_key = s.text(15);
  r.archive_upload_id = s.text(16);
  r.last_error = s.text(17);
  return r;
}

// A tombstone read as an export row (id 0: nothing else of it is left).
constexpr const char* kTombstoneCols =
    "name,pipeline,source_path,digest,version,state,files,resources_valid,resources_rejected,"
    "created_at,finished_at,compacted_at";

ExportRow read_tombstone(const Stmt& s) {
  ExportRow r;
  r.name = s.text(0);
  r.pipeline = s.text(1);
  r.source_path = s.text(2);
  r.digest = s.text(3);
  r.version = static_cast<int>(s.i64(4));
  r.state = parse_export_state(s.text(5)).value_or(ExportState::failed);
  r.files = s.i64(6);
  r.resources_valid = s.i64(7);
  r.resources_rejected = s.i64(8);
  r.created_at = s.i64(9);
  if (!s.is_null(10)) r.finished_at = s.i64(10);
  r.updated_at = s.i64(11);
  return r;
}

void insert_event(sqlite3* db, const std::filesystem::path& path, std::optional<int64_t> export_id,
                  std::optional<int64_t> file_id, std::string_view kind, std::string_view message) {
  Stmt s(db, path, "INSERT INTO events(time,export_id,file_id,kind,message) VALUES(?,?,?,?,?)");
  s.bind(1, now_ms());
  if (export_id)
    s.bind(2, *export_id);
  else
    s.bind_null(2);
  if (file_id)
    s.bind(3, *file_id);
  else
    s.bind_null(3);
  s.bind(4, kind).bind(5, message).run();
}

}  // namespace

TimeMs now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Journal::Journal(Journal&& o) noexcept
    : path_(std::move(o.path_)),
      schema_(o.schema_),
      db_(o.db_),
      lock_fd_(o.lock_fd_),
      read_only_(o.read_only_) {
  o.db_ = nullptr;
  o.lock_fd_ = -1;
}

Journal& Journal::operator=(Journal&& o) noexcept {
  std::swap(path_, o.path_);
  std::swap(schema_, o.schema_);
  std::swap(db_, o.db_);
  std::swap(lock_fd_, o.lock_fd_);
  std::swap(read_only_, o.read_only_);
  return *this;
}

Journal::~Journal() {
  if (db_) sqlite3_close_v2(db_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // closing releases the flock
}

namespace {

// The lock file, created so that whoever owns the journal's directory (the service user) can
// always open it: a CLI run as root (`sudo fhir-edge retry`, `journal compact`) while the lock is
// absent must not leave a root-owned 0600 file behind that stops the service ("cannot open lock
// file ... Permission denied"). So its owner and group follow the directory (root hands it over
// with fchown), its mode is 0600, or 0660 when the directory is group-writable; a caller that
// cannot arrange that removes what it created and refuses, saying how to run it instead. A lock
// file a root CLI finds owned by someone else than the directory's owner (left by an older
// version) is handed back the same way.
int open_lock_file(const std::filesystem::path& path, const std::filesystem::path& lock_path) {
  auto dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  struct stat dst {};
  if (::stat(dir.c_str(), &dst) != 0)
    throw Error("journal " + path.string() + ": cannot stat its directory " + dir.string() + ": " +
                std::strerror(errno));
  bool created = false;
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT) {
    const mode_t mode = (dst.st_mode & S_IWGRP) ? 0660 : 0600;
    fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd >= 0)
      created = true;
    else if (errno == EEXIST)  // created by someone else meanwhile
      fd = ::open(lock_path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  }
  if (fd < 0) {
    int e = errno;
    std::string msg = "journal " + path.string() + ": cannot open lock file " + lock_path.string() +
                      ": " + std::strerror(e);
    struct stat lst {};
    if (e == EACCES && ::lstat(lock_path.c_str(), &lst) == 0 && lst.st_uid != dst.st_uid)
      msg += " (it is owned by uid " + std::to_string(lst.st_uid) + ", not by uid " +
             std::to_string(dst.st_uid) + " who owns " + dir.string() +
             "; a fhir-edge command run as another user created it: with no fhir-edge running, "
             "chown it to the service user or remove it)";
    throw Error(msg);
  }
  struct stat lst {};
  if (::fstat(fd, &lst) == 0 && (lst.st_uid != dst.st_uid || lst.st_gid != dst.st_gid) &&
      (created || ::geteuid() == 0)) {
    if (::fchown(fd, dst.st_uid, dst.st_gid) != 0) {
      // Not root: the group may still be enough when the directory is shared through it.
      bool group_ok =
          (dst.st_mode & S_IWGRP) && ::fchown(fd, static_cast<uid_t>(-1), dst.st_gid) == 0;
      if (!group_ok) {
        int e = errno;
        if (created) ::unlink(lock_path.c_str());
        ::close(fd);
        throw Error("journal " + path.string() + ": refusing to create " + lock_path.string() +
                    " as uid " + std::to_string(::geteuid()) + ": the directory " + dir.string() +
                    " belongs to uid " + std::to_string(dst.st_uid) +
                    ", which could then not open it (" + std::strerror(e) +
                    "); run the command as that user (e.g. sudo -u fhir-edge fhir-edge ...)");
      }
    }
  }
  return fd;
}

}  // namespace

Journal Journal::open(const std::filesystem::path& path, OpenOptions options) {
  Journal j;
  j.path_ = path;
  j.read_only_ = options.read_only;

  if (!options.read_only) {
    // The lock is taken before SQLite touches the file, so a second daemon never even migrates.
    auto lock_path = path;
    lock_path += ".lock";
    j.lock_fd_ = open_lock_file(path, lock_path);
    if (::flock(j.lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      if (e == EWOULDBLOCK)
        throw Error("journal " + path.string() + " is in use by another fhir-edge process (lock " +
                    lock_path.string() + " is held); only one daemon may run on a state directory");
      throw Error("journal " + path.string() + ": cannot lock " + lock_path.string() + ": " +
                  std::strerror(e));
    }
  } else if (!std::filesystem::exists(path)) {
    throw Error("journal " + path.string() + " does not exist");
  }

  // Opens the connection and runs the integrity check; returns the SQLite result code of a
  // failure that is not damage (e.g. a reader without write access to the directory), 0 on success.
  auto open_checked = [&](bool immutable) -> int {
    int flags =
        options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    flags |= SQLITE_OPEN_NOFOLLOW;
    std::string name = path.string();
    if (immutable) {
      // URI form; escape the characters that are special in URIs.
      std::string uri = "file:";
      for (char c : name) {
        if (c == '%' || c == '?' || c == '#') {
          char buf[4];
          std::snprintf(buf, sizeof buf, "%%%02X", static_cast<unsigned char>(c));
          uri += buf;
        } else {
          uri += c;
        }
      }
      name = uri + "?immutable=1";
      flags |= SQLITE_OPEN_URI;
    }
    if (j.db_) sqlite3_close_v2(j.db_);
    j.db_ = nullptr;
    if (sqlite3_open_v2(name.c_str(), &j.db_, flags, nullptr) != SQLITE_OK) {
      std::string m = j.db_ ? sqlite3_errmsg(j.db_) : "out of memory";
      throw Error("journal " + path.string() + ": cannot open: " + m);
    }
    sqlite3_extended_result_codes(j.db_, 1);
    sqlite3_busy_timeout(j.db_, 5000);  // readers may briefly wait for a checkpoint

    // Integrity first: anything else on a damaged file could make it worse. SQLITE_NOTADB and
    // SQLITE_CORRUPT surface as errors rather than as a quick_check row.
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(j.db_, "PRAGMA quick_check", -1, &st, nullptr);
    std::string result;
    if (rc == SQLITE_OK) {
      while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        if (t && std::string_view(t) != "ok") {
          if (!result.empty()) result += "; ";
          result += t;
          if (result.size() > 400) break;
        }
      }
    }
    int code = sqlite3_extended_errcode(j.db_);
    std::string err = rc == SQLITE_DONE || rc == SQLITE_ROW ? "" : sqlite3_errmsg(j.db_);
    sqlite3_finalize(st);
    if (!result.empty()) throw Error(damaged(path, result));
    if (err.empty()) return 0;
    int primary = code & 0xff;
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) throw Error(damaged(path, err));
    if (primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN) return code;
    throw Error("journal " + path.string() + ": cannot read: " + err);
  };

  if (int code = open_checked(false); code != 0) {
    // A reader that may not create the -shm/-wal files next to the journal (an operator without
    // write access to the state directory) can still read a journal that has no WAL file, i.e.
    // when no daemon is writing to it, as an immutable file.
    auto wal = path;
    wal += "-wal";
    if (options.read_only && !std::filesystem::exists(wal)) code = open_checked(true);
    if (code != 0)
      throw Error("journal " + path.string() + ": cannot read: " + sqlite3_errstr(code) +
                  (options.read_only ? " (a reader needs read access to " + path.string() +
                                           "-wal and -shm, or write access to its directory)"
                                     : std::string()));
  }

  if (!options.read_only) {
    exec(j.db_, path, "PRAGMA journal_mode=WAL");
    exec(j.db_, path, "PRAGMA synchronous=FULL");
  }
  exec(j.db_, path, "PRAGMA foreign_keys=ON");

  int version = j.schema_version();
  if (version > kSchemaVersion)
    throw Error("journal " + path.string() + " has schema version " + std::to_string(version) +
                ", newer than this fhir-edge understands (" + std::to_string(kSchemaVersion) +
                "); run the newer fhir-edge or restore a backup");
  if (!options.read_only) {
    j.migrate(std::min(options.max_schema_version, kSchemaVersion));
  } else if (version == 0) {
    throw Error("journal " + path.string() + " is empty (no schema); has the daemon ever run?");
  }
  j.schema_ = j.schema_version();
  return j;
}

int Journal::schema_version() const {
  Stmt s(db_, path_, "PRAGMA user_version");
  s.step();
  return static_cast<int>(s.i64(0));
}

void Journal::migrate(int target) {
  for (int v = schema_version(); v < target; ++v) {
    Tx tx(db_, path_);
    exec(db_, path_, kMigrations[v]);
    // PRAGMA user_version cannot be bound; the value is our own integer.
    exec(db_, path_, ("PRAGMA user_version=" + std::to_string(v + 1)).c_str());
    insert_event(db_, path_, std::nullopt, std::nullopt, "migration",
                 "journal schema migrated to version " + std::to_string(v + 1));
    tx.commit();
    fe::log::info("journal schema migrated",
                  {{"JOURNAL", path_.string()}, {"SCHEMA_VERSION", std::to_string(v + 1)}});
  }
}

// ---------------------------------------------------------------- exports

Taken Journal::take_export(std::string_view pipeline, std::string_view source_path,
                           std::string_view digest, std::string_view base_name,
                           const std::vector<std::pair<std::string, SourceIdentity>>& files) {
  Tx tx(db_, path_);
  {
    Stmt s(db_, path_,
           (std::string("SELECT ") + export_cols(schema_) +
            " FROM exports WHERE pipeline=? AND source_path=? AND digest=?")
               .c_str());
    s.bind(1, pipeline).bind(2, source_path).bind(3, digest);
    if (s.step()) return {read_export(s), true};
  }
  if (schema_ >= 4) {
    // Compacted: the export is gone but its tombstone says it was taken (and how it ended).
    Stmt s(db_, path_,
           (std::string("SELECT ") + kTombstoneCols +
            " FROM tombstones WHERE pipeline=? AND source_path=? AND digest=?")
               .c_str());
    s.bind(1, pipeline).bind(2, source_path).bind(3, digest);
    if (s.step()) return {read_tombstone(s), true, true};
  }
  int version = 1;
  {
    Stmt s(db_, path_,
           schema_ >= 4 ? "SELECT (SELECT COUNT(*) FROM exports WHERE pipeline=?1 AND "
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
    Stmt s(db_, path_,
           schema_ >= 4 ? "SELECT 1 FROM exports WHERE name=?1 UNION ALL SELECT 1 FROM tombstones "
                          "WHERE name=?1"
                        : "SELECT 1 FROM exports WHERE name=?1");
    s.bind(1, name);
    if (!s.step()) break;
    name = std::string(base_name) + ".v" + std::to_string(version) + "-" + std::to_string(n);
  }
  TimeMs now = now_ms();
  int64_t id;
  {
    Stmt s(db_, path_,
           "INSERT INTO exports(name,pipeline,source_path,digest,version,state,created_at,"
           "updated_at) VALUES(?,?,?,?,?,?,?,?)");
    s.bind(1, name).bind(2, pipeline).bind(3, source_path).bind(4, digest).bind(5, version);
    s.bind(6, to_string(ExportState::discovered)).bind(7, now).bind(8, now).run();
    id = sqlite3_last_insert_rowid(db_);
  }
  for (const auto& [fname, ident] : files) {
    Stmt s(db_, path_,
           "INSERT INTO files(export_id,name,size,mtime_ns,inode,dev,state) VALUES(?,?,?,?,?,?,?)");
    s.bind(1, id).bind(2, fname).bind(3, static_cast<int64_t>(ident.size));
    s.bind(4, ident.mtime_ns).bind(5, static_cast<int64_t>(ident.inode));
    s.bind(6, static_cast<int64_t>(ident.dev)).bind(7, to_string(FileState::pending)).run();
  }
  recompute_totals(id);
  insert_event(db_, path_, id, std::nullopt, "state",
               "discovered " + std::string(source_path) + " (" + std::to_string(files.size()) +
                   " files, version " + std::to_string(version) + ")");
  tx.commit();
  return {get_export(id), false};
}

std::optional<ExportRow> Journal::find_export(int64_t id) const {
  Stmt s(db_, path_,
         (std::string("SELECT ") + export_cols(schema_) + " FROM exports WHERE id=?").c_str());
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_export(s);
}

std::optional<ExportRow> Journal::find_export(std::string_view name) const {
  Stmt s(db_, path_,
         (std::string("SELECT ") + export_cols(schema_) + " FROM exports WHERE name=?").c_str());
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return read_export(s);
}

ExportRow Journal::get_export(int64_t id) const {
  auto r = find_export(id);
  if (!r) throw Error("journal " + path_.string() + ": no export with id " + std::to_string(id));
  return *r;
}

std::vector<ExportRow> Journal::exports(bool include_finished) const {
  Stmt s(db_, path_,
         (std::string("SELECT ") + export_cols(schema_) +
          " FROM exports ORDER BY created_at DESC, id DESC")
             .c_str());
  std::vector<ExportRow> out;
  while (s.step()) {
    auto r = read_export(s);
    if (include_finished || !is_terminal(r.state)) out.push_back(std::move(r));
  }
  return out;
}

std::vector<ExportRow> Journal::exports_in(ExportState state) const {
  Stmt s(db_, path_,
         (std::string("SELECT ") + export_cols(schema_) + " FROM exports WHERE state=? ORDER BY id")
             .c_str());
  s.bind(1, to_string(state));
  std::vector<ExportRow> out;
  while (s.step()) out.push_back(read_export(s));
  return out;
}

void Journal::change_export_state(int64_t export_id, ExportState to, std::string_view kind,
                                  std::string_view message) {
  auto row = get_export(export_id);
  if (!allowed(row.state, to))
    throw Error("journal: export " + row.name + ": illegal transition " +
                std::string(to_string(row.state)) + " -> " + std::string(to_string(to)));
  TimeMs now = now_ms();
  Stmt s(db_, path_,
         "UPDATE exports SET state=?, updated_at=?, finished_at=?, parked_from=?, "
         "parked_reason=?, last_error=? WHERE id=?");
  s.bind(1, to_string(to)).bind(2, now);
  if (is_terminal(to))
    s.bind(3, now);
  else
    s.bind_null(3);
  if (to == ExportState::parked) {
    s.bind(4, to_string(row.state)).bind(5, message).bind(6, message);
  } else {
    s.bind_null(4).bind(5, std::string_view{});
    // Moving forward clears a retried error; failing (or ending without an import) records it,
    // so status says why.
    bool why = to == ExportState::failed || to == ExportState::import_failed ||
               to == ExportState::nothing_to_import;
    s.bind(6, why ? message : std::string_view{});
  }
  s.bind(7, export_id).run();
  std::string text = std::string(to_string(row.state)) + " -> " + std::string(to_string(to));
  if (!message.empty()) text += ": " + std::string(message);
  insert_event(db_, path_, export_id, std::nullopt, kind, text);
}

void Journal::set_export_state(int64_t export_id, ExportState to, std::string_view message) {
  if (read_only_) throw Error("journal " + path_.string() + " is open read-only");
  if (to == ExportState::parked) return park_export(export_id, message);
  Tx tx(db_, path_);
  auto row = get_export(export_id);
  if (row.state == ExportState::parked && row.parked_from && *row.parked_from != to &&
      to != ExportState::failed && to != ExportState::superseded)
    throw Error("journal: export " + row.name + ": parked from " +
                std::string(to_string(*row.parked_from)) + ", cannot resume as " +
                std::string(to_string(to)));
  change_export_state(export_id, to, "state", message);
  tx.commit();
}

void Journal::park_export(int64_t export_id, std::string_view reason) {
  Tx tx(db_, path_);
  change_export_state(export_id, ExportState::parked, "park", reason);
  tx.commit();
}

void Journal::unpark_export(int64_t export_id) {
  Tx tx(db_, path_);
  auto row = get_export(export_id);
  if (row.state != ExportState::parked || !row.parked_from)
    throw Error("journal: export " + row.name + " is not parked");
  change_export_state(export_id, *row.parked_from, "unpark", "resumed");
  tx.commit();
}

void Journal::fail_export(int64_t export_id, std::string_view error) {
  Tx tx(db_, path_);
  change_export_state(export_id, ExportState::failed, "error", error);
  tx.commit();
}

void Journal::set_export_error(int64_t export_id, std::string_view error) {
  Tx tx(db_, path_);
  get_export(export_id);
  Stmt s(db_, path_, "UPDATE exports SET last_error=?, updated_at=? WHERE id=?");
  s.bind(1, error).bind(2, now_ms()).bind(3, export_id).run();
  insert_event(db_, path_, export_id, std::nullopt, "error", error);
  tx.commit();
}

void Journal::recompute_totals(int64_t export_id) {
  Stmt s(db_, path_,
         "UPDATE exports SET "
         " files=(SELECT COUNT(*) FROM files WHERE export_id=?1),"
         " resources_valid=(SELECT COALESCE(SUM(resources_valid),0) FROM files WHERE export_id=?1),"
         " resources_rejected=(SELECT COALESCE(SUM(resources_rejected),0) FROM files"
         "   WHERE export_id=?1),"
         " bytes_source=(SELECT COALESCE(SUM(size),0) FROM files WHERE export_id=?1),"
         " bytes_spooled=(SELECT COALESCE(SUM(bytes_spooled),0) FROM files WHERE export_id=?1),"
         " bytes_uploaded=(SELECT COALESCE(SUM(p.length),0) FROM parts p JOIN files f"
         "   ON p.file_id=f.id WHERE f.export_id=?1 AND p.state='uploaded'),"
         " updated_at=?2 WHERE id=?1");
  s.bind(1, export_id).bind(2, now_ms()).run();
}

// ---------------------------------------------------------------- files

std::vector<FileRow> Journal::files(int64_t export_id) const {
  Stmt s(
      db_, path_,
      (std::string("SELECT ") + kFileCols + " FROM files WHERE export_id=? ORDER BY name").c_str());
  s.bind(1, export_id);
  std::vector<FileRow> out;
  while (s.step()) out.push_back(read_file(s));
  return out;
}

FileRow Journal::get_file(int64_t file_id) const {
  Stmt s(db_, path_, (std::string("SELECT ") + kFileCols + " FROM files WHERE id=?").c_str());
  s.bind(1, file_id);
  if (!s.step())
    throw Error("journal " + path_.string() + ": no file with id " + std::to_string(file_id));
  return read_file(s);
}

void Journal::set_file_state(int64_t file_id, FileState to, std::string_view message) {
  Tx tx(db_, path_);
  auto f = get_file(file_id);
  if (!allowed(f.state, to))
    throw Error("journal: file " + f.name + ": illegal transition " +
                std::string(to_string(f.state)) + " -> " + std::string(to_string(to)));
  Stmt s(db_, path_, "UPDATE files SET state=?, last_error=? WHERE id=?");
  s.bind(1, to_string(to));
  s.bind(2, to == FileState::failed ? message : std::string_view{}).bind(3, file_id).run();
  std::string text =
      f.name + ": " + std::string(to_string(f.state)) + " -> " + std::string(to_string(to));
  if (!message.empty()) text += ": " + std::string(message);
  insert_event(db_, path_, f.export_id, file_id, "file", text);
  recompute_totals(f.export_id);
  tx.commit();
}

void Journal::record_spooled(int64_t file_id, const SpoolOutcome& o,
                             const std::function<bool(LineAnchor&)>& next_anchor) {
  Tx tx(db_, path_);
  auto f = get_file(file_id);
  if (!allowed(f.state, FileState::spooled))
    throw Error("journal: file " + f.name + ": illegal transition " +
                std::string(to_string(f.state)) + " -> spooled");
  if (schema_ >= 4) {
    // A redo after a crash writes the same anchors again: start from none.
    Stmt(db_, path_, "DELETE FROM line_map WHERE file_id=?").bind(1, file_id).run();
    if (next_anchor) {
      sqlite3_stmt* ins = nullptr;
      if (sqlite3_prepare_v2(db_,
                             "INSERT OR REPLACE INTO line_map(file_id,import_line,source_line) "
                             "VALUES(?,?,?)",
                             -1, &ins, nullptr) != SQLITE_OK)
        throw Error("journal " + path_.string() + ": " + sqlite3_errmsg(db_));
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
          throw Error("journal " + path_.string() + ": " + sqlite3_errmsg(db_));
        sqlite3_reset(ins);
      }
    }
  }
  Stmt s(db_, path_,
         "UPDATE files SET state='spooled', resources_valid=?, resources_rejected=?, "
         "bytes_uncompressed=?, bytes_spooled=?, checksum=?, last_error='' WHERE id=?");
  s.bind(1, o.resources_valid).bind(2, o.resources_rejected).bind(3, o.bytes_uncompressed);
  s.bind(4, o.bytes_spooled).bind(5, o.checksum).bind(6, file_id).run();
  insert_event(db_, path_, f.export_id, file_id, "file",
               f.name + ": spooled (" + std::to_string(o.resources_valid) + " valid, " +
                   std::to_string(o.resources_rejected) + " rejected, " +
                   std::to_string(o.bytes_spooled) + " bytes)");
  recompute_totals(f.export_id);
  tx.commit();
}

void Journal::record_file_rejected(int64_t file_id, int64_t invalid_lines,
                                   std::string_view message) {
  Tx tx(db_, path_);
  auto f = get_file(file_id);
  if (!allowed(f.state, FileState::rejected))
    throw Error("journal: file " + f.name + ": illegal transition " +
                std::string(to_string(f.state)) + " -> rejected");
  Stmt s(db_, path_,
         "UPDATE files SET state='rejected', resources_valid=0, resources_rejected=?, "
         "last_error='' WHERE id=?");
  s.bind(1, invalid_lines).bind(2, file_id).run();
  std::string text = f.name + ": " + std::string(to_string(f.state)) + " -> rejected";
  if (!message.empty()) text += ": " + std::string(message);
  insert_event(db_, path_, f.export_id, file_id, "file", text);
  recompute_totals(f.export_id);
  tx.commit();
}

int64_t Journal::source_line(int64_t file_id, int64_t import_line) const {
  if (schema_ < 4) return import_line;
  Stmt s(db_, path_,
         "SELECT import_line, source_line FROM line_map WHERE file_id=? AND import_line<=? "
         "ORDER BY import_line DESC LIMIT 1");
  s.bind(1, file_id).bind(2, import_line);
  if (!s.step()) return import_line;
  return s.i64(1) + (import_line - s.i64(0));
}

void Journal::set_file_upload(int64_t file_id, PartKind kind, std::string_view key,
                              std::string_view upload_id) {
  Tx tx(db_, path_);
  auto f = get_file(file_id);
  Stmt s(db_, path_,
         kind == PartKind::import
             ? "UPDATE files SET import_key=?, import_upload_id=? WHERE id=?"
             : "UPDATE files SET archive_key=?, archive_upload_id=? WHERE id=?");
  s.bind(1, key).bind(2, upload_id).bind(3, file_id).run();
  insert_event(db_, path_, f.export_id, file_id, "upload",
               f.name + ": " + std::string(to_string(kind)) + " upload " +
                   (upload_id.empty() ? std::string("(single PUT)") : std::string(upload_id)) +
                   " to " + std::string(key));
  tx.commit();
}

void Journal::record_object_deleted(int64_t file_id, PartKind kind, std::string_view bucket) {
  Tx tx(db_, path_);
  auto f = get_file(file_id);
  const std::string& key = kind == PartKind::import ? f.import_key : f.archive_key;
  const std::string text = f.name + ": " + std::string(to_string(kind)) + " object s3://" +
                           std::string(bucket) + "/" + key +
                           " deleted (superseded version, never imported)";
  Stmt s(db_, path_,
         kind == PartKind::import
             ? "UPDATE files SET import_key='', import_upload_id='' WHERE id=?"
             : "UPDATE files SET archive_key='', archive_upload_id='' WHERE id=?");
  s.bind(1, file_id).run();
  insert_event(db_, path_, f.export_id, file_id, "delete", text);
  tx.commit();
}

void Journal::restart_upload(int64_t file_id, PartKind kind, std::string_view key,
                             std::string_view upload_id) {
  Tx tx(db_, path_);
  auto f = get_file(file_id);
  Stmt s(db_, path_,
         kind == PartKind::import
             ? "UPDATE files SET import_key=?, import_upload_id=? WHERE id=?"
             : "UPDATE files SET archive_key=?, archive_upload_id=? WHERE id=?");
  s.bind(1, key).bind(2, upload_id).bind(3, file_id).run();
  Stmt p(db_, path_, "UPDATE parts SET state='pending', etag='' WHERE file_id=? AND kind=?");
  p.bind(1, file_id).bind(2, to_string(kind)).run();
  recompute_totals(f.export_id);
  insert_event(db_, path_, f.export_id, file_id, "upload",
               f.name + ": " + std::string(to_string(kind)) +
                   " multipart upload gone (NoSuchUpload), restarted as " + std::string(upload_id) +
                   " to " + std::string(key) + "; every part is sent again");
  tx.commit();
}

void Journal::set_file_error(int64_t file_id, std::string_view error) {
  Tx tx(db_, path_);
  auto f = get_file(file_id);
  Stmt s(db_, path_, "UPDATE files SET last_error=? WHERE id=?");
  s.bind(1, error).bind(2, file_id).run();
  insert_event(db_, path_, f.export_id, file_id, "error", f.name + ": " + std::string(error));
  tx.commit();
}

// ---------------------------------------------------------------- parts

void Journal::plan_parts(int64_t file_id, PartKind kind, const std::vector<PartPlan>& parts) {
  Tx tx(db_, path_);
  get_file(file_id);
  for (const auto& p : parts) {
    Stmt s(db_, path_,
           "INSERT OR IGNORE INTO parts(file_id,kind,part_number,offset,length,crc32c,state) "
           "VALUES(?,?,?,?,?,?,'pending')");
    s.bind(1, file_id).bind(2, to_string(kind)).bind(3, p.part_number).bind(4, p.offset);
    s.bind(5, p.length).bind(6, p.crc32c).run();
  }
  tx.commit();
}

void Journal::set_part_state(int64_t file_id, PartKind kind, int part_number, PartState to) {
  Tx tx(db_, path_);
  Stmt q(db_, path_, "SELECT state FROM parts WHERE file_id=? AND kind=? AND part_number=?");
  q.bind(1, file_id).bind(2, to_string(kind)).bind(3, part_number);
  if (!q.step())
    throw Error("journal: no " + std::string(to_string(kind)) + " part " +
                std::to_string(part_number) + " for file id " + std::to_string(file_id));
  auto from = parse_part_state(q.text(0)).value_or(PartState::pending);
  if (!allowed(from, to))
    throw Error("journal: " + std::string(to_string(kind)) + " part " +
                std::to_string(part_number) + ": illegal transition " +
                std::string(to_string(from)) + " -> " + std::string(to_string(to)));
  Stmt s(db_, path_, "UPDATE parts SET state=? WHERE file_id=? AND kind=? AND part_number=?");
  s.bind(1, to_string(to)).bind(2, file_id).bind(3, to_string(kind)).bind(4, part_number).run();
  tx.commit();
}

void Journal::record_part_uploaded(int64_t file_id, PartKind kind, int part_number,
                                   std::string_view etag, std::string_view crc32c) {
  Tx tx(db_, path_);
  auto f = get_file(file_id);
  Stmt q(db_, path_, "SELECT state FROM parts WHERE file_id=? AND kind=? AND part_number=?");
  q.bind(1, file_id).bind(2, to_string(kind)).bind(3, part_number);
  if (!q.step())
    throw Error("journal: file " + f.name + ": no " + std::string(to_string(kind)) + " part " +
                std::to_string(part_number) + " was planned");
  auto from = parse_part_state(q.text(0)).value_or(PartState::pending);
  if (!allowed(from, PartState::uploaded))
    throw Error("journal: file " + f.name + ": " + std::string(to_string(kind)) + " part " +
                std::to_string(part_number) + ": illegal transition " +
                std::string(to_string(from)) + " -> uploaded");
  Stmt s(db_, path_,
         "UPDATE parts SET state='uploaded', etag=?, crc32c=? WHERE file_id=? AND kind=? AND "
         "part_number=?");
  s.bind(1, etag).bind(2, crc32c).bind(3, file_id).bind(4, to_string(kind)).bind(5, part_number);
  s.run();
  recompute_totals(f.export_id);
  tx.commit();
}

std::vector<PartRow> Journal::parts(int64_t file_id, PartKind kind) const {
  Stmt s(db_, path_,
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
// The rows of the export's current attempt.
constexpr const char* kCurrentJob =
    " FROM import_jobs WHERE export_id=?1 AND attempt=(SELECT import_attempt FROM exports WHERE "
    "id=?1)";
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

std::string part_label(int part) {
  return part == 1 ? std::string() : " (part " + std::to_string(part) + ")";
}
}  // namespace

void Journal::record_import_token(int64_t export_id, std::string_view client_token,
                                  std::string_view job_name, int part, std::string_view input_uri,
                                  std::string_view validation_level) {
  Tx tx(db_, path_);
  auto row = get_export(export_id);
  TimeMs now = now_ms();
  {
    Stmt q(db_, path_, (std::string("SELECT client_token") + kCurrentJob + " AND part=?2").c_str());
    q.bind(1, export_id).bind(2, static_cast<int64_t>(part));
    if (q.step()) {
      if (q.text(0) == client_token) return;  // idempotent: the same token again
      throw Error("journal: export " + row.name + " already has an import client token for part " +
                  std::to_string(part) + "; refusing to replace it");
    }
  }
  // A writer held below schema 5 (a test hook) has no validation_level column.
  Stmt s(db_, path_,
         schema_ >= 5 ? "INSERT INTO import_jobs(export_id,attempt,part,input_uri,client_token,"
                        "job_name,submitted_at,updated_at,validation_level) "
                        "VALUES(?,?,?,?,?,?,?,?,?)"
                      : "INSERT INTO import_jobs(export_id,attempt,part,input_uri,client_token,"
                        "job_name,submitted_at,updated_at) VALUES(?,?,?,?,?,?,?,?)");
  s.bind(1, export_id).bind(2, static_cast<int64_t>(row.import_attempt));
  s.bind(3, static_cast<int64_t>(part)).bind(4, input_uri).bind(5, client_token);
  s.bind(6, job_name).bind(7, now).bind(8, now);
  if (schema_ >= 5) s.bind(9, validation_level);
  s.run();
  insert_event(
      db_, path_, export_id, std::nullopt, "import",
      "import job " + std::string(job_name) + " prepared" +
          (validation_level.empty() ? std::string()
                                    : " (ValidationLevel " + std::string(validation_level) + ")") +
          part_label(part));
  tx.commit();
}

void Journal::record_import_job(int64_t export_id, std::string_view job_id, std::string_view status,
                                int part) {
  Tx tx(db_, path_);
  Stmt s(db_, path_,
         "UPDATE import_jobs SET job_id=?3, status=?4, updated_at=?5 WHERE export_id=?1 AND "
         "part=?2 AND attempt=(SELECT import_attempt FROM exports WHERE id=?1)");
  s.bind(1, export_id).bind(2, static_cast<int64_t>(part)).bind(3, job_id).bind(4, status);
  s.bind(5, now_ms()).run();
  if (sqlite3_changes(db_) == 0)
    throw Error("journal: export id " + std::to_string(export_id) + " has no import token" +
                part_label(part));
  insert_event(db_, path_, export_id, std::nullopt, "import",
               "import job " + std::string(job_id) + " " + std::string(status) + part_label(part));
  tx.commit();
}

void Journal::record_import_status(int64_t export_id, std::string_view status,
                                   std::string_view progress_json, int part) {
  Tx tx(db_, path_);
  std::string old;
  {
    Stmt q(db_, path_, (std::string("SELECT status") + kCurrentJob + " AND part=?2").c_str());
    q.bind(1, export_id).bind(2, static_cast<int64_t>(part));
    if (!q.step())
      throw Error("journal: export id " + std::to_string(export_id) + " has no import job" +
                  part_label(part));
    old = q.text(0);
  }
  Stmt s(db_, path_,
         "UPDATE import_jobs SET status=?3, progress_json=?4, updated_at=?5 WHERE export_id=?1 "
         "AND part=?2 AND attempt=(SELECT import_attempt FROM exports WHERE id=?1)");
  s.bind(1, export_id).bind(2, static_cast<int64_t>(part)).bind(3, status).bind(4, progress_json);
  s.bind(5, now_ms()).run();
  // Polls repeat the same status; only changes go to the event log.
  if (old != status)
    insert_event(db_, path_, export_id, std::nullopt, "import",
                 "import job status " + old + " -> " + std::string(status) + part_label(part));
  tx.commit();
}

void Journal::record_import_reported(int64_t export_id, std::string_view reported_level,
                                     std::string_view message, int part) {
  if (schema_ < 5) return;  // a writer held below schema 5 (test hook): nowhere to put it
  Tx tx(db_, path_);
  std::string old_level;
  {
    Stmt q(db_, path_,
           (std::string("SELECT reported_level") + kCurrentJob + " AND part=?2").c_str());
    q.bind(1, export_id).bind(2, static_cast<int64_t>(part));
    if (!q.step())
      throw Error("journal: export id " + std::to_string(export_id) + " has no import job" +
                  part_label(part));
    old_level = q.text(0);
  }
  Stmt s(db_, path_,
         "UPDATE import_jobs SET reported_level=?3, message=?4, updated_at=?5 WHERE export_id=?1 "
         "AND part=?2 AND attempt=(SELECT import_attempt FROM exports WHERE id=?1)");
  s.bind(1, export_id).bind(2, static_cast<int64_t>(part)).bind(3, reported_level);
  s.bind(4, message).bind(5, now_ms()).run();
  if (old_level != reported_level)
    insert_event(
        db_, path_, export_id, std::nullopt, "import",
        "HealthLake reports ValidationLevel " +
            (reported_level.empty() ? std::string("(none)") : std::string(reported_level)) +
            part_label(part));
  tx.commit();
}

void Journal::record_import_outcome(int64_t export_id, std::string_view outcome, int part) {
  Tx tx(db_, path_);
  Stmt s(db_, path_,
         "UPDATE import_jobs SET outcome=?3, updated_at=?4 WHERE export_id=?1 AND part=?2 AND "
         "attempt=(SELECT import_attempt FROM exports WHERE id=?1)");
  s.bind(1, export_id).bind(2, static_cast<int64_t>(part)).bind(3, outcome).bind(4, now_ms());
  s.run();
  if (sqlite3_changes(db_) == 0)
    throw Error("journal: export id " + std::to_string(export_id) + " has no import job" +
                part_label(part));
  insert_event(db_, path_, export_id, std::nullopt, "import",
               "import outcome recorded" + part_label(part));
  tx.commit();
}

std::optional<ImportJobRow> Journal::import_job(int64_t export_id, int part) const {
  for (auto& j : import_jobs(export_id))
    if (j.part == part) return std::move(j);
  return std::nullopt;
}

std::vector<ImportJobRow> Journal::import_jobs(int64_t export_id) const {
  std::string sql =
      schema_ >= 3 ? std::string("SELECT ") + (schema_ >= 5 ? kJobCols : kJobColsV4) + kCurrentJob +
                         " ORDER BY part"
                   : std::string("SELECT ") + kJobColsV2 + " FROM import_jobs WHERE export_id=?1";
  Stmt s(db_, path_, sql.c_str());
  s.bind(1, export_id);
  std::vector<ImportJobRow> out;
  while (s.step()) out.push_back(read_job(s, export_id));
  return out;
}

// ---------------------------------------------------------------- operator actions

RetryOutcome Journal::retry_export(std::string_view export_name, bool reimport) {
  if (read_only_) throw Error("journal " + path_.string() + " is open read-only");
  Tx tx(db_, path_);
  RetryOutcome out;
  auto row = find_export(export_name);
  if (!row) {
    out.message = "no export named '" + std::string(export_name) + "' in the journal";
    if (auto t = find_tombstone(export_name))
      out.message += " (it was compacted away after it ended " + std::string(to_string(t->state)) +
                     "; its source is remembered and is not taken again)";
    return out;
  }
  out.export_id = row->id;
  out.from = row->state;
  auto refuse = [&](std::string why) {
    out.message = row->name + " is " + std::string(to_string(row->state)) + ": " + why;
    return out;
  };
  switch (row->state) {
    case ExportState::parked: {
      if (!row->parked_from) return refuse("parked without a state to resume (journal damaged?)");
      // Parked while starting, but every job of the attempt is known (adopted from
      // ListFHIRImportJobs after a crash, then parked for its ValidationLevel): no Start is in
      // doubt, so a new attempt is as safe as from importing.
      bool jobs_known = false;
      if (reimport && *row->parked_from == ExportState::import_starting) {
        auto js = import_jobs(row->id);
        jobs_known = !js.empty() && std::all_of(js.begin(), js.end(), [](const ImportJobRow& j) {
          return !j.job_id.empty();
        });
      }
      if (reimport && (*row->parked_from == ExportState::importing || jobs_known)) {
        // Parked while its job was followed (typically: the job vanished, Describe answers
        // ResourceNotFound, or it runs at another ValidationLevel). Resuming would poll the same
        // job id again; --reimport is the way out: a new attempt with new ClientToken(s) and a
        // new job.
        std::string old_jobs;
        for (const auto& j : import_jobs(row->id))
          if (!j.job_id.empty()) old_jobs += (old_jobs.empty() ? "" : ", ") + j.job_id;
        int attempt = row->import_attempt + 1;
        out.to = ExportState::uploaded;
        out.new_token = true;
        Stmt s(db_, path_,
               "UPDATE exports SET state=?, import_attempt=?, updated_at=?, finished_at=NULL, "
               "parked_from=NULL, parked_reason='', last_error='' WHERE id=?");
        s.bind(1, to_string(out.to)).bind(2, static_cast<int64_t>(attempt)).bind(3, now_ms());
        s.bind(4, row->id).run();
        out.applied = true;
        out.message = row->name + ": parked (" + row->parked_reason +
                      ") -> uploaded, import attempt " + std::to_string(attempt) +
                      ": a NEW import job with a new ClientToken will be started; the job(s) of "
                      "the previous attempt (" +
                      (old_jobs.empty() ? std::string("none") : old_jobs) +
                      ") are no longer followed";
        insert_event(db_, path_, row->id, std::nullopt, "retry",
                     "parked -> uploaded: import attempt " + std::to_string(attempt) +
                         " (--reimport; previous job(s): " + old_jobs + ")");
        break;
      }
      out.to = *row->parked_from;
      change_export_state(row->id, out.to, "unpark", "retry requested");
      out.applied = true;
      out.message = row->name + ": resumed as " + std::string(to_string(out.to)) +
                    " (it was parked: " + row->parked_reason + ")";
      bool has_token = false;
      for (const auto& j : import_jobs(row->id))
        if (!j.client_token.empty()) has_token = true;
      if (has_token) out.message += "; the import continues with the same ClientToken";
      break;
    }
    case ExportState::import_failed:
    case ExportState::imported: {
      if (row->state == ExportState::imported && !reimport)
        return refuse(
            "its import job already finished with a status the pipeline accepts. Importing it "
            "again creates a new HealthLake job with a new ClientToken and imports every resource "
            "once more (new resource versions); pass --reimport to do that");
      if (row->state == ExportState::import_failed && !reimport) {
        // A failed import is not always an import that did nothing: COMPLETED_WITH_ERRORS
        // under the accepted share, or CANCEL_FAILED (the job ran on). A new job would import
        // what was imported a second time, so that takes --reimport, and the refusal says what
        // was imported (from the outcome reconcile journaled from manifest.json and outputs).
        std::string imported_by, unknown;
        for (const auto& j : import_jobs(row->id)) {
          simdjson::dom::parser p;
          simdjson::dom::element o;
          if (j.outcome.empty() || p.parse(j.outcome).get(o)) continue;
          int64_t n = 0;
          simdjson::dom::object mo;
          bool manifest = !o["manifest"].get_object().get(mo);
          if (!o["resources_imported"].get_int64().get(n) && n > 0)
            imported_by += (imported_by.empty() ? "" : ", ") + std::to_string(n) + " by job " +
                           j.job_id + " (" + j.status + ")";
          else if (j.status == "CANCEL_FAILED" && !manifest)
            unknown += (unknown.empty() ? "" : ", ") + j.job_id;
        }
        if (!imported_by.empty())
          return refuse("resources of it were imported: " + imported_by +
                        ". A new job would import those a second time; pass --reimport to "
                        "import the whole export again anyway");
        if (!unknown.empty())
          return refuse("job(s) " + unknown +
                        " ended CANCEL_FAILED without a manifest.json: the cancel failed, so the "
                        "job probably ran on, and what it imported is not known. Check the job "
                        "in HealthLake; pass --reimport to import the whole export again anyway");
      }
      out.to = ExportState::uploaded;
      out.new_token = true;
      int attempt = row->import_attempt + 1;
      TimeMs now = now_ms();
      Stmt s(db_, path_,
             "UPDATE exports SET state=?, import_attempt=?, updated_at=?, finished_at=NULL, "
             "parked_from=NULL, parked_reason='', last_error='' WHERE id=?");
      s.bind(1, to_string(out.to)).bind(2, static_cast<int64_t>(attempt)).bind(3, now);
      s.bind(4, row->id).run();
      out.applied = true;
      out.message = row->name + ": " + std::string(to_string(row->state)) +
                    " -> uploaded, import attempt " + std::to_string(attempt) +
                    ": a NEW import job with a new ClientToken will be started (the objects "
                    "already in S3 are used; nothing is uploaded again)";
      insert_event(db_, path_, row->id, std::nullopt, "retry",
                   std::string(to_string(row->state)) + " -> uploaded: import attempt " +
                       std::to_string(attempt) + (reimport ? " (--reimport)" : ""));
      break;
    }
    case ExportState::nothing_to_import:
      return refuse(
          "none of its resources is valid, so there is nothing to import (see its rejects and "
          "report.json); fix the source and drop it again: a changed export is taken as a new "
          "version");
    case ExportState::failed:
      return refuse(
          "it was given up (" + row->last_error +
          "); fix the source and drop it again: a changed export is taken as a new version");
    case ExportState::superseded:
      return refuse("its source changed after it was taken; the newer version is imported instead");
    default:
      return refuse("it is in progress" +
                    (row->last_error.empty()
                         ? std::string()
                         : " (last error, retried automatically: " + row->last_error + ")") +
                    "; nothing to retry");
  }
  tx.commit();
  return out;
}

// ---------------------------------------------------------------- requests

namespace {
constexpr const char* kRequestCols = "id,time,kind,target,args,state,result,done_at";
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

int64_t Journal::submit_request(const std::filesystem::path& path, std::string_view kind,
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
    Stmt v(db, path, "PRAGMA user_version");
    v.step();
    version = static_cast<int>(v.i64(0));
  }
  if (version < 3)
    throw Error("journal " + path.string() + " has schema version " + std::to_string(version) +
                "; the running daemon is older than this fhir-edge and cannot take requests "
                "(restart it with this version)");
  Tx tx(db, path);
  Stmt s(db, path, "INSERT INTO requests(time,kind,target,args) VALUES(?,?,?,?)");
  s.bind(1, now_ms()).bind(2, kind).bind(3, target).bind(4, args).run();
  int64_t id = sqlite3_last_insert_rowid(db);
  tx.commit();
  return id;
}

int64_t Journal::add_request(std::string_view kind, std::string_view target,
                             std::string_view args) {
  Tx tx(db_, path_);
  Stmt s(db_, path_, "INSERT INTO requests(time,kind,target,args) VALUES(?,?,?,?)");
  s.bind(1, now_ms()).bind(2, kind).bind(3, target).bind(4, args).run();
  int64_t id = sqlite3_last_insert_rowid(db_);
  tx.commit();
  return id;
}

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

bool Journal::locked_by_other(const std::filesystem::path& path) {
  auto lock_path = path;
  lock_path += ".lock";
  int fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;  // no lock file: no daemon ever ran here
  bool locked = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases the shared lock if it was taken
  return locked;
}

std::optional<RequestRow> Journal::request(int64_t id) const {
  if (schema_ < 3) return std::nullopt;
  Stmt s(db_, path_, (std::string("SELECT ") + kRequestCols + " FROM requests WHERE id=?").c_str());
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_request(s);
}

std::vector<RequestRow> Journal::pending_requests() const {
  std::vector<RequestRow> out;
  if (schema_ < 3) return out;
  Stmt s(
      db_, path_,
      (std::string("SELECT ") + kRequestCols + " FROM requests WHERE state='pending' ORDER BY id")
          .c_str());
  while (s.step()) out.push_back(read_request(s));
  return out;
}

void Journal::finish_request(int64_t id, bool done, std::string_view result) {
  Tx tx(db_, path_);
  Stmt s(db_, path_,
         "UPDATE requests SET state=?, result=?, done_at=? WHERE id=? AND state='pending'");
  s.bind(1, std::string_view(done ? "done" : "refused")).bind(2, result).bind(3, now_ms());
  s.bind(4, id).run();
  tx.commit();
}

// ---------------------------------------------------------------- events

void Journal::add_event(std::optional<int64_t> export_id, std::optional<int64_t> file_id,
                        std::string_view kind, std::string_view message) {
  Tx tx(db_, path_);
  insert_event(db_, path_, export_id, file_id, kind, message);
  tx.commit();
}

std::vector<EventRow> Journal::events(std::optional<int64_t> export_id, size_t limit) const {
  const char* sql = export_id
                        ? "SELECT id,time,export_id,file_id,kind,message FROM events WHERE "
                          "export_id=? ORDER BY id DESC LIMIT ?"
                        : "SELECT id,time,export_id,file_id,kind,message FROM events ORDER BY "
                          "id DESC LIMIT ?";
  Stmt s(db_, path_, sql);
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

// ---------------------------------------------------------------- maintenance

size_t Journal::compact(std::chrono::seconds older_than) {
  TimeMs cutoff =
      now_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(older_than).count();
  Tx tx(db_, path_);
  std::vector<int64_t> ids;
  {
    Stmt s(db_, path_,
           "SELECT id FROM exports WHERE state IN "
           "('imported','import_failed','nothing_to_import','failed',"
           "'superseded') AND finished_at IS NOT NULL AND finished_at <= ? "
           // A superseded version whose uploaded objects are not all deleted yet keeps the keys
           // the pipeline still has to delete.
           "AND NOT (state='superseded' AND EXISTS(SELECT 1 FROM files WHERE "
           "files.export_id=exports.id AND (import_key<>'' OR archive_key<>'')))");
    s.bind(1, cutoff);
    while (s.step()) ids.push_back(s.i64(0));
  }
  for (int64_t id : ids) {
    if (schema_ >= 4) {
      // The tombstone first: from now on it is all that says this source was taken.
      Stmt t(db_, path_,
             "INSERT OR REPLACE INTO tombstones(pipeline,source_path,digest,name,version,state,"
             "files,resources_valid,resources_rejected,created_at,finished_at,compacted_at) "
             "SELECT pipeline,source_path,digest,name,version,state,files,resources_valid,"
             "resources_rejected,created_at,finished_at,? FROM exports WHERE id=?");
      t.bind(1, now_ms()).bind(2, id).run();
      Stmt(db_, path_,
           "DELETE FROM line_map WHERE file_id IN (SELECT id FROM files WHERE export_id=?)")
          .bind(1, id)
          .run();
    }
    // Children first; the foreign keys cascade too, but explicit deletes keep this correct on a
    // connection where foreign_keys is off.
    Stmt(db_, path_, "DELETE FROM parts WHERE file_id IN (SELECT id FROM files WHERE export_id=?)")
        .bind(1, id)
        .run();
    Stmt(db_, path_, "DELETE FROM files WHERE export_id=?").bind(1, id).run();
    Stmt(db_, path_, "DELETE FROM import_jobs WHERE export_id=?").bind(1, id).run();
    Stmt(db_, path_, "DELETE FROM events WHERE export_id=?").bind(1, id).run();
    Stmt(db_, path_, "DELETE FROM exports WHERE id=?").bind(1, id).run();
  }
  if (schema_ >= 3)
    Stmt(db_, path_, "DELETE FROM requests WHERE state<>'pending' AND done_at <= ?")
        .bind(1, cutoff)
        .run();
  if (!ids.empty())
    insert_event(db_, path_, std::nullopt, std::nullopt, "compact",
                 "removed " + std::to_string(ids.size()) +
                     " finished exports (tombstones kept: their sources are not taken again)");
  tx.commit();
  return ids.size();
}

std::optional<ExportRow> Journal::find_tombstone(std::string_view name) const {
  if (schema_ < 4) return std::nullopt;
  Stmt s(db_, path_,
         (std::string("SELECT ") + kTombstoneCols + " FROM tombstones WHERE name=?").c_str());
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return read_tombstone(s);
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
