#pragma once
// Test harness for the pipeline integration tests: healthlake-local as a child process on
// 127.0.0.1 (tests/support's launcher), a synchronous S3 reader built on the daemon's own S3
// client, the export generator, config files, and small file helpers. Loopback only.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include <simdjson.h>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "aws/crc32c.hpp"
#include "aws/http.hpp"
#include "aws/http_call.hpp"
#include "aws/s3.hpp"
#include "healthlake_local.hpp"
#include "ports.hpp"
#include "temp_dir.hpp"

extern char** environ;

namespace fe::test {
namespace fs = std::filesystem;

inline constexpr const char* kAccessKey = "AKIDPIPELINETEST";
inline constexpr const char* kSecretKey = "pipeline-test-secret-key-0123456789";
inline constexpr const char* kBucket = "fhir-landing";

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
inline void write_file(const fs::path& p, std::string_view s) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
}

// A fresh directory for one test (/tmp/fe-pipeline-NAME-XXXXXX); the test removes it at its end.
inline fs::path temp_dir(const std::string& name) {
  return make_temp_dir("fe-pipeline-" + name);
}

// Runs a program; returns its exit status and stdout.
inline int run_capture(const std::vector<std::string>& args, std::string& out) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_addclose(&fa, pipefd[0]);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  if (rc != 0) {
    ::close(pipefd[0]);
    return -1;
  }
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

inline pid_t spawn(const std::vector<std::string>& args, const fs::path& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
  return pid;
}

// healthlake-local (strict S3: checksums, part sizes, preconditions) through the test kit's one
// launcher, with the keys and bucket these tests use and no data store (the pipeline tests end
// at `uploaded`). requests() reads its request log.
class LocalS3 : public HealthLakeLocal {
 public:
  // `data`: its directory (kept: tests look at it); `port`: 0 for any, or the port of an earlier
  // instance to come back on; `faults`: a --faults spec (tools/healthlake-local/README.md).
  LocalS3(fs::path data, uint64_t min_part_size, uint16_t port = 0, const std::string& faults = "")
      : HealthLakeLocal(options(std::move(data), min_part_size, port, faults)) {}

  struct Request {
    std::string operation, key;
    std::string
        payload;  // x-amz-content-sha256 as sent: "hash", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"...
    int part_number = 0;
    int status = 0;
    uint64_t bytes_in = 0;
  };
  std::vector<Request> requests() const {
    std::vector<Request> out;
    std::ifstream in(request_log());
    std::string line;
    simdjson::dom::parser parser;
    while (std::getline(in, line)) {
      simdjson::dom::element e;
      if (parser.parse(line).get(e)) continue;
      Request r;
      std::string_view sv;
      if (!e["operation"].get(sv)) r.operation = sv;
      if (!e["key"].get(sv)) r.key = sv;
      if (!e["payload"].get(sv)) r.payload = sv;
      int64_t n;
      if (!e["part_number"].get(n)) r.part_number = static_cast<int>(n);
      if (!e["status"].get(n)) r.status = static_cast<int>(n);
      uint64_t b;
      if (!e["bytes_in"].get(b)) r.bytes_in = b;
      out.push_back(r);
    }
    return out;
  }

 private:
  static HealthLakeLocalOptions options(fs::path data, uint64_t min_part_size, uint16_t port,
                                        const std::string& faults) {
    HealthLakeLocalOptions o;
    o.data_dir = std::move(data);
    o.min_part_size = min_part_size;
    o.port = port;
    o.faults = faults;
    o.access_key = kAccessKey;
    o.secret_key = kSecretKey;
    o.buckets = {kBucket};
    o.datastores = {};
    o.job_timing = "";
    return o;
  }
};

// Synchronous reads through the daemon's own S3 client (signed, loopback).
class S3Reader {
 public:
  explicit S3Reader(const std::string& endpoint)
      : http_(io_),
        caller_(http_, make_config(endpoint),
                aws::static_credentials(
                    aws::Credentials{kAccessKey, kSecretKey, "", std::nullopt, "test"})),
        s3_(caller_) {}

  std::optional<std::string> get(const std::string& key) {
    std::string body;
    aws::GetObjectRequest req;
    req.bucket = kBucket;
    req.key = key;
    req.sink = [&](std::string_view c) {
      body.append(c);
      return true;
    };
    std::optional<aws::S3Result<aws::GetObjectResult>> res;
    s3_.get_object(req, [&](aws::S3Result<aws::GetObjectResult> r) { res = std::move(r); });
    drive([&] { return res.has_value(); });
    if (!res->ok()) return std::nullopt;
    return body;
  }
  bool put(const std::string& key, const std::string& body) {
    aws::PutObjectRequest req;
    req.bucket = kBucket;
    req.key = key;
    req.body = aws::BodySource::from_view(body);
    req.crc32c = aws::crc32c(body);
    std::optional<aws::S3Result<aws::PutObjectResult>> res;
    s3_.put_object(req, [&](aws::S3Result<aws::PutObjectResult> r) { res = r; });
    drive([&] { return res.has_value(); });
    return res->ok();
  }
  std::optional<aws::HeadObjectResult> head(const std::string& key) {
    std::optional<aws::S3Result<aws::HeadObjectResult>> res;
    s3_.head_object(kBucket, key, [&](aws::S3Result<aws::HeadObjectResult> r) { res = r; });
    drive([&] { return res.has_value(); });
    if (!res->ok()) return std::nullopt;
    return *res->value;
  }
  // Starts a multipart upload and leaves it incomplete; returns its id (empty on failure).
  std::string create_upload(const std::string& key) {
    aws::CreateMultipartRequest req;
    req.bucket = kBucket;
    req.key = key;
    std::optional<aws::S3Result<aws::CreateMultipartResult>> res;
    s3_.create_multipart_upload(req, [&](aws::S3Result<aws::CreateMultipartResult> r) { res = r; });
    drive([&] { return res.has_value(); });
    return res->ok() ? res->value->upload_id : std::string();
  }
  // Incomplete multipart uploads under a prefix: upload id -> key.
  std::map<std::string, std::string> uploads(const std::string& prefix) {
    aws::ListUploadsRequest req;
    req.bucket = kBucket;
    req.prefix = prefix;
    std::optional<aws::S3Result<aws::ListUploadsResult>> res;
    s3_.list_all_multipart_uploads(req, [&](aws::S3Result<aws::ListUploadsResult> r) { res = r; });
    drive([&] { return res.has_value(); });
    if (!res->ok()) throw std::runtime_error(res->describe());
    std::map<std::string, std::string> out;
    for (const auto& u : res->value->uploads) out[u.upload_id] = u.key;
    return out;
  }
  std::set<std::string> list(const std::string& prefix) {
    std::set<std::string> keys;
    aws::ListObjectsRequest req;
    req.bucket = kBucket;
    req.prefix = prefix;
    for (;;) {
      std::optional<aws::S3Result<aws::ListObjectsResult>> res;
      s3_.list_objects_v2(req, [&](aws::S3Result<aws::ListObjectsResult> r) { res = r; });
      drive([&] { return res.has_value(); });
      if (!res->ok()) throw std::runtime_error(res->describe());
      for (const auto& o : res->value->objects) keys.insert(o.key);
      if (!res->value->is_truncated) break;
      req.continuation_token = res->value->next_continuation_token;
    }
    return keys;
  }

 private:
  static aws::ClientConfig make_config(const std::string& endpoint) {
    aws::ClientConfig c;
    c.region = "us-east-1";
    c.s3_endpoint = endpoint;
    c.s3_path_style = true;
    return c;
  }
  template <class F>
  void drive(F done) {
    io_.restart();
    while (!done()) io_.run_one_for(std::chrono::seconds(30));
  }
  boost::asio::io_context io_;
  aws::HttpEngine http_;
  aws::AwsCaller caller_;
  aws::S3Client s3_;
};

inline std::string zstd_decompress(std::string_view in) {
  std::string out;
  ZSTD_DCtx* d = ZSTD_createDCtx();
  std::vector<char> buf(ZSTD_DStreamOutSize());
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  while (ib.pos < ib.size) {
    ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
    size_t r = ZSTD_decompressStream(d, &ob, &ib);
    if (ZSTD_isError(r)) {
      ZSTD_freeDCtx(d);
      throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(r));
    }
    out.append(buf.data(), ob.pos);
  }
  ZSTD_freeDCtx(d);
  return out;
}

// fhir-export-gen: the files it wrote and which (file, line) are invalid.
struct Generated {
  std::map<std::string, std::set<uint64_t>> invalid;  // file -> 1-based line numbers
};
inline Generated generate(const fs::path& out, const std::vector<std::string>& extra) {
  std::vector<std::string> args{"python3", FE_EXPORT_GEN, out.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  std::string stdout_text;
  int rc = run_capture(args, stdout_text);
  if (rc != 0) throw std::runtime_error("fhir-export-gen failed");
  Generated g;
  simdjson::dom::parser parser;
  simdjson::dom::element e = parser.parse(stdout_text);
  for (auto item : e["invalid"].get_array()) {
    std::string_view f = item["file"].get_string();
    uint64_t line = item["line"].get_uint64();
    g.invalid[std::string(f)].insert(line);
  }
  return g;
}

// Splits a file into (valid lines, invalid lines), each line with its '\n', by the generator's
// list of invalid line numbers: what the pipeline must produce, computed independently.
inline std::pair<std::string, std::string> split_expected(const fs::path& file,
                                                          const std::set<uint64_t>& invalid) {
  std::ifstream in(file, std::ios::binary);
  std::string line, valid, bad;
  uint64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    (invalid.count(n) ? bad : valid) += line + "\n";
  }
  return {valid, bad};
}

inline std::string config_yaml(const fs::path& root, const std::string& endpoint,
                               const std::string& extra_pipeline = "",
                               const std::string& upload = "{ part_size: auto, concurrency: 4 }") {
  // The daemon does not create its watch root (issue 17: it waits for a missing one).
  fs::create_directories(root / "watch");
  std::ostringstream y;
  y << "aws:\n  region: us-east-1\n  credentials: { source: env }\n"
    << "  endpoints: { s3: " << endpoint << " }\n  s3_path_style: true\n"
    << "pipelines:\n  - name: test\n    watch: " << (root / "watch").string() << "\n"
    << "    complete_when: { marker: .done, bulk_manifest: true, client_log: false, "
       "settle_seconds: 0 }\n"
    << "    validation_level: structure-only\n"
    << extra_pipeline << "    s3: { bucket: " << kBucket
    << ", prefix: exports, archive: true, upload_rejects: true }\n"
    << "    healthlake:\n      datastore_id: 0123456789abcdef0123456789abcdef\n"
    << "      data_access_role_arn: arn:aws:iam::123456789012:role/HealthLakeImport\n"
    << "      output_s3_uri: s3://fhir-results/imports/\n"
    << "      output_kms_key_id: "
       "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\n"
    << "spool: { dir: " << (root / "spool").string() << ", max_bytes: 1GiB }\n"
    << "journal: { path: " << (root / "journal.db").string() << " }\n"
    << "upload: " << upload << "\n"
    << "metrics: { listen: off }\n";
  return y.str();
}

inline void set_test_env() {
  ::setenv("AWS_ACCESS_KEY_ID", kAccessKey, 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", kSecretKey, 1);
  ::unsetenv("AWS_SESSION_TOKEN");
  ::setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
  ::unsetenv("HTTP_PROXY");
  ::unsetenv("HTTPS_PROXY");
  ::unsetenv("http_proxy");
  ::unsetenv("https_proxy");
  ::unsetenv("ALL_PROXY");
}

}  // namespace fe::test
