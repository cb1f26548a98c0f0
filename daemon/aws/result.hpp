#pragma once
// The outcome every AWS client call (S3, HealthLake) hands to its callback: a value, or the typed
// AwsError of the last attempt (aws/errors.hpp: its category says whether retrying can help), with
// a context for messages ("S3 UploadPart bucket/key #3") and how many attempts were made.
#include <optional>
#include <string>
#include <utility>

#include "aws/errors.hpp"
#include "aws/http_call.hpp"

namespace fe::aws {

template <class T>
struct AwsResult {
  std::optional<T> value;
  std::optional<AwsError> error;
  std::string context;
  int attempts = 0;
  bool ok() const { return value.has_value() && !error; }
  std::string describe() const {
    return error ? context + ": " + error->describe() : context + ": ok";
  }

  // The result of a call whose HTTP exchange is over: its error (if any), description, attempts.
  // The caller parses the body into `value` when the call succeeded.
  static AwsResult from_call(const CallResult& cr) {
    AwsResult r;
    r.error = cr.error;
    r.context = cr.description;
    r.attempts = cr.attempts;
    return r;
  }

  // A request refused before anything was sent (bad argument): no attempt, a validation error
  // with the service's own code for it (S3 "InvalidArgument", HealthLake "ValidationException").
  static AwsResult invalid(std::string context, std::string code, std::string message) {
    AwsResult r;
    AwsError e;
    e.code = std::move(code);
    e.message = std::move(message);
    e.category = ErrorCategory::validation;
    r.error = std::move(e);
    r.context = std::move(context);
    return r;
  }
};

}  // namespace fe::aws
