#pragma once
// HttpEngine::Impl, private to daemon/aws: the curl-multi engine on the Asio loop (see http.hpp
// for the contract). Its parts:
//   http.cpp           transfer lifecycle: queueing per endpoint, socket readiness, completion
//                      and error classification
//   http_transfer.cpp  what curl calls back (sockets, timers, headers, body in and out), the
//                      upload token bucket, and the easy-handle options of one request
#include <curl/curl.h>

#include <algorithm>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "aws/http.hpp"

namespace fe::aws {

namespace http_detail {
// s without leading blanks and trailing blanks or line ends.
std::string_view trim(std::string_view s);
// The environment variable, nullptr when unset or empty.
const char* env(const char* name);
}  // namespace http_detail

namespace asio = boost::asio;

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
    int requests_started = 0;  // pre-request callbacks; > 1: curl's own re-send, refused
    bool holds_slot = false;   // counted in its endpoint's `active`
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
  Impl(asio::io_context& io_, HttpOptions opts);
  ~Impl();
  static void release(Socket& s);

  // --- curl callbacks ------------------------------------------------------------------------

  static int socket_cb(CURL*, curl_socket_t fd, int what, void* userp, void*);
  static int timer_cb(CURLM*, long timeout_ms, void* userp);
  static size_t header_cb(char* data, size_t size, size_t n, void* userp);
  static size_t write_cb(char* data, size_t size, size_t n, void* userp);
  static size_t read_cb(char* buf, size_t size, size_t n, void* userp);

  // --- upload bandwidth --------------------------------------------------------------------

  // At most this many tokens accumulate (a fifth of a second at the rate): an idle engine does not
  // save up a burst that would overshoot the cap later, and an event loop held up for less than
  // that loses no bandwidth.
  double burst() const { return std::max(static_cast<double>(bw.rate) / 5, 1024.0); }

  static int local_minute_of_day();

  // Applies the schedule (checked at most once a second: windows are whole minutes).
  void update_rate(Clock::time_point now, bool announce = true);
  void refill(Clock::time_point now);

  // Resumes up to `count` paused transfers, oldest first. curl_easy_pause(CONT) only marks the
  // transfer and sets a 0 ms curl timer, so the read callback runs later from the event loop.
  void resume_paused(std::size_t count);
  void arm_refill();
  void on_refill();
  void set_bandwidth(std::uint64_t base, std::vector<BandwidthWindow> schedule);
  static int seek_cb(void* userp, curl_off_t offset, int origin);
  static int prereq_cb(void* userp, char* remote_ip, char* local_ip, int remote_port,
                       int local_port);

  // --- readiness --------------------------------------------------------------------------

  // asio's epoll reactor is edge-triggered and its async_wait never checks current readiness, while
  // curl expects level-triggered notification (it may leave bytes unread, or switch from OUT to IN
  // after the peer already answered). So check with a zero-timeout poll() first and dispatch at
  // once when the socket is ready; only wait on the reactor when it is not.
  void arm(const std::shared_ptr<Socket>& s);
  void on_ready(const std::shared_ptr<Socket>& s, int mask);
  void action(curl_socket_t fd, int mask);
  void drain();
  void finish(Transfer& t, CURLcode code);

  // What an operator needs to fix a TLS failure: which host, which trust store, curl's reason.
  std::string tls_message(const Transfer& t, CURLcode code, const std::string& curl_says) const;

  // Frees the endpoint slot, starts the next waiting request, and posts the callback.
  void complete(std::unique_ptr<Transfer> t);
  void pump(Endpoint& ep);
  void start(std::unique_ptr<Transfer> t, Endpoint& ep);
  bool setup(Transfer& t);
  RequestId submit(HttpRequest req, Callback done);
  void cancel(RequestId id);
};

}  // namespace fe::aws
