#pragma once
// The metrics endpoint's settings: the YAML section `metrics` (docs/configuration.md, metrics.md).
// Not live: the listening socket is bound at start (MetricsComponent refuses a new listen too).
#include <cstdint>
#include <string>
#include <tuple>

#include "common/fields.hpp"

namespace fe::metrics {

// metrics.listen: "HOST:PORT" or off; the three fields are one YAML key.
struct Settings {
  bool enabled = true;             // false when listen is "off" or null
  std::string host = "127.0.0.1";  // IPv4/IPv6 literal or "localhost" (IPv6 without brackets)
  std::uint16_t port = 10464;
  bool operator==(const Settings&) const = default;
};

// YAML names and reload behaviour (common/fields.hpp).
constexpr auto fields(const Settings*) {
  using enum settings::Reload;
  using S = Settings;
  return std::tuple{settings::field("listen", &S::enabled, restart),
                    settings::field("listen", &S::host, restart),
                    settings::field("listen", &S::port, restart)};
}
static_assert(settings::described<Settings>());

}  // namespace fe::metrics
