#pragma once
// A source file's identity as the watcher saw it when an export was taken, and the
// "changed after taken" check: the pipeline re-checks identities before it records the spool as
// durable (and before deleting or moving sources), so an export is never uploaded half-old,
// half-new; a change re-takes it as a new version.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/file_identity.hpp"

namespace fe::watch {

// The identity and identity_of() are the project's one (common/file_identity.hpp).
using fe::FileIdentity;
using fe::identity_of;

struct TakenFile {
  std::string name;  // file name inside the export directory (or the root for single files)
  std::filesystem::path path;
  FileIdentity identity;
};

struct Change {
  std::string name;
  std::string what;  // "deleted", "replaced (inode)", "size", "modified (mtime)"
};

// Compares each file's identity now against the recorded one; empty = unchanged.
std::vector<Change> changed_after_taken(const std::vector<TakenFile>& files);

}  // namespace fe::watch
