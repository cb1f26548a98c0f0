#pragma once
// A file's identity: what the watcher records when it takes an export and what is compared later
// to tell "the same file, unchanged" from "replaced, grown or rewritten" (issue 14 item 5: the
// watcher and the journal each had a struct of their own). A change of (dev, inode) is a different
// file; the same inode with another size or mtime is the same file rewritten.
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>

namespace fe {

struct FileIdentity {
  std::uint64_t dev = 0;
  std::uint64_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;  // st_mtim in nanoseconds since the epoch
  bool operator==(const FileIdentity&) const = default;
};

// The identity in a stat/lstat/fstat result.
FileIdentity identity_of(const struct stat& st);

// lstat() of the path (symlinks are not followed); nullopt when it does not exist or is not a
// regular file.
std::optional<FileIdentity> identity_of(const std::filesystem::path& path);

// How `now` differs from `then`, the first difference in this order: "replaced (inode)" (another
// dev or inode), "size", "modified (mtime)"; empty when they are the same.
std::string_view identity_change(const FileIdentity& then, const FileIdentity& now);

}  // namespace fe
