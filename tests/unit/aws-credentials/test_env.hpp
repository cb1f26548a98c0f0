#pragma once
// Shared helpers: an injected environment (tests never read or change the real one, so the
// machine's own AWS settings cannot leak in) and a scratch directory.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "aws/credentials.hpp"

#include "temp_dir.hpp"

namespace fe::test {

struct FakeEnv {
  std::map<std::string, std::string> vars;
  aws::EnvLookup lookup() const {
    auto copy = vars;
    return [copy](std::string_view n) -> std::optional<std::string> {
      auto it = copy.find(std::string(n));
      if (it == copy.end()) return std::nullopt;
      return it->second;
    };
  }
};

}  // namespace fe::test
