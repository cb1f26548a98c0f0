#pragma once
// Shared by the uplink tests: an S3 client against healthlake-local (tests/support) and a
// multipart upload of in-memory parts, so the measured time is network and limiter time only (the
// parts and their digests are made before the clock starts).
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <boost/asio.hpp>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aws/crc32c.hpp"
#include "aws/s3.hpp"
#include "healthlake_local.hpp"

namespace fe::test {

inline constexpr const char* kBucket = "fhir-landing";

template <class Pred>
bool run_until(boost::asio::io_context& io, Pred done, int seconds = 120) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  io.restart();
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.run_one_for(std::chrono::milliseconds(50));
  }
  return true;
}

inline std::string sha256_hex(std::string_view bytes) {
  unsigned char md[32];
  unsigned len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  return aws::hex(md, len);
}

// Deterministic, incompressible-looking bytes.
inline std::string make_bytes(std::size_t n, std::uint64_t seed) {
  std::string s(n, '\0');
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

struct S3Fixture {
  S3Fixture(const HealthLakeLocal& hll, aws::HttpOptions http = {}, std::string endpoint = {})
      : engine(io, http), caller(engine, config(hll, http, endpoint), creds(hll)), s3(caller) {}

  static aws::ClientConfig config(const HealthLakeLocal& hll, const aws::HttpOptions& http,
                                  const std::string& endpoint) {
    aws::ClientConfig cfg;
    cfg.region = hll.region();
    cfg.s3_endpoint = endpoint.empty() ? hll.endpoint() : endpoint;
    cfg.healthlake_endpoint = cfg.s3_endpoint;
    cfg.http = http;
    return cfg;
  }
  static aws::CredentialsFn creds(const HealthLakeLocal& hll) {
    aws::Credentials c;
    c.access_key_id = hll.access_key();
    c.secret_access_key = hll.secret_key();
    return aws::static_credentials(c);
  }

  template <class R, class F>
  R wait(F start) {
    std::optional<R> out;
    start([&](R r) { out = std::move(r); });
    EXPECT_TRUE(run_until(io, [&] { return out.has_value(); })) << "request hung";
    if (!out) return R{};
    return std::move(*out);
  }

  boost::asio::io_context io;
  aws::HttpEngine engine;
  aws::AwsCaller caller;
  aws::S3Client s3;
};

// A multipart upload of `data` in parts of `part_size`, at most `concurrency` parts in flight.
struct MultipartResult {
  std::optional<std::string> error;
  double seconds = 0;             // first UploadPart submitted .. last one answered
  std::size_t max_in_flight = 0;  // transfers the engine ran at once
  std::uint64_t bytes = 0;        // part bytes sent
};

class MultipartUpload {
 public:
  MultipartUpload(S3Fixture& f, std::string key, const std::string& data, std::size_t part_size)
      : f_(f), key_(std::move(key)) {
    for (std::size_t off = 0; off < data.size(); off += part_size) {
      Part p;
      p.number = static_cast<int>(parts_.size()) + 1;
      p.bytes = std::string_view(data).substr(off, std::min(part_size, data.size() - off));
      p.crc = aws::crc32c(p.bytes.data(), p.bytes.size(), 0);
      p.sha256 = sha256_hex(p.bytes);
      parts_.push_back(p);
    }
  }

  // `on_progress(bytes_handed_to_curl)` is called from the body reads (for mid-transfer changes).
  MultipartResult run(std::size_t concurrency,
                      std::function<void(std::uint64_t)> on_progress = {}) {
    MultipartResult out;
    auto created = f_.wait<aws::S3Result<aws::CreateMultipartResult>>([&](auto done) {
      f_.s3.create_multipart_upload({kBucket, key_, "application/fhir+ndjson", {}}, done);
    });
    if (!created.ok()) {
      out.error = "CreateMultipartUpload: " + created.describe();
      return out;
    }
    upload_id_ = created.value->upload_id;
    progress_ = std::move(on_progress);
    todo_.clear();
    for (auto& p : parts_) todo_.push_back(&p);
    concurrency_ = concurrency;
    const auto t0 = std::chrono::steady_clock::now();
    pump();
    bool ok = run_until(f_.io, [&] { return in_flight_ == 0 && (todo_.empty() || error_); });
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out.max_in_flight = max_in_flight_;
    out.bytes = sent_;
    if (!ok) {
      out.error = "upload hung";
      return out;
    }
    if (error_) {
      out.error = error_;
      return out;
    }
    std::vector<aws::CompletedPart> done;
    for (auto& p : parts_) done.push_back({p.number, p.etag, p.checksum});
    auto completed = f_.wait<aws::S3Result<aws::CompleteMultipartResult>>([&](auto d) {
      f_.s3.complete_multipart_upload({kBucket, key_, upload_id_, done, true}, d);
    });
    if (!completed.ok()) out.error = "CompleteMultipartUpload: " + completed.describe();
    return out;
  }

 private:
  struct Part {
    int number = 0;
    std::string_view bytes;
    std::uint32_t crc = 0;
    std::string sha256, etag, checksum;
  };

  // A body over the part's bytes that reports every read (bytes handed to curl).
  aws::BodySource source(const Part& p) {
    auto pos = std::make_shared<std::size_t>(0);
    aws::BodySource s;
    s.size = p.bytes.size();
    s.read = [this, bytes = p.bytes, pos](std::span<char> buf) -> std::ptrdiff_t {
      std::size_t n = std::min(buf.size(), bytes.size() - *pos);
      std::memcpy(buf.data(), bytes.data() + *pos, n);
      *pos += n;
      sent_ += n;
      if (progress_) progress_(sent_);
      return static_cast<std::ptrdiff_t>(n);
    };
    s.rewind = [this, pos] {
      sent_ -= *pos;
      *pos = 0;
      return true;
    };
    return s;
  }

  void pump() {
    while (in_flight_ < concurrency_ && !todo_.empty() && !error_) {
      Part* p = todo_.front();
      todo_.pop_front();
      ++in_flight_;
      aws::UploadPartRequest req;
      req.bucket = kBucket;
      req.key = key_;
      req.upload_id = upload_id_;
      req.part_number = p->number;
      req.body = source(*p);
      req.crc32c = p->crc;
      req.payload_sha256 = p->sha256;
      f_.s3.upload_part(std::move(req), [this, p](aws::S3Result<aws::UploadPartResult> r) {
        --in_flight_;
        if (!r.ok()) {
          if (!error_) error_ = "UploadPart " + std::to_string(p->number) + ": " + r.describe();
        } else {
          p->etag = r.value->etag;
          p->checksum = r.value->checksum_crc32c;
        }
        pump();
      });
    }
    // Parts are handed to the engine in pump(); curl starts them from the event loop.
    boost::asio::post(f_.io,
                      [this] { max_in_flight_ = std::max(max_in_flight_, f_.engine.active()); });
  }

  S3Fixture& f_;
  std::string key_;
  std::vector<Part> parts_;
  std::deque<Part*> todo_;
  std::string upload_id_;
  std::size_t concurrency_ = 1, in_flight_ = 0, max_in_flight_ = 0;
  std::uint64_t sent_ = 0;
  std::optional<std::string> error_;
  std::function<void(std::uint64_t)> progress_;
};

}  // namespace fe::test
