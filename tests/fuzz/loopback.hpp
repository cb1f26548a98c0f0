#pragma once
// A canned-response HTTP/1.1 server on 127.0.0.1 (an ephemeral port) for the response fuzz
// targets: whatever request arrives gets the response set last with set_response(). It lets the
// fuzzers drive the real S3Client / HealthLakeClient (libcurl, AwsCaller, signing, error typing,
// body parsing) with fuzzed status, headers and bodies, with no mock in between.
// Boost.Beast synchronous I/O; one thread per connection (curl may open a second connection while
// the first is idle in the server's read).
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace fe::fuzz {

struct CannedResponse {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

class LoopbackServer {
 public:
  LoopbackServer()
      : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}),
        port_(acceptor_.local_endpoint().port()) {
    std::thread([this] { accept_loop(); }).detach();
  }
  // Lives for the whole fuzzing process (a function-local static): threads are never joined.
  unsigned short port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void set_response(CannedResponse r) {
    std::lock_guard lock(mu_);
    response_ = std::move(r);
  }

 private:
  void accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      boost::asio::ip::tcp::socket sock(io_);
      acceptor_.accept(sock, ec);
      if (ec) continue;
      std::thread([this, s = std::move(sock)]() mutable { serve(std::move(s)); }).detach();
    }
  }

  void serve(boost::asio::ip::tcp::socket sock) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buf;
    for (;;) {
      boost::system::error_code ec;
      http::request_parser<http::string_body> parser;
      parser.body_limit(64u << 20);
      http::read(sock, buf, parser, ec);
      if (ec) return;
      const bool head = parser.get().method() == http::verb::head;
      CannedResponse r;
      {
        std::lock_guard lock(mu_);
        r = response_;
      }
      http::response<http::string_body> res;
      res.result(r.status);
      res.version(11);
      res.keep_alive(true);
      bool has_length = false;
      for (auto& [k, v] : r.headers) {
        res.insert(k, v);
        if (boost::beast::iequals(k, "content-length")) has_length = true;
      }
      if (head) {
        // HEAD: headers only; Content-Length describes the object (HeadObject reads it).
        if (!has_length) res.set(http::field::content_length, std::to_string(r.body.size()));
        http::response_serializer<http::string_body> sr(res);
        http::write_header(sock, sr, ec);
      } else {
        res.body() = std::move(r.body);
        res.prepare_payload();
        http::write(sock, res, ec);
      }
      if (ec) return;
    }
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  unsigned short port_;
  std::mutex mu_;
  CannedResponse response_;
};

// Splits a fuzz input into a canned response:
//   byte 0: operation (the caller's choice), byte 1: status (index into `statuses`),
//   then "Name: value" lines up to the first empty line, then the body.
// Header names are reduced to token characters and values lose CR/LF so the response stays one
// well-formed HTTP message; framing headers (Content-Length except on HEAD, Transfer-Encoding,
// Connection) and Location are dropped: the fuzzer tests our parsing, not curl's framing, and
// nothing may point the client anywhere but loopback.
inline CannedResponse split_input(std::string_view in, const std::vector<unsigned>& statuses,
                                  bool head) {
  CannedResponse r;
  r.status = statuses[in.size() > 1 ? static_cast<unsigned char>(in[1]) % statuses.size() : 0];
  in = in.size() > 2 ? in.substr(2) : std::string_view{};
  while (!in.empty()) {
    auto nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
    if (line.empty()) break;
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string name, value;
    for (char c : line.substr(0, colon))
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') name.push_back(c);
    for (char c : line.substr(colon + 1))
      if (c != '\r' && c != '\n' && c != '\0') value.push_back(c);
    if (name.empty()) continue;
    for (const char* drop : {"content-length", "transfer-encoding", "connection", "location",
                             "trailer", "upgrade", "keep-alive"})
      if (boost::beast::iequals(name, drop) &&
          !(head && name.size() == 14 && boost::beast::iequals(name, "content-length")))
        name.clear();
    if (head && boost::beast::iequals(name, "content-length") &&
        (value.empty() || value.size() > 18 ||
         value.find_first_not_of("0123456789 ") != std::string::npos))
      name.clear();  // curl rejects a bad length before our code runs
    if (!name.empty()) r.headers.emplace_back(std::move(name), std::move(value));
  }
  r.body = std::string(in);
  return r;
}

}  // namespace fe::fuzz
