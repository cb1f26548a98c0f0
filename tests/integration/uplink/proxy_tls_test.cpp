// Proxies and TLS with real parts: Debian's tinyproxy (run by the test on loopback with its own
// config) as the hospital's egress proxy, and a TLS endpoint whose certificate comes from the
// test's own CA (an Asio SSL front for healthlake-local, so uploads are real signed S3 calls).
//  - multipart uploads reach healthlake-local through tinyproxy's CONNECT tunnel and verify the
//    endpoint against the configured CA bundle; plain-http uploads use HTTP_PROXY from the
//    environment; NO_PROXY (environment or config) bypasses the proxy;
//  - a wrong CA, a missing CA file, or no CA at all fail with a TLS error naming the host and the
//    configured CA file, and are not retried;
//  - nothing in the configuration can turn verification off.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ssl.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "config/config.hpp"
#include "ports.hpp"
#include "temp_dir.hpp"
#include "upload_fixture.hpp"

namespace {

namespace fs = std::filesystem;
namespace asio = boost::asio;
using asio::ip::tcp;
using namespace fe::aws;
using fe::test::HealthLakeLocal;
using fe::test::HealthLakeLocalOptions;
using fe::test::MultipartUpload;
using fe::test::S3Fixture;

constexpr std::uint64_t kMiB = 1ull << 20;

bool have(const char* tool) {
  return std::system((std::string("command -v ") + tool + " > /dev/null 2>&1").c_str()) == 0;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int count_matches(const std::string& text, const std::string& pattern) {
  std::regex re(pattern);
  return static_cast<int>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
}

// tinyproxy in the foreground (-d) with a generated config, as a child of the test.
class Tinyproxy {
 public:
  explicit Tinyproxy(const fs::path& dir) : log_(dir / "tinyproxy.log") {
    for (int attempt = 0; attempt < 5 && pid_ < 0; ++attempt) {
      port_ = fe::test::free_port();
      const fs::path conf = dir / "tinyproxy.conf";
      std::ofstream(conf) << "Port " << port_ << "\nListen 127.0.0.1\nBind 127.0.0.1\n"
                          << "Timeout 60\nAllow 127.0.0.1\nMaxClients 64\nLogLevel Info\n"
                          << "LogFile \"" << log_.string() << "\"\n";
      pid_t pid = fork();
      if (pid == 0) {
        if (!std::freopen("/dev/null", "w", stdout) || !std::freopen("/dev/null", "w", stderr))
          _exit(126);
        execlp("tinyproxy", "tinyproxy", "-d", "-c", conf.c_str(), static_cast<char*>(nullptr));
        _exit(127);
      }
      if (fe::test::wait_listening(port_, std::chrono::seconds(10))) {
        pid_ = pid;
      } else {
        kill(pid, SIGTERM);
        waitpid(pid, nullptr, 0);
      }
    }
  }
  ~Tinyproxy() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool running() const { return pid_ > 0; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return read_file(log_); }

 private:
  fs::path log_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// https://127.0.0.1:PORT in front of a plain-http upstream: TLS terminated with `cert`/`key`,
// bytes relayed both ways. Counts handshakes (succeeded and failed).
class TlsFront {
 public:
  TlsFront(const fs::path& cert, const fs::path& key, std::uint16_t upstream)
      : ssl_(asio::ssl::context::tls_server),
        acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}),
        upstream_(upstream) {
    ssl_.use_certificate_chain_file(cert.string());
    ssl_.use_private_key_file(key.string(), asio::ssl::context::pem);
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TlsFront() {
    io_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return port_; }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  int handshakes() const { return ok_; }
  int failed_handshakes() const { return failed_; }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    Session(TlsFront& f, tcp::socket s) : front(f), client(std::move(s), f.ssl_), up(f.io_) {}
    TlsFront& front;
    asio::ssl::stream<tcp::socket> client;
    tcp::socket up;
    std::array<char, 16384> a{}, b{};

    void start() {
      auto self = shared_from_this();
      client.async_handshake(asio::ssl::stream_base::server, [self](boost::system::error_code ec) {
        if (ec) {
          ++self->front.failed_;
          return;
        }
        ++self->front.ok_;
        self->up.async_connect({asio::ip::make_address("127.0.0.1"), self->front.upstream_},
                               [self](boost::system::error_code ec2) {
                                 if (ec2) return;
                                 self->to_upstream();
                                 self->to_client();
                               });
      });
    }
    void to_upstream() {
      auto self = shared_from_this();
      client.async_read_some(asio::buffer(a), [self](boost::system::error_code ec, std::size_t n) {
        if (ec) {
          boost::system::error_code ignored;
          self->up.shutdown(tcp::socket::shutdown_send, ignored);
          return;
        }
        asio::async_write(self->up, asio::buffer(self->a, n),
                          [self](boost::system::error_code e, std::size_t) {
                            if (!e) self->to_upstream();
                          });
      });
    }
    void to_client() {
      auto self = shared_from_this();
      up.async_read_some(asio::buffer(b), [self](boost::system::error_code ec, std::size_t n) {
        if (ec) {
          self->client.async_shutdown([self](boost::system::error_code) {});
          return;
        }
        asio::async_write(self->client, asio::buffer(self->b, n),
                          [self](boost::system::error_code e, std::size_t) {
                            if (!e) self->to_client();
                          });
      });
    }
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      std::make_shared<Session>(*this, std::move(s))->start();
      accept();
    });
  }

  asio::io_context io_;
  asio::ssl::context ssl_;
  tcp::acceptor acceptor_;
  std::uint16_t upstream_;
  std::uint16_t port_ = 0;
  std::atomic<int> ok_{0}, failed_{0};
  std::thread thread_;
};

// The environment for the whole suite: certificates, healthlake-local, the TLS front, tinyproxy.
struct Env {
  fs::path dir;
  std::unique_ptr<HealthLakeLocal> hll;
  std::unique_ptr<TlsFront> tls;
  std::unique_ptr<Tinyproxy> proxy;
  std::string skip;  // why the suite cannot run here

  fs::path ca() const { return dir / "hospital-ca.pem"; }
  fs::path other_ca() const { return dir / "other-ca.pem"; }
};
Env* env = nullptr;

class ProxyTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env = new Env;
    if (!have("tinyproxy")) {
      env->skip = "tinyproxy not installed (Debian package tinyproxy)";
      return;
    }
    if (!have("openssl")) {
      env->skip = "openssl CLI not installed";
      return;
    }
    env->dir = fe::test::make_temp_dir("fe-uplink");
    const std::string d = env->dir.string();
    // Our own CA and a server certificate for IP 127.0.0.1 signed by it; a second, unrelated CA.
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::ofstream(env->dir / "server.ext")
        << "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        << "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n";
    const std::string cmds[] = {
        "openssl req -x509" + ec + " -days 2 -subj '/CN=fhir-edge test hospital CA' -keyout " + d +
            "/ca.key -out " + d + "/hospital-ca.pem",
        "openssl req -x509" + ec + " -days 2 -subj '/CN=some other CA' -keyout " + d +
            "/other.key -out " + d + "/other-ca.pem",
        "openssl req" + ec + " -subj /CN=127.0.0.1 -keyout " + d + "/server.key -out " + d +
            "/server.csr",
        "openssl x509 -req -in " + d + "/server.csr -CA " + d + "/hospital-ca.pem -CAkey " + d +
            "/ca.key -CAcreateserial -days 2 -extfile " + d + "/server.ext -out " + d +
            "/server.pem",
    };
    for (const auto& c : cmds) {
      if (std::system((c + " > /dev/null 2>&1").c_str()) != 0) {
        env->skip = "openssl failed: " + c;
        return;
      }
    }
    HealthLakeLocalOptions opt;
    opt.buckets = {fe::test::kBucket};
    opt.min_part_size = 1 * kMiB;
    try {
      env->hll = std::make_unique<HealthLakeLocal>(opt);
    } catch (const std::exception& e) {
      env->skip = std::string("healthlake-local did not start: ") + e.what();
      return;
    }
    env->tls = std::make_unique<TlsFront>(env->dir / "server.pem", env->dir / "server.key",
                                          env->hll->port());
    env->proxy = std::make_unique<Tinyproxy>(env->dir);
    if (!env->proxy->running()) env->skip = "tinyproxy did not start";
  }
  static void TearDownTestSuite() {
    if (!env) return;
    env->proxy.reset();
    env->tls.reset();
    env->hll.reset();
    if (!env->dir.empty()) fs::remove_all(env->dir);
    delete env;
    env = nullptr;
  }
  void SetUp() override {
    // A missing tool is the machine's problem, not a failure of ours: say so in one line.
    if (!env->skip.empty()) {
      if (env->skip.find("did not start") != std::string::npos ||
          env->skip.find("failed") != std::string::npos)
        FAIL() << env->skip;
      GTEST_SKIP() << env->skip;
    }
    for (const char* n : {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                          "all_proxy", "NO_PROXY", "no_proxy"}) {
      if (const char* v = std::getenv(n)) saved_.emplace_back(n, v);
      ::unsetenv(n);
    }
  }
  void TearDown() override {
    for (const char* n : {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}) ::unsetenv(n);
    for (const auto& [n, v] : saved_) ::setenv(n.c_str(), v.c_str(), 1);
  }
  std::vector<std::pair<std::string, std::string>> saved_;
};

// Lines tinyproxy logs per request: "Request (file descriptor N): METHOD TARGET HTTP/1.1".
int proxied(const std::string& log, const std::string& method_and_target_regex) {
  return count_matches(log, "Request \\(file descriptor [0-9]+\\): " + method_and_target_regex);
}

TEST_F(ProxyTls, MultipartUploadThroughTinyproxyConnectToTheCaVerifiedEndpoint) {
  HttpOptions http;
  http.proxy = env->proxy->url();
  http.no_proxy = "";  // the endpoint is on loopback; a hospital's would be outside
  http.ca_bundle = env->ca().string();
  S3Fixture f(*env->hll, http, env->tls->url());
  const std::string before = env->proxy->log();
  const int handshakes_before = env->tls->handshakes();
  const std::string data = fe::test::make_bytes(3 * kMiB + 12345, 7);
  MultipartUpload up(f, "proxy/tls/import/Patient.ndjson", data, 1 * kMiB);
  auto r = up.run(2);
  ASSERT_FALSE(r.error) << *r.error;
  auto stored = env->hll->object(fe::test::kBucket, "proxy/tls/import/Patient.ndjson");
  ASSERT_TRUE(stored);
  EXPECT_TRUE(*stored == data);

  // Every TLS connection to the endpoint was a tunnel opened by tinyproxy (no direct ones).
  const std::string log = env->proxy->log().substr(before.size());
  const std::string target = "127\\.0\\.0\\.1:" + std::to_string(env->tls->port());
  const int tunnels = proxied(log, "CONNECT " + target + " HTTP/1\\.1");
  const int handshakes = env->tls->handshakes() - handshakes_before;
  std::printf(
      "[ proxy    ] %d CONNECT tunnels through tinyproxy, %d TLS handshakes at the "
      "endpoint, %llu connections opened by the engine\n",
      tunnels, handshakes, static_cast<unsigned long long>(f.engine.connections_opened()));
  EXPECT_GE(tunnels, 1);
  EXPECT_EQ(tunnels, handshakes);
  EXPECT_EQ(static_cast<std::uint64_t>(tunnels), f.engine.connections_opened());
  // ... and the requests inside them were the upload (4 parts + create + complete).
  int parts = 0;
  for (const auto& line : env->hll->request_log_lines())
    if (line.find("UploadPart") != std::string::npos &&
        line.find("proxy/tls/import/Patient.ndjson") != std::string::npos)
      ++parts;
  EXPECT_EQ(parts, 4);
}

TEST_F(ProxyTls, PlainHttpUploadUsesHttpProxyFromTheEnvironment) {
  ::setenv("HTTP_PROXY", env->proxy->url().c_str(), 1);
  S3Fixture f(*env->hll);  // no proxy in the options: the environment decides
  const std::string before = env->proxy->log();
  const std::string data = fe::test::make_bytes(2 * kMiB, 8);
  MultipartUpload up(f, "proxy/env/import/Observation.ndjson", data, 1 * kMiB);
  auto r = up.run(2);
  ASSERT_FALSE(r.error) << *r.error;
  EXPECT_TRUE(env->hll->object(fe::test::kBucket, "proxy/env/import/Observation.ndjson") == data);
  const std::string log = env->proxy->log().substr(before.size());
  const std::string url = "http://127\\.0\\.0\\.1:" + std::to_string(env->hll->port()) +
                          "/fhir-landing/proxy/env/import/Observation\\.ndjson";
  EXPECT_EQ(proxied(log, "PUT " + url + "\\?partNumber=[12]&uploadId="), 2) << log;
  EXPECT_EQ(proxied(log, "POST " + url + "\\?uploads"), 1) << log;
  EXPECT_EQ(proxied(log, "POST " + url + "\\?uploadId="), 1) << log;
}

TEST_F(ProxyTls, NoProxyFromTheEnvironmentOrTheConfigBypassesTheProxy) {
  const std::string data = fe::test::make_bytes(1 * kMiB + 1, 9);
  {
    ::setenv("HTTP_PROXY", env->proxy->url().c_str(), 1);
    ::setenv("NO_PROXY", "localhost,127.0.0.1", 1);
    S3Fixture f(*env->hll);
    const std::string before = env->proxy->log();
    MultipartUpload up(f, "proxy/bypass-env/import/Patient.ndjson", data, 1 * kMiB);
    auto r = up.run(2);
    ASSERT_FALSE(r.error) << *r.error;
    EXPECT_EQ(proxied(env->proxy->log().substr(before.size()), "[A-Z]+ "), 0)
        << "NO_PROXY=127.0.0.1 was not honoured";
    EXPECT_TRUE(env->hll->object(fe::test::kBucket, "proxy/bypass-env/import/Patient.ndjson"));
  }
  {
    ::unsetenv("HTTP_PROXY");
    ::unsetenv("NO_PROXY");
    HttpOptions http;
    http.proxy = env->proxy->url();
    http.no_proxy = "127.0.0.1";  // aws.no_proxy style setting wins over nothing in the env
    S3Fixture f(*env->hll, http);
    const std::string before = env->proxy->log();
    MultipartUpload up(f, "proxy/bypass-cfg/import/Patient.ndjson", data, 1 * kMiB);
    auto r = up.run(2);
    ASSERT_FALSE(r.error) << *r.error;
    EXPECT_EQ(proxied(env->proxy->log().substr(before.size()), "[A-Z]+ "), 0);
  }
  {
    // Control: the same client with the proxy and no bypass does go through it.
    HttpOptions http;
    http.proxy = env->proxy->url();
    http.no_proxy = "";
    S3Fixture f(*env->hll, http);
    const std::string before = env->proxy->log();
    MultipartUpload up(f, "proxy/control/import/Patient.ndjson", data, 1 * kMiB);
    auto r = up.run(2);
    ASSERT_FALSE(r.error) << *r.error;
    EXPECT_GE(proxied(env->proxy->log().substr(before.size()), "PUT "), 2);
  }
}

// One PutObject through tinyproxy to the TLS endpoint; the transport error it ended with.
AwsError put_with(const HttpOptions& http, int* attempts_seen) {
  S3Fixture f(*env->hll, http, env->tls->url());
  const int failed_before = env->tls->failed_handshakes();
  static const std::string body = "{\"resourceType\":\"Patient\"}\n";
  PutObjectRequest req;
  req.bucket = fe::test::kBucket;
  req.key = "tls/should-not-arrive.ndjson";
  req.body = BodySource::from_view(body);
  req.crc32c = crc32c(body.data(), body.size(), 0);
  auto r = f.wait<S3Result<PutObjectResult>>([&](auto done) { f.s3.put_object(req, done); });
  EXPECT_FALSE(r.ok());
  // The client's handshake is refused by the client itself; the front sees it close (bounded).
  for (int i = 0; i < 200 && env->tls->failed_handshakes() == failed_before; ++i) usleep(50000);
  *attempts_seen = env->tls->failed_handshakes() - failed_before;
  std::printf("[ tls      ] %s\n", r.describe().c_str());
  return r.error.value_or(AwsError{});
}

TEST_F(ProxyTls, WrongCaIsAClearTlsErrorNamingHostAndCaFileAndIsNotRetried) {
  HttpOptions http;
  http.proxy = env->proxy->url();
  http.no_proxy = "";
  http.ca_bundle = env->other_ca().string();
  int attempts = 0;
  AwsError e = put_with(http, &attempts);
  const std::string host = "127.0.0.1:" + std::to_string(env->tls->port());
  EXPECT_NE(e.message.find("tls_verify: TLS"), std::string::npos) << e.describe();
  EXPECT_NE(e.message.find(host), std::string::npos) << e.message;
  EXPECT_NE(e.message.find(env->other_ca().string()), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("not trusted"), std::string::npos) << e.message;
  EXPECT_FALSE(e.retryable());
  EXPECT_EQ(attempts, 1) << "a certificate problem is configuration, not worth a retry";
  EXPECT_FALSE(env->hll->object(fe::test::kBucket, "tls/should-not-arrive.ndjson"));
}

TEST_F(ProxyTls, MissingCaFileNamesTheFile) {
  HttpOptions http;
  http.no_proxy = "*";
  http.ca_bundle = (env->dir / "no-such-ca.pem").string();
  int attempts = 0;
  AwsError e = put_with(http, &attempts);
  EXPECT_NE(e.message.find("tls_verify: TLS"), std::string::npos) << e.describe();
  EXPECT_NE(e.message.find(http.ca_bundle->c_str()), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("127.0.0.1:" + std::to_string(env->tls->port())), std::string::npos)
      << e.message;
  EXPECT_FALSE(e.retryable());
}

TEST_F(ProxyTls, WithoutTheHospitalCaTheEndpointIsRefusedAndNothingTurnsVerificationOff) {
  HttpOptions http;  // system trust store only
  http.no_proxy = "*";
  int attempts = 0;
  AwsError e = put_with(http, &attempts);
  EXPECT_NE(e.message.find("tls_verify: TLS"), std::string::npos) << e.describe();
  EXPECT_NE(e.message.find("system trust store"), std::string::npos) << e.message;
  EXPECT_FALSE(env->hll->object(fe::test::kBucket, "tls/should-not-arrive.ndjson"));

  // The configuration has no key that disables verification; the usual names are unknown keys.
  for (const char* key : {"insecure", "verify_tls", "tls_verify", "verify_ssl", "ssl_verify",
                          "insecure_skip_verify", "no_verify_ssl", "verify"}) {
    const std::string yaml = std::string("aws: { ") + key + ": false }\npipelines: []\n";
    auto r = fe::config::load_config_text(yaml, "t.yaml");
    ASSERT_FALSE(r.ok()) << key;
    const std::string text = fe::config::format(r.errors);
    EXPECT_NE(text.find("aws." + std::string(key) + ": unknown key"), std::string::npos) << text;
  }
  // ca_bundle cannot be abused to mean "none" either: it is a path that must exist at run time.
  auto r = fe::config::load_config_text("aws: { ca_bundle: none }\npipelines: []\n", "t.yaml");
  EXPECT_FALSE(r.ok());
}

}  // namespace
