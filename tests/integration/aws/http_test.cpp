// The HTTP engine against real loopback servers: streaming bodies both ways, header capture,
// connection reuse, per-endpoint concurrency, limits, timeouts, proxies, cancellation, the upload
// bandwidth bucket.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <boost/asio.hpp>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "aws/http.hpp"
#include "aws/sigv4.hpp"
#include "loopback_server.hpp"
#include "ports.hpp"
#include "temp_dir.hpp"

namespace {

using namespace fe::aws;
using fe::test::LoopbackServer;
using fe::test::Recorded;
using fe::test::Reply;

// Runs the loop until `done` holds; the deadline only guards against a hung test.
template <class Pred>
void run_until(boost::asio::io_context& io, Pred done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  io.restart();
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "test hung";
    io.run_one_for(std::chrono::milliseconds(50));
  }
}

HttpResponse fetch(HttpEngine& engine, HttpRequest req) {
  std::optional<HttpResponse> out;
  engine.submit(std::move(req), [&](HttpResponse r) { out = std::move(r); });
  run_until(engine.io(), [&] { return out.has_value(); });
  return out ? std::move(*out) : HttpResponse{};
}

std::string pseudo_random(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(HttpEngine, GetCapturesStatusHeadersAndBody) {
  LoopbackServer server([](const Recorded& r) {
    Reply reply;
    reply.headers = {{"x-amz-request-id", "REQ123"},
                     {"ETag", "\"abc\""},
                     {"Date", "Thu, 26 Nov 2026 10:00:00 GMT"}};
    reply.body = "hello " + r.target;
    return reply;
  });
  boost::asio::io_context io;
  HttpEngine engine(io);
  HttpRequest req;
  req.url = server.url() + "/a/b?x=1";
  req.headers = {{"X-Custom", "v1"}};
  auto r = fetch(engine, req);
  EXPECT_EQ(r.error, HttpError::none) << r.error_message;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello /a/b?x=1");
  EXPECT_EQ(r.header("X-Amz-Request-Id").value_or(""), "REQ123");
  EXPECT_EQ(r.header("etag").value_or(""), "\"abc\"");
  EXPECT_TRUE(r.header("date").has_value());
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].header("x-custom"), "v1");
  EXPECT_EQ(reqs[0].header("expect"), "");
}

TEST(HttpEngine, StreamsRequestBodyFromSource) {
  LoopbackServer server([](const Recorded&) { return Reply{}; }, 0);
  boost::asio::io_context io;
  HttpEngine engine(io);
  const std::string data = pseudo_random(5 * 1024 * 1024 + 17, 1);
  std::size_t reads = 0;
  HttpRequest req;
  req.method = "PUT";
  req.url = server.url() + "/obj";
  BodySource src = BodySource::from_view(data);
  auto inner = src.read;
  src.read = [&reads, inner](std::span<char> b) {
    ++reads;
    return inner(b);
  };
  req.source = src;
  auto r = fetch(engine, req);
  ASSERT_TRUE(r.ok()) << r.error_message;
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "PUT");
  EXPECT_EQ(reqs[0].body_size, data.size());
  EXPECT_EQ(reqs[0].body_sha256, sha256_hex(data));
  EXPECT_EQ(reqs[0].header("content-length"), std::to_string(data.size()));
  EXPECT_EQ(reqs[0].header("expect"), "");
  EXPECT_EQ(reqs[0].header("content-type"), "");  // nothing added that was not signed
  EXPECT_GT(reads, 10u);                          // really streamed in pieces
  EXPECT_EQ(r.bytes_sent, data.size());
}

TEST(HttpEngine, PostWithEmptyAndStringBodies) {
  LoopbackServer server([](const Recorded& r) {
    Reply reply;
    reply.body = r.method + ":" + std::to_string(r.body_size);
    return reply;
  });
  boost::asio::io_context io;
  HttpEngine engine(io);
  HttpRequest req;
  req.method = "POST";
  req.url = server.url() + "/k?uploads";
  auto r = fetch(engine, req);
  EXPECT_EQ(r.body, "POST:0");
  req.body = R"({"a":1})";
  r = fetch(engine, req);
  EXPECT_EQ(r.body, "POST:7");
  req.method = "DELETE";
  req.body.clear();
  r = fetch(engine, req);
  EXPECT_EQ(r.body, "DELETE:0");
  req.method = "HEAD";
  r = fetch(engine, req);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(server.requests().back().method, "HEAD");
}

TEST(HttpEngine, ReusesOneConnectionForSequentialRequests) {
  LoopbackServer server([](const Recorded&) { return Reply{}; });
  boost::asio::io_context io;
  HttpEngine engine(io);
  for (int i = 0; i < 10; ++i) {
    HttpRequest req;
    req.url = server.url() + "/" + std::to_string(i);
    ASSERT_TRUE(fetch(engine, req).ok());
  }
  EXPECT_EQ(server.requests().size(), 10u);
  EXPECT_EQ(server.connections(), 1u);
  EXPECT_EQ(engine.connections_opened(), 1u);
}

TEST(HttpEngine, BoundsConcurrencyPerEndpoint) {
  std::atomic<int> inflight{0}, peak{0};
  LoopbackServer server([&](const Recorded&) {
    Reply reply;
    reply.delay = std::chrono::milliseconds(100);
    return reply;
  });
  boost::asio::io_context io;
  HttpOptions opts;
  opts.max_per_endpoint = 2;
  HttpEngine engine(io, opts);
  int done = 0;
  std::size_t max_active = 0, max_queued = 0;
  for (int i = 0; i < 7; ++i) {
    HttpRequest req;
    req.url = server.url() + "/" + std::to_string(i);
    engine.submit(req, [&](HttpResponse r) {
      EXPECT_TRUE(r.ok()) << r.error_message;
      ++done;
    });
  }
  run_until(io, [&] {
    max_active = std::max(max_active, engine.active());
    max_queued = std::max(max_queued, engine.queued());
    return done == 7;
  });
  EXPECT_LE(max_active, 2u);
  EXPECT_GE(max_queued, 5u);
  EXPECT_EQ(server.requests().size(), 7u);
  EXPECT_LE(server.connections(), 2u);
}

TEST(HttpEngine, SinkGetsSuccessBodyErrorsGoToBody) {
  const std::string big = pseudo_random(3 * 1024 * 1024, 2);
  LoopbackServer server([&](const Recorded& r) {
    Reply reply;
    if (r.target == "/missing") {
      reply.status = 404;
      reply.body = "<Error><Code>NoSuchKey</Code></Error>";
    } else {
      reply.body = big;
    }
    return reply;
  });
  boost::asio::io_context io;
  HttpOptions opts;
  opts.max_response_bytes = 1024;  // a sink is not limited by this
  HttpEngine engine(io, opts);
  std::string got;
  HttpRequest req;
  req.url = server.url() + "/obj";
  req.sink = [&](std::string_view chunk) {
    got.append(chunk);
    return true;
  };
  auto r = fetch(engine, req);
  ASSERT_TRUE(r.ok()) << r.error_message;
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(sha256_hex(got), sha256_hex(big));
  got.clear();
  req.url = server.url() + "/missing";
  r = fetch(engine, req);
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(got.empty());
  EXPECT_NE(r.body.find("NoSuchKey"), std::string::npos);

  // A sink can stop the transfer.
  req.url = server.url() + "/obj";
  req.sink = [](std::string_view) { return false; };
  r = fetch(engine, req);
  EXPECT_EQ(r.error, HttpError::aborted);
}

TEST(HttpEngine, CapturedBodyIsLimited) {
  LoopbackServer server([](const Recorded&) {
    Reply reply;
    reply.body = std::string(5000, 'x');
    return reply;
  });
  boost::asio::io_context io;
  HttpEngine engine(io);
  HttpRequest req;
  req.url = server.url() + "/";
  req.max_response_bytes = 1000;
  auto r = fetch(engine, req);
  EXPECT_EQ(r.error, HttpError::too_large);
  EXPECT_FALSE(r.ok());
  req.max_response_bytes = 5000;
  EXPECT_TRUE(fetch(engine, req).ok());
}

TEST(HttpEngine, ConnectionRefusedIsTransientConnectError) {
  std::uint16_t port;
  {
    LoopbackServer gone([](const Recorded&) { return Reply{}; });
    port = gone.port();
  }
  boost::asio::io_context io;
  HttpEngine engine(io);
  HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  auto r = fetch(engine, req);
  EXPECT_EQ(r.error, HttpError::connect) << r.error_message;
  EXPECT_TRUE(is_transient(r.error));
  EXPECT_EQ(r.status, 0);
}

TEST(HttpEngine, DroppedConnectionIsReceiveError) {
  LoopbackServer server([](const Recorded&) {
    Reply reply;
    reply.drop = true;
    return reply;
  });
  boost::asio::io_context io;
  HttpEngine engine(io);
  HttpRequest req;
  req.url = server.url() + "/";
  auto r = fetch(engine, req);
  EXPECT_EQ(r.error, HttpError::receive) << r.error_message;
  EXPECT_TRUE(is_transient(r.error));
}

TEST(HttpEngine, DropOnAReusedConnectionIsLeftToTheRetryPolicyNotResentByCurl) {
  // curl by itself re-sends a request whose reused connection closed before any response, on a
  // fresh connection: an attempt the retry policy would never count. The engine refuses it.
  std::atomic<int> seen{0};
  LoopbackServer server([&](const Recorded&) {
    Reply reply;
    reply.drop = ++seen == 2;  // the first request opens the connection, the second is dropped
    return reply;
  });
  boost::asio::io_context io;
  HttpEngine engine(io);
  for (const std::string body : {"", "a request body"}) {
    seen = 0;
    const std::size_t before = server.requests().size();
    HttpRequest first;
    first.url = server.url() + "/first";
    ASSERT_TRUE(fetch(engine, first).ok());
    HttpRequest second;
    second.method = body.empty() ? "GET" : "PUT";
    second.url = server.url() + "/second";
    if (!body.empty()) second.source = BodySource::from_view(body);
    auto r = fetch(engine, second);
    EXPECT_EQ(r.error, HttpError::receive) << r.error_message;
    EXPECT_TRUE(is_transient(r.error));
    EXPECT_NE(r.error_message.find("reused connection"), std::string::npos) << r.error_message;
    EXPECT_EQ(server.requests().size() - before, 2u) << "curl re-sent the dropped request";
    EXPECT_EQ(seen.load(), 2);
  }
  // A fresh request afterwards goes through on a new connection.
  HttpRequest again;
  again.url = server.url() + "/again";
  EXPECT_TRUE(fetch(engine, again).ok());
}

TEST(HttpEngine, StalledResponseHitsLowSpeedTimeout) {
  LoopbackServer server([](const Recorded&) {
    Reply reply;
    reply.delay = std::chrono::milliseconds(4000);
    return reply;
  });
  boost::asio::io_context io;
  HttpOptions opts;
  opts.low_speed_time = std::chrono::seconds(1);
  HttpEngine engine(io, opts);
  HttpRequest req;
  req.url = server.url() + "/";
  auto r = fetch(engine, req);
  EXPECT_EQ(r.error, HttpError::timeout) << r.error_message;
  EXPECT_TRUE(is_timeout(r.error));
}

TEST(HttpEngine, CancelCompletesWithCancelled) {
  LoopbackServer server([](const Recorded&) {
    Reply reply;
    reply.delay = std::chrono::milliseconds(3000);
    return reply;
  });
  boost::asio::io_context io;
  HttpOptions opts;
  opts.max_per_endpoint = 1;
  HttpEngine engine(io, opts);
  std::optional<HttpResponse> a, b;
  HttpRequest req;
  req.url = server.url() + "/";
  auto ida = engine.submit(req, [&](HttpResponse r) { a = std::move(r); });
  auto idb = engine.submit(req, [&](HttpResponse r) { b = std::move(r); });
  run_until(io, [&] { return server.requests().size() == 1; });
  engine.cancel(idb);  // queued
  engine.cancel(ida);  // in flight
  run_until(io, [&] { return a && b; });
  EXPECT_EQ(a->error, HttpError::cancelled);
  EXPECT_EQ(b->error, HttpError::cancelled);
  EXPECT_EQ(engine.active(), 0u);
  EXPECT_EQ(engine.queued(), 0u);
}

TEST(HttpEngine, DestroyWithTransfersInFlightCallsNothing) {
  LoopbackServer server([](const Recorded&) {
    Reply reply;
    reply.delay = std::chrono::milliseconds(2000);
    return reply;
  });
  boost::asio::io_context io;
  bool called = false;
  {
    HttpEngine engine(io);
    HttpRequest req;
    req.url = server.url() + "/";
    engine.submit(req, [&](HttpResponse) { called = true; });
    engine.submit(req, [&](HttpResponse) { called = true; });
    run_until(io, [&] { return server.requests().size() == 2; });
  }
  // The engine is gone: the loop runs out of work (nothing of the engine is left to call
  // anything), and nothing was called on the way.
  run_until(io, [&] { return io.stopped(); });
  EXPECT_FALSE(called);
}

TEST(HttpEngine, ConfiguredProxyGetsAbsoluteFormRequests) {
  LoopbackServer proxy([](const Recorded&) {
    Reply reply;
    reply.body = "via proxy";
    return reply;
  });
  boost::asio::io_context io;
  HttpOptions opts;
  opts.proxy = proxy.url();
  HttpEngine engine(io, opts);
  HttpRequest req;
  req.url = "http://s3.example.invalid/bucket/key";
  auto r = fetch(engine, req);
  ASSERT_TRUE(r.ok()) << r.error_message;
  EXPECT_EQ(r.body, "via proxy");
  ASSERT_EQ(proxy.requests().size(), 1u);
  EXPECT_EQ(proxy.requests()[0].target, "http://s3.example.invalid/bucket/key");
}

TEST(HttpEngine, NoProxyBypassesTheProxy) {
  LoopbackServer direct([](const Recorded&) { return Reply{}; });
  boost::asio::io_context io;
  HttpOptions opts;
  opts.proxy = "http://127.0.0.1:9";  // nothing listens there
  opts.no_proxy = "127.0.0.1";
  HttpEngine engine(io, opts);
  HttpRequest req;
  req.url = direct.url() + "/x";
  auto r = fetch(engine, req);
  EXPECT_TRUE(r.ok()) << r.error_message;
  EXPECT_EQ(direct.requests().size(), 1u);
}

TEST(HttpEngine, ProxyFromEnvironmentByScheme) {
  HttpOptions opts;
  ::setenv("HTTPS_PROXY", "http://tls-proxy:3128", 1);
  ::setenv("HTTP_PROXY", "http://plain-proxy:3128", 1);
  EXPECT_EQ(HttpEngine::proxy_for(opts, "https://s3.us-east-1.amazonaws.com/"),
            "http://tls-proxy:3128");
  EXPECT_EQ(HttpEngine::proxy_for(opts, "http://127.0.0.1:4566/"), "http://plain-proxy:3128");
  opts.proxy = "";  // config "no proxy" wins over the environment
  EXPECT_EQ(HttpEngine::proxy_for(opts, "https://s3.us-east-1.amazonaws.com/"), "");
  ::unsetenv("HTTPS_PROXY");
  ::unsetenv("HTTP_PROXY");
  opts.proxy.reset();
  EXPECT_EQ(HttpEngine::proxy_for(opts, "https://x/"),
            std::getenv("ALL_PROXY") ? std::getenv("ALL_PROXY") : "");
}

// The bandwidth bucket (outcomes only; rates are measured in tests/integration/uplink).
TEST(HttpEngineBandwidth, LiftingTheCapResumesPausedTransfersAndBodiesArriveIntact) {
  LoopbackServer server([](const Recorded&) { return Reply{}; }, 0);
  boost::asio::io_context io;
  HttpOptions opts;
  opts.max_send_bytes_per_second = 1024;  // the minimum: 1 MiB would take over 17 minutes
  HttpEngine engine(io, opts);
  EXPECT_EQ(engine.current_bandwidth_limit(), 1024u);
  const std::string big = pseudo_random(1 << 20, 5);
  const std::string small = "{\"small\": \"in-memory bodies draw from the same bucket\"}";
  std::size_t sent = 0;
  std::vector<std::optional<HttpResponse>> out(3);
  for (int i = 0; i < 3; ++i) {
    HttpRequest req;
    req.method = i == 2 ? "POST" : "PUT";
    req.url = server.url() + "/o" + std::to_string(i);
    if (i == 2) {
      req.body = small;
    } else {
      BodySource src = BodySource::from_view(big);
      auto inner = src.read;
      src.read = [&sent, inner](std::span<char> b) {
        auto n = inner(b);
        if (n > 0) sent += static_cast<std::size_t>(n);
        return n;
      };
      req.source = src;
    }
    engine.submit(std::move(req), [&out, i](HttpResponse r) { out[i] = std::move(r); });
  }
  // Capped: the bodies trickle out in small reads and nothing finishes.
  run_until(io, [&] { return sent >= 512; });
  EXPECT_LT(sent, 64u * 1024) << "the cap did not hold the transfers back";
  EXPECT_FALSE(out[0] || out[1]);
  // A reload to unlimited: every paused transfer resumes at once and completes.
  engine.set_bandwidth(0, {});
  EXPECT_EQ(engine.current_bandwidth_limit(), 0u);
  run_until(io, [&] { return out[0] && out[1] && out[2]; });
  for (auto& r : out) EXPECT_TRUE(r->ok()) << r->error_message;
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  for (const auto& rec : reqs)
    EXPECT_EQ(rec.body_sha256, sha256_hex(rec.method == "POST" ? small : big)) << rec.target;
}

TEST(HttpEngineBandwidth, ScheduleWindowCoveringNowIsTheLimitInForce) {
  boost::asio::io_context io;
  HttpOptions opts;
  opts.max_send_bytes_per_second = 4096;
  opts.bandwidth_schedule = {{0, 1440, 0}};  // the whole day: unlimited
  HttpEngine engine(io, opts);
  EXPECT_EQ(engine.current_bandwidth_limit(), 0u);
  engine.set_bandwidth(4096, {{0, 0, 8192}});  // from == to: the whole day too
  EXPECT_EQ(engine.current_bandwidth_limit(), 8192u);
  engine.set_bandwidth(4096, {});
  EXPECT_EQ(engine.current_bandwidth_limit(), 4096u);
}

TEST(HttpEngine, TlsIsVerifiedAgainstTheConfiguredBundle) {
  // A plain-HTTP server spoken to over https fails the handshake; a CA bundle that does not exist
  // is a verification (configuration) error, never silently ignored.
  LoopbackServer server([](const Recorded&) { return Reply{}; });
  boost::asio::io_context io;
  HttpOptions opts;
  opts.ca_bundle = "/nonexistent/hospital-root.pem";
  HttpEngine engine(io, opts);
  HttpRequest req;
  req.url = "https://127.0.0.1:" + std::to_string(server.port()) + "/";
  auto r = fetch(engine, req);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.error == HttpError::tls_verify || r.error == HttpError::tls) << r.error_message;
  // The message names the host and the configured bundle, whichever of the two failed first.
  EXPECT_NE(r.error_message.find("127.0.0.1:" + std::to_string(server.port())), std::string::npos)
      << r.error_message;
  EXPECT_NE(r.error_message.find("/nonexistent/hospital-root.pem"), std::string::npos)
      << r.error_message;
}

}  // namespace

namespace {

// A minimal HTTP CONNECT proxy on loopback (what a hospital's egress proxy does for https).
class ConnectProxy {
 public:
  ConnectProxy() : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { run(); });
  }
  ~ConnectProxy() {
    stop_ = true;
    boost::asio::io_context tmp;
    boost::asio::ip::tcp::socket wake(tmp);
    boost::system::error_code ec;
    wake.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> requests() {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  void run() {
    using boost::asio::ip::tcp;
    for (;;) {
      tcp::socket client(io_);
      boost::system::error_code ec;
      acceptor_.accept(client, ec);
      if (ec || stop_) return;
      boost::asio::streambuf buf;
      boost::asio::read_until(client, buf, "\r\n\r\n", ec);
      if (ec) continue;
      std::string head(boost::asio::buffers_begin(buf.data()),
                       boost::asio::buffers_end(buf.data()));
      std::string line = head.substr(0, head.find("\r\n"));
      {
        std::lock_guard lock(mu_);
        lines_.push_back(line);
      }
      if (line.rfind("CONNECT ", 0) != 0) continue;
      std::string target = line.substr(8, line.find(' ', 8) - 8);
      auto colon = target.rfind(':');
      tcp::socket upstream(io_);
      upstream.connect({boost::asio::ip::make_address(target.substr(0, colon)),
                        static_cast<unsigned short>(std::stoi(target.substr(colon + 1)))},
                       ec);
      if (ec) continue;
      boost::asio::write(
          client, boost::asio::buffer(std::string("HTTP/1.1 200 Connection established\r\n\r\n")),
          ec);
      buf.consume(head.find("\r\n\r\n") + 4);
      if (buf.size()) boost::asio::write(upstream, buf.data(), ec);
      auto pipe = [](tcp::socket& from, tcp::socket& to) {
        char chunk[16384];
        boost::system::error_code e;
        for (;;) {
          std::size_t n = from.read_some(boost::asio::buffer(chunk), e);
          if (e) break;
          boost::asio::write(to, boost::asio::buffer(chunk, n), e);
          if (e) break;
        }
        to.shutdown(tcp::socket::shutdown_send, e);
      };
      std::thread up([&] { pipe(client, upstream); });
      pipe(upstream, client);
      up.join();
    }
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> lines_;
  std::thread thread_;
};

// A real TLS endpoint (openssl s_server) with a throwaway self-signed certificate for 127.0.0.1:
// not trusted by default, trusted once it is the configured CA bundle.
TEST(HttpEngineTls, SelfSignedPeerFailsUnlessItIsTheConfiguredBundle) {
  if (std::system("command -v openssl > /dev/null") != 0)
    GTEST_SKIP() << "openssl CLI not installed";
  fe::test::TempDir tmp("fe-tls");
  const std::string dir = tmp.str();
  const std::string gen =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext "
      "subjectAltName=IP:127.0.0.1 -keyout " +
      dir + "/key.pem -out " + dir + "/cert.pem 2>/dev/null";
  ASSERT_EQ(std::system(gen.c_str()), 0);
  const std::uint16_t port = fe::test::free_port();
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::freopen("/dev/null", "w", stdout);
    (void)f;
    std::string accept = "127.0.0.1:" + std::to_string(port);
    std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
    execlp("openssl", "openssl", "s_server", "-quiet", "-accept", accept.c_str(), "-cert",
           cert.c_str(), "-key", key.c_str(), "-www", static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_TRUE(fe::test::wait_listening(port, std::chrono::seconds(10)))
      << "openssl s_server did not start";

  const std::string url = "https://127.0.0.1:" + std::to_string(port) + "/";
  {
    boost::asio::io_context io;
    HttpEngine engine(io);  // system trust store only
    HttpRequest req;
    req.url = url;
    auto r = fetch(engine, req);
    EXPECT_EQ(r.error, HttpError::tls_verify) << r.error_message;
    EXPECT_FALSE(is_transient(r.error));
  }
  {
    boost::asio::io_context io;
    HttpOptions opts;
    opts.ca_bundle = dir + "/cert.pem";  // e.g. the hospital's TLS-inspection root
    HttpEngine engine(io, opts);
    HttpRequest req;
    req.url = url;
    auto r = fetch(engine, req);
    EXPECT_EQ(r.error, HttpError::none) << r.error_message;
    EXPECT_EQ(r.status, 200);
  }
  {
    // Through an https CONNECT proxy: the tunnel is end to end, the peer still verified.
    ConnectProxy proxy;
    boost::asio::io_context io;
    HttpOptions opts;
    opts.ca_bundle = dir + "/cert.pem";
    opts.proxy = proxy.url();
    opts.no_proxy = "";  // the test's loopback target must not bypass the proxy
    HttpEngine engine(io, opts);
    HttpRequest req;
    req.url = url;
    auto r = fetch(engine, req);
    EXPECT_EQ(r.error, HttpError::none) << r.error_message;
    EXPECT_EQ(r.status, 200);
    ASSERT_EQ(proxy.requests().size(), 1u);
    EXPECT_EQ(proxy.requests()[0], "CONNECT 127.0.0.1:" + std::to_string(port) + " HTTP/1.1");
  }
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
}

}  // namespace
