#pragma once
// Asynchronous HTTP engine: libcurl's multi interface driven by a Boost.Asio io_context.
//
// One io_context thread runs every transfer: curl tells us which sockets to watch
// (CURLMOPT_SOCKETFUNCTION, watched with asio::posix::stream_descriptor::async_wait) and when to
// wake it (CURLMOPT_TIMERFUNCTION, an asio::steady_timer); no thread per request.
//
// Contract:
// - submit(), cancel(), set_bandwidth() and the destructor must be called on the io_context's
//   thread (or before it runs). Completion callbacks always run on that thread, never inside
//   submit() itself.
// - Exactly one callback per submitted request, unless the engine is destroyed first (then none).
// - Requests to one endpoint (scheme://host:port) beyond HttpOptions::max_per_endpoint wait in a
//   FIFO queue; connections are reused (curl's connection cache).
// - TLS peers are always verified (HttpOptions::ca_bundle adds a trust store); nothing can turn
//   verification off.
// - The engine neither signs nor retries; the S3 and HealthLake clients do that per attempt.
// - Upload bandwidth: every request body (upload parts, small XML/JSON bodies alike) draws from one
//   token bucket per engine, so HttpOptions::max_send_bytes_per_second caps the sum of all
//   transfers, however many run at once. A transfer that finds the bucket empty is paused
//   (CURL_READFUNC_PAUSE) and resumed by the bucket's refill timer on the io_context. The daemon
//   has one engine, so the cap is daemon-wide. Downloads are not limited.
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "aws/client_config.hpp"
#include "aws/sigv4.hpp"

namespace fe::aws {

// Header is aws/sigv4.hpp's {name, value}: what the signer signs is what curl sends.
using Headers = std::vector<Header>;

// Case-insensitive lookup of the first match's value.
std::optional<std::string_view> header_value(const Headers& headers, std::string_view name);

// A request body streamed in pieces (an upload part read from the spool, a zstd frame being
// decompressed...). The length must be known up front: S3 requires Content-Length and the signer
// may need it.
struct BodySource {
  std::uint64_t size = 0;
  // Copy up to buf.size() bytes into buf; return the count (0 only once size bytes were given),
  // or -1 to abort the request (the response then has error == HttpError::body_source).
  std::function<std::ptrdiff_t(std::span<char> buf)> read;
  // Start again from byte 0 (curl may need it on a redirect or reconnect; the clients use it to
  // retry). Return false when that is impossible. May be empty: not rewindable.
  std::function<bool()> rewind;

  // A source over bytes the caller keeps alive until completion.
  static BodySource from_view(std::string_view bytes);
};

struct HttpRequest {
  std::string method = "GET";  // GET HEAD PUT POST DELETE
  std::string url;             // absolute, already percent-encoded
  Headers headers;             // sent exactly as given (the signer signs these)
  // Body: `source` when set, else `body` (PUT/POST always send a Content-Length, even 0).
  std::string body;
  std::optional<BodySource> source;
  // Optional destination of a 2xx response body (streamed, not size-limited). Return false to abort
  // (error == HttpError::aborted). Non-2xx bodies are always captured into HttpResponse::body so
  // error documents can be parsed.
  std::function<bool(std::string_view chunk)> sink;
  // Cap on a body captured into memory; 0 = HttpOptions::max_response_bytes.
  std::size_t max_response_bytes = 0;
};

enum class HttpError {
  none,
  connect,      // DNS, TCP connect, proxy connect failed
  timeout,      // connect timeout, low-speed timeout, request timeout
  tls,          // handshake failed (transient)
  tls_verify,   // certificate not trusted / wrong host: a configuration problem, not retried
  send,         // connection broke while sending
  receive,      // connection broke while receiving / empty reply
  too_large,    // captured response exceeded its limit
  aborted,      // the sink asked to stop
  body_source,  // the BodySource failed or could not rewind
  cancelled,    // cancel() or engine shutdown
  other,
};
std::string_view to_string(HttpError e);
// Transport failures worth another attempt (connection and timeout classes of AWS standard mode).
bool is_transient(HttpError e);
bool is_timeout(HttpError e);

struct HttpResponse {
  long status = 0;  // 0 when no response arrived
  Headers headers;  // of the final response; names lower-case, values trimmed
  std::string body;
  HttpError error = HttpError::none;
  std::string error_message;  // curl's description (never contains credentials)
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  double seconds = 0;  // total transfer time

  bool ok() const { return error == HttpError::none && status >= 200 && status < 300; }
  std::optional<std::string_view> header(std::string_view name) const {
    return header_value(headers, name);
  }
};

// The upload cap at a local time of day (minutes after midnight, 0..1439): the first window of
// `schedule` containing it, else `base`. 0 = unlimited.
std::uint64_t bandwidth_limit_at(std::uint64_t base, const std::vector<BandwidthWindow>& schedule,
                                 int minute_of_day);

class HttpEngine {
 public:
  using Callback = std::function<void(HttpResponse)>;
  using RequestId = std::uint64_t;

  HttpEngine(boost::asio::io_context& io, HttpOptions options = {});
  ~HttpEngine();  // aborts transfers in flight; their callbacks are not called
  HttpEngine(const HttpEngine&) = delete;
  HttpEngine& operator=(const HttpEngine&) = delete;

  RequestId submit(HttpRequest request, Callback done);
  // Completes the request with HttpError::cancelled (if it is still queued or in flight).
  void cancel(RequestId id);
  void cancel_all();

  std::size_t active() const;  // transfers handed to curl
  std::size_t queued() const;  // waiting for an endpoint slot
  // Connections curl opened so far (to observe reuse).
  std::uint64_t connections_opened() const;

  boost::asio::io_context& io() const;
  const HttpOptions& options() const;

  // Replaces the upload bandwidth cap and schedule (a config reload). Transfers in flight switch to
  // the new rate at the next refill; an unlimited rate resumes paused transfers at once.
  void set_bandwidth(std::uint64_t bytes_per_second, std::vector<BandwidthWindow> schedule);
  // The cap in force now (schedule applied); 0 = unlimited.
  std::uint64_t current_bandwidth_limit() const;

  // The proxy used for a URL under these options ("" = none): config, else the environment.
  static std::string proxy_for(const HttpOptions& options, std::string_view url);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace fe::aws
