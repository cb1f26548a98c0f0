#include "fleet/s3_cas.hpp"

#include <memory>
#include <random>

#include "aws/crc32c.hpp"

namespace fe::fleet {

void cas_read(aws::S3Client& s3, const std::string& bucket, const std::string& key,
              std::function<void(CasRead)> done) {
  auto body = std::make_shared<std::string>();
  auto too_big = std::make_shared<bool>(false);
  aws::GetObjectRequest req;
  req.bucket = bucket;
  req.key = key;
  req.sink = [body, too_big](std::string_view chunk) {
    if (body->size() + chunk.size() > kMaxCasObjectBytes) {
      *too_big = true;
      return false;
    }
    body->append(chunk);
    return true;
  };
  s3.get_object(std::move(req), [body, too_big, key, done = std::move(done)](auto r) {
    CasRead out;
    if (*too_big) {
      aws::AwsError e;
      e.code = "FleetObjectTooLarge";
      e.message = key + " is larger than " + std::to_string(kMaxCasObjectBytes) + " bytes";
      out.error = e;
    } else if (r.ok()) {
      out.etag = r.value->etag;
      out.body = std::move(*body);
    } else if (r.error->category == aws::ErrorCategory::not_found &&
               r.error->code != "NoSuchBucket") {
      out.absent = true;
    } else {
      out.error = *r.error;
    }
    done(std::move(out));
  });
}

void cas_write(aws::S3Client& s3, const std::string& bucket, const std::string& key,
               std::string body, Condition cond, const std::string& etag,
               std::function<void(CasWrite)> done) {
  // The body must outlive the request (retries rewind it): the callback owns it.
  auto bytes = std::make_shared<std::string>(std::move(body));
  aws::PutObjectRequest req;
  req.bucket = bucket;
  req.key = key;
  req.body = aws::BodySource::from_view(*bytes);
  req.crc32c = aws::crc32c(*bytes);
  req.content_type = "application/json";
  if (cond == Condition::create_only)
    req.if_none_match = true;
  else
    req.if_match = etag;
  s3.put_object(std::move(req), [bytes, cond, done = std::move(done)](auto r) {
    CasWrite out;
    if (r.ok()) {
      out.written = true;
      out.etag = r.value->etag;
    } else if (r.error->http_status == 412 || r.error->http_status == 409 ||
               (cond == Condition::if_match && r.error->code == "NoSuchKey")) {
      out.conflict = true;
    } else {
      out.error = *r.error;
    }
    done(std::move(out));
  });
}

std::string random_token() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 2; ++i) {
    std::uint64_t v = rng();
    for (int j = 0; j < 16; ++j, v >>= 4) s += digits[v & 15];
  }
  return s;
}

}  // namespace fe::fleet
