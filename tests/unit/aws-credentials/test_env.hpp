#pragma once
// Shared helpers: an injected environment (tests never read or change the real one, so the
// machine's own AWS settings cannot leak in) and a scratch directory.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "aws/credentials.hpp"

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

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fe-creds-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& content, bool exec = false) {
    auto p = path / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    if (exec)
      std::filesystem::permissions(p, std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::add);
    return p.string();
  }
};

}  // namespace fe::test
