#pragma once
// Seeded, reproducible fault injection.
//
// Spec (--faults): comma-separated rules plus an optional seed:
//   <Operation|*>:<kind>=<rate>[:<param>]      rate in [0,1], or @N = exactly the N-th call
//   (1-based) seed=<unsigned>                            default 1
// Kinds:
//   500 | InternalError            S3: 500 InternalError; HealthLake: 500 InternalServerException
//   InternalServerException        same as 500
//   503 | SlowDown                 S3: 503 SlowDown; HealthLake: 400 ThrottlingException
//   ThrottlingException            HealthLake: 400 ThrottlingException; S3: 503 SlowDown
//   409 | ConflictException        HealthLake: 400 ConflictException (the data store is in a
//                                  transition state); S3: 409 OperationAborted
//   403 | AccessDenied[Exception]  HealthLake: 400 AccessDeniedException; S3: 403 AccessDenied
//                                  (a permission missing until someone fixes it: use @N)
//   drop                           close the connection before the request is applied
//   drop-after                     apply the request, then cut the response in the middle of its
//   body slow:<duration>                delay the response (e.g. slow=0.05:2s) skew:<duration> the
//   server's clock runs <duration> ahead for this request (its
//                                  Date header and the signature time window), e.g. skew=0.1:20m
// Durations: 250ms, 2s, 1.5s, 20m, 1h. Example:
//   UploadPart:500=0.1,UploadPart:SlowDown=0.05,StartFHIRImportJob:ThrottlingException=0.2,
//   *:drop=0.02,*:slow=0.05:2s,*:skew=0.1:20m,seed=42
//
// Reproducibility: the decision for the n-th call of an operation depends only on (seed,
// operation, n, rule index), never on the interleaving of other operations or on wall time.
// At most one error/drop fires per request (the first matching rule in spec order); slow and
// skew combine with it.
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace fe::hll {

enum class FaultKind {
  internal_error,
  slow_down,
  throttling,
  conflict,
  access_denied,
  drop,
  drop_after,
  slow,
  skew
};

struct FaultRule {
  std::string operation;  // "*" or an operation name
  FaultKind kind{};
  double rate = 0;   // probability, when nth == 0
  uint64_t nth = 0;  // exactly this call (1-based), when non-zero
  std::chrono::milliseconds param{0};
};

struct FaultDecision {
  bool error = false;  // an error kind (internal_error ... access_denied): which is in `kind`
  FaultKind kind{};
  bool drop = false;
  bool drop_after = false;
  std::chrono::milliseconds delay{0};
  std::chrono::milliseconds skew{0};
  std::vector<std::string> names;  // what fired, for the request log
  bool any() const { return error || drop || drop_after || delay.count() || skew.count(); }
};

class Faults {
 public:
  Faults() = default;
  // Throws std::invalid_argument naming the bad rule. `known_operations` catches typos.
  static Faults parse(std::string_view spec, const std::vector<std::string>& known_operations);

  FaultDecision decide(const std::string& operation);  // advances that operation's call counter
  bool empty() const { return rules_.empty(); }
  const std::vector<FaultRule>& rules() const { return rules_; }
  uint64_t seed() const { return seed_; }

 private:
  std::vector<FaultRule> rules_;
  uint64_t seed_ = 1;
  std::map<std::string, uint64_t> calls_;
};

// "250ms", "2s", "1.5s", "20m", "1h" -> milliseconds; throws std::invalid_argument.
std::chrono::milliseconds parse_duration(std::string_view text);

}  // namespace fe::hll
