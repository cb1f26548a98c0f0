// The HTTP engine: curl-multi on the Asio loop (http.hpp for the contract). This file: helpers,
// the transfer lifecycle (per-endpoint queues, readiness, completion) and HttpEngine itself; the
// curl callbacks, the bandwidth cap and request setup are http_transfer.cpp.
#include "aws/http.hpp"
#include "aws/http_engine_impl.hpp"

#include <curl/curl.h>
#include <poll.h>

#include <algorithm>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "service/log.hpp"

namespace fe::aws {

namespace asio = boost::asio;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

}  // namespace

namespace http_detail {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw std::runtime_error("curl_global_init failed");
  });
}

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

}  // namespace http_detail

using namespace http_detail;

namespace {

// scheme://host:port of a URL, the unit of connection limits.
std::string endpoint_key(const std::string& url) {
  CURLU* u = curl_url();
  std::string key;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    char* port = nullptr;
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    key = std::string(scheme ? scheme : "") + "://" + (host ? host : "") + ":" + (port ? port : "");
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  } else {
    key = url;  // curl will report the malformed URL itself
  }
  curl_url_cleanup(u);
  return key;
}

// host[:port] of a URL for messages (never the user info or the path).
std::string host_of(const std::string& url) {
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* host = nullptr;
    char* port = nullptr;
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    out = std::string(host ? host : "") + (port ? std::string(":") + port : "");
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return out.empty() ? "the server" : out;
}

HttpError classify(CURLcode code) {
  switch (code) {
    case CURLE_OK:
      return HttpError::none;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
      return HttpError::connect;
    case CURLE_OPERATION_TIMEDOUT:
      return HttpError::timeout;
    case CURLE_SSL_CONNECT_ERROR:
      return HttpError::tls;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
      return HttpError::tls_verify;
    case CURLE_SEND_ERROR:
      return HttpError::send;
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return HttpError::receive;
    default:
      return HttpError::other;
  }
}

}  // namespace

std::uint64_t bandwidth_limit_at(std::uint64_t base, const std::vector<BandwidthWindow>& schedule,
                                 int minute_of_day) {
  for (const auto& w : schedule) {
    bool in;
    if (w.from_minute == w.to_minute)
      in = true;  // the whole day
    else if (w.from_minute < w.to_minute)
      in = minute_of_day >= w.from_minute && minute_of_day < w.to_minute;
    else  // wraps midnight
      in = minute_of_day >= w.from_minute || minute_of_day < w.to_minute;
    if (in) return w.bytes_per_second;
  }
  return base;
}

std::optional<std::string_view> header_value(const Headers& headers, std::string_view name) {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return std::string_view(h.value);
  return std::nullopt;
}

BodySource BodySource::from_view(std::string_view bytes) {
  auto pos = std::make_shared<std::size_t>(0);
  BodySource s;
  s.size = bytes.size();
  s.read = [bytes, pos](std::span<char> buf) -> std::ptrdiff_t {
    std::size_t n = std::min(buf.size(), bytes.size() - *pos);
    std::memcpy(buf.data(), bytes.data() + *pos, n);
    *pos += n;
    return static_cast<std::ptrdiff_t>(n);
  };
  s.rewind = [pos] {
    *pos = 0;
    return true;
  };
  return s;
}

std::string_view to_string(HttpError e) {
  switch (e) {
    case HttpError::none:
      return "none";
    case HttpError::connect:
      return "connect";
    case HttpError::timeout:
      return "timeout";
    case HttpError::tls:
      return "tls";
    case HttpError::tls_verify:
      return "tls_verify";
    case HttpError::send:
      return "send";
    case HttpError::receive:
      return "receive";
    case HttpError::too_large:
      return "too_large";
    case HttpError::aborted:
      return "aborted";
    case HttpError::body_source:
      return "body_source";
    case HttpError::cancelled:
      return "cancelled";
    case HttpError::other:
      return "other";
  }
  return "other";
}

bool is_transient(HttpError e) {
  switch (e) {
    case HttpError::connect:
    case HttpError::timeout:
    case HttpError::tls:
    case HttpError::send:
    case HttpError::receive:
      return true;
    default:
      return false;
  }
}

bool is_timeout(HttpError e) {
  return e == HttpError::timeout;
}

std::string HttpEngine::proxy_for(const HttpOptions& options, std::string_view url) {
  if (options.proxy) return *options.proxy;
  const bool https = url.substr(0, 8) == "https://";
  // The upper-case HTTP_PROXY is honoured too (AWS SDK behaviour): this is a daemon, not a CGI
  // program, so the "httpoxy" header injection that made curl ignore it does not apply.
  const char* names_https[] = {"HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"};
  const char* names_http[] = {"HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"};
  for (const char* n : https ? names_https : names_http)
    if (const char* v = env(n)) return v;
  return "";
}

// ---------------------------------------------------------------------------------------------

HttpEngine::Impl::Impl(asio::io_context& io_, HttpOptions opts)
    : io(io_), options(std::move(opts)), timer(io_), refill_timer(io_) {
  bw.base = options.max_send_bytes_per_second;
  bw.schedule = options.bandwidth_schedule;
  update_rate(Clock::now(), false);
  global_init();
  multi = curl_multi_init();
  if (!multi) throw std::runtime_error("curl_multi_init failed");
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &Impl::socket_cb);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &Impl::timer_cb);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(options.max_cached_connections));
}

HttpEngine::Impl::~Impl() {
  timer.cancel();
  refill_timer.cancel();
  for (auto& [id, t] : running) curl_multi_remove_handle(multi, t->easy);
  running.clear();
  for (auto& [fd, s] : sockets) release(*s);
  sockets.clear();
  curl_multi_cleanup(multi);  // closes cached connections (their REMOVE finds nothing left)
  for (auto& [fd, s] : sockets) release(*s);
  sockets.clear();
}

void HttpEngine::Impl::release(Socket& s) {
  s.removed = true;
  boost::system::error_code ec;
  s.desc.cancel(ec);
  s.desc.release();  // curl owns the fd and closes it
}

void HttpEngine::Impl::arm(const std::shared_ptr<Socket>& s) {
  std::weak_ptr<Impl> weak = weak_from_this();
  auto ready = [&](short ev) {
    pollfd p{s->fd, ev, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (ev | POLLERR | POLLHUP)) != 0;
  };
  if ((s->want & CURL_POLL_IN) && !s->reading) {
    s->reading = true;
    auto h = [weak, s](const boost::system::error_code& ec) {
      s->reading = false;
      if (ec || s->removed) return;
      if (auto me = weak.lock()) me->on_ready(s, CURL_CSELECT_IN);
    };
    if (ready(POLLIN))
      asio::post(io, [h] { h({}); });
    else
      s->desc.async_wait(asio::posix::stream_descriptor::wait_read, h);
  }
  if ((s->want & CURL_POLL_OUT) && !s->writing) {
    s->writing = true;
    auto h = [weak, s](const boost::system::error_code& ec) {
      s->writing = false;
      if (ec || s->removed) return;
      if (auto me = weak.lock()) me->on_ready(s, CURL_CSELECT_OUT);
    };
    if (ready(POLLOUT))
      asio::post(io, [h] { h({}); });
    else
      s->desc.async_wait(asio::posix::stream_descriptor::wait_write, h);
  }
}

void HttpEngine::Impl::on_ready(const std::shared_ptr<Socket>& s, int mask) {
  action(s->fd, mask);
  // Still wanted (and not replaced by a new socket that reused the fd number)? Wait again.
  auto it = sockets.find(s->fd);
  if (it != sockets.end() && it->second == s && !s->removed) arm(s);
}

void HttpEngine::Impl::action(curl_socket_t fd, int mask) {
  auto keep = shared_from_this();  // completion callbacks may destroy the engine's owner later
  int still = 0;
  curl_multi_socket_action(multi, fd, mask, &still);
  drain();
}

void HttpEngine::Impl::drain() {
  CURLMsg* msg;
  int left = 0;
  while ((msg = curl_multi_info_read(multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    CURLcode code = msg->data.result;
    Transfer* raw = nullptr;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, reinterpret_cast<char**>(&raw));
    curl_multi_remove_handle(multi, easy);
    auto it = running.find(raw->id);
    if (it == running.end()) continue;
    std::unique_ptr<Transfer> t = std::move(it->second);
    running.erase(it);
    finish(*t, code);
    complete(std::move(t));
  }
}

void HttpEngine::Impl::finish(Transfer& t, CURLcode code) {
  auto& r = t.resp;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &r.status);
  curl_off_t up = 0, down = 0;
  curl_easy_getinfo(t.easy, CURLINFO_SIZE_UPLOAD_T, &up);
  curl_easy_getinfo(t.easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
  r.bytes_sent = static_cast<std::uint64_t>(up);
  r.bytes_received = static_cast<std::uint64_t>(down);
  curl_easy_getinfo(t.easy, CURLINFO_TOTAL_TIME, &r.seconds);
  long nconn = 0;
  curl_easy_getinfo(t.easy, CURLINFO_NUM_CONNECTS, &nconn);
  connects += static_cast<std::uint64_t>(nconn);
  if (code == CURLE_OK) return;
  if (t.too_large) {
    r.error = HttpError::too_large;
    r.error_message = "response body exceeds " + std::to_string(t.limit) + " bytes";
  } else if (t.sink_stopped) {
    r.error = HttpError::aborted;
    r.error_message = "response sink stopped the transfer";
  } else if (t.requests_started > 1) {
    r.error = HttpError::receive;
    r.error_message =
        "connection closed before any response (a reused connection); left to the "
        "retry policy, not re-sent by curl";
  } else if (t.source_failed) {
    r.error = HttpError::body_source;
    r.error_message = "request body source failed";
  } else {
    r.error = classify(code);
    r.error_message = t.errbuf[0] ? std::string(t.errbuf) : curl_easy_strerror(code);
    while (!r.error_message.empty() && r.error_message.back() == '\n') r.error_message.pop_back();
    if (r.error == HttpError::tls_verify || r.error == HttpError::tls)
      r.error_message = tls_message(t, code, r.error_message);
  }
}

std::string HttpEngine::Impl::tls_message(const Transfer& t, CURLcode code,
                                          const std::string& curl_says) const {
  const std::string host = host_of(t.req.url);
  const std::string store = options.ca_bundle ? "the configured CA bundle " + *options.ca_bundle
                                              : "the system trust store (no CA bundle configured)";
  if (code == CURLE_SSL_CACERT_BADFILE)
    return "TLS: cannot load the configured CA bundle " + options.ca_bundle.value_or("") +
           " to verify " + host + ": " + curl_says;
  if (classify(code) == HttpError::tls_verify)
    return "TLS: the certificate of " + host + " is not trusted by " + store + ": " + curl_says;
  return "TLS handshake with " + host + " failed (verifying against " + store + "): " + curl_says;
}

void HttpEngine::Impl::complete(std::unique_ptr<Transfer> t) {
  auto ep = endpoints.find(t->endpoint);
  if (ep != endpoints.end() && t->holds_slot) {
    t->holds_slot = false;
    if (ep->second.active > 0) --ep->second.active;
    pump(ep->second);
  }
  auto cb = std::move(t->done);
  auto resp = std::make_shared<HttpResponse>(std::move(t->resp));
  t.reset();  // release the easy handle (connection goes back to the cache)
  std::weak_ptr<Impl> weak = weak_from_this();
  asio::post(io, [weak, cb = std::move(cb), resp]() mutable {
    if (!weak.lock()) return;
    cb(std::move(*resp));
  });
}

void HttpEngine::Impl::pump(Endpoint& ep) {
  while (ep.active < std::max<std::size_t>(1, options.max_per_endpoint) && !ep.waiting.empty()) {
    auto t = std::move(ep.waiting.front());
    ep.waiting.pop_front();
    start(std::move(t), ep);
  }
}

void HttpEngine::Impl::start(std::unique_ptr<Transfer> t, Endpoint& ep) {
  ++ep.active;
  t->holds_slot = true;
  if (!setup(*t)) {
    complete(std::move(t));  // reported through the normal path
    return;
  }
  CURLMcode mc = curl_multi_add_handle(multi, t->easy);
  if (mc != CURLM_OK) {
    t->resp.error = HttpError::other;
    t->resp.error_message = curl_multi_strerror(mc);
    complete(std::move(t));
    return;
  }
  running.emplace(t->id, std::move(t));
}

HttpEngine::RequestId HttpEngine::Impl::submit(HttpRequest req, Callback done) {
  auto t = std::make_unique<Transfer>();
  t->owner = this;
  t->id = next_id++;
  t->req = std::move(req);
  t->done = std::move(done);
  t->endpoint = endpoint_key(t->req.url);
  RequestId id = t->id;
  auto& ep = endpoints[t->endpoint];
  ep.waiting.push_back(std::move(t));
  // Start from the event loop, so the callback can never run inside submit().
  std::weak_ptr<Impl> weak = weak_from_this();
  std::string key = ep.waiting.back()->endpoint;
  asio::post(io, [weak, key] {
    if (auto me = weak.lock()) {
      auto it = me->endpoints.find(key);
      if (it != me->endpoints.end()) me->pump(it->second);
    }
  });
  return id;
}

void HttpEngine::Impl::cancel(RequestId id) {
  if (auto it = running.find(id); it != running.end()) {
    auto t = std::move(it->second);
    running.erase(it);
    curl_multi_remove_handle(multi, t->easy);
    t->resp.error = HttpError::cancelled;
    t->resp.error_message = "cancelled";
    complete(std::move(t));
    return;
  }
  for (auto& [key, ep] : endpoints) {
    for (auto it = ep.waiting.begin(); it != ep.waiting.end(); ++it) {
      if ((*it)->id != id) continue;
      auto t = std::move(*it);
      ep.waiting.erase(it);
      t->resp.error = HttpError::cancelled;
      t->resp.error_message = "cancelled";
      complete(std::move(t));  // queued: holds no slot
      return;
    }
  }
}

HttpEngine::HttpEngine(asio::io_context& io, HttpOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

HttpEngine::~HttpEngine() = default;

HttpEngine::RequestId HttpEngine::submit(HttpRequest request, Callback done) {
  return impl_->submit(std::move(request), std::move(done));
}

void HttpEngine::cancel(RequestId id) {
  impl_->cancel(id);
}

void HttpEngine::cancel_all() {
  std::vector<RequestId> ids;
  for (auto& [id, t] : impl_->running) ids.push_back(id);
  for (auto& [key, ep] : impl_->endpoints)
    for (auto& t : ep.waiting) ids.push_back(t->id);
  for (auto id : ids) impl_->cancel(id);
}

std::size_t HttpEngine::active() const {
  return impl_->running.size();
}

std::size_t HttpEngine::queued() const {
  std::size_t n = 0;
  for (auto& [key, ep] : impl_->endpoints) n += ep.waiting.size();
  return n;
}

void HttpEngine::set_bandwidth(std::uint64_t bytes_per_second,
                               std::vector<BandwidthWindow> schedule) {
  impl_->set_bandwidth(bytes_per_second, std::move(schedule));
}

std::uint64_t HttpEngine::current_bandwidth_limit() const {
  impl_->update_rate(std::chrono::steady_clock::now());
  return impl_->bw.rate;
}

std::uint64_t HttpEngine::connections_opened() const {
  return impl_->connects;
}
asio::io_context& HttpEngine::io() const {
  return impl_->io;
}
const HttpOptions& HttpEngine::options() const {
  return impl_->options;
}

}  // namespace fe::aws
