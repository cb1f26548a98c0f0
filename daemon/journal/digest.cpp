#include "journal/digest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "common/hashing.hpp"

namespace fe::journal {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

FileDigest file_digest(const std::filesystem::path& path) {
  // O_NONBLOCK + S_ISREG: a FIFO swapped in after the watcher looked must not block a pool
  // thread in open() or read().
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)};
  if (f.fd < 0)
    throw std::runtime_error("content digest: cannot open " + path.string() + ": " +
                             std::strerror(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode))
    throw std::runtime_error("content digest: " + path.string() + " is not a regular file");
  ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  // The size is hashed from the bytes actually read: a file that grows while it is hashed
  // yields a different digest rather than a torn one with a stale size.
  fe::Sha256 content;
  FileDigest out;
  std::vector<unsigned char> buf(1 << 20);  // fewer read() calls than 64 KiB; same bytes hashed
  for (;;) {
    ssize_t n = ::read(f.fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("content digest: cannot read " + path.string() + ": " +
                               std::strerror(errno));
    }
    if (n == 0) break;
    content.update(buf.data(), static_cast<size_t>(n));
    out.size += static_cast<uint64_t>(n);
  }
  out.sha256 = content.final_digest();
  return out;
}

std::string combine_digest(std::vector<std::pair<std::string, FileDigest>> files) {
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  fe::Sha256 all;
  for (const auto& [name, d] : files) {
    all.update(name);
    all.update("\0", 1);
    unsigned char size_be[8];
    for (int i = 0; i < 8; ++i) size_be[i] = static_cast<unsigned char>(d.size >> (56 - 8 * i));
    all.update(size_be, sizeof size_be);
    all.update(d.sha256.data(), d.sha256.size());
  }
  return "sha256:" + all.final_hex();
}

std::string content_digest(const std::filesystem::path& dir, std::vector<std::string> names) {
  std::vector<std::pair<std::string, FileDigest>> files;
  for (auto& name : names) {
    auto d = file_digest(dir / name);
    files.emplace_back(std::move(name), d);
  }
  return combine_digest(std::move(files));
}

std::string client_token(std::string_view pipeline, std::string_view source_path,
                         std::string_view digest, int version) {
  return import_client_token(pipeline, source_path, digest, version, 1, 1);
}

std::string import_client_token(std::string_view pipeline, std::string_view source_path,
                                std::string_view digest, int version, int attempt, int part) {
  std::string input(pipeline);
  input += '\0';
  input += source_path;
  input += '\0';
  input += digest;
  input += '\0';
  input += std::to_string(version);
  // Attempt 1, part 1 hashes exactly what client_token always hashed (journals from before
  // schema 3 hold that token); any other job of the export gets its own.
  if (attempt != 1 || part != 1) {
    input += '\0';
    input += "attempt " + std::to_string(attempt) + " part " + std::to_string(part);
  }
  // 24 of the 32 bytes: "fe-" + 48 hex digits stays within ClientToken's 64 characters.
  const auto md = fe::sha256(input);
  return "fe-" + fe::to_hex(md.data(), 24);
}

}  // namespace fe::journal
