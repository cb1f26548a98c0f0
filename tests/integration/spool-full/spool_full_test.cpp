// Disk trouble under the daemon's state (issue 8, hostile inputs; issue 6 "journal errors in
// upload callbacks"): a full spool file system, a read-only spool, a full file system under the
// journal, and a second daemon on the same state. Real small file systems: each test mounts a
// tmpfs of a few pages in a private mount namespace of the test process (unshare(CLONE_NEWNS),
// which needs root or a user namespace; otherwise the tests say so and skip), then gives space
// back with `remount,size=` or by deleting a filler file. Real pipeline, real SQLite, real
// healthlake-local on 127.0.0.1.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <cstring>

#include "../pipeline/component.hpp"
#include "app/stages.hpp"
#include "config/config.hpp"
#include "journal/journal.hpp"
#include "spool/spool.hpp"

#ifndef FE_EXE
#define FE_EXE ""
#endif

namespace {
namespace fs = std::filesystem;
using namespace fe::test;
using fe::journal::ExportState;

std::string g_no_mounts;  // why the mount tests cannot run here ("" = they can)

class SpoolFullTest : public ::testing::Test {
 protected:
  // Once, before any thread exists (unshare(CLONE_NEWNS) refuses a multi-threaded process).
  static void SetUpTestSuite() {
    if (::unshare(CLONE_NEWNS) != 0) {
      g_no_mounts = std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno) +
                    " (needs root or an unprivileged user namespace)";
      return;
    }
    // Our mounts must not leak into the host's namespace.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      g_no_mounts = std::string("mount --make-rprivate /: ") + std::strerror(errno);
  }
  void SetUp() override {
    set_test_env();
    if (!g_no_mounts.empty()) GTEST_SKIP() << "cannot mount a small tmpfs: " << g_no_mounts;
  }
  void TearDown() override { unmount_all(); }
  void unmount_all() {
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
    mounts_.clear();
  }
  // Unmounts this test's file systems, then removes its directory.
  void cleanup(const fs::path& root) {
    unmount_all();
    fs::remove_all(root);
  }
  // A tmpfs of `bytes` at `dir` (created); ASSERT-style failure through the return value.
  bool mount_tmpfs(const fs::path& dir, uint64_t bytes) {
    fs::create_directories(dir);
    std::string opts = "size=" + std::to_string(bytes) + ",mode=0755";
    if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      ADD_FAILURE() << "mount tmpfs at " << dir << ": " << std::strerror(errno);
      return false;
    }
    mounts_.push_back(dir);
    return true;
  }
  static bool remount(const fs::path& dir, const std::string& opts) {
    if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_REMOUNT, opts.c_str()) == 0) return true;
    ADD_FAILURE() << "remount " << dir << " " << opts << ": " << std::strerror(errno);
    return false;
  }
  std::vector<fs::path> mounts_;
};

// Writes zeros to `path` until the file system is full; returns the bytes written.
uint64_t fill(const fs::path& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  std::vector<char> zeros(4096, 0);
  uint64_t n = 0;
  for (;;) {
    ssize_t w = ::write(fd, zeros.data(), zeros.size());
    if (w <= 0) break;
    n += static_cast<uint64_t>(w);
  }
  ::fsync(fd);
  ::close(fd);
  return n;
}

std::vector<std::string> lines_with(const std::string& text, const std::vector<std::string>& all) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    bool ok = true;
    for (const auto& s : all) ok = ok && line.find(s) != std::string::npos;
    if (ok) out.push_back(line);
  }
  return out;
}

// Every committed spool file is whole (index agrees, every frame decompresses with its CRC32C)
// and no temporary file was left behind.
void expect_spool_sound(const fs::path& spool) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(spool, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const auto p = it->path();
    if (!it->is_regular_file()) continue;
    EXPECT_FALSE(p.string().ends_with(".tmp")) << "leftover temporary spool file " << p;
    if (p.extension() == ".zst") {
      try {
        fe::spool::SpoolFile::open(p).verify();
      } catch (const std::exception& e) {
        ADD_FAILURE() << "damaged spool file " << p << ": " << e.what();
      }
    }
  }
}

void expect_uploaded_intact(const std::string& endpoint, const fs::path& exp,
                            const std::string& name) {
  S3Reader s3(endpoint);
  int n = 0;
  for (const auto& e : fs::directory_iterator(exp)) {
    auto f = e.path().filename().string();
    if (!f.ends_with(".ndjson")) continue;
    ++n;
    auto obj = s3.get("exports/" + name + "/import/" + f);
    ASSERT_TRUE(obj) << name << "/" << f;
    EXPECT_TRUE(*obj == read_file(e.path())) << name << "/" << f << " differs from the source";
  }
  EXPECT_GT(n, 0);
}

// Files and parts by state, for failure messages.
std::string journal_dump(const fs::path& path) {
  std::ostringstream out;
  try {
    auto j = fe::journal::Journal::open(path, {.read_only = true});
    for (const auto& e : j.exports(true)) {
      out << "export " << e.name << " " << to_string(e.state) << " " << e.last_error << "\n";
      for (const auto& f : j.files(e.id)) {
        out << "  " << f.name << " " << to_string(f.state) << " upload " << f.import_upload_id
            << " parts:";
        for (auto kind : {fe::journal::PartKind::import, fe::journal::PartKind::archive})
          for (const auto& pr : j.parts(f.id, kind))
            out << " " << (kind == fe::journal::PartKind::import ? "i" : "a") << pr.part_number
                << "=" << to_string(pr.state);
        out << "\n";
      }
    }
  } catch (const std::exception& e) {
    out << "(journal: " << e.what() << ")";
  }
  return out.str();
}

void expect_journal_sound(const fs::path& path) {
  // A read-write open runs the journal's integrity check (and takes its lock).
  try {
    auto j = fe::journal::Journal::open(path);
    (void)j.exports(true);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "journal not sound after the disk trouble: " << e.what();
  }
}

// The spool file system fills up while an export is spooled: the export waits (retried later,
// never failed or parked), nothing half-written stays in the spool, and when space comes back the
// export goes on and uploads intact.
TEST_F(SpoolFullTest, DiskFullSpoolWaitsAndResumes) {
  REQUIRE_TOOLS();
  auto root = temp_dir("spoolfull");
  ASSERT_TRUE(mount_tmpfs(root / "spool", 32 * 1024));  // 8 pages: ~half of the export's spool
  LocalS3 server(root / "s3", kPart);
  auto exp = root / "watch" / "e";
  generate(exp, {"--patients", "20", "--seed", "11", "--complete", "none"});
  auto cfg = load(root, config_yaml(root, server.endpoint()));
  boost::asio::io_context io;
  LogCapture cap;  // the daemon's log (stderr in tests)
  fe::app::Stages p(io, cfg, test_options());
  p.start(cfg);
  write_file(exp / ".done", "");
  // ENOSPC while spooling: the export is retried (several times), never failed or parked.
  ASSERT_TRUE(run_until(
      io, [&] { return p.stats().retries_scheduled >= 2; }, std::chrono::seconds(120)))
      << p.status_line();
  auto rows = journal_exports(root);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, ExportState::spooling);
  EXPECT_NE(rows[0].last_error.find("No space left on device"), std::string::npos)
      << rows[0].last_error;
  EXPECT_EQ(p.stats().exports_uploaded, 0u);
  // (The spool is checked once the component has stopped: while it waits, a retry may already be
  // rewriting a file on the pool, which legitimately has a .tmp and no committed index.)

  // Space comes back: the export goes on by itself.
  ASSERT_TRUE(remount(root / "spool", "size=64m"));
  ASSERT_TRUE(uploaded(io, p, 1, std::chrono::seconds(120)));
  stop_component(io, p);
  std::string log = cap.restore();
  auto enospc = lines_with(log, {"No space left on device", "spool"});
  EXPECT_GE(enospc.size(), 1u) << log;
  EXPECT_LE(enospc.size(), p.stats().retries_scheduled) << "more than one line per attempt:\n"
                                                        << log;
  std::printf("[ disk full ] %llu retries while full; log line: %s\n",
              (unsigned long long)p.stats().retries_scheduled,
              enospc.empty() ? "" : enospc.front().c_str());
  expect_spool_sound(root / "spool");
  expect_uploaded_intact(server.endpoint(), exp, "e");
  expect_journal_sound(root / "journal.db");
  cleanup(root);
}

// A read-only spool: one clear line per attempt naming the path and the cause, the daemon keeps
// running (the export waits), and it goes on once the spool is writable again.
TEST_F(SpoolFullTest, ReadOnlySpoolKeepsRunning) {
  REQUIRE_TOOLS();
  auto root = temp_dir("spoolro");
  ASSERT_TRUE(mount_tmpfs(root / "spool", 16 << 20));
  ASSERT_TRUE(remount(root / "spool", "ro"));
  LocalS3 server(root / "s3", kPart);
  auto exp = root / "watch" / "e";
  generate(exp, {"--patients", "5", "--seed", "12", "--complete", "none"});
  auto cfg = load(root, config_yaml(root, server.endpoint()));
  boost::asio::io_context io;
  LogCapture cap;  // the daemon's log (stderr in tests)
  fe::app::Stages p(io, cfg, test_options());
  p.start(cfg);  // a read-only spool is not a start-up error: the daemon runs and waits
  write_file(exp / ".done", "");
  ASSERT_TRUE(run_until(
      io, [&] { return p.stats().retries_scheduled >= 2; }, std::chrono::seconds(120)))
      << p.status_line();
  auto rows = journal_exports(root);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, ExportState::spooling);
  EXPECT_NE(rows[0].last_error.find("Read-only file system"), std::string::npos)
      << rows[0].last_error;
  EXPECT_NE(rows[0].last_error.find((root / "spool").string()), std::string::npos)
      << rows[0].last_error;
  ASSERT_TRUE(remount(root / "spool", "rw"));
  ASSERT_TRUE(uploaded(io, p, 1, std::chrono::seconds(120)));
  const auto retries = p.stats().retries_scheduled;
  stop_component(io, p);
  std::string log = cap.restore();
  auto ro = lines_with(log, {"Read-only file system"});
  EXPECT_GE(ro.size(), 1u) << log;
  EXPECT_LE(ro.size(), retries) << "more than one line per attempt:\n" << log;
  std::printf("[ read-only spool ] %zu log line(s) over %llu attempts, e.g.: %s\n", ro.size(),
              (unsigned long long)retries, ro.empty() ? "" : ro.front().c_str());
  expect_uploaded_intact(server.endpoint(), exp, "e");
  expect_journal_sound(root / "journal.db");
  cleanup(root);
}

// The file system under the journal fills up while parts are being uploaded: the journal write in
// the upload completion callback fails; the daemon neither crashes nor loses the part: the export
// waits, and when space is back the retry reconciles with ListParts (no part the server completed
// is sent again) and completes the object intact.
TEST_F(SpoolFullTest, JournalDiskFullDuringUpload) {
  REQUIRE_TOOLS();
  auto root = temp_dir("journalfull");
  ASSERT_TRUE(mount_tmpfs(root / "state", 8 << 20));
  LocalS3 server(root / "s3", kPart);
  auto exp = root / "watch" / "e";
  generate(exp, {"--patients", "30", "--seed", "13", "--complete", "none"});
  std::string yaml =
      config_yaml(root, server.endpoint(), "", "{ part_size: auto, concurrency: 2 }");
  const std::string old_journal = (root / "journal.db").string();
  yaml.replace(yaml.find(old_journal), old_journal.size(),
               (root / "state" / "journal.db").string());
  auto cfg = load(root, yaml);
  boost::asio::io_context io;
  fe::app::Stages p(io, cfg, test_options());
  p.start(cfg);
  write_file(exp / ".done", "");
  // The loop runs only inside run_until: stop it with parts in flight, fill the disk under the
  // journal, go on.
  ASSERT_TRUE(run_until(
      io, [&] { return p.stats().parts_sent >= 3; }, std::chrono::seconds(120)))
      << p.status_line();
  const uint64_t filled = fill(root / "state" / "filler");
  ASSERT_GT(filled, 0u);
  ASSERT_TRUE(run_until(
      io, [&] { return p.stats().journal_errors >= 1 && p.stats().retries_scheduled >= 2; },
      std::chrono::seconds(120)))
      << p.status_line();
  EXPECT_EQ(p.stats().exports_uploaded, 0u);
  const auto sent_while_full = p.stats().parts_sent;
  fs::remove(root / "state" / "filler");
  ASSERT_TRUE(run_until(
      io, [&] { return p.stats().exports_uploaded == 1; }, std::chrono::seconds(120)))
      << p.status_line() << "\n"
      << journal_dump(root / "state" / "journal.db");
  const auto st = p.stats();
  stop_component(io, p);
  std::printf(
      "[ journal full ] %llu journal write errors, %llu retries; parts sent %llu (%llu before "
      "space returned), %llu found on the server by ListParts\n",
      (unsigned long long)st.journal_errors, (unsigned long long)st.retries_scheduled,
      (unsigned long long)st.parts_sent, (unsigned long long)sent_while_full,
      (unsigned long long)st.parts_skipped);
  expect_uploaded_intact(server.endpoint(), exp, "e");
  expect_journal_sound(root / "state" / "journal.db");
  // No part the server completed was completed twice (ListParts adopted them).
  std::map<std::pair<std::string, int>, int> completed;
  for (const auto& r : server.requests())
    if (r.operation == "UploadPart" && r.status == 200) ++completed[{r.key, r.part_number}];
  for (const auto& [k, c] : completed) EXPECT_EQ(c, 1) << k.first << " part " << k.second;
  auto rows = journal_exports(root / "state");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, ExportState::uploaded);
  cleanup(root);
}

// A second daemon on the same state directory refuses to start with a clear message (exit code
// non-zero) and the first one keeps running undisturbed.
class SecondDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { set_test_env(); }
};

TEST_F(SecondDaemonTest, SameStateRefusesToStart) {
  if (std::string(FE_EXE).empty() || !fs::exists(FE_EXE)) GTEST_SKIP() << "fhir-edge not built";
  auto root = temp_dir("second");
  auto cfg = root / "fhir-edge.yaml";
  // Endpoints nobody listens on: start-up does not need them.
  write_file(cfg, config_yaml(root, "http://127.0.0.1:" + std::to_string(free_port())));
  pid_t first = spawn({FE_EXE, "run", "--config", cfg.string()}, root / "first.log");
  bool up = false;
  for (int i = 0; i < 600 && !up; ++i) {
    up = read_file(root / "first.log").find("pipeline started") != std::string::npos;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(up) << read_file(root / "first.log");
  pid_t second = spawn({FE_EXE, "run", "--config", cfg.string()}, root / "second.log");
  int st = 0;
  ::waitpid(second, &st, 0);
  std::string second_log = read_file(root / "second.log");
  ASSERT_TRUE(WIFEXITED(st)) << second_log;
  EXPECT_NE(WEXITSTATUS(st), 0) << second_log;
  EXPECT_NE(second_log.find("in use by another fhir-edge process"), std::string::npos)
      << second_log;
  EXPECT_NE(second_log.find((root / "journal.db").string()), std::string::npos) << second_log;
  std::printf("[ second daemon ] exit %d: %s", WEXITSTATUS(st), second_log.c_str());
  EXPECT_EQ(::waitpid(first, &st, WNOHANG), 0) << "the first daemon stopped";
  ::kill(first, SIGTERM);
  ::waitpid(first, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << read_file(root / "first.log");
  fs::remove_all(root);
}

}  // namespace
