#include "watch/identity.hpp"

#include <sys/stat.h>

namespace fe::watch {

std::optional<FileIdentity> identity_of(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  FileIdentity id;
  id.dev = static_cast<uint64_t>(st.st_dev);
  id.inode = static_cast<uint64_t>(st.st_ino);
  id.size = static_cast<uint64_t>(st.st_size);
  id.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return id;
}

std::vector<Change> changed_after_taken(const std::vector<TakenFile>& files) {
  std::vector<Change> out;
  for (const auto& f : files) {
    auto now = identity_of(f.path);
    if (!now)
      out.push_back({f.name, "deleted"});
    else if (now->dev != f.identity.dev || now->inode != f.identity.inode)
      out.push_back({f.name, "replaced (inode)"});
    else if (now->size != f.identity.size)
      out.push_back({f.name, "size"});
    else if (now->mtime_ns != f.identity.mtime_ns)
      out.push_back({f.name, "modified (mtime)"});
  }
  return out;
}

}  // namespace fe::watch
