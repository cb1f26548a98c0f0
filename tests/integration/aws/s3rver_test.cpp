// A 100 MiB multipart upload to s3rver (an independent S3 implementation, Node, loopback), read
// back byte-identical. s3rver checks SigV4 with its default S3RVER/S3RVER key pair.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <filesystem>

#include "aws/s3.hpp"
#include "ports.hpp"
#include "temp_dir.hpp"
#include "upload_driver.hpp"

namespace {

using namespace fe::aws;
namespace fs = std::filesystem;

template <class Pred>
void run_until(boost::asio::io_context& io, Pred done, int seconds = 300) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  io.restart();
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "test hung";
    io.run_one_for(std::chrono::milliseconds(50));
  }
}

class S3rver {
 public:
  S3rver() {
    const fs::path js = fs::path(FE_SOURCE_DIR) / "tests/node/node_modules/s3rver/bin/s3rver.js";
    if (!fs::exists(js) || !fs::exists("/usr/bin/node")) return;
    dir_ = fe::test::make_temp_dir("fe-s3rver");
    port_ = fe::test::free_port();
    const std::string log = (dir_ / "s3rver.log").string();
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = std::freopen(log.c_str(), "w", stdout);
      (void)f;
      dup2(fileno(stdout), 2);
      std::string port = std::to_string(port_), data = (dir_ / "data").string();
      execl("/usr/bin/node", "node", js.c_str(), "-d", data.c_str(), "-a", "127.0.0.1", "-p",
            port.c_str(), "-s", "--configure-bucket", "fhir-landing", static_cast<char*>(nullptr));
      _exit(127);
    }
    // Ready when it accepts connections.
    ready_ = fe::test::wait_listening(port_, std::chrono::seconds(30));
  }
  ~S3rver() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st = 0;
      waitpid(pid_, &st, 0);
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  bool ready() const { return ready_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  bool ready_ = false;
};

TEST(S3rver, Multipart100MiBReadBackIdentical) {
  if (!fs::exists(fs::path(FE_SOURCE_DIR) / "tests/node/node_modules/s3rver"))
    GTEST_SKIP() << "s3rver not installed (tests/node/node_modules): run scripts/bootstrap";
  S3rver server;
  ASSERT_TRUE(server.ready()) << "s3rver did not start";

  boost::asio::io_context io;
  HttpEngine engine(io);
  ClientConfig cfg;
  cfg.s3_endpoint = server.endpoint();
  Credentials creds;
  creds.access_key_id = "S3RVER";
  creds.secret_access_key = "S3RVER";
  AwsCaller caller(engine, cfg, static_credentials(creds));
  S3Client s3(caller);

  const std::uint64_t size = 100ull << 20, part = 8ull << 20, seed = 2026;
  const std::string key = "exports/s3rver run/import/Observation.ndjson";
  std::optional<S3Result<CreateMultipartResult>> created;
  s3.create_multipart_upload({"fhir-landing", key, "application/fhir+ndjson", {}},
                             [&](auto r) { created = std::move(r); });
  run_until(io, [&] { return created.has_value(); });
  ASSERT_TRUE(created->ok()) << created->describe();

  fe::test::PartUploader up(s3, "fhir-landing", key, created->value->upload_id, seed, size, part);
  std::vector<int> all;
  for (int i = 1; i <= up.part_count(); ++i) all.push_back(i);
  bool finished = false;
  up.start(all, 4, [&](auto&) { finished = true; });
  run_until(io, [&] { return finished; });
  ASSERT_FALSE(up.outcome().error) << *up.outcome().error;

  std::optional<S3Result<CompleteMultipartResult>> completed;
  s3.complete_multipart_upload(
      {"fhir-landing", key, created->value->upload_id, up.outcome().parts, true},
      [&](auto r) { completed = std::move(r); });
  run_until(io, [&] { return completed.has_value(); });
  ASSERT_TRUE(completed->ok()) << completed->describe();

  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::optional<S3Result<GetObjectResult>> got;
  s3.get_object({"fhir-landing", key, std::nullopt,
                 [&](std::string_view c) {
                   EVP_DigestUpdate(ctx, c.data(), c.size());
                   return true;
                 }},
                [&](auto r) { got = std::move(r); });
  run_until(io, [&] { return got.has_value(); });
  unsigned char md[32];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  ASSERT_TRUE(got->ok()) << got->describe();
  EXPECT_EQ(got->value->bytes, size);
  EXPECT_EQ(hex(md, len), fe::test::sha256_of_generated(seed, size));

  std::optional<S3Result<ListObjectsResult>> listed;
  // (s3rver answers an empty document when a delimiter is given, so none here.)
  s3.list_objects_v2({"fhir-landing", "exports/", "", "", 1000},
                     [&](auto r) { listed = std::move(r); });
  run_until(io, [&] { return listed.has_value(); });
  ASSERT_TRUE(listed->ok()) << listed->describe();
  ASSERT_EQ(listed->value->objects.size(), 1u);
  EXPECT_EQ(listed->value->objects[0].key, key);
  EXPECT_EQ(listed->value->objects[0].size, size);
}

}  // namespace
