#pragma once
// healthlake-local's HTTP front: one Boost.Beast server on one io_context thread serving S3 (REST,
// path style and virtual-host style) and HealthLake (AWS JSON 1.0, X-Amz-Target: HealthLake.*) on
// the same port. Every request is SigV4-verified (fe::aws::verify) against the configured keys,
// request bodies are spooled to a file as they arrive, in one pass that also hashes and decodes
// them (body.hpp; memory bounded by a 1 MiB buffer, whatever the part size),
// faults are injected per operation, and one JSON line per request goes to the request log.
// STS AssumeRole (POST / with a form body, sts.hpp) is answered on the same port; the temporary
// credentials it issues are accepted by every service until they expire.
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "faults.hpp"
#include "healthlake.hpp"
#include "s3_store.hpp"
#include "sts.hpp"

namespace fe::hll {

struct ServerOptions {
  std::filesystem::path data;
  std::string listen = "127.0.0.1:0";
  std::filesystem::path port_file;
  std::string access_key, secret_key, session_token;
  std::string region = "us-east-1";
  std::vector<std::string> datastores;
  std::vector<std::string> buckets;
  std::string faults;
  std::filesystem::path request_log;  // default <data>/requests.jsonl
  HealthLakeOptions healthlake;
  StsOptions sts;  // --role, --role-external-id, --session-lifetime (account/region filled in)
  uint64_t min_part_size = kMinPartSize;
  bool md5_etags = true;          // --etag opaque turns it off (S3Store)
  bool verify_signatures = true;  // --no-auth turns it off (documented, for debugging only)
};

class Server {
 public:
  Server(boost::asio::io_context& io, ServerOptions options);  // throws on bad options
  ~Server();
  void start();  // binds, writes the port file, starts accepting
  void stop();   // stops accepting and closes connections
  uint16_t port() const;

  S3Store& s3();
  HealthLake& healthlake();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Which S3 operation a request is (method, bucket/key presence, query); "" when unknown.
std::string s3_operation(std::string_view method, bool has_bucket, bool has_key,
                         std::string_view raw_query, bool copy_source);
// Bucket from a virtual-host style Host header ("b.localhost:9000", "b.s3.localhost",
// "b.s3.us-east-1.localhost"); "" for path style ("127.0.0.1:9000", "localhost", "s3.localhost").
std::string virtual_host_bucket(std::string_view host);
const std::vector<std::string>& s3_operations();

}  // namespace fe::hll
