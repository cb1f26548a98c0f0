#pragma once
// A real `fhir-edge run` against a real healthlake-local on 127.0.0.1, for the hostile-input and
// secrets tests: writes the config, starts both, reads `fhir-edge status --json` and the daemon's
// stderr. Waits only bound a hung test; nothing here asserts how fast anything happens.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "../service/harness.hpp"
#include "healthlake_local.hpp"

namespace fe::test {

struct ExportStatus {
  std::string name, state, parked_reason, last_error, source_path;
  int64_t id = 0, valid = 0, rejected = 0, files = 0;
};

struct PipelineSpec {
  std::string name;
  fs::path watch;
  std::string prefix = "exports";
  std::string complete_when = "{ marker: .done, bulk_manifest: false, client_log: false }";
};

// Runs a command, returns its stdout (exit status in *rc when given).
inline std::string capture(const std::string& cmd, int* rc = nullptr) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  if (rc) *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

class DaemonRun {
 public:
  struct Options {
    std::vector<PipelineSpec> pipelines;     // empty: one pipeline "p" watching <dir>/in
    std::map<std::string, std::string> env;  // added to the daemon's environment
    std::string credentials = "{ source: env }";
    std::string log_level = "info";
    std::string extra_yaml;    // appended (top-level keys)
    std::string after_upload;  // every pipeline's after_upload; "" = the default (keep)
    HealthLakeLocalOptions hll;
  };

  explicit DaemonRun(Options o) : opt_(std::move(o)) {
    if (opt_.hll.buckets.empty()) opt_.hll.buckets = {"landing", "results"};
    hll_ = std::make_unique<HealthLakeLocal>(opt_.hll);
    if (opt_.pipelines.empty()) opt_.pipelines.push_back({"p", dir_.path() / "in"});
    std::string y = "aws:\n  region: us-east-1\n  credentials: " + opt_.credentials +
                    "\n  endpoints: { s3: \"" + hll_->endpoint() + "\", healthlake: \"" +
                    hll_->endpoint() + "\" }\n  s3_path_style: true\npipelines:\n";
    for (const auto& p : opt_.pipelines) {
      fs::create_directories(p.watch);
      y += "  - name: " + p.name + "\n    watch: " + p.watch.string() +
           "\n    complete_when: " + p.complete_when +
           "\n    validation_level: structure-only\n    s3: { bucket: landing, prefix: \"" +
           p.prefix + "\" }\n    healthlake:\n      datastore_id: " + hll_->datastore() +
           "\n      data_access_role_arn: arn:aws:iam::123456789012:role/HealthLakeImport\n"
           "      output_s3_uri: s3://results/imports/\n      output_kms_key_id: alias/hl\n";
      if (!opt_.after_upload.empty()) y += "    after_upload: " + opt_.after_upload + "\n";
    }
    y += "spool: { dir: " + (dir_.path() / "spool").string() + " }\n";
    y += "journal: { path: " + journal().string() + " }\n";
    y += "import: { poll_min: 1s, poll_max: 2s }\n";
    y += "log: { level: " + opt_.log_level + " }\n";
    if (opt_.extra_yaml.find("metrics:") == std::string::npos) y += "metrics: { listen: off }\n";
    y += opt_.extra_yaml;
    write_file(config(), y);
  }

  void start(const std::map<std::string, std::string>& more_env = {}) {
    std::map<std::string, std::string> env = more_env;
    env.insert(opt_.env.begin(), opt_.env.end());
    env.emplace("AWS_EC2_METADATA_DISABLED", "true");
    // The emulator's keys unless the test chose the credentials itself.
    env.emplace("AWS_ACCESS_KEY_ID", hll_->access_key());
    env.emplace("AWS_SECRET_ACCESS_KEY", hll_->secret_key());
    env.emplace("AWS_SESSION_TOKEN", hll_->session_token());
    env.emplace("JOURNAL_STREAM", "");  // plain lines on stderr even when the test runs in a unit
    daemon_ = std::make_unique<Daemon>(std::vector<std::string>{"run", "--config", config()}, env,
                                       log_file());
  }

  // SIGTERM and wait; the exit code (nullopt: hung).
  std::optional<int> stop() {
    if (!daemon_) return 0;
    daemon_->signal(SIGTERM);
    auto rc = daemon_->wait();
    return rc;
  }

  // The test's handle on the daemon process (tests that start it inside another process, e.g. a
  // journal-capturing namespace, stop it there).
  void forget_process() { daemon_.reset(); }

  bool running() { return daemon_ && waitpid(daemon_->pid(), nullptr, WNOHANG) == 0; }

  pid_t pid() const { return daemon_ ? daemon_->pid() : -1; }
  const fs::path& dir() const { return dir_.path(); }
  fs::path config() const { return dir_.path() / "fhir-edge.yaml"; }
  fs::path journal() const { return dir_.path() / "journal.db"; }
  fs::path log_file() const { return dir_.path() / "daemon.log"; }
  fs::path watch(size_t i = 0) const { return opt_.pipelines.at(i).watch; }
  std::string log() const { return read_file(log_file()); }
  HealthLakeLocal& hll() { return *hll_; }

  std::string status_json() const {
    return capture(std::string(FE_EXE) + " status --json --journal " +
                   shell_quote(journal().string()) + " 2>/dev/null");
  }

  std::vector<ExportStatus> status() const {
    std::vector<ExportStatus> out;
    std::string text = status_json();
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(text).get(doc)) return out;
    simdjson::dom::array exports;
    if (doc["exports"].get(exports)) return out;
    for (auto e : exports) {
      ExportStatus s;
      std::string_view v;
      if (!e["name"].get(v)) s.name = v;
      if (!e["state"].get(v)) s.state = v;
      if (!e["parked_reason"].get(v)) s.parked_reason = v;
      if (!e["last_error"].get(v)) s.last_error = v;
      if (!e["source_path"].get(v)) s.source_path = v;
      int64_t n;
      if (!e["id"].get(n)) s.id = n;
      if (!e["resources_valid"].get(n)) s.valid = n;
      if (!e["resources_rejected"].get(n)) s.rejected = n;
      if (!e["files"].get(n)) s.files = n;
      out.push_back(s);
    }
    return out;
  }

  // The latest version of an export by name (a changed export is taken again as <name>.v2...).
  std::optional<ExportStatus> export_status(const std::string& name) const {
    std::optional<ExportStatus> found;
    for (auto& s : status())
      if ((s.name == name || s.name.starts_with(name + ".v")) && (!found || s.id > found->id))
        found = s;
    return found;
  }

  // Polls until pred() holds; false after `limit` (a hung test, reported by the caller).
  static bool wait_until(const std::function<bool()>& pred,
                         std::chrono::seconds limit = std::chrono::seconds(180)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return pred();
  }

  // Waits until the export reaches a final state; returns it ("" when it never did).
  std::string wait_final(const std::string& name,
                         std::chrono::seconds limit = std::chrono::seconds(180)) const {
    std::string state;
    wait_until(
        [&] {
          auto s = export_status(name);
          state = s ? s->state : "";
          return state == "imported" || state == "import_failed" || state == "nothing_to_import" ||
                 state == "parked" || state == "failed";
        },
        limit);
    return state;
  }

  bool log_has(const std::string& needle) const { return log().find(needle) != std::string::npos; }

  // Lines of the daemon's log containing every one of `needles`.
  std::vector<std::string> log_lines(const std::vector<std::string>& needles) const {
    std::vector<std::string> out;
    std::istringstream in(log());
    for (std::string l; std::getline(in, l);) {
      bool all = true;
      for (const auto& n : needles) all = all && l.find(n) != std::string::npos;
      if (all) out.push_back(l);
    }
    return out;
  }

  // Peak resident set size of the daemon (VmHWM, bytes).
  uint64_t peak_rss() const {
    std::string s = read_file("/proc/" + std::to_string(pid()) + "/status");
    auto p = s.find("VmHWM:");
    if (p == std::string::npos) return 0;
    return std::stoull(s.substr(p + 6)) * 1024;
  }

 private:
  Options opt_;
  TempDir dir_;
  std::unique_ptr<HealthLakeLocal> hll_;
  std::unique_ptr<Daemon> daemon_;
};

// An export directory written under a temporary name, then renamed into the watched root with
// its marker, as bulk-data clients do. `files`: name -> content.
inline void drop_export(const fs::path& root, const std::string& name,
                        const std::map<std::string, std::string>& files) {
  fs::path tmp = root / (".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
  fs::create_directories(tmp);
  for (const auto& [f, content] : files) write_file(tmp / f, content);
  write_file(tmp / ".done", "");
  fs::rename(tmp, root / name);
}

// `n` valid Patient resources with ids <prefix>-1..n, one per line.
inline std::string patients(const std::string& prefix, int n) {
  std::string out;
  for (int i = 1; i <= n; ++i)
    out += "{\"resourceType\":\"Patient\",\"id\":\"" + prefix + "-" + std::to_string(i) +
           "\",\"gender\":\"female\",\"birthDate\":\"1970-01-0" + std::to_string(1 + i % 9) +
           "\"}\n";
  return out;
}

}  // namespace fe::test
