#pragma once
// One typed error for everything AWS says (S3 REST-XML and AWS JSON 1.0 errors) and for transport
// failures, with a category the pipeline acts on:
//   retryable / throttling / clock_skew -> retry (aws/retry.hpp), later the pipeline re-queues;
//   auth / not_found / validation       -> park the export and alert (never drop it);
//   conflict                            -> wait and try again later;
//   other                               -> park and alert.
// Messages never include secrets: only what the server sent (code, message, request id) plus
// our own context, and server messages are cut to a bounded length.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace fe::aws {

enum class ErrorCategory {
  retryable,   // 5xx, transient codes (InternalError, RequestTimeout...), timeouts, connection
  throttling,  // SlowDown, ThrottlingException, 429 ...
  clock_skew,  // RequestTimeTooSkewed, RequestExpired, signature expired
  auth,        // AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch, ExpiredToken, KMS.*
  not_found,   // NoSuchBucket, NoSuchKey, NoSuchUpload, ResourceNotFoundException, 404
  validation,  // ValidationException, InvalidArgument, 400 with a client fault code
  conflict,    // ConflictException, 409, 412 PreconditionFailed
  other,
};
std::string_view to_string(ErrorCategory c);

enum class TransportFailure {
  none,        // the server answered (http_status is set)
  timeout,     // connect/low-speed/total timeout
  connection,  // DNS, refused, reset, TLS handshake ...
};

struct AwsError {
  int http_status = 0;  // 0 for transport failures
  std::string code;     // "NoSuchUpload", "ThrottlingException", "" when unknown
  std::string message;  // server message (bounded), or transport description
  std::string request_id;
  std::string server_date;  // HTTP Date header of the response (for clock-skew correction)
  TransportFailure transport = TransportFailure::none;
  ErrorCategory category = ErrorCategory::other;

  bool retryable() const {
    return category == ErrorCategory::retryable || category == ErrorCategory::throttling ||
           category == ErrorCategory::clock_skew;
  }
  bool throttling() const { return category == ErrorCategory::throttling; }
  // "S3 PUT bucket/key: 403 AccessDenied: Access Denied (request id ABC)" style one-liner.
  std::string describe() const;
};

// Classification from status and code (code wins when known; else by status). Used by the parsers
// and available for callers that build an AwsError themselves.
ErrorCategory classify(int http_status, std::string_view code, std::string_view message = {});
bool is_throttling_code(std::string_view code);
bool is_transient_code(std::string_view code);
bool is_clock_skew_code(std::string_view code, std::string_view message = {});

// What the HTTP layer hands over from a failed response.
struct ErrorResponse {
  int http_status = 0;
  std::string_view body;
  std::string_view request_id;       // x-amz-request-id / x-amzn-RequestId header
  std::string_view amzn_error_type;  // x-amzn-ErrorType header (JSON protocols), may be empty
  std::string_view date;             // Date header
};

// S3: <Error><Code>..</Code><Message>..</Message><RequestId>..</RequestId></Error>. Bodiless
// responses (HEAD) get a code from the status (404 -> NotFound, 403 -> Forbidden, ...).
AwsError parse_s3_error(const ErrorResponse& r);
// AWS JSON 1.0/1.1: {"__type":"com.amazonaws.healthlake#ValidationException:http://...",
// "message":"..."}; type from x-amzn-ErrorType when present; `ns#` prefix and `:uri` suffix
// removed.
AwsError parse_json_error(const ErrorResponse& r);
// "ns#Name:http://..." -> "Name"
std::string normalize_error_type(std::string_view type);
// True when a body is an S3 <Error> document. S3 can answer 200 OK to
// CompleteMultipartUpload/CopyObject and still fail in the body; the caller checks this then.
bool looks_like_s3_error(std::string_view body);

AwsError transport_error(TransportFailure kind, std::string message);

}  // namespace fe::aws
