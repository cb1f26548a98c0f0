#include "aws/http.hpp"

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

struct HttpEngine::Impl : std::enable_shared_from_this<Impl> {
  struct Transfer {
    Impl* owner = nullptr;
    RequestId id = 0;
    HttpRequest req;
    Callback done;
    HttpResponse resp;
    std::string endpoint;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::size_t body_offset = 0;  // for an in-memory body
    std::uint64_t body_sent = 0;  // body bytes handed to curl since the start or last rewind
    std::size_t limit = 0;
    long status_seen = 0;
    bool too_large = false;
    bool sink_stopped = false;
    bool source_failed = false;
    bool holds_slot = false;  // counted in its endpoint's `active`
    char errbuf[CURL_ERROR_SIZE] = {0};

    ~Transfer() {
      if (easy) curl_easy_cleanup(easy);
      if (headers) curl_slist_free_all(headers);
    }
  };

  struct Socket {
    explicit Socket(asio::io_context& io, curl_socket_t fd) : desc(io, fd), fd(fd) {}
    asio::posix::stream_descriptor desc;
    curl_socket_t fd;
    int want = 0;  // CURL_POLL_IN / OUT / INOUT
    bool reading = false;
    bool writing = false;
    bool removed = false;
  };

  struct Endpoint {
    std::size_t active = 0;
    std::deque<std::unique_ptr<Transfer>> waiting;
  };

  asio::io_context& io;
  HttpOptions options;
  CURLM* multi = nullptr;
  asio::steady_timer timer;
  std::unordered_map<curl_socket_t, std::shared_ptr<Socket>> sockets;
  std::unordered_map<RequestId, std::unique_ptr<Transfer>> running;  // handed to curl
  std::map<std::string, Endpoint> endpoints;
  RequestId next_id = 1;
  std::uint64_t connects = 0;

  // --- the upload token bucket (shared by every transfer of this engine) ---
  using Clock = std::chrono::steady_clock;
  struct Bandwidth {
    std::uint64_t base = 0;                 // outside the schedule's windows; 0 = unlimited
    std::vector<BandwidthWindow> schedule;  // local time of day
    std::uint64_t rate = 0;                 // in force now
    double tokens = 0;                      // bytes that may be sent now
    Clock::time_point last = Clock::now();  // of the last refill
    Clock::time_point recheck{};            // when to evaluate the schedule again
  } bw;
  std::deque<RequestId> paused;   // transfers waiting for tokens, FIFO (round robin)
  double read_chunk = 64 * 1024;  // what curl asks the read callback for (its upload buffer)
  asio::steady_timer refill_timer;
  bool refill_armed = false;

  Impl(asio::io_context& io_, HttpOptions opts)
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
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS,
                      static_cast<long>(options.max_cached_connections));
  }

  ~Impl() {
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

  static void release(Socket& s) {
    s.removed = true;
    boost::system::error_code ec;
    s.desc.cancel(ec);
    s.desc.release();  // curl owns the fd and closes it
  }

  // --- curl callbacks ------------------------------------------------------------------------

  static int socket_cb(CURL*, curl_socket_t fd, int what, void* userp, void*) {
    auto* self = static_cast<Impl*>(userp);
    if (what == CURL_POLL_REMOVE) {
      auto it = self->sockets.find(fd);
      if (it != self->sockets.end()) {
        release(*it->second);
        self->sockets.erase(it);
      }
      return 0;
    }
    auto& s = self->sockets[fd];
    if (!s) s = std::make_shared<Socket>(self->io, fd);
    s->want = what;
    self->arm(s);
    return 0;
  }

  static int timer_cb(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    self->timer.cancel();
    if (timeout_ms < 0) return 0;
    // Never call curl_multi_socket_action from inside a curl callback: defer even a 0 timeout.
    self->timer.expires_after(std::chrono::milliseconds(timeout_ms));
    std::weak_ptr<Impl> weak = self->weak_from_this();
    self->timer.async_wait([weak](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto me = weak.lock()) me->action(CURL_SOCKET_TIMEOUT, 0);
    });
    return 0;
  }

  static size_t header_cb(char* data, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    std::string_view line(data, size * n);
    if (line.substr(0, 5) == "HTTP/") {
      t->resp.headers.clear();  // a new response (after 100 Continue or a proxy CONNECT)
      return size * n;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return size * n;
    std::string name(trim(line.substr(0, colon)));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    t->resp.headers.push_back({std::move(name), std::string(trim(line.substr(colon + 1)))});
    return size * n;
  }

  static size_t write_cb(char* data, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    const size_t len = size * n;
    if (t->status_seen == 0) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status_seen);
    const bool success = t->status_seen >= 200 && t->status_seen < 300;
    if (success && t->req.sink) {
      if (!t->req.sink(std::string_view(data, len))) {
        t->sink_stopped = true;
        return 0;
      }
      return len;
    }
    if (t->resp.body.size() + len > t->limit) {
      t->too_large = true;
      return 0;
    }
    t->resp.body.append(data, len);
    return len;
  }

  static size_t read_cb(char* buf, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    Impl& self = *t->owner;
    size_t cap = size * n;
    const std::uint64_t total = t->req.source ? t->req.source->size : t->req.body.size();
    self.read_chunk = static_cast<double>(cap);
    // The final read (end of body) needs no tokens: returning 0 there means EOF, not "wait".
    if (t->body_sent < total) {
      self.refill(Clock::now());
      if (self.bw.rate > 0) {
        // Wait for a useful amount rather than trickling out tiny writes: a few ms of the rate.
        const double want =
            std::min<double>({static_cast<double>(total - t->body_sent), static_cast<double>(cap),
                              std::max(1.0, self.burst() / 4)});
        if (self.bw.tokens < want) {
          self.paused.push_back(t->id);
          self.arm_refill();
          return CURL_READFUNC_PAUSE;
        }
        cap = std::min(cap, static_cast<size_t>(self.bw.tokens));
      }
    }
    size_t got = 0;
    if (t->req.source) {
      auto r = t->req.source->read(std::span<char>(buf, cap));
      if (r < 0) {
        t->source_failed = true;
        return CURL_READFUNC_ABORT;
      }
      got = static_cast<size_t>(r);
    } else {
      size_t left = t->req.body.size() - t->body_offset;
      got = std::min(left, cap);
      std::memcpy(buf, t->req.body.data() + t->body_offset, got);
      t->body_offset += got;
    }
    t->body_sent += got;
    if (self.bw.rate > 0) self.bw.tokens -= static_cast<double>(got);
    return got;
  }

  // --- upload bandwidth --------------------------------------------------------------------

  // At most this many tokens accumulate (a fifth of a second at the rate): an idle engine does not
  // save up a burst that would overshoot the cap later, and an event loop held up for less than
  // that loses no bandwidth.
  double burst() const { return std::max(static_cast<double>(bw.rate) / 5, 1024.0); }

  static int local_minute_of_day() {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    return tm.tm_hour * 60 + tm.tm_min;
  }

  // Applies the schedule (checked at most once a second: windows are whole minutes).
  void update_rate(Clock::time_point now, bool announce = true) {
    if (now < bw.recheck) return;
    std::uint64_t r = bw.schedule.empty()
                          ? bw.base
                          : bandwidth_limit_at(bw.base, bw.schedule, local_minute_of_day());
    bw.recheck = bw.schedule.empty() ? Clock::time_point::max() : now + std::chrono::seconds(1);
    if (r == bw.rate) return;
    bw.rate = r;
    bw.tokens = std::min(bw.tokens, burst());
    if (announce)
      fe::log::info("upload bandwidth limit changed",
                    {{"BANDWIDTH_LIMIT", r ? std::to_string(r) + " B/s" : "unlimited"}});
    // Paused transfers are resumed from the refill timer, never from here: this may run inside
    // curl's read callback, where touching other handles of the multi is not allowed.
    if (!paused.empty()) arm_refill();
  }

  void refill(Clock::time_point now) {
    update_rate(now);
    if (bw.rate > 0 && now > bw.last) {
      const double dt = std::chrono::duration<double>(now - bw.last).count();
      bw.tokens = std::min(burst(), bw.tokens + dt * static_cast<double>(bw.rate));
    }
    bw.last = now;
  }

  // Resumes up to `count` paused transfers, oldest first. curl_easy_pause(CONT) only marks the
  // transfer and sets a 0 ms curl timer, so the read callback runs later from the event loop.
  void resume_paused(std::size_t count) {
    while (count > 0 && !paused.empty()) {
      RequestId id = paused.front();
      paused.pop_front();
      auto it = running.find(id);
      if (it == running.end()) continue;  // finished or cancelled meanwhile
      curl_easy_pause(it->second->easy, CURLPAUSE_CONT);
      --count;
    }
  }

  void arm_refill() {
    if (refill_armed) return;
    refill_armed = true;
    // Wake when about one read's worth has accumulated (2 to 50 ms).
    auto wait = std::chrono::milliseconds(5);
    if (bw.rate > 0)
      wait = std::chrono::milliseconds(
          std::clamp<long>(static_cast<long>(std::min(read_chunk, burst() / 4) * 1000 /
                                             static_cast<double>(bw.rate)),
                           2, 50));
    refill_timer.expires_after(wait);
    std::weak_ptr<Impl> weak = weak_from_this();
    refill_timer.async_wait([weak](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto me = weak.lock()) me->on_refill();
    });
  }

  void on_refill() {
    refill_armed = false;
    refill(Clock::now());
    if (bw.rate == 0) {
      resume_paused(paused.size());
    } else {
      // As many as the bucket can feed one full read each (the others would only pause again);
      // at least one so nobody starves.
      auto n =
          static_cast<std::size_t>(bw.tokens / std::max(1.0, std::min(read_chunk, burst() / 4)));
      resume_paused(std::max<std::size_t>(1, n));
    }
    if (!paused.empty()) arm_refill();
  }

  void set_bandwidth(std::uint64_t base, std::vector<BandwidthWindow> schedule) {
    bw.base = base;
    bw.schedule = std::move(schedule);
    bw.recheck = {};
    refill(Clock::now());
    if (!paused.empty()) arm_refill();
  }

  static int seek_cb(void* userp, curl_off_t offset, int origin) {
    auto* t = static_cast<Transfer*>(userp);
    if (origin != SEEK_SET || offset != 0) return CURL_SEEKFUNC_CANTSEEK;
    t->body_sent = 0;
    if (t->req.source) {
      if (!t->req.source->rewind || !t->req.source->rewind()) {
        t->source_failed = true;
        return CURL_SEEKFUNC_FAIL;
      }
      return CURL_SEEKFUNC_OK;
    }
    t->body_offset = 0;
    return CURL_SEEKFUNC_OK;
  }

  // --- readiness --------------------------------------------------------------------------

  // asio's epoll reactor is edge-triggered and its async_wait never checks current readiness, while
  // curl expects level-triggered notification (it may leave bytes unread, or switch from OUT to IN
  // after the peer already answered). So check with a zero-timeout poll() first and dispatch at
  // once when the socket is ready; only wait on the reactor when it is not.
  void arm(const std::shared_ptr<Socket>& s) {
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

  void on_ready(const std::shared_ptr<Socket>& s, int mask) {
    action(s->fd, mask);
    // Still wanted (and not replaced by a new socket that reused the fd number)? Wait again.
    auto it = sockets.find(s->fd);
    if (it != sockets.end() && it->second == s && !s->removed) arm(s);
  }

  void action(curl_socket_t fd, int mask) {
    auto keep = shared_from_this();  // completion callbacks may destroy the engine's owner later
    int still = 0;
    curl_multi_socket_action(multi, fd, mask, &still);
    drain();
  }

  void drain() {
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

  void finish(Transfer& t, CURLcode code) {
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

  // What an operator needs to fix a TLS failure: which host, which trust store, curl's reason.
  std::string tls_message(const Transfer& t, CURLcode code, const std::string& curl_says) const {
    const std::string host = host_of(t.req.url);
    const std::string store = options.ca_bundle
                                  ? "the configured CA bundle " + *options.ca_bundle
                                  : "the system trust store (no CA bundle configured)";
    if (code == CURLE_SSL_CACERT_BADFILE)
      return "TLS: cannot load the configured CA bundle " + options.ca_bundle.value_or("") +
             " to verify " + host + ": " + curl_says;
    if (classify(code) == HttpError::tls_verify)
      return "TLS: the certificate of " + host + " is not trusted by " + store + ": " + curl_says;
    return "TLS handshake with " + host + " failed (verifying against " + store + "): " + curl_says;
  }

  // Frees the endpoint slot, starts the next waiting request, and posts the callback.
  void complete(std::unique_ptr<Transfer> t) {
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

  void pump(Endpoint& ep) {
    while (ep.active < std::max<std::size_t>(1, options.max_per_endpoint) && !ep.waiting.empty()) {
      auto t = std::move(ep.waiting.front());
      ep.waiting.pop_front();
      start(std::move(t), ep);
    }
  }

  void start(std::unique_ptr<Transfer> t, Endpoint& ep) {
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

  bool setup(Transfer& t) {
    t.easy = curl_easy_init();
    if (!t.easy) {
      t.resp.error = HttpError::other;
      t.resp.error_message = "curl_easy_init failed";
      return false;
    }
    CURL* e = t.easy;
    auto& req = t.req;
    t.limit = req.max_response_bytes ? req.max_response_bytes : options.max_response_bytes;
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect would invalidate the signature
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, options.user_agent.c_str());
    // TLS: always verify peer and host name, for the target and for an https proxy.
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_PROXY_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY_SSL_VERIFYHOST, 2L);
    if (options.ca_bundle) {
      curl_easy_setopt(e, CURLOPT_CAINFO, options.ca_bundle->c_str());
      curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, options.ca_bundle->c_str());
    }
    // Proxy resolved here (not by curl) so the choice is the documented one; "" = direct.
    std::string proxy = proxy_for(options, req.url);
    curl_easy_setopt(e, CURLOPT_PROXY, proxy.c_str());  // curl copies strings
    const char* np = options.no_proxy ? options.no_proxy->c_str()
                                      : (env("NO_PROXY") ? env("NO_PROXY") : env("no_proxy"));
    if (np) curl_easy_setopt(e, CURLOPT_NOPROXY, np);

    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options.connect_timeout.count()));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT,
                     static_cast<long>(options.low_speed_bytes_per_second));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.low_speed_time.count()));
    if (options.request_timeout.count() > 0)
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(options.request_timeout.count()));
    // No CURLOPT_MAX_SEND_SPEED_LARGE: that caps each transfer alone; the bucket in read_cb caps
    // their sum.

    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);

    const bool has_body = req.source.has_value() || req.method == "PUT" || req.method == "POST";
    if (req.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (has_body) {
      // UPLOAD + a custom verb sends exactly our method with a Content-Length and no Content-Type
      // of curl's own, so the headers on the wire are the ones that were signed.
      curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
      curl_off_t size = req.source ? static_cast<curl_off_t>(req.source->size)
                                   : static_cast<curl_off_t>(req.body.size());
      curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, size);
      curl_easy_setopt(e, CURLOPT_READFUNCTION, &Impl::read_cb);
      curl_easy_setopt(e, CURLOPT_READDATA, &t);
      curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, &Impl::seek_cb);
      curl_easy_setopt(e, CURLOPT_SEEKDATA, &t);
    } else if (req.method != "GET") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }

    for (const auto& h : req.headers) {
      std::string line = h.name + (h.value.empty() ? ";" : ": " + h.value);
      t.headers = curl_slist_append(t.headers, line.c_str());
    }
    // No "Expect: 100-continue" (servers without it would stall each part a second); no
    // Accept header we did not ask for.
    t.headers = curl_slist_append(t.headers, "Expect:");
    if (!header_value(req.headers, "accept")) t.headers = curl_slist_append(t.headers, "Accept:");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
    return true;
  }

  RequestId submit(HttpRequest req, Callback done) {
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

  void cancel(RequestId id) {
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
};

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
