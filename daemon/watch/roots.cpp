#include "watch/roots.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace fe::watch {
namespace fs = std::filesystem;

namespace {

std::string user_name(uid_t uid) {
  if (const passwd* p = ::getpwuid(uid)) return p->pw_name;
  return std::to_string(uid);
}

std::string group_name(gid_t gid) {
  if (const group* g = ::getgrgid(gid)) return g->gr_name;
  return std::to_string(gid);
}

// "drwxr-x--- root:fhir-edge", as ls -l shows it.
std::string describe_mode(const struct stat& st) {
  std::string m = S_ISDIR(st.st_mode) ? "d" : "-";
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) m += (st.st_mode & (0400 >> i)) ? rwx[i] : '-';
  if (st.st_mode & S_ISGID) m[6] = (st.st_mode & S_IXGRP) ? 's' : 'S';
  return m + " " + user_name(st.st_uid) + ":" + group_name(st.st_gid);
}

}  // namespace

std::string root_problem(const fs::path& root) {
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR) return "does not exist";
    return std::string("cannot be examined: ") + std::strerror(e);
  }
  if (!S_ISDIR(st.st_mode)) return "is not a directory";
  if (::access(root.c_str(), R_OK | X_OK) != 0)
    return "is not readable by user " + user_name(::geteuid()) + " (" + describe_mode(st) + ")";
  return "";
}

std::vector<std::string> nested_roots(const std::vector<fs::path>& roots) {
  std::vector<fs::path> real(roots.size());
  for (size_t i = 0; i < roots.size(); ++i) {
    std::error_code ec;
    real[i] = fs::canonical(roots[i], ec);
    if (ec) real[i].clear();
  }
  auto inside = [](const fs::path& a, const fs::path& b) {  // a strictly inside b
    auto [ai, bi] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
    return bi == b.end() && ai != a.end();
  };
  std::vector<std::string> out;
  for (size_t i = 0; i < roots.size(); ++i) {
    for (size_t j = 0; j < roots.size(); ++j) {
      if (i == j || real[i].empty() || real[j].empty()) continue;
      if (real[i] == real[j] && i < j)
        out.push_back(roots[i].string() + " and " + roots[j].string() +
                      " are the same directory (" + real[i].string() + ")");
      else if (inside(real[i], real[j]))
        out.push_back(roots[i].string() + " is inside " + roots[j].string() + " (" +
                      real[i].string() + ")");
    }
  }
  return out;
}

}  // namespace fe::watch
