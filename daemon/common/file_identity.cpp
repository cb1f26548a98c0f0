#include "common/file_identity.hpp"

namespace fe {

FileIdentity identity_of(const struct stat& st) {
  FileIdentity id;
  id.dev = static_cast<std::uint64_t>(st.st_dev);
  id.inode = static_cast<std::uint64_t>(st.st_ino);
  id.size = static_cast<std::uint64_t>(st.st_size);
  id.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return id;
}

std::optional<FileIdentity> identity_of(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return identity_of(st);
}

std::string_view identity_change(const FileIdentity& then, const FileIdentity& now) {
  if (now.dev != then.dev || now.inode != then.inode) return "replaced (inode)";
  if (now.size != then.size) return "size";
  if (now.mtime_ns != then.mtime_ns) return "modified (mtime)";
  return {};
}

}  // namespace fe
