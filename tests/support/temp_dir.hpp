#pragma once
// The one scratch directory for C++ tests: a fresh directory under /tmp (short, so Unix socket
// paths fit in sun_path), removed with everything in it when the object goes away.
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace fe::test {

// A fresh, empty directory /tmp/<prefix>-XXXXXX (mkdtemp: unique, mode 0700). The caller removes
// it; TempDir below does that for you.
inline std::filesystem::path make_temp_dir(std::string_view prefix = "fe-test") {
  std::string tmpl = "/tmp/" + std::string(prefix) + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed: " + tmpl);
  return tmpl;
}

class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "fe-test") : path_(make_temp_dir(prefix)) {}
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

  // Writes `content` to `name` under the directory (parents created); `exec` adds owner rwx.
  // Returns the file's path as a string (what environment variables and options take).
  std::string write(std::string_view name, std::string_view content, bool exec = false) const {
    auto p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    if (exec)
      std::filesystem::permissions(p, std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::add);
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace fe::test
