#pragma once
// Whether a pipeline's watch root can be watched now. Shared by `check-config`, `doctor` (an
// error there) and the watcher (a warning, then it waits for the root: issue 17).
#include <filesystem>
#include <string>
#include <vector>

namespace fe::watch {

// "" when `root` is a directory the current user can list and enter (what inotify_add_watch and
// the scans need); else why not, with the fix in mind: "does not exist", "is not a directory",
// "is not readable by user fhir-edge (drwxr-x--- root:root)".
std::string root_problem(const std::filesystem::path& root);

// Pairs of roots that are the same directory or nested once symlinks are resolved (the config
// check compares the paths as written). Each entry: "A is inside B" / "A and B are the same
// directory". Roots that do not exist are left out.
std::vector<std::string> nested_roots(const std::vector<std::filesystem::path>& roots);

}  // namespace fe::watch
