// Opening the journal: the lock file that keeps a second daemon out, the integrity check, and
// the schema migration at start.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "journal/sql.hpp"

namespace fe::journal {
namespace {

std::string damaged(const std::filesystem::path& path, std::string_view detail) {
  return "journal " + path.string() + " is damaged (" + std::string(detail) +
         "); fhir-edge will not reset it: restore it from a backup, or move it aside to start "
         "with an empty journal (docs/journal.md)";
}

}  // namespace

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
    detail::exec(j.db_, path, "PRAGMA journal_mode=WAL");
    detail::exec(j.db_, path, "PRAGMA synchronous=FULL");
  }
  detail::exec(j.db_, path, "PRAGMA foreign_keys=ON");

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

bool Journal::locked_by_other(const std::filesystem::path& path) {
  auto lock_path = path;
  lock_path += ".lock";
  int fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;  // no lock file: no daemon ever ran here
  bool locked = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases the shared lock if it was taken
  return locked;
}

}  // namespace fe::journal
