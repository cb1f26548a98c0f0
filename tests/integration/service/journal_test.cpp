// End to end: `fhir-edge run` started the way systemd starts it with StandardError=journal
// (JOURNAL_STREAM = stderr's dev:ino) sends structured entries over journald's native protocol.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "../../unit/service/journal_capture.hpp"
#include "harness.hpp"

namespace {

using namespace fe::test;

TEST(DaemonJournal, StartAndStopAreStructuredJournalEntries) {
  TempDir dir;
  fs::path config = dir.path() / "fhir-edge.yaml";
  write_file(config, config_text(dir.path()));
  fs::path err = dir.path() / "stderr.log";

  auto cap = capture_journal([&](int sock, std::vector<std::string>& got) -> std::string {
    // The daemon's stderr is a file; JOURNAL_STREAM names it, as systemd names its stream socket.
    int fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::string stream = dev_ino(fd);
    close(fd);
    Daemon d({"run", "--config", config.string()}, {{"JOURNAL_STREAM", stream}}, err);
    // Daemon() truncates and reopens the same inode, so dev:ino still matches.
    bool started = false;
    while (auto m = recv_datagram(sock, std::chrono::seconds(30))) {
      got.push_back(*m);
      if (m->find("MESSAGE=fhir-edge started\n") != std::string::npos) {
        started = true;
        break;
      }
    }
    if (!started) return "no 'fhir-edge started' entry; stderr: " + read_file(err);
    d.signal(SIGTERM);
    auto code = d.wait();
    if (code != 0) return "exit code " + std::to_string(code.value_or(-1));
    return "";
  });
  if (!cap.skipped.empty()) GTEST_SKIP() << cap.skipped;
  ASSERT_EQ(cap.child_error, "");
  std::vector<JournalEntry> entries;
  for (const auto& r : cap.raw) {
    auto e = parse_native(r);
    ASSERT_TRUE(e) << r;
    entries.push_back(*e);
  }
  auto find = [&](const std::string& msg) -> const JournalEntry* {
    for (const auto& e : entries)
      if (e.find("MESSAGE") != e.end() && e.find("MESSAGE")->second == msg) return &e;
    return nullptr;
  };
  const JournalEntry* started = find("fhir-edge started");
  ASSERT_TRUE(started);
  EXPECT_EQ(started->find("PRIORITY")->second, "5");
  EXPECT_EQ(started->find("SYSLOG_IDENTIFIER")->second, "fhir-edge");
  EXPECT_EQ(started->find("CONFIG_FILE")->second, config.string());
  EXPECT_EQ(started->find("PIPELINES")->second, "1");
  EXPECT_TRUE(find("SIGTERM: stopping"));
  EXPECT_TRUE(find("fhir-edge stopped"));
  // With the journal in use, nothing is duplicated as plain text on stderr.
  EXPECT_EQ(read_file(err), "");
}

}  // namespace
