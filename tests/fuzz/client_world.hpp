#pragma once
// What the response fuzz targets share: a real AWS client (S3Client or HealthLakeClient) wired
// to tests/support's loopback server answering the reply set last (set_reply, canned_reply.hpp),
// on its own io_context, with one attempt per call (no backoff sleeps) and never a proxy from the
// environment.
#include <boost/asio/io_context.hpp>
#include <optional>
#include <string>

#include "aws/http.hpp"
#include "aws/http_call.hpp"
#include "canned_reply.hpp"

namespace fe::fuzz {

template <class Client>
struct ClientWorld {
  // Keeps no request (millions of them) and no body.
  fe::test::LoopbackServer server{[](const fe::test::Recorded&) { return fe::test::Reply{}; }, 0,
                                  false};
  boost::asio::io_context io;
  aws::HttpEngine http;
  aws::AwsCaller caller;
  Client client;

  // endpoint: the ClientConfig field that points the client at the server
  // (&ClientConfig::s3_endpoint or &ClientConfig::healthlake_endpoint).
  explicit ClientWorld(std::optional<std::string> aws::ClientConfig::*endpoint)
      : http(io, config(endpoint).http),
        caller(http, config(endpoint),
               aws::static_credentials({"AKIDFUZZ", "fuzz-secret", "", std::nullopt, "fuzz"})),
        client(caller) {}

  // What every request gets from now on.
  void set_reply(fe::test::Reply r) {
    server.set_handler([r = std::move(r)](const fe::test::Recorded&) { return r; });
  }

 private:
  aws::ClientConfig config(std::optional<std::string> aws::ClientConfig::*endpoint) const {
    aws::ClientConfig c;
    c.region = "us-east-1";
    c.*endpoint = server.url();
    c.max_attempts = 1;  // no backoff sleeps: one exchange per input
    c.http.proxy = "";   // never a proxy from the environment: loopback only
    c.http.max_response_bytes = 1u << 20;
    return c;
  }
};

}  // namespace fe::fuzz
