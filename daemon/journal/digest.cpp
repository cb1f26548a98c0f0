#include "journal/digest.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace fe::journal {
namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string content_digest(const std::filesystem::path& dir, std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("content digest: cannot initialise SHA-256");
  std::array<unsigned char, 64 * 1024> buf{};
  for (const auto& name : names) {
    auto path = dir / name;
    // O_NONBLOCK + S_ISREG: a FIFO swapped in after the watcher looked must not block a pool
    // thread in open() or read().
    Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)};
    if (f.fd < 0)
      throw std::runtime_error("content digest: cannot open " + path.string() + ": " +
                               std::strerror(errno));
    struct stat st {};
    if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode))
      throw std::runtime_error("content digest: " + path.string() + " is not a regular file");
    // The size is hashed after reading, from the bytes actually read: a file that grows while it
    // is hashed yields a different digest rather than a torn one with a stale size.
    EVP_DigestUpdate(ctx.get(), name.data(), name.size());
    EVP_DigestUpdate(ctx.get(), "\0", 1);
    uint64_t total = 0;
    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> content(EVP_MD_CTX_new());
    if (!content || EVP_DigestInit_ex(content.get(), EVP_sha256(), nullptr) != 1)
      throw std::runtime_error("content digest: cannot initialise SHA-256");
    for (;;) {
      ssize_t n = ::read(f.fd, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error("content digest: cannot read " + path.string() + ": " +
                                 std::strerror(errno));
      }
      if (n == 0) break;
      EVP_DigestUpdate(content.get(), buf.data(), static_cast<size_t>(n));
      total += static_cast<uint64_t>(n);
    }
    unsigned char size_be[8];
    for (int i = 0; i < 8; ++i) size_be[i] = static_cast<unsigned char>(total >> (56 - 8 * i));
    unsigned char inner[EVP_MAX_MD_SIZE];
    unsigned int inner_len = 0;
    EVP_DigestFinal_ex(content.get(), inner, &inner_len);
    EVP_DigestUpdate(ctx.get(), size_be, sizeof size_be);
    EVP_DigestUpdate(ctx.get(), inner, inner_len);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
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
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(input.data(), input.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("client token: SHA-256 failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "fe-";
  for (unsigned int i = 0; i < 24 && i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

}  // namespace fe::journal
