#pragma once
// One signed AWS call with retries, shared by the S3 and HealthLake clients:
//   for each attempt: get credentials (with enough lifetime left for this request), rewind the
//   body, sign with the skew-corrected clock just before sending, send through the HttpEngine;
//   on failure type the error (S3 XML or JSON `__type`), learn clock skew from the server's Date,
//   ask the RetryStrategy (standard mode: full-jitter backoff capped at 20 s, shared quota) and
//   wait on an Asio timer before the next attempt.
// A 401/403 is judged against the clock offset the request was signed with: when its Date is more
// than ClockSkew::kThreshold from that clock it is classed clock_skew (retryable), not auth; and
// when another request corrected the offset while this one was in flight, it is re-signed once
// at once with the new offset, outside the retry budget (issue 18: a bodiless HEAD 403 parked an
// export).
// Everything runs on the engine's io_context thread; the callback is called exactly once.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "aws/client_config.hpp"
#include "aws/errors.hpp"
#include "aws/http.hpp"
#include "aws/retry.hpp"
#include "aws/sigv4.hpp"

namespace fe::aws {

// Credentials valid for at least `min_lifetime` from now (refreshing first when needed);
// `force_refresh` after the server rejected them as expired. nullopt: none available (the call
// fails with an `auth` error "no AWS credentials").
using CredentialsFn = std::function<std::optional<Credentials>(std::chrono::seconds min_lifetime,
                                                               bool force_refresh)>;

// Fixed credentials (tests, static keys).
CredentialsFn static_credentials(Credentials creds);

struct AwsCall {
  std::string description;  // "S3 UploadPart bucket/key #3": prefix of error messages (no secrets)
  std::string service;      // signing name: "s3", "healthlake"
  bool s3_rules = false;    // S3 signing rules + x-amz-content-sha256 header; XML errors
  std::string method = "GET";
  std::string base_url;    // "https://bucket.s3.us-east-1.amazonaws.com" (no trailing slash)
  std::string host;        // Host header as curl sends it: "host" or "host:port"
  std::string path = "/";  // URI-encoded once
  std::string query;       // raw query string, without '?'
  Headers headers;         // extra headers to send and sign (content-type, x-amz-*...)
  std::string body;        // small bodies
  std::optional<BodySource> source;  // streamed bodies (must be rewindable to be retried)
  // Hex SHA-256 of the body when the caller already has it; else computed here (from `body`, or
  // by reading `source` once), or UNSIGNED-PAYLOAD when `unsigned_payload_ok`.
  std::string payload_sha256;
  bool unsigned_payload_ok = false;
  // Send `source` aws-chunked, signed STREAMING-UNSIGNED-PAYLOAD-TRAILER, with a trailing
  // x-amz-checksum-crc32c (aws/aws_chunked.hpp): `trailer_crc32c` when the caller knows it, else
  // computed as the body streams. The framing headers are added here; payload_sha256 and
  // unsigned_payload_ok are then ignored. A retry re-sends the same framing (the source rewinds).
  bool crc32c_trailer = false;
  std::optional<std::uint32_t> trailer_crc32c;
  std::function<bool(std::string_view)> sink;  // 2xx body destination (GetObject)
  std::size_t max_response_bytes = 0;          // 0 = engine default
  // Some 2xx responses carry an error document (S3 CompleteMultipartUpload): inspect the body.
  std::function<std::optional<AwsError>(const HttpResponse&)> check_success;
};

struct CallResult {
  HttpResponse response;  // of the last attempt
  std::optional<AwsError> error;
  int attempts = 0;
  std::string description;  // AwsCall::description
  bool ok() const { return !error.has_value(); }
  // "S3 UploadPart b/k #3: 403 SignatureDoesNotMatch: ... (request id X) [auth], 1 attempt(s)"
  std::string describe() const;
};

// Observer of each retry decision (logs, tests checking the schedule).
struct RetryEvent {
  std::string description;
  int failed_attempt = 0;
  AwsError error;
  std::chrono::milliseconds delay{0};
};

class AwsCaller {
 public:
  AwsCaller(HttpEngine& http, ClientConfig config, CredentialsFn credentials,
            std::shared_ptr<RetryStrategy> retry = nullptr,
            std::shared_ptr<ClockSkew> skew = nullptr);

  void call(AwsCall call, std::function<void(CallResult)> done);

  HttpEngine& http() { return http_; }
  const ClientConfig& config() const { return config_; }
  RetryStrategy& retry() { return *retry_; }
  ClockSkew& skew() { return *skew_; }
  void on_retry(std::function<void(const RetryEvent&)> observer) {
    observer_ = std::move(observer);
  }

 private:
  struct Op;
  void attempt(std::shared_ptr<Op> op);
  void finish(std::shared_ptr<Op> op, const HttpResponse& resp);

  HttpEngine& http_;
  ClientConfig config_;
  CredentialsFn credentials_;
  std::shared_ptr<RetryStrategy> retry_;
  std::shared_ptr<ClockSkew> skew_;
  std::function<void(const RetryEvent&)> observer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Helpers shared by the clients.
struct ParsedUrl {
  std::string scheme;  // "https"
  std::string host;    // "127.0.0.1"
  std::string port;    // "" when default
  std::string authority() const { return port.empty() ? host : host + ":" + port; }
  std::string base() const { return scheme + "://" + authority(); }
};
// Parses an endpoint such as "http://127.0.0.1:4566" or "https://s3.eu-west-1.amazonaws.com".
std::optional<ParsedUrl> parse_endpoint(std::string_view url);

}  // namespace fe::aws
