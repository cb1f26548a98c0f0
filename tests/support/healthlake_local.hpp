#pragma once
// Test helper: runs tools/healthlake-local (the strict local S3 + HealthLake endpoint) as a child
// process for one test or fixture.
//
// The one launcher of the emulator for C++ tests (shell tests: tests/support/harness.sh).
//
//   fe::test::HealthLakeLocal hll;                       // starts it on 127.0.0.1:<free port>
//   hll.endpoint()      -> "http://127.0.0.1:PORT"        (S3 path style and HealthLake)
//   hll.access_key(), hll.secret_key(), hll.region(), hll.datastore()
//   hll.data_dir()      -> its temp data dir (objects, uploads, healthlake/<ds>/resources.jsonl)
//   hll.request_log()   -> JSON-lines request log path; request_log_lines() reads it
//   hll.stop()          -> SIGTERM and wait (also done by the destructor)
//
// The emulator is started with --listen 127.0.0.1:0 --port-file, so tests never race for a port;
// the constructor returns once it listens (the port file is written after the bind).
// Link the `fe_test_support` target; building it builds healthlake-local too.
#include <sys/types.h>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fe::test {

struct HealthLakeLocalOptions {
  std::vector<std::string> datastores = {"0123456789abcdef0123456789abcdef"};
  std::vector<std::string> buckets;  // created at start (--bucket)
  std::string faults;                // --faults spec, see tools/healthlake-local/README.md
  std::string job_timing = "submitted=0.05s,queued=0.05s,run=0.1s";  // empty: the emulator's own
  std::string region = "us-east-1";
  std::string access_key = "AKIAHEALTHLAKELOCAL1";
  std::string secret_key = "healthlake-local-test-secret-0000000000";
  std::string session_token;   // when set, requests must carry it
  uint64_t min_part_size = 0;  // 0: S3's 5 MiB
  std::vector<std::string> extra_args;
  std::filesystem::path data_dir;  // empty: a fresh temp dir, removed by the destructor
  // 0: any free port. A fixed one is for "the endpoint comes back on the same address" (start
  // again with the port() of an earlier, stopped instance).
  uint16_t port = 0;
};

class HealthLakeLocal {
 public:
  explicit HealthLakeLocal(HealthLakeLocalOptions options = {});  // throws std::runtime_error
  ~HealthLakeLocal();
  HealthLakeLocal(const HealthLakeLocal&) = delete;
  HealthLakeLocal& operator=(const HealthLakeLocal&) = delete;

  int stop();  // SIGTERM, waits; returns the exit status (or -signal); idempotent
  bool running() const { return pid_ > 0; }

  uint16_t port() const { return port_; }
  std::string endpoint() const;  // http://127.0.0.1:PORT
  const std::string& access_key() const { return opt_.access_key; }
  const std::string& secret_key() const { return opt_.secret_key; }
  const std::string& session_token() const { return opt_.session_token; }
  const std::string& region() const { return opt_.region; }
  std::string datastore() const { return opt_.datastores.empty() ? "" : opt_.datastores.front(); }
  const std::filesystem::path& data_dir() const { return data_; }
  std::filesystem::path request_log() const { return data_ / "requests.jsonl"; }
  std::filesystem::path stderr_log() const { return data_ / "stderr.log"; }
  std::vector<std::string> request_log_lines() const;
  // Imports per resource ("Patient/p1" -> 2 means imported twice) recorded by the emulator's
  // HealthLake for a data store (default: the first one). Read from its data dir.
  std::map<std::string, uint64_t> imported_resources(const std::string& datastore = "") const;
  // The stored bytes of an S3 object, read straight from the data dir (nullopt: no such object).
  std::optional<std::string> object(const std::string& bucket, const std::string& key) const;
  // Path of the built healthlake-local binary (env HEALTHLAKE_LOCAL_BIN overrides).
  static std::filesystem::path binary();

 private:
  HealthLakeLocalOptions opt_;
  std::filesystem::path data_;
  bool own_dir_ = false;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

}  // namespace fe::test
