#pragma once
// The one outcome type of the upload stage: how an object upload (and, merged, an export's upload
// pass) ended. It replaces the `retry` / `park` strings the pipeline used to carry around.
//   done         every byte is in S3 and journaled
//   retry_later  nothing is wrong with the data: AWS attempts ran out (5xx, throttling, timeouts,
//                clock skew), a conflict, a journal write failed. The export keeps its state and
//                is retried after a backoff; the retry starts from the journal alone.
//   park         an operator must act: access denied, no such bucket, an object with other
//                content at our key, a damaged spool frame. Nothing is dropped.
// Each non-done outcome carries its reason (operation, key, code, request id).
#include <string>
#include <string_view>
#include <utility>

#include "aws/errors.hpp"

namespace fe::upload {

struct Outcome {
  enum class Kind { done, retry_later, park };
  Kind kind = Kind::done;
  std::string reason;

  static Outcome done() { return {}; }
  static Outcome retry_later(std::string why) { return {Kind::retry_later, std::move(why)}; }
  static Outcome park(std::string why) { return {Kind::park, std::move(why)}; }
  // An AWS error that the AWS layer already retried as far as it would: retryable categories and
  // `conflict` wait for a later attempt, everything else (auth, not_found, validation, other)
  // parks.
  static Outcome from_error(const aws::AwsError& e, std::string what) {
    const bool later = e.retryable() || e.category == aws::ErrorCategory::conflict;
    return later ? retry_later(std::move(what)) : park(std::move(what));
  }

  bool ok() const { return kind == Kind::done; }
  bool parked() const { return kind == Kind::park; }
  bool retrying() const { return kind == Kind::retry_later; }

  // Combines the outcomes of several objects (or stages) of one export: park beats retry_later
  // beats done, and the first reason of the winning kind is kept.
  void merge(const Outcome& o) {
    if (static_cast<int>(o.kind) > static_cast<int>(kind)) *this = o;
  }
};

std::string_view to_string(Outcome::Kind k);

}  // namespace fe::upload
