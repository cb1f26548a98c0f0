// Minimal plain-stderr implementation; the journald path is added by the service stage.
#include "service/log.hpp"

#include <atomic>
#include <cstdio>
#include <string>

namespace fe::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::info)};

const char* name(Level l) {
  switch (l) {
    case Level::error:
      return "error";
    case Level::warning:
      return "warning";
    case Level::notice:
      return "notice";
    case Level::info:
      return "info";
    case Level::debug:
      return "debug";
  }
  return "info";
}
}  // namespace

void set_level(Level l) {
  g_level = static_cast<int>(l);
}
Level level() {
  return static_cast<Level>(g_level.load());
}

bool parse_level(std::string_view t, Level& out) {
  for (Level l : {Level::error, Level::warning, Level::notice, Level::info, Level::debug}) {
    if (t == name(l)) {
      out = l;
      return true;
    }
  }
  return false;
}

void write(Level l, std::string_view message, std::initializer_list<Field> fields) {
  if (static_cast<int>(l) > g_level.load()) return;
  std::string line = std::string(name(l)) + ": " + std::string(message);
  for (const auto& f : fields) line += " " + std::string(f.key) + "=" + f.value;
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace fe::log
