#pragma once
// Test-side multipart driver: what the pipeline's upload stage does, in miniature. Data is
// generated on the fly from (seed, offset), so a GiB upload needs no GiB of memory or disk and a
// part can be regenerated (rewound) for a retry.
#include <openssl/evp.h>

#include <boost/asio.hpp>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aws/crc32c.hpp"
#include "aws/s3.hpp"

namespace fe::test {

// Deterministic pseudo-random bytes: byte p of the stream depends only on (seed, p).
inline void generate(std::uint64_t seed, std::uint64_t offset, char* out, std::size_t n) {
  auto word = [seed](std::uint64_t i) {
    std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  std::size_t done = 0;
  while (done < n) {
    std::uint64_t p = offset + done;
    std::uint64_t w = word(p / 8);
    std::size_t in_word = p % 8;
    std::size_t take = std::min<std::size_t>(8 - in_word, n - done);
    for (std::size_t k = 0; k < take; ++k)
      out[done + k] = static_cast<char>(w >> (8 * (in_word + k)));
    done += take;
  }
}

// A BodySource over bytes [begin, end) of the generated stream.
inline aws::BodySource generated_source(std::uint64_t seed, std::uint64_t begin,
                                        std::uint64_t end) {
  auto pos = std::make_shared<std::uint64_t>(begin);
  aws::BodySource s;
  s.size = end - begin;
  s.read = [=](std::span<char> buf) -> std::ptrdiff_t {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), end - *pos));
    generate(seed, *pos, buf.data(), n);
    *pos += n;
    return static_cast<std::ptrdiff_t>(n);
  };
  s.rewind = [=] {
    *pos = begin;
    return true;
  };
  return s;
}

struct PartDigest {
  std::uint32_t crc = 0;
  std::string sha256;
};

inline PartDigest digest_range(std::uint64_t seed, std::uint64_t begin, std::uint64_t end) {
  PartDigest d;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  for (std::uint64_t p = begin; p < end;) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), end - p));
    generate(seed, p, buf.data(), n);
    d.crc = aws::crc32c(buf.data(), n, d.crc);
    EVP_DigestUpdate(ctx, buf.data(), n);
    p += n;
  }
  unsigned char md[32];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  d.sha256 = aws::hex(md, len);
  return d;
}

inline std::string sha256_of_generated(std::uint64_t seed, std::uint64_t size) {
  return digest_range(seed, 0, size).sha256;
}

// Uploads parts `which` (1-based numbers) of a generated object with at most `concurrency` in
// flight; calls done(parts) with every part's result or the first error.
class PartUploader {
 public:
  struct Outcome {
    std::vector<aws::CompletedPart> parts;  // by part number order
    std::vector<std::uint32_t> crcs;
    std::optional<std::string> error;
  };

  PartUploader(aws::S3Client& client, std::string bucket, std::string key, std::string upload_id,
               std::uint64_t seed, std::uint64_t size, std::uint64_t part_size)
      : client_(client),
        bucket_(std::move(bucket)),
        key_(std::move(key)),
        upload_id_(std::move(upload_id)),
        seed_(seed),
        size_(size),
        part_size_(part_size) {
    std::uint64_t n = (size + part_size - 1) / part_size;
    out_.parts.resize(n);
    out_.crcs.resize(n);
  }

  int part_count() const { return static_cast<int>(out_.parts.size()); }

  // Starts the given parts; `on_part` (optional) is told of each finished part.
  void start(std::vector<int> which, std::size_t concurrency, std::function<void(Outcome&)> done,
             std::function<void(int)> on_part = {}) {
    todo_.assign(which.begin(), which.end());
    concurrency_ = concurrency;
    done_ = std::move(done);
    on_part_ = std::move(on_part);
    pump();
  }
  Outcome& outcome() { return out_; }
  std::size_t in_flight() const { return in_flight_; }

 private:
  void pump() {
    while (in_flight_ < concurrency_ && !todo_.empty() && !failed_) {
      int num = todo_.front();
      todo_.pop_front();
      ++in_flight_;
      std::uint64_t begin = static_cast<std::uint64_t>(num - 1) * part_size_;
      std::uint64_t end = std::min(size_, begin + part_size_);
      auto d = digest_range(seed_, begin, end);
      out_.crcs[num - 1] = d.crc;
      aws::UploadPartRequest req;
      req.bucket = bucket_;
      req.key = key_;
      req.upload_id = upload_id_;
      req.part_number = num;
      req.body = generated_source(seed_, begin, end);
      req.crc32c = d.crc;
      req.payload_sha256 = d.sha256;
      client_.upload_part(std::move(req), [this, num](aws::S3Result<aws::UploadPartResult> r) {
        --in_flight_;
        if (!r.ok()) {
          if (!failed_) {
            failed_ = true;
            out_.error = r.describe();
          }
        } else {
          out_.parts[num - 1] = {num, r.value->etag, r.value->checksum_crc32c};
          if (on_part_) on_part_(num);
        }
        if (in_flight_ == 0 && (todo_.empty() || failed_)) {
          if (done_) {
            auto d = std::move(done_);
            d(out_);
          }
          return;
        }
        pump();
      });
    }
  }

  aws::S3Client& client_;
  std::string bucket_, key_, upload_id_;
  std::uint64_t seed_, size_, part_size_;
  std::deque<int> todo_;
  std::size_t concurrency_ = 1;
  std::size_t in_flight_ = 0;
  bool failed_ = false;
  Outcome out_;
  std::function<void(Outcome&)> done_;
  std::function<void(int)> on_part_;
};

}  // namespace fe::test
