// `fhir-edge status` against a real journal file, as an operator runs it.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <functional>

#include "journal/journal.hpp"
#include "test_util.hpp"

using namespace fe::journal;
namespace fs = std::filesystem;

namespace {

struct Result {
  int code;
  std::string out;
};

Result run(const std::string& args, bool merge_stderr = true) {
  std::string cmd = std::string(FE_EXE) + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

}  // namespace

TEST(StatusCli, TableAndJsonWhileTheWriterHoldsTheLock) {
  TempDir dir;
  auto db = dir / "journal.db";
  auto j = Journal::open(db);  // stays open: status must work next to a running daemon
  auto e = j.take_export("epic-nightly", "/in/x", "d1", "2026-11-26-epic",
                         {{"Patient.ndjson", {10, 1, 1, 1}}})
               .row;
  auto f = j.files(e.id)[0];
  j.set_export_state(e.id, ExportState::complete);
  j.set_export_state(e.id, ExportState::spooling);
  j.set_file_state(f.id, FileState::spooling);
  j.record_spooled(f.id, {7, 3, 900, 120, ""});
  j.set_export_error(e.id, "SlowDown: retrying in 2 min");

  auto table = run("status --journal " + db.string());
  EXPECT_EQ(table.code, 0) << table.out;
  EXPECT_NE(table.out.find("2026-11-26-epic"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("epic-nightly"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("spooling"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("SlowDown"), std::string::npos) << table.out;

  auto js = run("status --json --journal " + db.string(), false);
  ASSERT_EQ(js.code, 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(js.out).get(doc), simdjson::SUCCESS) << js.out;
  simdjson::dom::array exports;
  ASSERT_EQ(doc["exports"].get(exports), simdjson::SUCCESS);
  ASSERT_EQ(exports.size(), 1u);
  int64_t valid = 0, rejected = 0, spooled = 0;
  ASSERT_EQ(exports.at(0)["resources_valid"].get(valid), simdjson::SUCCESS);
  ASSERT_EQ(exports.at(0)["resources_rejected"].get(rejected), simdjson::SUCCESS);
  ASSERT_EQ(exports.at(0)["bytes_spooled"].get(spooled), simdjson::SUCCESS);
  // The CLI agrees with the journal API.
  auto row = j.get_export(e.id);
  EXPECT_EQ(valid, row.resources_valid);
  EXPECT_EQ(rejected, row.resources_rejected);
  EXPECT_EQ(spooled, row.bytes_spooled);
  EXPECT_EQ(valid, 7);
}

TEST(StatusCli, ReadsTheJournalPathFromTheConfig) {
  TempDir dir;
  auto db = dir / "state.db";
  {
    auto j = Journal::open(db);
    j.take_export("p", "/in/y", "d", "from-config", {{"a.ndjson", {1, 1, 1, 1}}});
  }
  // A config as config/fhir-edge.yaml documents it; only journal.path matters to status.
  std::ofstream(dir / "fhir-edge.yaml")
      << "aws:\n  region: us-east-1\n"
         "pipelines:\n"
         "  - name: p\n"
         "    watch: "
      << (dir / "in").string()
      << "\n"
         "    s3: { bucket: landing-bucket }\n"
         "    healthlake:\n"
         "      datastore_id: 0123456789abcdef0123456789abcdef\n"
         "      data_access_role_arn: arn:aws:iam::123456789012:role/R\n"
         "      output_s3_uri: s3://out-bucket/x/\n"
         "      output_kms_key_id: arn:aws:kms:us-east-1:123456789012:key/k\n"
         "spool: { dir: "
      << (dir / "spool").string()
      << " }\n"
         "journal: { path: "
      << db.string() << " }\n";
  auto r = run("status --config " + (dir / "fhir-edge.yaml").string());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("from-config"), std::string::npos) << r.out;
}

TEST(StatusCli, MissingOrDamagedJournalFailsWithAClearMessage) {
  TempDir dir;
  auto r = run("status --journal " + (dir / "nope.db").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("does not exist"), std::string::npos) << r.out;
  std::ofstream(dir / "bad.db") << std::string(5000, 'z');
  r = run("status --journal " + (dir / "bad.db").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("is damaged"), std::string::npos) << r.out;
}

TEST(StatusCli, UsageErrors) {
  EXPECT_EQ(run("status --bogus").code, 2);
  EXPECT_EQ(run("status --journal").code, 2);
  EXPECT_EQ(run("status --journal a --config b").code, 2);
  auto h = run("status --help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("--json"), std::string::npos);
}

TEST(StatusCli, ExportDetailListsFilesAndEvents) {
  TempDir dir;
  auto db = dir / "journal.db";
  auto j = Journal::open(db);
  auto e = j.take_export("p", "/in/x", "d1", "detail-me",
                         {{"Patient.ndjson", {10, 1, 1, 1}}, {"Observation.ndjson", {20, 1, 2, 1}}})
               .row;
  auto files = j.files(e.id);
  j.set_file_state(files[0].id, FileState::failed, "line 3: $.id: bad id");
  auto r = run("status --journal " + db.string() + " --export detail-me");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Observation.ndjson"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("line 3: $.id: bad id"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("discovered /in/x"), std::string::npos) << r.out;
  auto js = run("status --json --journal " + db.string() + " --export detail-me", false);
  ASSERT_EQ(js.code, 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(js.out).get(doc), simdjson::SUCCESS) << js.out;
  simdjson::dom::array arr;
  ASSERT_EQ(doc["files"].get(arr), simdjson::SUCCESS);
  EXPECT_EQ(arr.size(), 2u);
  ASSERT_EQ(doc["events"].get(arr), simdjson::SUCCESS);
  EXPECT_GE(arr.size(), 2u);
  auto missing = run("status --journal " + db.string() + " --export nope");
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.out.find("no export named 'nope'"), std::string::npos);
}

TEST(StatusCli, ActiveHidesFinishedExports) {
  TempDir dir;
  auto db = dir / "journal.db";
  {
    auto j = Journal::open(db);
    j.take_export("p", "/in/live", "d1", "live-one", {{"a.ndjson", {1, 1, 1, 1}}});
    auto done = j.take_export("p", "/in/done", "d2", "done-one", {{"a.ndjson", {1, 1, 2, 1}}});
    j.fail_export(done.row.id, "fail-export: 3 invalid resources");
  }
  auto all = run("status --journal " + db.string());
  EXPECT_NE(all.out.find("done-one"), std::string::npos) << all.out;
  EXPECT_NE(all.out.find("fail-export: 3 invalid resources"), std::string::npos) << all.out;
  auto active = run("status --active --journal " + db.string());
  EXPECT_EQ(active.code, 0);
  EXPECT_NE(active.out.find("live-one"), std::string::npos) << active.out;
  EXPECT_EQ(active.out.find("done-one"), std::string::npos) << active.out;
}

namespace {
// Runs f() in a child process as uid/gid 65534 (the service user here); its exit code.
int as_service_user(const std::function<int()>& f) {
  pid_t pid = fork();
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
    try {
      _exit(f());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "as service user: %s\n", e.what());
      _exit(2);
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
}  // namespace

// issue 15 defect 9: `sudo fhir-edge journal compact` (or retry) while journal.db.lock is absent
// (docs/journal.md's restore procedure removes it) created the lock as root 0600, and the service
// then failed with "cannot open lock file ... Permission denied". Now every file the CLI leaves
// in the state directory belongs to the directory's owner, and the service starts.
TEST(StatusCli, RootRunCliLeavesNothingTheServiceCannotOpen) {
  TempDir dir;
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  auto state = dir / "state";
  fs::create_directory(state);
  fs::permissions(state, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  const bool root = geteuid() == 0;
  if (root) {
    ASSERT_EQ(chown(state.c_str(), 65534, 65534), 0);
  }
  auto db = state / "journal.db";
  ASSERT_EQ(as_service_user([&] {
              auto j = Journal::open(db);
              j.take_export("p", "/in/a", "d1", "a", {{"Patient.ndjson", {10, 1, 1, 1}}});
              return 0;
            }),
            0);
  fs::remove(db.string() + ".lock");  // as after a restore

  auto r = run("journal compact --older-than 1d --journal " + db.string());
  EXPECT_EQ(r.code, 0) << r.out;
  ASSERT_TRUE(fs::exists(db.string() + ".lock"));
  for (const auto& e : fs::directory_iterator(state)) {
    struct stat st {};
    ASSERT_EQ(lstat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, root ? 65534u : geteuid()) << e.path() << " is not the service user's";
  }
  // The service starts: it opens (and locks) the journal for writing.
  EXPECT_EQ(as_service_user([&] {
              auto j = Journal::open(db);
              return j.exports().size() == 1 ? 0 : 1;
            }),
            0)
      << "2: the service could not open the journal after a root-run CLI";
}
