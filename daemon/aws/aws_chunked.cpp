#include "aws/aws_chunked.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "aws/crc32c.hpp"

namespace fe::aws {

namespace {

std::string hex_size(std::uint64_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  do {
    out.insert(out.begin(), kDigits[n & 0xf]);
    n >>= 4;
  } while (n != 0);
  return out;
}

// "0\r\nx-amz-checksum-crc32c:<base64>\r\n\r\n"; the base64 of 4 bytes is always 8 characters.
std::string final_chunk(std::uint32_t crc) {
  return "0\r\n" + std::string(kCrc32cTrailer) + ":" + crc32c_base64(crc) + "\r\n\r\n";
}

struct Encoder {
  BodySource payload;
  std::optional<std::uint32_t> known_crc;
  std::size_t chunk_size;

  Crc32c crc;                 // when known_crc is nullopt
  std::uint64_t decoded = 0;  // payload bytes read so far
  std::uint64_t chunk_left = 0;
  std::string framing;  // framing bytes waiting to be copied out
  std::size_t framing_at = 0;
  bool finished = false;  // the final chunk and trailer are in `framing`

  void reset() {
    crc = Crc32c{};
    decoded = 0;
    chunk_left = 0;
    framing.clear();
    framing_at = 0;
    finished = false;
    next_chunk();
  }

  // Queues the header of the next chunk, or the final chunk with the trailer.
  void next_chunk() {
    const std::uint64_t left = payload.size - decoded;
    if (left == 0) {
      framing += final_chunk(known_crc ? *known_crc : crc.value());
      finished = true;
      return;
    }
    chunk_left = std::min<std::uint64_t>(left, chunk_size);
    framing += hex_size(chunk_left) + "\r\n";
  }

  std::ptrdiff_t read(std::span<char> buf) {
    std::size_t out = 0;
    while (out < buf.size()) {
      if (framing_at < framing.size()) {
        const std::size_t n = std::min(buf.size() - out, framing.size() - framing_at);
        std::memcpy(buf.data() + out, framing.data() + framing_at, n);
        framing_at += n;
        out += n;
        if (framing_at == framing.size()) {
          framing.clear();
          framing_at = 0;
        }
        continue;
      }
      if (chunk_left == 0) {
        if (finished) break;
        next_chunk();
        continue;
      }
      const std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(buf.size() - out, chunk_left));
      const auto n = payload.read(std::span<char>(buf.data() + out, want));
      if (n <= 0) return -1;  // failed, or shorter than its declared size
      const auto got = static_cast<std::size_t>(n);
      if (!known_crc) crc.update(buf.data() + out, got);
      out += got;
      decoded += got;
      chunk_left -= got;
      if (chunk_left == 0) {
        framing += "\r\n";
        next_chunk();
      }
    }
    return static_cast<std::ptrdiff_t>(out);
  }
};

}  // namespace

std::uint64_t aws_chunked_length(std::uint64_t decoded, std::size_t chunk_size) {
  const std::uint64_t full = decoded / chunk_size;
  const std::uint64_t rest = decoded % chunk_size;
  std::uint64_t n = full * (hex_size(chunk_size).size() + 2 + chunk_size + 2);
  if (rest > 0) n += hex_size(rest).size() + 2 + rest + 2;
  return n + final_chunk(0).size();
}

BodySource aws_chunked_body(BodySource payload, std::optional<std::uint32_t> crc32c,
                            std::size_t chunk_size) {
  auto e = std::make_shared<Encoder>();
  e->payload = std::move(payload);
  e->known_crc = crc32c;
  e->chunk_size = std::max<std::size_t>(chunk_size, 1);
  e->reset();
  BodySource s;
  s.size = aws_chunked_length(e->payload.size, e->chunk_size);
  s.read = [e](std::span<char> buf) { return e->read(buf); };
  if (e->payload.rewind) {
    s.rewind = [e] {
      if (!e->payload.rewind()) return false;
      e->reset();
      return true;
    };
  }
  return s;
}

}  // namespace fe::aws
