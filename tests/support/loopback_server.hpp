#pragma once
// The one scripted HTTP/1.1 server on 127.0.0.1 for tests (the AWS layer, the credential
// endpoints, the response fuzz targets): it records every request (method, target, headers, body
// hash, arrival time) and answers what the test's handler returns. Reply headers go out as given,
// repeated names included; the body's Content-Length is computed (HEAD: the given one, else the
// body's size, with no body sent).
// Runs on its own thread and io_context, so the client under test has its own event loop.
// Bodies are streamed through a fixed buffer (hash + optional copy up to keep_body bytes), so a
// multi-GiB upload costs no memory here.
#include <openssl/evp.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fe::test {

struct Recorded {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;  // as received (names as sent)
  std::string body;                                          // first keep_body bytes
  std::uint64_t body_size = 0;
  std::string body_sha256;  // hex, of the whole body
  std::chrono::steady_clock::time_point at;
  std::size_t connection = 0;  // index of the TCP connection it came on

  std::string header(std::string_view name) const {
    for (auto& [k, v] : headers)
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) ==
                   std::tolower(static_cast<unsigned char>(b));
          }))
        return v;
    return {};
  }
};

struct Reply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool drop = false;  // close the connection without answering
  // >= 0: send the headers (full Content-Length) and only this many body bytes, then close.
  long truncate_body_at = -1;
  std::chrono::milliseconds delay{0};
  bool close = false;  // answer with Connection: close, then close (one request per connection)
};

class LoopbackServer {
 public:
  using Handler = std::function<Reply(const Recorded&)>;

  // keep_body: bytes of each body kept in Recorded::body. record: keep every request for
  // requests() (a fuzzer sends millions: it turns this off, memory stays flat).
  explicit LoopbackServer(Handler handler, std::size_t keep_body = 1 << 20, bool record = true)
      : handler_(std::move(handler)), keep_body_(keep_body), record_(record), acceptor_(io_) {
    namespace ip = boost::asio::ip;
    ip::tcp::endpoint ep(ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(ip::tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    boost::asio::co_spawn(io_, accept_loop(), boost::asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~LoopbackServer() {
    io_.stop();
    thread_.join();
  }

  std::uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Recorded> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::size_t connections() const { return connections_.load(); }
  void set_handler(Handler handler) {
    std::lock_guard lock(mu_);
    handler_ = std::move(handler);
  }

 private:
  boost::asio::awaitable<void> accept_loop() {
    for (;;) {
      auto sock = co_await acceptor_.async_accept(boost::asio::use_awaitable);
      std::size_t index = connections_++;
      boost::asio::co_spawn(io_, session(std::move(sock), index), boost::asio::detached);
    }
  }

  static std::string hex(const unsigned char* d, unsigned n) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (unsigned i = 0; i < n; ++i) {
      s += digits[d[i] >> 4];
      s += digits[d[i] & 15];
    }
    return s;
  }

  boost::asio::awaitable<void> session(boost::asio::ip::tcp::socket sock, std::size_t index) {
    namespace http = boost::beast::http;
    using boost::asio::use_awaitable;
    boost::beast::flat_buffer buf;
    try {
      for (;;) {
        http::request_parser<http::buffer_body> parser;
        parser.body_limit(std::numeric_limits<std::uint64_t>::max());
        co_await http::async_read_header(sock, buf, parser, use_awaitable);
        Recorded rec;
        rec.at = std::chrono::steady_clock::now();
        rec.connection = index;
        auto& msg = parser.get();
        rec.method = std::string(msg.method_string());
        rec.target = std::string(msg.target());
        for (auto& f : msg)
          rec.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
        std::vector<char> chunk(256 * 1024);
        while (!parser.is_done()) {
          msg.body().data = chunk.data();
          msg.body().size = chunk.size();
          boost::system::error_code ec;
          co_await http::async_read(sock, buf, parser,
                                    boost::asio::redirect_error(use_awaitable, ec));
          if (ec && ec != http::error::need_buffer) {
            EVP_MD_CTX_free(ctx);
            throw boost::system::system_error(ec);
          }
          std::size_t got = chunk.size() - msg.body().size;
          EVP_DigestUpdate(ctx, chunk.data(), got);
          rec.body_size += got;
          if (rec.body.size() < keep_body_)
            rec.body.append(chunk.data(), std::min(got, keep_body_ - rec.body.size()));
        }
        unsigned char md[32];
        unsigned mdlen = 0;
        EVP_DigestFinal_ex(ctx, md, &mdlen);
        EVP_MD_CTX_free(ctx);
        rec.body_sha256 = hex(md, mdlen);
        Handler handler;
        {
          std::lock_guard lock(mu_);
          if (record_) requests_.push_back(rec);
          handler = handler_;
        }
        Reply reply = handler(rec);
        if (reply.delay.count() > 0) {
          boost::asio::steady_timer t(io_, reply.delay);
          co_await t.async_wait(use_awaitable);
        }
        if (reply.drop) co_return;
        http::response<http::string_body> res;
        res.version(11);
        res.result(static_cast<unsigned>(reply.status));
        bool has_length = false;
        for (auto& [k, v] : reply.headers) {
          res.insert(k, v);
          if (boost::beast::iequals(k, "Content-Length")) has_length = true;
        }
        const bool head = rec.method == "HEAD";
        if (!head) {
          res.body() = reply.body;
          res.prepare_payload();
        } else if (!has_length) {
          res.content_length(reply.body.size());
        }
        res.keep_alive(!reply.close);
        if (reply.truncate_body_at >= 0 && !head) {
          http::response_serializer<http::string_body> sr(res);
          co_await http::async_write_header(sock, sr, use_awaitable);
          std::size_t n = std::min<std::size_t>(reply.body.size(),
                                                static_cast<std::size_t>(reply.truncate_body_at));
          co_await boost::asio::async_write(sock, boost::asio::buffer(reply.body.data(), n),
                                            use_awaitable);
          co_return;
        }
        if (head) {
          http::response_serializer<http::string_body> sr(res);
          co_await http::async_write_header(sock, sr, use_awaitable);
        } else {
          co_await http::async_write(sock, res, use_awaitable);
        }
        if (reply.close) {
          boost::system::error_code ec;
          sock.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
          co_return;
        }
      }
    } catch (const std::exception& e) {
      if (std::getenv("FE_TEST_DEBUG")) std::fprintf(stderr, "loopback server: %s\n", e.what());
      // client closed the connection
    }
  }

  Handler handler_;
  std::size_t keep_body_;
  bool record_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<Recorded> requests_;
  std::atomic<std::size_t> connections_{0};
};

}  // namespace fe::test
