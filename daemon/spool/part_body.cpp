// Part bodies out of the spool: see part_body.hpp. Moved here from pipeline.cpp (issue 14), where
// the upload read spool frames itself.
#include "spool/part_body.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/hashing.hpp"

namespace fe::spool {
namespace fs = std::filesystem;

ByteStream range_stream(const fs::path& path, std::uint64_t offset, std::uint64_t length) {
  struct Range {
    int fd = -1;
    std::uint64_t off = 0, len = 0, pos = 0;
    ~Range() {
      if (fd >= 0) ::close(fd);
    }
  };
  auto r = std::make_shared<Range>();
  r->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  r->off = offset;
  r->len = length;
  ByteStream src;
  src.size = length;
  src.read = [r](std::span<char> buf) -> std::ptrdiff_t {
    if (r->fd < 0) return -1;
    std::uint64_t want = std::min<std::uint64_t>(buf.size(), r->len - r->pos);
    if (want == 0) return 0;
    ssize_t n = ::pread(r->fd, buf.data(), want, static_cast<off_t>(r->off + r->pos));
    if (n <= 0) return -1;
    r->pos += static_cast<std::uint64_t>(n);
    return n;
  };
  src.rewind = [r]() {
    r->pos = 0;
    return r->fd >= 0;
  };
  return src;
}

ByteStream source_stream(const fs::path& source, const FileIdentity& taken, const Frame& frame,
                         ByteStream fallback) {
  struct Source {
    int fd = -1;
    FileIdentity taken;
    std::uint64_t off = 0, len = 0, pos = 0;
    std::uint32_t want_crc = 0, crc = 0;
    bool fell_back = false;
    ByteStream fallback;
    bool unchanged() const {
      struct stat st;
      return fd >= 0 && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && identity_of(st) == taken;
    }
    ~Source() {
      if (fd >= 0) ::close(fd);
    }
  };
  ByteStream src;
  if (frame.source_offset < 0) return src;
  auto s = std::make_shared<Source>();
  s->fd = ::open(source.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  s->taken = taken;
  if (!s->unchanged()) return src;
  s->off = static_cast<std::uint64_t>(frame.source_offset);
  s->len = frame.uncompressed_size;
  s->want_crc = frame.crc32c;
  s->fallback = std::move(fallback);
  src.size = frame.uncompressed_size;
  src.read = [s](std::span<char> buf) -> std::ptrdiff_t {
    if (s->fell_back) return s->fallback.read ? s->fallback.read(buf) : -1;
    std::uint64_t want = std::min<std::uint64_t>(buf.size(), s->len - s->pos);
    if (want == 0) return 0;
    ssize_t n = ::pread(s->fd, buf.data(), want, static_cast<off_t>(s->off + s->pos));
    if (n <= 0) return -1;
    s->crc = fe::crc32c(buf.data(), static_cast<size_t>(n), s->crc);
    s->pos += static_cast<std::uint64_t>(n);
    if (s->pos == s->len && s->crc != s->want_crc) {
      s->fell_back = true;  // rewritten in place: the part comes from the spool from now on
      return -1;
    }
    return n;
  };
  src.rewind = [s]() {
    if (!s->fell_back && !s->unchanged()) s->fell_back = true;
    if (s->fell_back) return s->fallback.rewind && s->fallback.rewind();
    s->pos = 0;
    s->crc = 0;
    return true;
  };
  return src;
}

std::string sha256_of_range(const fs::path& path, std::uint64_t offset, std::uint64_t length) {
  fe::Sha256 sha;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return "";
  bool ok = true;
  std::vector<char> buf(1 << 17);
  std::uint64_t pos = 0;
  while (ok && pos < length) {
    const auto want = static_cast<size_t>(std::min<std::uint64_t>(buf.size(), length - pos));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(offset + pos));
    if (n <= 0) {
      ok = false;
      break;
    }
    sha.update(buf.data(), static_cast<size_t>(n));
    pos += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  if (!ok) return "";
  return sha.final_hex();
}

ByteStream frame_stream(const fs::path& path, const Frame& f) {
  struct Stream {
    int fd = -1;
    // Created at the first read: a frame kept only as source_stream's fallback is never read.
    ZSTD_DCtx* d = nullptr;
    std::uint64_t c_off = 0, c_size = 0, c_pos = 0, u_size = 0, u_pos = 0;
    std::vector<char> in;
    size_t in_pos = 0, in_len = 0;
    ~Stream() {
      if (fd >= 0) ::close(fd);
      if (d) ZSTD_freeDCtx(d);
    }
  };
  auto st = std::make_shared<Stream>();
  st->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  st->c_off = f.compressed_offset;
  st->c_size = f.compressed_size;
  st->u_size = f.uncompressed_size;
  ByteStream src;
  src.size = f.uncompressed_size;
  src.read = [st](std::span<char> buf) -> std::ptrdiff_t {
    if (st->fd < 0) return -1;
    if (st->u_pos == st->u_size) return 0;
    if (!st->d) {
      st->d = ZSTD_createDCtx();
      if (!st->d) return -1;
      st->in.resize(ZSTD_DStreamInSize());
    }
    ZSTD_outBuffer ob{buf.data(), std::min<std::uint64_t>(buf.size(), st->u_size - st->u_pos), 0};
    while (ob.pos == 0) {
      if (st->in_pos == st->in_len) {
        std::uint64_t want = std::min<std::uint64_t>(st->in.size(), st->c_size - st->c_pos);
        if (want == 0) return -1;  // frame ended before its uncompressed size: damaged spool
        ssize_t n = ::pread(st->fd, st->in.data(), want, static_cast<off_t>(st->c_off + st->c_pos));
        if (n <= 0) return -1;
        st->c_pos += static_cast<std::uint64_t>(n);
        st->in_pos = 0;
        st->in_len = static_cast<size_t>(n);
      }
      ZSTD_inBuffer ib{st->in.data(), st->in_len, st->in_pos};
      size_t r = ZSTD_decompressStream(st->d, &ob, &ib);
      st->in_pos = ib.pos;
      if (ZSTD_isError(r)) return -1;
    }
    st->u_pos += ob.pos;
    return static_cast<std::ptrdiff_t>(ob.pos);
  };
  src.rewind = [st]() {
    if (st->fd < 0) return false;
    if (st->d) ZSTD_DCtx_reset(st->d, ZSTD_reset_session_only);
    st->c_pos = st->u_pos = 0;
    st->in_pos = st->in_len = 0;
    return true;
  };
  return src;
}

FileChecksum file_crc32c(const fs::path& path) {
  FileChecksum out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) throw Error("cannot open " + path.string());
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      ::close(fd);
      throw Error("cannot read " + path.string());
    }
    if (n == 0) break;
    out.crc32c = fe::crc32c(buf.data(), static_cast<size_t>(n), out.crc32c);
    out.size += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  return out;
}

}  // namespace fe::spool
