// A 1 GiB multipart upload keeps memory bounded by part size x concurrency: the body is streamed
// from a generator through BodySource into curl, never held. The loopback server only hashes.
// Prints the peak RSS growth next to the bound.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <fstream>

#include "aws/s3.hpp"
#include "loopback_server.hpp"
#include "upload_driver.hpp"

// Under AddressSanitizer freed blocks sit in a quarantine (256 MiB by default) and count as RSS;
// keep it small so the measurement shows what the code holds, not what ASan delays freeing.
extern "C" const char* __asan_default_options() {
  return "quarantine_size_mb=8";
}

namespace {

using namespace fe::aws;
using fe::test::LoopbackServer;
using fe::test::Recorded;
using fe::test::Reply;

long status_kib(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  return -1;
}

TEST(Memory, OneGiBUploadStaysWithinPartSizeTimesConcurrency) {
  std::atomic<std::uint64_t> received{0};
  LoopbackServer server(
      [&](const Recorded& r) {
        Reply rep;
        if (r.method == "POST" && r.target.find("?uploads") != std::string::npos) {
          rep.body =
              "<InitiateMultipartUploadResult><UploadId>u1</UploadId></"
              "InitiateMultipartUploadResult>";
        } else if (r.method == "PUT") {
          received += r.body_size;
          rep.headers = {{"ETag", "\"" + r.body_sha256.substr(0, 32) + "\""},
                         {"x-amz-checksum-crc32c", r.header("x-amz-checksum-crc32c")}};
          if (r.header("x-amz-content-sha256") != r.body_sha256) rep.status = 400;
        } else {
          rep.body =
              "<CompleteMultipartUploadResult><ETag>\"x-64\"</ETag></"
              "CompleteMultipartUploadResult>";
        }
        return rep;
      },
      0);
  boost::asio::io_context io;
  HttpEngine engine(io);
  ClientConfig cfg;
  cfg.s3_endpoint = server.url();
  Credentials creds;
  creds.access_key_id = "AKIDEXAMPLE";
  creds.secret_access_key = "secret";
  AwsCaller caller(engine, cfg, static_credentials(creds));
  S3Client s3(caller);

  const std::uint64_t size = 1ull << 30, part = 16ull << 20;
  const std::size_t concurrency = 4;
  std::ofstream("/proc/self/clear_refs") << "5";  // reset VmHWM to the current RSS
  const long base_kib = status_kib("VmRSS:");

  fe::test::PartUploader up(s3, "bucket", "exports/big/import/Observation.ndjson", "u1", 9, size,
                            part);
  std::vector<int> all;
  for (int i = 1; i <= up.part_count(); ++i) all.push_back(i);
  bool finished = false;
  std::size_t max_in_flight = 0;
  up.start(all, concurrency, [&](auto&) { finished = true; });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (!finished) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "test hung";
    io.run_one_for(std::chrono::milliseconds(50));
    max_in_flight = std::max(max_in_flight, up.in_flight());
  }
  ASSERT_FALSE(up.outcome().error) << *up.outcome().error;
  EXPECT_EQ(received.load(), size);
  EXPECT_EQ(max_in_flight, concurrency);

  const long peak_kib = status_kib("VmHWM:");
  const long growth_mib = (peak_kib - base_kib) / 1024;
  const long bound_mib = static_cast<long>(part * concurrency >> 20);
  std::printf(
      "1 GiB upload: %d parts of %llu MiB, concurrency %zu: peak RSS growth %ld MiB "
      "(RSS %ld -> peak %ld MiB), bound part_size x concurrency = %ld MiB\n",
      up.part_count(), static_cast<unsigned long long>(part >> 20), concurrency, growth_mib,
      base_kib / 1024, peak_kib / 1024, bound_mib);
  EXPECT_LT(growth_mib, bound_mib);
}

}  // namespace
