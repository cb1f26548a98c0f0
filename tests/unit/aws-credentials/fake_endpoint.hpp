#pragma once
// The EC2 metadata service and the ECS/EKS container credentials endpoint, as the credential
// tests script them: tests/support's LoopbackServer answering with a JSON (or other) body, one
// request per connection as those endpoints do; every request is recorded, so tests can check
// what the client sent (token headers, methods, paths).
#include <string>
#include <vector>

#include "loopback_server.hpp"

namespace fe::test {

using SeenRequest = Recorded;

struct FakeReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

class FakeEndpoint {
 public:
  using Handler = std::function<FakeReply(const SeenRequest&)>;

  explicit FakeEndpoint(Handler h) : server_(adapt(std::move(h))) {}
  std::string url() const { return server_.url(); }
  std::vector<SeenRequest> seen() const { return server_.requests(); }
  void set_handler(Handler h) { server_.set_handler(adapt(std::move(h))); }

 private:
  static LoopbackServer::Handler adapt(Handler h) {
    return [h = std::move(h)](const Recorded& request) {
      FakeReply r = h(request);
      Reply reply;
      reply.status = r.status;
      reply.headers = {{"Content-Type", r.content_type}};
      reply.body = std::move(r.body);
      reply.close = true;
      return reply;
    };
  }
  LoopbackServer server_;
};

}  // namespace fe::test
