#include "aws/errors.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>

#include "aws/xml.hpp"

namespace fe::aws {
namespace {

constexpr std::size_t kMaxMessage = 512;

// Server text goes into logs and alerts: bound it and drop control characters (a hostile or
// broken endpoint must not be able to forge log lines).
std::string bounded(std::string_view s) {
  std::string out;
  out.reserve(std::min(s.size(), kMaxMessage));
  for (char c : s) {
    if (out.size() >= kMaxMessage) {
      out.append("...");
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7F ? ' ' : c);
  }
  return out;
}

bool in(std::string_view code, std::initializer_list<std::string_view> list) {
  return std::find(list.begin(), list.end(), code) != list.end();
}

bool contains(std::string_view hay, std::string_view needle) {
  return hay.find(needle) != std::string_view::npos;
}

}  // namespace

std::string_view to_string(ErrorCategory c) {
  switch (c) {
    case ErrorCategory::retryable:
      return "retryable";
    case ErrorCategory::throttling:
      return "throttling";
    case ErrorCategory::clock_skew:
      return "clock-skew";
    case ErrorCategory::auth:
      return "auth";
    case ErrorCategory::not_found:
      return "not-found";
    case ErrorCategory::validation:
      return "validation";
    case ErrorCategory::conflict:
      return "conflict";
    case ErrorCategory::other:
      return "other";
  }
  return "other";
}

// The SDKs' standard-mode throttling list (botocore retries/standard.py, aws-sdk-java-v2
// RetryUtils, smithy-rs): these are retried and counted as throttling.
bool is_throttling_code(std::string_view code) {
  return in(code,
            {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
             "TooManyRequestsException", "ProvisionedThroughputExceededException",
             "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
             "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
             "EC2ThrottledException", "KMS.ThrottlingException"});
}

bool is_transient_code(std::string_view code) {
  return in(code, {"RequestTimeout", "RequestTimeoutException", "InternalError",
                   "InternalServerError", "InternalServerException", "InternalFailure",
                   "ServiceUnavailable", "ServiceUnavailableException", "IDPCommunicationError",
                   "EC2ThrottledException", "ConditionalRequestConflict"});
}

bool is_clock_skew_code(std::string_view code, std::string_view message) {
  if (in(code, {"RequestTimeTooSkewed", "RequestExpired", "RequestInTheFuture"})) return true;
  // JSON services say InvalidSignatureException "Signature expired: 2015... is now earlier than
  // ..."; S3 query auth can say AccessDenied "Request has expired" for presigned URLs only, which
  // is not a skew problem we can fix by re-signing, so only the signature forms count.
  if (in(code, {"InvalidSignatureException", "SignatureDoesNotMatch", "AuthFailure"}) &&
      (contains(message, "Signature expired") || contains(message, "Signature not yet current") ||
       contains(message, "too skewed")))
    return true;
  return false;
}

ErrorCategory classify(int http_status, std::string_view code, std::string_view message) {
  if (!code.empty()) {
    if (is_clock_skew_code(code, message)) return ErrorCategory::clock_skew;
    if (is_throttling_code(code)) return ErrorCategory::throttling;
    if (is_transient_code(code)) return ErrorCategory::retryable;
    if (code.substr(0, 4) == "KMS." || in(code, {"AccessDenied",
                                                 "AccessDeniedException",
                                                 "InvalidAccessKeyId",
                                                 "SignatureDoesNotMatch",
                                                 "InvalidSignatureException",
                                                 "ExpiredToken",
                                                 "ExpiredTokenException",
                                                 "InvalidToken",
                                                 "UnrecognizedClientException",
                                                 "MissingAuthenticationToken",
                                                 "MissingAuthenticationTokenException",
                                                 "IncompleteSignature",
                                                 "IncompleteSignatureException",
                                                 "InvalidClientTokenId",
                                                 "AuthorizationHeaderMalformed",
                                                 "AllAccessDisabled",
                                                 "AccountProblem",
                                                 "InvalidSecurity",
                                                 "NotSignedUp",
                                                 "Forbidden",
                                                 "KMSAccessDeniedException",
                                                 "KmsException",
                                                 "InvalidObjectState"}))
      return ErrorCategory::auth;
    if (in(code, {"NoSuchBucket", "NoSuchKey", "NoSuchUpload", "ResourceNotFoundException",
                  "NotFound", "NoSuchVersion"}))
      return ErrorCategory::not_found;
    if (in(code, {"ConflictException", "OperationAborted", "PreconditionFailed",
                  "BucketAlreadyExists", "BucketAlreadyOwnedByYou"}))
      return ErrorCategory::conflict;
    if (in(code, {"ValidationException",
                  "InvalidArgument",
                  "InvalidRequest",
                  "InvalidPart",
                  "InvalidPartOrder",
                  "EntityTooSmall",
                  "EntityTooLarge",
                  "MalformedXML",
                  "InvalidDigest",
                  "BadDigest",
                  "InvalidBucketName",
                  "KeyTooLongError",
                  "SerializationException",
                  "MissingParameter",
                  "InvalidParameterValue",
                  "InvalidParameterCombination",
                  "BadRequest",
                  "InvalidRange",
                  "XAmzContentSHA256Mismatch",
                  "MissingContentLength",
                  "InvalidEncryptionAlgorithmError",
                  "ServiceQuotaExceededException"}))
      return ErrorCategory::validation;
  }
  switch (http_status) {
    case 429:
      return ErrorCategory::throttling;
    case 500:
    case 502:
    case 503:
    case 504:
      return ErrorCategory::retryable;
    case 401:
    case 403:
      return ErrorCategory::auth;
    case 404:
      return ErrorCategory::not_found;
    case 409:
    case 412:
      return ErrorCategory::conflict;
    case 400:
    case 411:
    case 413:
    case 416:
      return ErrorCategory::validation;
    default:
      return ErrorCategory::other;
  }
}

std::string AwsError::describe() const {
  std::string s;
  if (transport == TransportFailure::timeout) {
    s = "timeout";
  } else if (transport == TransportFailure::connection) {
    s = "connection error";
  } else {
    s = std::to_string(http_status);
    if (!code.empty()) s.append(" ").append(code);
  }
  if (!message.empty()) s.append(": ").append(message);
  if (!request_id.empty()) s.append(" (request id ").append(request_id).append(")");
  s.append(" [").append(to_string(category)).append("]");
  return s;
}

std::string normalize_error_type(std::string_view type) {
  auto colon = type.find(':');
  if (colon != std::string_view::npos) type = type.substr(0, colon);
  auto hash = type.rfind('#');
  if (hash != std::string_view::npos) type = type.substr(hash + 1);
  while (!type.empty() && type.front() == ' ') type.remove_prefix(1);
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  return std::string(type);
}

bool looks_like_s3_error(std::string_view body) {
  auto doc = xml::parse(body);
  return doc.root && doc.root->name == "Error";
}

namespace {
std::string status_code_name(int status) {
  switch (status) {
    case 301:
      return "PermanentRedirect";
    case 304:
      return "NotModified";
    case 400:
      return "BadRequest";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 409:
      return "Conflict";
    case 412:
      return "PreconditionFailed";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    default:
      return {};
  }
}
}  // namespace

AwsError parse_s3_error(const ErrorResponse& r) {
  AwsError e;
  e.http_status = r.http_status;
  e.request_id = bounded(r.request_id);
  e.server_date = bounded(r.date);
  auto doc = xml::parse(r.body);
  const xml::Element* err = nullptr;
  if (doc.root) {
    if (doc.root->name == "Error") err = &*doc.root;
    // Query-protocol style <ErrorResponse><Error>..</Error><RequestId>..</RequestId>.
    else if (doc.root->name == "ErrorResponse")
      err = doc.root->child("Error");
  }
  if (err) {
    e.code = bounded(err->child_text("Code"));
    e.message = bounded(err->child_text("Message"));
    std::string rid = err->child_text("RequestId");
    if (rid.empty() && doc.root) rid = doc.root->child_text("RequestId");
    if (!rid.empty()) e.request_id = bounded(rid);
  } else if (!r.body.empty()) {
    e.message = "unparsable error body: " + bounded(r.body.substr(0, 120));
  }
  // HEAD responses carry no body; give the status a name so logs and alerts say something.
  if (e.code.empty()) e.code = status_code_name(r.http_status);
  if (!r.amzn_error_type.empty() && e.code.empty())
    e.code = normalize_error_type(r.amzn_error_type);
  e.category = classify(e.http_status, e.code, e.message);
  return e;
}

AwsError parse_json_error(const ErrorResponse& r) {
  AwsError e;
  e.http_status = r.http_status;
  e.request_id = bounded(r.request_id);
  e.server_date = bounded(r.date);
  std::string type;
  if (!r.amzn_error_type.empty()) type = normalize_error_type(r.amzn_error_type);
  if (!r.body.empty()) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(r.body.data(), r.body.size()).get(doc) == simdjson::SUCCESS &&
        doc.is_object()) {
      std::string_view v;
      if (type.empty()) {
        for (const char* key : {"__type", "code", "Code"})
          if (doc[key].get(v) == simdjson::SUCCESS && !v.empty()) {
            type = normalize_error_type(v);
            break;
          }
      }
      for (const char* key : {"message", "Message", "errorMessage"})
        if (doc[key].get(v) == simdjson::SUCCESS) {
          e.message = bounded(v);
          break;
        }
    } else {
      e.message = "unparsable error body: " + bounded(r.body.substr(0, 120));
    }
  }
  e.code = bounded(type);
  if (e.code.empty()) e.code = status_code_name(r.http_status);
  e.category = classify(e.http_status, e.code, e.message);
  return e;
}

AwsError transport_error(TransportFailure kind, std::string message) {
  AwsError e;
  e.transport = kind;
  e.message = bounded(message);
  // Timeouts and connection failures are retried in standard mode (with the higher quota cost).
  e.category = kind == TransportFailure::none ? ErrorCategory::other : ErrorCategory::retryable;
  return e;
}

}  // namespace fe::aws
