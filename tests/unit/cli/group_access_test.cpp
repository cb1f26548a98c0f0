// Issue 17, item 4: members of group fhir-edge run `status` and `check-config` without root,
// against a journal a daemon made with the unit's UMask=0027 (0640 files in a setgid 2750 state
// directory of that group, the writer still holding it open: WAL and -shm present) and a
// config that is 0640 root:<group>. Anyone else gets a message naming the file or directory,
// its mode, and the group to join - not "Permission denied" / "unable to open database file".
// Runs the real binary as other users with setpriv(1) (numeric ids that are free on this host:
// nothing is added to /etc/passwd).
#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "journal/journal.hpp"
#include "temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct Result {
  int code = -1;
  std::string out;
};

Result run(const std::string& cmd) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  Result r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

unsigned free_id(unsigned from, bool group) {
  for (unsigned id = from;; ++id)
    if (group ? ::getgrgid(id) == nullptr : ::getpwuid(id) == nullptr) return id;
}

TEST(GroupAccess, MembersReadStatusAndConfigOthersAreToldWhatToDo) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: runs the binary as other users (setpriv)";
  ASSERT_EQ(std::system("command -v setpriv >/dev/null"), 0) << "setpriv (util-linux) missing";
  const unsigned gid = free_id(61700, true);
  const unsigned member = free_id(61700, false);
  const unsigned outsider = free_id(member + 1, false);
  fe::test::TempDir dir{"fe-group"};
  fs::permissions(dir.path(), fs::perms(0755));

  // The state directory as systemd makes it (StateDirectory=, mode 0750, the service's group;
  // setgid here so that the files root makes below get the group, as the service's would).
  const fs::path state = dir / "state";
  fs::create_directories(state);
  ASSERT_EQ(::chown(state.c_str(), 0, gid), 0);
  ASSERT_EQ(::chmod(state.c_str(), 02750), 0);
  const fs::path db = state / "journal.db";
  mode_t old = ::umask(0027);                    // the unit's UMask=
  auto writer = fe::journal::Journal::open(db);  // stays open: a running daemon
  writer.take_export("epic", "/in/x", "d1", "2026-12-05-epic", {{"Patient.ndjson", {10, 1, 1, 1}}});
  ::umask(old);
  ASSERT_TRUE(fs::exists(fs::path(db.string() + "-wal")));
  ASSERT_TRUE(fs::exists(fs::path(db.string() + "-shm")));

  const fs::path watch = dir / "watch";
  fs::create_directories(watch);
  ASSERT_EQ(::chown(watch.c_str(), 0, gid), 0);
  ASSERT_EQ(::chmod(watch.c_str(), 02770), 0);
  const std::string cfg =
      dir.write("fhir-edge.yaml",
                "pipelines:\n  - name: epic\n    watch: " + watch.string() +
                    "\n    s3: { bucket: landing }\n    healthlake:\n"
                    "      datastore_id: 0123456789abcdef0123456789abcdef\n"
                    "      data_access_role_arn: arn:aws:iam::123456789012:role/Import\n"
                    "      output_s3_uri: s3://results/imports/\n"
                    "      output_kms_key_id: alias/hl\n"
                    "spool: { dir: " +
                    (state / "spool").string() + " }\njournal: { path: " + db.string() + " }\n");
  ASSERT_EQ(::chown(cfg.c_str(), 0, gid), 0);
  ASSERT_EQ(::chmod(cfg.c_str(), 0640), 0);

  const std::string as_member = "setpriv --reuid=" + std::to_string(member) +
                                " --regid=" + std::to_string(member) +
                                " --groups=" + std::to_string(gid) + " --inh-caps=-all -- ";
  const std::string as_outsider = "setpriv --reuid=" + std::to_string(outsider) +
                                  " --regid=" + std::to_string(outsider) +
                                  " --clear-groups --inh-caps=-all -- ";
  const std::string fe = FE_EXE;

  // A member: status (by --journal and by --config) and check-config work.
  Result st = run(as_member + fe + " status --journal " + db.string());
  EXPECT_EQ(st.code, 0) << st.out;
  EXPECT_THAT(st.out, HasSubstr("2026-12-05-epic"));
  Result stc = run(as_member + fe + " status --json --config " + cfg);
  EXPECT_EQ(stc.code, 0) << stc.out;
  EXPECT_THAT(stc.out, HasSubstr("2026-12-05-epic"));
  Result cc = run(as_member + fe + " check-config --config " + cfg);
  EXPECT_EQ(cc.code, 0) << cc.out;
  EXPECT_EQ(cc.out, "ok\n");

  // Someone else: the directory that refuses, its mode and group, and how to join it.
  const std::string group = std::to_string(gid);  // no name: the id is free on this host
  Result no = run(as_outsider + fe + " status --journal " + db.string());
  EXPECT_EQ(no.code, 1) << no.out;
  EXPECT_THAT(no.out, HasSubstr("cannot read the journal " + db.string()));
  EXPECT_THAT(no.out, HasSubstr("directory " + state.string() + " (2750 root:" + group + ")"));
  EXPECT_THAT(no.out, HasSubstr("usermod -aG " + group));
  EXPECT_THAT(no.out, ::testing::Not(HasSubstr("filesystem error")));
  // The config: the file, its mode, the group.
  Result nc = run(as_outsider + fe + " check-config --config " + cfg);
  EXPECT_EQ(nc.code, 2) << nc.out;
  EXPECT_THAT(nc.out, HasSubstr("cannot read the configuration " + cfg));
  EXPECT_THAT(nc.out, HasSubstr("(it is 0640 root:" + group + ")"));
  EXPECT_THAT(nc.out, HasSubstr("members of group " + group + " may read it"));
  EXPECT_THAT(nc.out, HasSubstr("usermod -aG " + group));
  // A journal file itself without group read (e.g. made under the old UMask=0077).
  ASSERT_EQ(::chmod(db.c_str(), 0600), 0);
  Result old_mode = run(as_member + fe + " status --journal " + db.string());
  EXPECT_EQ(old_mode.code, 1) << old_mode.out;
  EXPECT_THAT(old_mode.out, HasSubstr("(it is 0600 root:" + group + ")"));
  EXPECT_THAT(old_mode.out, HasSubstr("0640"));
}

}  // namespace
