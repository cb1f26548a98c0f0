#pragma once
// The S3 half of healthlake-local: buckets, objects and multipart uploads kept in a directory,
// with the rules real S3 applies (names, checksums, part sizes and order, preconditions,
// pagination). No HTTP here: the server maps requests onto these calls and S3Error onto AWS's
// XML error document, so the rules can be unit-tested directly.
//
// Layout under <data>/s3:
//   buckets/<bucket>/<sha256(key)>        object bytes      (+ .json: key, ETag, checksums,
//   headers) uploads/<uploadId>/upload.json        bucket, key, headers, checksum algorithm,
//   initiated uploads/<uploadId>/<n>                part bytes        (+ <n>.json: ETag, size,
//   checksums) tmp/                                  request bodies while they arrive
// Metadata is reloaded at start, so objects and unfinished uploads survive a restart.
// Not thread-safe: the server drives it from its single io_context thread.
#include <cstdint>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util.hpp"

namespace fe::hll {

// An S3 error: HTTP status, AWS code, message, and the extra elements AWS puts in <Error>.
struct S3Error : std::exception {
  int status;
  std::string code;
  std::string message;
  std::vector<std::pair<std::string, std::string>> fields;
  S3Error(int s, std::string c, std::string m,
          std::vector<std::pair<std::string, std::string>> f = {})
      : status(s), code(std::move(c)), message(std::move(m)), fields(std::move(f)) {}
  const char* what() const noexcept override { return message.c_str(); }
};

inline constexpr uint64_t kMinPartSize = 5ull * 1024 * 1024;  // S3's minimum for non-last parts
inline constexpr int kMaxPartNumber = 10000;

// What a PUT-like request carries besides its body.
struct WriteRequest {
  std::string content_type;
  std::map<std::string, std::string> stored_headers;  // SSE and x-amz-meta-*: stored and echoed
  std::optional<std::string> content_md5;             // Content-MD5 (base64) as sent
  std::map<std::string, std::string> checksums;       // "CRC32C"|"CRC32"|"SHA256" -> base64 as sent
  std::optional<std::string> content_sha256;          // x-amz-content-sha256 when it is a hex hash
  // S3 conditional writes (PutObject, CompleteMultipartUpload), evaluated when the write commits,
  // so of two racing writers the first to finish wins and the other gets 412:
  //   If-None-Match: *   412 PreconditionFailed when the key exists
  //   If-Match: <etag>   412 PreconditionFailed when the ETag differs, 404 NoSuchKey when absent
  // and 409 ConditionalRequestConflict when a DELETE of the key succeeded while this conditional
  // write was in flight (see conditional_conflict below).
  bool if_none_match_star = false;
  std::optional<std::string> if_match;  // the ETag as sent (quotes optional)
  // The store's delete sequence when the write began (PutObject: its headers arrived;
  // multipart: CreateMultipartUpload). nullopt: the write began now.
  std::optional<uint64_t> began_at;
};

struct ObjectInfo {
  std::string bucket, key;
  uint64_t size = 0;
  std::string etag;  // quoted, as S3 sends it
  SysTime last_modified;
  std::string content_type;
  std::map<std::string, std::string> stored_headers;
  std::map<std::string, std::string> checksums;  // algorithm -> base64 ("<b64>-N" if composite)
  std::string checksum_type;                     // FULL_OBJECT | COMPOSITE | ""
  int parts = 0;                                 // >0 for a multipart object
  std::filesystem::path data;
};

struct PartInfo {
  int number = 0;
  uint64_t size = 0;
  std::string etag;  // quoted
  std::string md5;   // raw
  SysTime last_modified;
  std::map<std::string, std::string> checksums;
};

struct UploadInfo {
  std::string upload_id, bucket, key;
  SysTime initiated;
  std::string content_type;
  std::map<std::string, std::string> stored_headers;
  std::string checksum_algorithm;  // "" or CRC32C/CRC32/SHA256
  std::map<int, PartInfo> parts;
  uint64_t began_at = 0;  // delete sequence at CreateMultipartUpload (not persisted: a restart
                          // starts the sequence again at 0)
};

struct ListV2Request {
  std::string prefix, delimiter, continuation_token, start_after;
  int max_keys = 1000;
};
struct ListV2Result {
  std::vector<const ObjectInfo*> contents;
  std::vector<std::string> common_prefixes;
  bool truncated = false;
  std::string next_token;
};

struct ListPartsResult {
  std::vector<const PartInfo*> parts;
  bool truncated = false;
  int next_marker = 0;
};

struct CompletePart {
  int number = 0;
  std::string etag;
  std::map<std::string, std::string> checksums;
};

struct ListUploadsResult {
  std::vector<const UploadInfo*> uploads;
  std::vector<std::string> common_prefixes;
  bool truncated = false;
  std::string next_key_marker, next_upload_id_marker;
};

class S3Store {
 public:
  // `min_part_size` is S3's 5 MiB unless a test lowers it on purpose (--min-part-size).
  // `md5_etags` false (--etag opaque): ETags are opaque random values, not the MD5 of the bytes,
  // as S3 gives for SSE-KMS objects; the MD5 is then computed only to check a Content-MD5 sent.
  explicit S3Store(std::filesystem::path dir, uint64_t min_part_size = kMinPartSize,
                   bool md5_etags = true);

  std::filesystem::path new_temp_path();  // where the server spools an incoming body

  static bool valid_bucket_name(std::string_view name);
  bool create_bucket(const std::string& name);  // false if it already existed
  bool has_bucket(const std::string& name) const;
  void require_bucket(const std::string& name) const;  // throws NoSuchBucket
  void delete_bucket(const std::string& name);

  // Body is the spooled file at `body`; it is moved into the store on success, removed on error.
  // `known` saves a second pass over the body when the caller already digested it; a digest a
  // rule needs that `known` lacks (Digests::have) is computed from the file.
  ObjectInfo put_object(const std::string& bucket, const std::string& key,
                        const std::filesystem::path& body, const WriteRequest& req,
                        const Digests* known = nullptr);
  const ObjectInfo& head_object(const std::string& bucket, const std::string& key) const;
  const ObjectInfo* find_object(const std::string& bucket, const std::string& key) const;
  void delete_object(const std::string& bucket, const std::string& key);
  ListV2Result list_objects_v2(const std::string& bucket, const ListV2Request& req) const;

  const UploadInfo& create_upload(const std::string& bucket, const std::string& key,
                                  const WriteRequest& req, const std::string& checksum_algorithm);
  PartInfo upload_part(const std::string& bucket, const std::string& key,
                       const std::string& upload_id, int part_number,
                       const std::filesystem::path& body, const WriteRequest& req,
                       const Digests* known = nullptr);
  const UploadInfo& upload(const std::string& bucket, const std::string& key,
                           const std::string& upload_id) const;       // throws NoSuchUpload
  const UploadInfo* find_upload(const std::string& upload_id) const;  // nullptr if none
  ListPartsResult list_parts(const std::string& bucket, const std::string& key,
                             const std::string& upload_id, int part_number_marker,
                             int max_parts) const;
  // `cond` carries only the precondition fields (if_none_match_star, if_match); the write began at
  // CreateMultipartUpload.
  ObjectInfo complete_upload(const std::string& bucket, const std::string& key,
                             const std::string& upload_id, const std::vector<CompletePart>& parts,
                             const WriteRequest& cond);
  ObjectInfo complete_upload(const std::string& bucket, const std::string& key,
                             const std::string& upload_id, const std::vector<CompletePart>& parts,
                             bool if_none_match_star) {
    WriteRequest cond;
    cond.if_none_match_star = if_none_match_star;
    return complete_upload(bucket, key, upload_id, parts, cond);
  }
  void abort_upload(const std::string& bucket, const std::string& key,
                    const std::string& upload_id);
  ListUploadsResult list_uploads(const std::string& bucket, const std::string& prefix,
                                 const std::string& delimiter, const std::string& key_marker,
                                 const std::string& upload_id_marker, int max_uploads) const;

  // A counter that every successful DELETE of an existing object advances. A conditional write
  // records it when it begins; if the key was deleted after that, the write fails with 409
  // ConditionalRequestConflict ("a conflicting operation occurred during the upload"; S3 asks the
  // client to re-read and retry, or for multipart to start a new upload).
  uint64_t delete_sequence() const { return delete_seq_; }

  // Write a small object directly (used by the HealthLake import for its outputs).
  ObjectInfo put_bytes(const std::string& bucket, const std::string& key, std::string_view data,
                       const std::string& content_type);

 private:
  void load();
  void save_object_meta(const ObjectInfo& o) const;
  void save_upload_meta(const UploadInfo& u) const;
  std::filesystem::path object_path(const std::string& bucket, const std::string& key) const;
  UploadInfo& upload_mut(const std::string& bucket, const std::string& key,
                         const std::string& upload_id);
  void check_conditions(const std::string& bucket, const std::string& key, const WriteRequest& cond,
                        uint64_t began_at) const;

  std::filesystem::path dir_;
  uint64_t min_part_size_;
  bool md5_etags_ = true;
  // The 16 ETag bytes of a write: its MD5, or (md5_etags_ false) fresh random bytes.
  std::string etag_bytes(const Digests& d);
  unsigned digests_used(const WriteRequest& req, const std::string& algorithm = "") const;
  uint64_t temp_counter_ = 0;
  std::map<std::string, std::map<std::string, ObjectInfo>> buckets_;
  std::map<std::string, UploadInfo> uploads_;
  uint64_t delete_seq_ = 0;
  std::map<std::string, uint64_t>
      deleted_at_;  // bucket '/' key -> delete sequence of its last DELETE
};

// Checks a received body against Content-MD5, x-amz-checksum-* and x-amz-content-sha256 as S3
// does (InvalidDigest / BadDigest / InvalidRequest / XAmzContentSHA256Mismatch). Exposed for tests.
void verify_body(const Digests& d, const WriteRequest& req);
std::string checksum_b64(const Digests& d, const std::string& algorithm);  // "" if unsupported

}  // namespace fe::hll
