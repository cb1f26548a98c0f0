// Stub: real parsers land shortly.
#include "aws/errors.hpp"

namespace fe::aws {
std::string_view to_string(ErrorCategory) {
  return "other";
}
std::string AwsError::describe() const {
  return code + ": " + message;
}
ErrorCategory classify(int, std::string_view, std::string_view) {
  return ErrorCategory::other;
}
bool is_throttling_code(std::string_view) {
  return false;
}
bool is_transient_code(std::string_view) {
  return false;
}
bool is_clock_skew_code(std::string_view, std::string_view) {
  return false;
}
AwsError parse_s3_error(const ErrorResponse& r) {
  AwsError e;
  e.http_status = r.http_status;
  return e;
}
AwsError parse_json_error(const ErrorResponse& r) {
  AwsError e;
  e.http_status = r.http_status;
  return e;
}
std::string normalize_error_type(std::string_view t) {
  return std::string(t);
}
AwsError transport_error(TransportFailure kind, std::string message) {
  AwsError e;
  e.transport = kind;
  e.message = std::move(message);
  e.category = ErrorCategory::retryable;
  return e;
}
}  // namespace fe::aws
