#include "config/units.hpp"

#include <cctype>
#include <cstdio>
#include <limits>

namespace fe::config {
namespace {

// Splits "1.5GiB" into the number (digits with at most one '.') and the unit suffix.
bool split_number(std::string_view text, std::string_view& number, std::string_view& unit) {
  size_t i = 0;
  bool dot = false;
  while (i < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[i])) || (text[i] == '.' && !dot))) {
    if (text[i] == '.') {
      dot = true;
    }
    ++i;
  }
  number = text.substr(0, i);
  unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') {
    unit.remove_prefix(1);
  }
  return !number.empty() && number != "." && number.front() != '.' && number.back() != '.';
}

// Exact decimal * multiplier without going through floating point for integers.
std::optional<std::uint64_t> scale(std::string_view number, std::uint64_t mult, std::string& why) {
  auto dot = number.find('.');
  std::string_view whole = number.substr(0, dot);
  std::string_view frac =
      dot == std::string_view::npos ? std::string_view{} : number.substr(dot + 1);
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t w = 0;
  for (char c : whole) {
    if (w > (kMax - 9) / 10) {
      why = "value is too large";
      return std::nullopt;
    }
    w = w * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (mult != 0 && w > kMax / mult) {
    why = "value is too large";
    return std::nullopt;
  }
  std::uint64_t result = w * mult;
  // Fraction: at most 9 digits is plenty for configuration values.
  if (frac.size() > 9) {
    why = "too many decimal places";
    return std::nullopt;
  }
  // Exact: extra = mult * F / 10^digits, in 128-bit so nothing is rounded.
  unsigned __int128 f = 0;
  unsigned __int128 den = 1;
  for (char c : frac) {
    f = f * 10 + static_cast<unsigned>(c - '0');
    den *= 10;
  }
  unsigned __int128 num = f * mult;
  if (num % den != 0) {
    why = "value is not a whole number of bytes/milliseconds";
    return std::nullopt;
  }
  unsigned __int128 extra = num / den;
  if (extra > kMax - result) {
    why = "value is too large";
    return std::nullopt;
  }
  result += static_cast<std::uint64_t>(extra);
  return result;
}

struct Unit {
  std::string_view name;
  std::uint64_t mult;
};

constexpr Unit kSizeUnits[] = {
    {"", 1},
    {"B", 1},
    {"KB", 1000ULL},
    {"MB", 1000ULL * 1000},
    {"GB", 1000ULL * 1000 * 1000},
    {"TB", 1000ULL * 1000 * 1000 * 1000},
    {"KiB", 1ULL << 10},
    {"MiB", 1ULL << 20},
    {"GiB", 1ULL << 30},
    {"TiB", 1ULL << 40},
};

}  // namespace

std::optional<std::uint64_t> parse_size(std::string_view text, std::string& why) {
  std::string_view number, unit;
  if (!split_number(text, number, unit)) {
    why = "expected a size such as 64MiB, 20GiB, 1.5GB or a number of bytes, got '" +
          std::string(text) + "'";
    return std::nullopt;
  }
  for (const auto& u : kSizeUnits) {
    if (u.name == unit) {
      return scale(number, u.mult, why);
    }
  }
  why =
      "unknown size unit '" + std::string(unit) + "' (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)";
  return std::nullopt;
}

std::optional<std::uint64_t> parse_rate(std::string_view text, std::string& why) {
  std::string_view t = text;
  if (t.size() >= 2 && t.substr(t.size() - 2) == "/s") {
    t.remove_suffix(2);
  }
  auto v = parse_size(t, why);
  if (!v) {
    why = "expected a rate such as 20MiB/s or 500KB/s, got '" + std::string(text) + "'";
  }
  return v;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text, std::string& why) {
  const std::string bad =
      "expected a duration such as 30s, 5m, 7d or 1h30m, got '" + std::string(text) + "'";
  if (text.empty()) {
    why = bad;
    return std::nullopt;
  }
  // A bare number is seconds.
  bool all_digits = true;
  for (char c : text) {
    all_digits = all_digits && std::isdigit(static_cast<unsigned char>(c));
  }
  if (all_digits) {
    auto v = scale(text, 1000, why);
    if (!v) {
      return std::nullopt;
    }
    return std::chrono::milliseconds(*v);
  }
  std::uint64_t total = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t i = 0;
    while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) {
      ++i;
    }
    if (i == 0 || i > 12) {
      why = bad;
      return std::nullopt;
    }
    std::uint64_t n = std::stoull(std::string(rest.substr(0, i)));
    rest.remove_prefix(i);
    std::uint64_t mult;
    if (rest.starts_with("ms")) {
      mult = 1;
      rest.remove_prefix(2);
    } else if (!rest.empty() && rest[0] == 's') {
      mult = 1000;
      rest.remove_prefix(1);
    } else if (!rest.empty() && rest[0] == 'm') {
      mult = 60'000;
      rest.remove_prefix(1);
    } else if (!rest.empty() && rest[0] == 'h') {
      mult = 3'600'000;
      rest.remove_prefix(1);
    } else if (!rest.empty() && rest[0] == 'd') {
      mult = 86'400'000;
      rest.remove_prefix(1);
    } else if (!rest.empty() && rest[0] == 'w') {
      mult = 7 * 86'400'000ULL;
      rest.remove_prefix(1);
    } else {
      why = bad + " (units: ms, s, m, h, d, w)";
      return std::nullopt;
    }
    total += n * mult;  // n < 10^12 and mult < 10^9: no overflow per term; sum of few terms
  }
  return std::chrono::milliseconds(total);
}

std::string format_size(std::uint64_t bytes) {
  constexpr const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  std::uint64_t div = 1;
  while (i < 4 && bytes >= div * 1024) {
    div *= 1024;
    ++i;
  }
  if (bytes % div == 0) {
    return std::to_string(bytes / div) + kNames[i];
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%s", static_cast<double>(bytes) / static_cast<double>(div),
                kNames[i]);
  return buf;
}

}  // namespace fe::config
