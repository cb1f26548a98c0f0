// Secrets never leave the process: the whole pipeline (fhir-edge run + healthlake-local, export
// to `imported`) runs with recognisable credential values from each source at log level debug,
// and every output is searched for them: stderr, the journald native stream, `fhir-edge status`
// and `status --json`, /metrics, every file under the state directory (spool reports,
// import-report.json, the journal database and its WAL). docs/secrets.md.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../unit/service/journal_capture.hpp"
#include "../hostile/daemon_run.hpp"
#include "ports.hpp"

namespace {

using namespace fe::test;

struct Secrets {
  std::string key_id, secret, token;
};

// Each source gets its own values, so a value found anywhere says which path leaked it.
Secrets secrets_for(const std::string& tag) {
  return {"AKIA" + tag + "KEYID00000",  // 20 characters like a real key id
          "SECRET" + tag + "SecretAccessKeyValue0123456789",
          "TOKEN" + tag + "SessionTokenValueABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"};
}

// Every output the run produced, labelled.
struct Outputs {
  std::vector<std::pair<std::string, std::string>> items;
  void add(std::string what, std::string text) {
    items.emplace_back(std::move(what), std::move(text));
  }
};

void add_state_files(Outputs& out, const fs::path& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    // The emulator's own data and the source export are inputs, not the daemon's outputs.
    auto rel = fs::relative(e.path(), dir).string();
    if (rel.starts_with("in/")) continue;
    out.add(rel, read_file(e.path()));
  }
}

void expect_clean(const Outputs& out, const Secrets& s) {
  size_t searched = 0;
  // The search looks at the real outputs: the masked key id the daemon logs is found in them.
  const std::string masked = s.key_id.substr(0, 4) + "****" + s.key_id.substr(s.key_id.size() - 4);
  bool masked_seen = false;
  for (const auto& item : out.items)
    masked_seen = masked_seen || item.second.find(masked) != std::string::npos;
  EXPECT_TRUE(masked_seen) << "the masked key id " << masked << " is in no output";
  for (const auto& [what, text] : out.items) {
    searched += text.size();
    EXPECT_EQ(text.find(s.secret), std::string::npos) << "secret access key found in " << what;
    EXPECT_EQ(text.find(s.token), std::string::npos) << "session token found in " << what;
    // The key id is not secret, but it is only ever shown masked, never next to anything else.
    EXPECT_EQ(text.find(s.key_id), std::string::npos) << "full access key id found in " << what;
  }
  std::cout << "[ secrets ] searched " << out.items.size() << " outputs, " << searched
            << " bytes\n";
}

std::string fetch_metrics(uint16_t port) {
  return capture("curl -s --max-time 5 http://127.0.0.1:" + std::to_string(port) + "/metrics");
}

enum class Source { env, file, process };

struct Case {
  Source source;
  std::string tag;
  bool journal;  // run with stderr connected to the (captured) journal
};

// gtest prints the parameter in test listings: the tag, not the struct's bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.tag;
}

class SecretsTest : public ::testing::TestWithParam<Case> {};

TEST_P(SecretsTest, NoOutputContainsTheSecretOrTheToken) {
  const Case c = GetParam();
  const Secrets s = secrets_for(c.tag);
  const uint16_t metrics_port = free_port();
  TempDir creds_dir;

  DaemonRun::Options o;
  o.log_level = "debug";
  o.hll.access_key = s.key_id;
  o.hll.secret_key = s.secret;
  o.hll.session_token = s.token;
  o.extra_yaml = "metrics: { listen: 127.0.0.1:" + std::to_string(metrics_port) + " }\n";
  switch (c.source) {
    case Source::env:
      o.credentials = "{ source: env }";
      o.env = {{"AWS_ACCESS_KEY_ID", s.key_id},
               {"AWS_SECRET_ACCESS_KEY", s.secret},
               {"AWS_SESSION_TOKEN", s.token}};
      break;
    case Source::file: {
      auto f = creds_dir.path() / "credentials";
      write_file(f, "[hospital]\naws_access_key_id = " + s.key_id + "\naws_secret_access_key = " +
                        s.secret + "\naws_session_token = " + s.token + "\n");
      chmod(f.c_str(), 0600);
      o.credentials = "{ source: profile }\n  profile: hospital";
      o.env = {{"AWS_SHARED_CREDENTIALS_FILE", f.string()},
               {"AWS_CONFIG_FILE", (creds_dir.path() / "none").string()}};
      break;
    }
    case Source::process: {
      // The process also writes the secret to its stderr, which must not be relayed either.
      auto script = creds_dir.path() / "creds.sh";
      write_file(script, "#!/bin/sh\necho 'debug: using " + s.secret + "' >&2\nprintf '%s' '" +
                             "{\"Version\":1,\"AccessKeyId\":\"" + s.key_id +
                             "\",\"SecretAccessKey\":\"" + s.secret + "\",\"SessionToken\":\"" +
                             s.token + "\"}'\n");
      chmod(script.c_str(), 0700);
      auto config = creds_dir.path() / "config";
      write_file(config, "[profile hospital]\ncredential_process = " + script.string() + "\n");
      o.credentials = "{ source: process }\n  profile: hospital";
      o.env = {{"AWS_CONFIG_FILE", config.string()},
               {"AWS_SHARED_CREDENTIALS_FILE", (creds_dir.path() / "none").string()}};
      break;
    }
  }
  // Names the daemon might otherwise inherit from the test's environment.
  for (const char* n : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                        "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"})
    o.env.emplace(n, "");

  DaemonRun run(o);
  // Two invalid lines so that rejected spool files and report entries exist too.
  std::string lines = patients("sec", 20) + "{\"resourceType\":\"Patient\",\"id\":\"bad\"," +
                      "\"gender\":\"not-a-gender\"}\n{not json\n";
  drop_export(run.watch(), "exp", {{"Patient.ndjson", lines}});

  Outputs out;
  auto drive = [&](std::vector<std::string>* journal_got, int sock) -> std::string {
    std::string state;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
    while (std::chrono::steady_clock::now() < deadline) {
      if (journal_got) {
        while (auto d = recv_datagram(sock, std::chrono::milliseconds(200)))
          journal_got->push_back(*d);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      auto st = run.export_status("exp");
      state = st ? st->state : "";
      if (state == "imported" || state == "parked" || state == "failed") break;
    }
    // Kept in a file: in the journal case this runs in the capture child process.
    write_file(run.dir() / "metrics-scrape.txt", fetch_metrics(metrics_port));
    auto rc = run.stop();
    if (journal_got)
      while (auto d = recv_datagram(sock, std::chrono::milliseconds(200)))
        journal_got->push_back(*d);
    if (state != "imported") return "export ended '" + state + "'";
    if (rc != 0) return "daemon exit code " + std::to_string(rc.value_or(-1));
    return "";
  };

  if (c.journal) {
    auto cap = capture_journal([&](int sock, std::vector<std::string>& got) -> std::string {
      write_file(run.log_file(), "");
      int fd = open(run.log_file().c_str(), O_RDONLY);
      std::string stream = dev_ino(fd);
      close(fd);
      run.start({{"JOURNAL_STREAM", stream}});
      return drive(&got, sock);
    });
    if (!cap.skipped.empty()) GTEST_SKIP() << cap.skipped;
    ASSERT_EQ(cap.child_error, "") << run.log();
    ASSERT_FALSE(cap.raw.empty());
    std::string all;
    size_t debug_entries = 0;
    for (const auto& r : cap.raw) {
      all += r;
      if (r.find("PRIORITY=7\n") != std::string::npos) ++debug_entries;
    }
    EXPECT_GT(debug_entries, 0u) << "no debug-level entries: the run did not log at debug";
    EXPECT_NE(all.find("AWS credentials loaded"), std::string::npos);
    out.add("journal stream", all);
  } else {
    run.start();
    std::string err = drive(nullptr, -1);
    ASSERT_EQ(err, "") << run.log();
    EXPECT_TRUE(run.log_has("debug: ")) << "no debug-level lines: the run did not log at debug";
    EXPECT_TRUE(run.log_has("AWS credentials loaded")) << run.log();
  }
  out.add("stderr", run.log());
  auto final_status = run.export_status("exp");
  ASSERT_TRUE(final_status);
  EXPECT_EQ(final_status->state, "imported");
  EXPECT_EQ(final_status->valid, 20);
  EXPECT_EQ(final_status->rejected, 2);

  out.add("status", capture(std::string(FE_EXE) + " status --journal " +
                            shell_quote(run.journal().string()) + " 2>&1"));
  out.add("status --json", capture(std::string(FE_EXE) + " status --json --journal " +
                                   shell_quote(run.journal().string()) + " 2>&1"));
  out.add("status --export --json",
          capture(std::string(FE_EXE) + " status --json --export exp --journal " +
                  shell_quote(run.journal().string()) + " 2>&1"));
  const std::string metrics = read_file(run.dir() / "metrics-scrape.txt");
  fs::remove(run.dir() / "metrics-scrape.txt");
  if (metrics.find("# TYPE") != std::string::npos) {
    out.add("/metrics", metrics);
  } else {
    // TODO(coordinator): /metrics (issue 8, metrics engineer) did not answer on
    // 127.0.0.1:<metrics.listen> when this test was written; once it does, make this an
    // assertion (ASSERT_NE(metrics.find("# TYPE"), npos)).
    std::cout << "[ secrets ] /metrics not available; not searched\n";
  }
  add_state_files(out, run.dir());
  bool report = false;
  for (const auto& [what, text] : out.items)
    report = report || what.ends_with("import-report.json");
  EXPECT_TRUE(report) << "no import-report.json under the state directory";
  expect_clean(out, s);
}

INSTANTIATE_TEST_SUITE_P(Sources, SecretsTest,
                         ::testing::Values(Case{Source::env, "ENVSRC", true},
                                           Case{Source::file, "FILESRC", false},
                                           Case{Source::process, "PROCSRC", false}),
                         [](const auto& info) {
                           switch (info.param.source) {
                             case Source::env:
                               return std::string("EnvironmentWithJournal");
                             case Source::file:
                               return std::string("CredentialsFile");
                             default:
                               return std::string("CredentialProcess");
                           }
                         });

}  // namespace
