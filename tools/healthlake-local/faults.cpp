#include "faults.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace fe::hll {

namespace {

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

double parse_double(std::string_view s, const std::string& rule) {
  try {
    size_t used = 0;
    double v = std::stod(std::string(s), &used);
    if (used != s.size()) throw std::invalid_argument("");
    return v;
  } catch (const std::exception&) {
    throw std::invalid_argument("fault rule '" + rule + "': '" + std::string(s) +
                                "' is not a number");
  }
}

}  // namespace

std::chrono::milliseconds parse_duration(std::string_view text) {
  std::string t(text);
  double mult = 0;
  std::string num;
  if (t.ends_with("ms"))
    mult = 1, num = t.substr(0, t.size() - 2);
  else if (t.ends_with("s"))
    mult = 1000, num = t.substr(0, t.size() - 1);
  else if (t.ends_with("m"))
    mult = 60000, num = t.substr(0, t.size() - 1);
  else if (t.ends_with("h"))
    mult = 3600000, num = t.substr(0, t.size() - 1);
  else
    throw std::invalid_argument("duration '" + t + "' needs a unit: ms, s, m or h");
  double v = parse_double(num, t);
  if (v < 0) throw std::invalid_argument("duration '" + t + "' is negative");
  return std::chrono::milliseconds(static_cast<int64_t>(v * mult + 0.5));
}

Faults Faults::parse(std::string_view spec, const std::vector<std::string>& known) {
  Faults f;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string_view::npos) end = spec.size();
    std::string rule(spec.substr(start, end - start));
    start = end + 1;
    if (rule.empty()) {
      if (end == spec.size()) break;
      continue;
    }
    if (rule.starts_with("seed=")) {
      auto v = rule.substr(5);
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), f.seed_);
      if (ec != std::errc() || p != v.data() + v.size())
        throw std::invalid_argument("fault rule '" + rule + "': seed must be an unsigned integer");
      continue;
    }
    auto colon = rule.find(':');
    auto eq = rule.find('=');
    if (colon == std::string::npos || eq == std::string::npos || eq < colon)
      throw std::invalid_argument("fault rule '" + rule +
                                  "': expected <Operation|*>:<kind>=<rate>[:<param>]");
    FaultRule r;
    r.operation = rule.substr(0, colon);
    if (r.operation != "*" && std::find(known.begin(), known.end(), r.operation) == known.end())
      throw std::invalid_argument("fault rule '" + rule + "': unknown operation '" + r.operation +
                                  "'");
    std::string kind = rule.substr(colon + 1, eq - colon - 1);
    std::string value = rule.substr(eq + 1);
    std::string param;
    if (auto c = value.find(':'); c != std::string::npos) {
      param = value.substr(c + 1);
      value = value.substr(0, c);
    }
    if (kind == "500" || kind == "InternalError" || kind == "InternalServerException")
      r.kind = FaultKind::internal_error;
    else if (kind == "503" || kind == "SlowDown")
      r.kind = FaultKind::slow_down;
    else if (kind == "ThrottlingException")
      r.kind = FaultKind::throttling;
    else if (kind == "ConflictException" || kind == "409")
      r.kind = FaultKind::conflict;
    else if (kind == "AccessDeniedException" || kind == "AccessDenied" || kind == "403")
      r.kind = FaultKind::access_denied;
    else if (kind == "drop")
      r.kind = FaultKind::drop;
    else if (kind == "drop-after")
      r.kind = FaultKind::drop_after;
    else if (kind == "slow")
      r.kind = FaultKind::slow;
    else if (kind == "skew")
      r.kind = FaultKind::skew;
    else
      throw std::invalid_argument("fault rule '" + rule + "': unknown kind '" + kind +
                                  "' (500, SlowDown, ThrottlingException, InternalServerException, "
                                  "drop, drop-after, slow, skew)");
    if (value.starts_with("@")) {
      auto v = value.substr(1);
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), r.nth);
      if (ec != std::errc() || p != v.data() + v.size() || r.nth == 0)
        throw std::invalid_argument("fault rule '" + rule + "': @N needs N >= 1");
    } else {
      r.rate = parse_double(value, rule);
      if (r.rate < 0 || r.rate > 1)
        throw std::invalid_argument("fault rule '" + rule + "': rate must be within [0,1]");
    }
    if (r.kind == FaultKind::slow || r.kind == FaultKind::skew) {
      if (param.empty())
        throw std::invalid_argument("fault rule '" + rule + "': " + kind +
                                    " needs a duration, e.g. " + kind + "=0.1:2s");
      r.param = parse_duration(param);
    } else if (!param.empty()) {
      throw std::invalid_argument("fault rule '" + rule + "': " + kind + " takes no parameter");
    }
    f.rules_.push_back(std::move(r));
  }
  return f;
}

FaultDecision Faults::decide(const std::string& op) {
  FaultDecision d;
  if (rules_.empty()) return d;
  uint64_t n = ++calls_[op];
  for (size_t i = 0; i < rules_.size(); ++i) {
    const FaultRule& r = rules_[i];
    if (r.operation != "*" && r.operation != op) continue;
    bool fire;
    if (r.nth) {
      fire = n == r.nth;
    } else {
      uint64_t h = splitmix(seed_ ^ splitmix(fnv1a(op) ^ splitmix(n * 1000003ull + i)));
      double u = static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);
      fire = u < r.rate;
    }
    if (!fire) continue;
    switch (r.kind) {
      case FaultKind::slow:
        d.delay += r.param;
        d.names.push_back("slow");
        break;
      case FaultKind::skew:
        d.skew = r.param;
        d.names.push_back("skew");
        break;
      default:
        if (d.error || d.drop || d.drop_after) break;  // one outcome per request
        if (r.kind == FaultKind::drop) {
          d.drop = true;
          d.names.push_back("drop");
        } else if (r.kind == FaultKind::drop_after) {
          d.drop_after = true;
          d.names.push_back("drop-after");
        } else {
          d.error = true;
          d.kind = r.kind;
          d.names.push_back(r.kind == FaultKind::internal_error  ? "500"
                            : r.kind == FaultKind::slow_down     ? "SlowDown"
                            : r.kind == FaultKind::conflict      ? "ConflictException"
                            : r.kind == FaultKind::access_denied ? "AccessDenied"
                                                                 : "ThrottlingException");
        }
    }
  }
  return d;
}

}  // namespace fe::hll
