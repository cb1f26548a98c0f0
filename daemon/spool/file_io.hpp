#pragma once
// File helpers shared by the spool's .cpp files (internal to daemon/spool/).
#include <filesystem>
#include <string>
#include <string_view>

namespace fe::spool::detail {

// "<what> <path>: <strerror(errno)>".
std::string sys_error(std::string_view what, const std::filesystem::path& p);
// Writes all of `data` (retrying short writes and EINTR); throws Error naming `p`.
void write_all(int fd, const void* data, size_t size, const std::filesystem::path& p);
// Writes a file completely and, when `sync`, fsyncs it (no rename); throws Error naming `p`.
void write_synced(const std::filesystem::path& p, std::string_view content, bool sync);

}  // namespace fe::spool::detail
