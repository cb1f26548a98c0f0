// The HTTP engine, the curl side (http_engine_impl.hpp): the callbacks curl makes (socket and
// timer registration, response headers and body, the upload body with its token bucket, rewinds),
// the bandwidth schedule, and the easy-handle options of one request (setup).
#include <curl/curl.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cctype>
#include <cstring>
#include <ctime>
#include <span>

#include "aws/http.hpp"
#include "aws/http_engine_impl.hpp"
#include "service/log.hpp"

namespace fe::aws {

using namespace http_detail;

int HttpEngine::Impl::socket_cb(CURL*, curl_socket_t fd, int what, void* userp, void*) {
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

int HttpEngine::Impl::timer_cb(CURLM*, long timeout_ms, void* userp) {
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

size_t HttpEngine::Impl::header_cb(char* data, size_t size, size_t n, void* userp) {
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

size_t HttpEngine::Impl::write_cb(char* data, size_t size, size_t n, void* userp) {
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

size_t HttpEngine::Impl::read_cb(char* buf, size_t size, size_t n, void* userp) {
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

int HttpEngine::Impl::local_minute_of_day() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  return tm.tm_hour * 60 + tm.tm_min;
}

void HttpEngine::Impl::update_rate(Clock::time_point now, bool announce) {
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

void HttpEngine::Impl::refill(Clock::time_point now) {
  update_rate(now);
  if (bw.rate > 0 && now > bw.last) {
    const double dt = std::chrono::duration<double>(now - bw.last).count();
    bw.tokens = std::min(burst(), bw.tokens + dt * static_cast<double>(bw.rate));
  }
  bw.last = now;
}

void HttpEngine::Impl::resume_paused(std::size_t count) {
  while (count > 0 && !paused.empty()) {
    RequestId id = paused.front();
    paused.pop_front();
    auto it = running.find(id);
    if (it == running.end()) continue;  // finished or cancelled meanwhile
    curl_easy_pause(it->second->easy, CURLPAUSE_CONT);
    --count;
  }
}

void HttpEngine::Impl::arm_refill() {
  if (refill_armed) return;
  refill_armed = true;
  // Wake when about one read's worth has accumulated (2 to 50 ms).
  auto wait = std::chrono::milliseconds(5);
  if (bw.rate > 0)
    wait = std::chrono::milliseconds(std::clamp<long>(
        static_cast<long>(std::min(read_chunk, burst() / 4) * 1000 / static_cast<double>(bw.rate)),
        2, 50));
  refill_timer.expires_after(wait);
  std::weak_ptr<Impl> weak = weak_from_this();
  refill_timer.async_wait([weak](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto me = weak.lock()) me->on_refill();
  });
}

void HttpEngine::Impl::on_refill() {
  refill_armed = false;
  refill(Clock::now());
  if (bw.rate == 0) {
    resume_paused(paused.size());
  } else {
    // As many as the bucket can feed one full read each (the others would only pause again);
    // at least one so nobody starves.
    auto n = static_cast<std::size_t>(bw.tokens / std::max(1.0, std::min(read_chunk, burst() / 4)));
    resume_paused(std::max<std::size_t>(1, n));
  }
  if (!paused.empty()) arm_refill();
}

void HttpEngine::Impl::set_bandwidth(std::uint64_t base, std::vector<BandwidthWindow> schedule) {
  bw.base = base;
  bw.schedule = std::move(schedule);
  bw.recheck = {};
  refill(Clock::now());
  if (!paused.empty()) arm_refill();
}

int HttpEngine::Impl::seek_cb(void* userp, curl_off_t offset, int origin) {
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

int HttpEngine::Impl::prereq_cb(void* userp, char*, char*, int, int) {
  // curl re-sends a request by itself, on a fresh connection, when a reused one closes before any
  // response byte ("Connection died, retrying a fresh connect", up to 5 times). That attempt is
  // invisible to the retry policy (aws/retry.hpp): no backoff, no quota, not counted, so one
  // logical request could reach the server max_attempts + 5 times. Refuse it: the transfer ends
  // as a receive error and the policy decides whether, and when, to try again.
  auto* t = static_cast<Transfer*>(userp);
  return ++t->requests_started > 1 ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

bool HttpEngine::Impl::setup(Transfer& t) {
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
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &Impl::prereq_cb);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, &t);

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
    // A part body in 512 KiB reads instead of curl's 64 KiB: 8x fewer read callbacks, body
    // reads (pread, decompression) and socket writes per part (issue 13: syscalls are a visible
    // share of the daemon's kernel time). Memory: one buffer per transfer in flight.
    if (size > (1 << 20)) curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
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

}  // namespace fe::aws
