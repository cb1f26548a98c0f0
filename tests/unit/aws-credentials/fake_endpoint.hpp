#pragma once
// A tiny HTTP/1.1 server on 127.0.0.1 (Boost.Beast) standing in for the EC2 metadata service and
// the ECS/EKS container credentials endpoint. Each request is answered by a handler; requests are
// recorded so tests can check what the client sent (token headers, methods, paths).
#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fe::test {

namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

struct SeenRequest {
  std::string method, target, body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string header(std::string_view name) const {
    for (auto& [k, v] : headers)
      if (boost::beast::iequals(k, name)) return v;
    return {};
  }
};

struct FakeReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

class FakeEndpoint {
 public:
  using Handler = std::function<FakeReply(const SeenRequest&)>;

  explicit FakeEndpoint(Handler h) : handler_(std::move(h)), acceptor_(ioc_) {
    tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(boost::asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~FakeEndpoint() {
    boost::asio::post(ioc_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    ioc_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<SeenRequest> seen() const {
    std::lock_guard lk(mu_);
    return seen_;
  }
  void set_handler(Handler h) {
    std::lock_guard lk(mu_);
    handler_ = std::move(h);
  }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
      if (ec) return;
      serve(std::move(sock));  // one request per connection; the client is tiny and sequential
      accept();
    });
  }
  void serve(tcp::socket sock) {
    boost::beast::flat_buffer buf;
    http::request<http::string_body> req;
    boost::system::error_code ec;
    http::read(sock, buf, req, ec);
    if (ec) return;
    SeenRequest s;
    s.method = std::string(req.method_string());
    s.target = std::string(req.target());
    s.body = req.body();
    for (auto& f : req)
      s.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    Handler h;
    {
      std::lock_guard lk(mu_);
      seen_.push_back(s);
      h = handler_;
    }
    FakeReply r = h(s);
    http::response<http::string_body> res{static_cast<http::status>(r.status), req.version()};
    res.set(http::field::content_type, r.content_type);
    res.keep_alive(false);
    res.body() = r.body;
    res.prepare_payload();
    http::write(sock, res, ec);
    sock.shutdown(tcp::socket::shutdown_both, ec);
  }

  Handler handler_;
  boost::asio::io_context ioc_;
  tcp::acceptor acceptor_;
  unsigned short port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<SeenRequest> seen_;
};

}  // namespace fe::test
