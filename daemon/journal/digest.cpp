#include "journal/digest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "common/hashing.hpp"

namespace fe::journal {
namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }  // returned by open_regular: one owner
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// The file opened for hashing. O_NONBLOCK + S_ISREG: a FIFO swapped in after the watcher looked
// must not block a pool thread in open() or read(); O_NOFOLLOW: a symlink is an error.
Fd open_regular(const std::filesystem::path& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)};
  if (f.fd < 0)
    throw std::runtime_error("content digest: cannot open " + path.string() + ": " +
                             std::strerror(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode))
    throw std::runtime_error("content digest: " + path.string() + " is not a regular file");
  return f;
}

// Bytes in, one SHA-256 per kDigestPiece bytes out (on_piece), the last piece at finish().
class PieceHasher {
 public:
  template <typename OnPiece>
  void update(const unsigned char* p, std::uint64_t n, OnPiece&& on_piece) {
    while (n > 0) {
      const std::uint64_t take = std::min(n, kDigestPiece - in_piece_);
      sha_.update(p, static_cast<size_t>(take));
      p += take;
      n -= take;
      in_piece_ += take;
      if (in_piece_ == kDigestPiece) {
        on_piece(sha_.final_digest());
        in_piece_ = 0;
      }
    }
  }
  bool partial() const { return in_piece_ > 0; }  // bytes of a piece not ended yet
  template <typename OnPiece>
  void finish(OnPiece&& on_piece) {
    if (in_piece_ > 0) on_piece(sha_.final_digest());
    in_piece_ = 0;
  }

 private:
  fe::Sha256 sha_;
  std::uint64_t in_piece_ = 0;
};

// Reads [start, start + max) of the file, or to its end when that comes first, in 1 MiB preads
// (fewer calls than 64 KiB), handing each block to on_bytes. Returns the bytes read.
template <typename OnBytes>
std::uint64_t read_blocks(const Fd& f, const std::filesystem::path& path, std::uint64_t start,
                          std::uint64_t max, OnBytes&& on_bytes) {
  ::posix_fadvise(f.fd, static_cast<off_t>(start), 0, POSIX_FADV_SEQUENTIAL);
  std::vector<unsigned char> buf(1 << 20);
  std::uint64_t got = 0;
  while (got < max) {
    const auto want = static_cast<size_t>(std::min<std::uint64_t>(buf.size(), max - got));
    ssize_t n = ::pread(f.fd, buf.data(), want, static_cast<off_t>(start + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("content digest: cannot read " + path.string() + ": " +
                               std::strerror(errno));
    }
    if (n == 0) break;
    got += static_cast<std::uint64_t>(n);
    on_bytes(buf.data(), static_cast<std::uint64_t>(n));
  }
  return got;
}

std::runtime_error changed_while_read(const std::filesystem::path& path) {
  return std::runtime_error("content digest: " + path.string() + " changed while it was read");
}

}  // namespace

DigestScheme scheme_of(std::string_view digest) {
  return digest.starts_with(kLegacyDigestPrefix) ? DigestScheme::legacy : DigestScheme::pieces;
}

struct SourceHasher::Impl {
  PieceHasher pieces;
  fe::Sha256 root;
  std::uint64_t size = 0;
};

SourceHasher::SourceHasher()
    : impl_(std::make_unique<Impl>()), kept_(std::make_shared<std::vector<fe::Sha256Digest>>()) {}
SourceHasher::~SourceHasher() = default;

void SourceHasher::update(const void* data, std::uint64_t n) {
  impl_->size += n;
  impl_->pieces.update(static_cast<const unsigned char*>(data), n,
                       [this](const fe::Sha256Digest& d) { end_piece(d); });
}

void SourceHasher::end_piece(const fe::Sha256Digest& d) {
  impl_->root.update(d.data(), d.size());
  if (kept_->size() < kPiecesKept) kept_->push_back(d);
}

FileDigest SourceHasher::finish() {
  impl_->pieces.finish([this](const fe::Sha256Digest& d) { end_piece(d); });
  FileDigest out;
  out.root = impl_->root.final_digest();
  out.size = impl_->size;
  out.pieces = kept_;
  return out;
}

FileDigest file_digest(const std::filesystem::path& path, DigestScheme scheme) {
  Fd f = open_regular(path);
  // The size is hashed from the bytes actually read: a file that grows while it is hashed
  // yields a different digest rather than a torn one with a stale size.
  fe::Sha256 content;  // legacy: of the whole content
  SourceHasher pieces;
  FileDigest out;
  const std::uint64_t size =
      read_blocks(f, path, 0, UINT64_MAX, [&](const unsigned char* p, std::uint64_t n) {
        if (scheme == DigestScheme::legacy)
          content.update(p, static_cast<size_t>(n));
        else
          pieces.update(p, n);
      });
  if (scheme == DigestScheme::legacy) {
    out.root = content.final_digest();
    out.size = size;
  } else {
    out = pieces.finish();
  }
  struct stat st {};
  if (::fstat(f.fd, &st) == 0) out.identity = fe::identity_of(st);
  return out;
}

PieceRange digest_pieces(const std::filesystem::path& path, std::uint64_t first,
                         std::uint64_t count) {
  Fd f = open_regular(path);
  PieceRange out;
  PieceHasher pieces;
  auto end_piece = [&](const fe::Sha256Digest& d) { out.pieces.push_back(d); };
  const std::uint64_t max = count > 0 ? count * kDigestPiece : UINT64_MAX;  // bytes of the range
  out.bytes =
      read_blocks(f, path, first * kDigestPiece, max,
                  [&](const unsigned char* p, std::uint64_t n) { pieces.update(p, n, end_piece); });
  // A range of `count` pieces ends on a whole piece; only the last range (to the end) may not.
  if (count > 0 && (pieces.partial() || out.pieces.size() != count)) throw changed_while_read(path);
  pieces.finish(end_piece);
  struct stat st {};
  if (::fstat(f.fd, &st) == 0) out.identity = fe::identity_of(st);
  return out;
}

FileDigest file_digest_of_pieces(const std::filesystem::path& path,
                                 std::vector<PieceRange> ranges) {
  FileDigest out;
  fe::Sha256 root;
  std::vector<fe::Sha256Digest> kept;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const auto& r = ranges[i];
    if (i > 0 && !(r.identity == ranges[0].identity)) throw changed_while_read(path);
    for (const auto& d : r.pieces) {
      root.update(d.data(), d.size());
      if (kept.size() < kPiecesKept) kept.push_back(d);
    }
    out.size += r.bytes;
  }
  out.root = root.final_digest();
  out.pieces = std::make_shared<const std::vector<fe::Sha256Digest>>(std::move(kept));
  if (!ranges.empty()) out.identity = ranges[0].identity;
  return out;
}

std::string combine_digest(std::vector<std::pair<std::string, FileDigest>> files,
                           DigestScheme scheme) {
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  fe::Sha256 all;
  for (const auto& [name, d] : files) {
    all.update(name);
    all.update("\0", 1);
    unsigned char size_be[8];
    for (int i = 0; i < 8; ++i) size_be[i] = static_cast<unsigned char>(d.size >> (56 - 8 * i));
    all.update(size_be, sizeof size_be);
    all.update(d.root.data(), d.root.size());
  }
  return std::string(scheme == DigestScheme::legacy ? kLegacyDigestPrefix : kPiecesDigestPrefix) +
         all.final_hex();
}

std::string content_digest(const std::filesystem::path& dir, std::vector<std::string> names,
                           DigestScheme scheme) {
  std::vector<std::pair<std::string, FileDigest>> files;
  for (auto& name : names) {
    auto d = file_digest(dir / name, scheme);
    files.emplace_back(std::move(name), d);
  }
  return combine_digest(std::move(files), scheme);
}

std::string client_token(std::string_view pipeline, std::string_view source_path,
                         std::string_view digest, int version) {
  return import_client_token(pipeline, source_path, digest, version, 1, 1);
}

std::string import_client_token(std::string_view pipeline, std::string_view source_path,
                                std::string_view digest, int version, int attempt, int part) {
  if (is_pending_digest(digest))
    throw std::logic_error("import token: export's content digest is still pending");
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
