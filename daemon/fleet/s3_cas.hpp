#pragma once
// Compare-and-swap on one small S3 object, the primitive the fleet is built on (S3 conditional
// writes; docs/scale.md). Shared by fleet::Lease and fleet::Manifest.
//
// Contract:
// - read(): GetObject of the whole object, at most kMaxCasObjectBytes (a larger object is an
//   error: these objects are small by design, and memory stays bounded). A missing key is
//   `absent`, not an error.
// - write(): PutObject of `body` with either "If-None-Match: *" (create only) or
//   "If-Match: <etag>" (replace only that version). `conflict` is a refused precondition:
//   412 PreconditionFailed, 404 NoSuchKey under If-Match (S3's answer when the key is gone) or
//   409 ConditionalRequestConflict (a delete raced the write). Any other failure is `error`.
// - A refused write is not proof that someone else won: the S3 client retries a PUT whose
//   response was lost, and the retry of a write that did land is refused (the ETag moved). So
//   every body carries a unique `token`, and callers re-read and compare it (written_by_us).
// - Callbacks run on the S3 client's io_context thread, exactly once.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "aws/errors.hpp"
#include "aws/s3.hpp"

namespace fe::fleet {

inline constexpr std::size_t kMaxCasObjectBytes = 1 << 20;

struct CasRead {
  bool absent = false;  // no object at the key
  std::string etag;     // quoted, as S3 sends it
  std::string body;
  std::optional<aws::AwsError> error;  // set: neither absent nor read
};

struct CasWrite {
  bool written = false;
  bool conflict = false;  // the precondition was refused (see above)
  std::string etag;       // of the new version, when written
  std::optional<aws::AwsError> error;
};

enum class Condition { create_only, if_match };

void cas_read(aws::S3Client& s3, const std::string& bucket, const std::string& key,
              std::function<void(CasRead)> done);
// `etag` is used with Condition::if_match only.
void cas_write(aws::S3Client& s3, const std::string& bucket, const std::string& key,
               std::string body, Condition cond, const std::string& etag,
               std::function<void(CasWrite)> done);

// 128 random bits as hex: the write token that identifies one write of one writer.
std::string random_token();

}  // namespace fe::fleet
