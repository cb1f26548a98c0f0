#pragma once
// The service's own settings: the YAML section `log` (docs/configuration.md, service.md). Live:
// the service applies a new log.level at once (unless --log-level was given), and log.format.
#include <tuple>

#include "common/fields.hpp"
#include "service/log.hpp"

namespace fe::log {

struct Settings {
  Level level = Level::info;
  // Lines on stderr when it is not journald (docs/logging.md): text (timestamped) or json.
  Format format = Format::text;
  bool operator==(const Settings&) const = default;
};

// YAML names and reload behaviour (common/fields.hpp).
constexpr auto fields(const Settings*) {
  using enum settings::Reload;
  return std::tuple{settings::field("level", &Settings::level, live),
                    settings::field("format", &Settings::format, live)};
}
static_assert(settings::described<Settings>());

}  // namespace fe::log
