#pragma once
// S3 client for the upload stage: single and multipart uploads with CRC32C checksums, resume
// (ListParts), settle (HeadObject checksum), reads (GetObject streamed, ListObjectsV2).
//
// Contract:
// - Asynchronous: every call takes a callback run on the HttpEngine's io_context thread, exactly
//   once, with S3Result<T> (value, or a typed AwsError from aws/errors.hpp: category says whether
//   the pipeline should retry later, park and alert, or settle).
// - Each attempt is signed just before it is sent and retried per AWS standard mode (AwsCaller).
// - Addressing: a configured endpoint (ClientConfig::s3_endpoint) is always path style
//   (<endpoint>/<bucket>/<key>); AWS is virtual-hosted (https://<bucket>.s3.<region>.amazonaws.com)
//   unless s3_path_style is set or the bucket name has a dot (TLS wildcard certificates do not
//   cover dotted bucket names).
// - Keys are validated (validate_key) and URI-encoded exactly once; '/' is kept.
// - Checksums: PutObject and UploadPart always send x-amz-checksum-crc32c (+
//   x-amz-sdk-checksum-algorithm: CRC32C); CreateMultipartUpload sends
//   x-amz-checksum-algorithm: CRC32C, so the completed object carries the COMPOSITE checksum
//   "<base64(crc32c(part crcs))>-<N>" (see composite_crc32c) that HeadObject returns.
// - Payload signing (ClientConfig::payload_signing, see payload_mode): a PutObject/UploadPart body
//   is either SHA-256 signed with its CRC32C in the x-amz-checksum-crc32c header (a caller that
//   already has the SHA-256 passes it and no extra read pass is made), or sent aws-chunked as
//   STREAMING-UNSIGNED-PAYLOAD-TRAILER with the CRC32C the caller gives in a trailing
//   x-amz-checksum-crc32c (aws/aws_chunked.hpp): no hash pass at all, and S3 still checks every
//   byte against the CRC32C (BadDigest). The default (auto) uses the trailer for bodies over
//   signed_payload_max_bytes over https, and signs everything over plain http.
// - SSE-KMS headers on PutObject/CreateMultipartUpload when a KMS key is given.
// - DeleteObject exists for one caller only: the pipeline deletes the objects its journal
//   recorded as uploaded by an export version that was superseded (never imported; issue 18).
//   Nothing here lists and deletes. Incomplete multipart uploads can be listed
//   (ListMultipartUploads) and aborted: the pipeline aborts the ones under its prefix that its
//   journal does not own (issue 18).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "aws/http.hpp"
#include "aws/http_call.hpp"
#include "aws/result.hpp"
#include "common/s3_names.hpp"

namespace fe::aws {

// context: "S3 UploadPart bucket/key #3" (aws/result.hpp).
template <class T>
using S3Result = AwsResult<T>;

struct Empty {};

// Empty string when the key is acceptable, else why not: empty, > 1024 bytes, control
// characters (incl. DEL), "." or ".." segments, leading '/', empty segments ("a//b"), invalid
// UTF-8. The rules live in common/s3_names.hpp (one set for config, client and emulator).
inline std::string validate_key(std::string_view key) {
  return fe::s3::safe_key_error(key);
}
// S3's general purpose bucket naming rules (common/s3_names.hpp).
inline std::string validate_bucket(std::string_view bucket) {
  return fe::s3::bucket_name_error(bucket);
}

// "<base64 of crc32c over the big-endian part crcs>-<parts>": what S3 reports as the checksum
// of a multipart object uploaded with per-part CRC32C (COMPOSITE type).
std::string composite_crc32c(const std::vector<std::uint32_t>& part_crcs);

// How one PutObject/UploadPart body goes on the wire.
enum class PayloadMode { signed_sha256, unsigned_trailer };
// `base_url` is the request's scheme://authority; `body_bytes` the payload size.
PayloadMode payload_mode(const ClientConfig& cfg, std::string_view base_url,
                         std::uint64_t body_bytes);

struct Sse {
  std::string kms_key_id;  // empty: no SSE-KMS headers (bucket default applies)
};

struct PutObjectRequest {
  std::string bucket;
  std::string key;
  BodySource body;             // length known; rewindable to be retried
  std::uint32_t crc32c;        // of the whole body (standard CRC-32C, see aws/crc32c.hpp)
  std::string payload_sha256;  // optional hex SHA-256 (saves a read pass when signed)
  std::string content_type = "application/octet-stream";
  Sse sse;
  bool if_none_match = false;  // "If-None-Match: *": never overwrite (412 when it exists)
  // "If-Match: <etag>": replace only that version (412 PreconditionFailed when the ETag differs,
  // 404 NoSuchKey when there is no object, 409 ConditionalRequestConflict when the key was
  // deleted meanwhile). Empty: no If-Match. fleet::Lease and fleet::Manifest compare-and-swap.
  std::string if_match;
};
struct PutObjectResult {
  std::string etag;
  std::string checksum_crc32c;
  std::string version_id;
};

struct CreateMultipartRequest {
  std::string bucket;
  std::string key;
  std::string content_type = "application/octet-stream";
  Sse sse;
};
struct CreateMultipartResult {
  std::string upload_id;
};

struct UploadPartRequest {
  std::string bucket;
  std::string key;
  std::string upload_id;
  int part_number = 1;  // 1..10000
  BodySource body;
  std::uint32_t crc32c = 0;
  std::string payload_sha256;  // optional
};
struct UploadPartResult {
  std::string etag;
  std::string checksum_crc32c;  // as S3 echoed it (base64)
};

struct CompletedPart {
  int part_number = 0;
  std::string etag;
  std::string checksum_crc32c;  // base64, as sent / returned for the part
};
struct CompleteMultipartRequest {
  std::string bucket;
  std::string key;
  std::string upload_id;
  std::vector<CompletedPart> parts;  // ascending part numbers
  // "If-None-Match: *" (S3 conditional writes): a 412 PreconditionFailed (category conflict) means
  // the key already exists; NoSuchUpload (not_found) means the upload was completed or aborted.
  // Either way settle with head_object + composite_crc32c, never by uploading blindly again.
  bool if_none_match = true;
};
struct CompleteMultipartResult {
  std::string etag;
  std::string checksum_crc32c;  // composite "xxxx==-N" when S3 returns it
  std::string location;
};

struct ListPartsRequest {
  std::string bucket;
  std::string key;
  std::string upload_id;
  int part_number_marker = 0;
  int max_parts = 1000;
};
struct PartInfo {
  int part_number = 0;
  std::string etag;
  std::uint64_t size = 0;
  std::string checksum_crc32c;
};
struct ListPartsResult {
  std::vector<PartInfo> parts;
  bool is_truncated = false;
  int next_part_number_marker = 0;
};

struct HeadObjectResult {
  std::uint64_t size = 0;
  std::string etag;
  std::string
      checksum_crc32c;        // with x-amz-checksum-mode: ENABLED; composite "...-N" for multipart
  std::string checksum_type;  // "COMPOSITE" | "FULL_OBJECT" when S3 says
  std::string last_modified;
  std::string sse;  // x-amz-server-side-encryption
  std::string sse_kms_key_id;
};

struct GetObjectRequest {
  std::string bucket;
  std::string key;
  std::optional<std::pair<std::uint64_t, std::uint64_t>> range;  // inclusive byte range
  std::function<bool(std::string_view)> sink;                    // return false to stop
};
struct GetObjectResult {
  std::uint64_t bytes = 0;  // delivered to the sink
  std::string etag;
  std::string content_range;
};

struct ListObjectsRequest {
  std::string bucket;
  std::string prefix;
  std::string delimiter;
  std::string continuation_token;
  int max_keys = 1000;
};
struct ObjectInfo {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;
  std::string last_modified;
};
struct ListObjectsResult {
  std::vector<ObjectInfo> objects;
  std::vector<std::string> common_prefixes;
  bool is_truncated = false;
  std::string next_continuation_token;
};

// ListMultipartUploads (GET /<bucket>?uploads): uploads initiated and neither completed nor
// aborted, in key then initiation order; pages follow KeyMarker + UploadIdMarker.
struct ListUploadsRequest {
  std::string bucket;
  std::string prefix;
  std::string key_marker;
  std::string upload_id_marker;
  int max_uploads = 1000;
};
struct UploadInfo {
  std::string key;
  std::string upload_id;
  std::string initiated;  // ISO 8601, the server's clock
};
struct ListUploadsResult {
  std::vector<UploadInfo> uploads;
  bool is_truncated = false;
  std::string next_key_marker;
  std::string next_upload_id_marker;
};

class S3Client {
 public:
  template <class T>
  using Done = std::function<void(S3Result<T>)>;

  // `caller` carries engine, config (region, endpoint, path style), credentials, retry state.
  explicit S3Client(AwsCaller& caller);

  void put_object(PutObjectRequest req, Done<PutObjectResult> done);
  void create_multipart_upload(CreateMultipartRequest req, Done<CreateMultipartResult> done);
  void upload_part(UploadPartRequest req, Done<UploadPartResult> done);
  void complete_multipart_upload(CompleteMultipartRequest req, Done<CompleteMultipartResult> done);
  void abort_multipart_upload(std::string bucket, std::string key, std::string upload_id,
                              Done<Empty> done);
  // One key (S3 answers 204 also for a missing key; a 404 is reported as not_found).
  void delete_object(std::string bucket, std::string key, Done<Empty> done);
  // CopyObject (server-side, objects up to 5 GiB): src_key of src_bucket to bucket/key, with
  // `sse` for the copy. The import stage's batch copies (docs/import.md "Batches"). An error in
  // a 200 answer's body is an error (errors.hpp).
  void copy_object(std::string bucket, std::string key, std::string src_bucket, std::string src_key,
                   Sse sse, Done<PutObjectResult> done);
  // One page; list_all_parts follows the markers.
  void list_parts(ListPartsRequest req, Done<ListPartsResult> done);
  void list_all_parts(std::string bucket, std::string key, std::string upload_id,
                      Done<std::vector<PartInfo>> done);
  // Missing object: error with category not_found (http_status 404).
  void head_object(std::string bucket, std::string key, Done<HeadObjectResult> done);
  void get_object(GetObjectRequest req, Done<GetObjectResult> done);
  void list_objects_v2(ListObjectsRequest req, Done<ListObjectsResult> done);
  // One page of ListMultipartUploads; list_all_multipart_uploads follows the markers and stops
  // with an error after `max_pages` pages.
  void list_multipart_uploads(ListUploadsRequest req, Done<ListUploadsResult> done);
  void list_all_multipart_uploads(ListUploadsRequest req, Done<ListUploadsResult> done,
                                  int max_pages = 100);
  // Follows continuation tokens; stops with an error after `max_pages` pages (a listing that
  // big is a configuration mistake, and memory stays bounded).
  void list_all_objects(ListObjectsRequest req, Done<ListObjectsResult> done, int max_pages = 100);

  // How a PutObject/UploadPart body of `body_bytes` to `bucket` goes on the wire with this
  // client's configuration and endpoint (payload_mode). The spool uses it to skip the SHA-256 of
  // parts that will not be signed (issue 13: no hash pass where the trailer carries a CRC32C).
  PayloadMode payload_mode_for(std::string_view bucket, std::uint64_t body_bytes) const;

  // The URL pieces a request for bucket/key would use (exposed for tests and logs).
  struct Target {
    std::string base_url;  // scheme://authority
    std::string host;      // authority as sent in Host
    std::string path;      // encoded path
  };
  std::optional<Target> target(std::string_view bucket, std::string_view key) const;

 private:
  AwsCall make_call(std::string op, const Target& t, std::string bucket, std::string key);
  AwsCaller& caller_;
};

}  // namespace fe::aws
