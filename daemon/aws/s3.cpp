#include "aws/s3.hpp"

#include <algorithm>
#include <charconv>
#include <functional>
#include <memory>

#include "aws/crc32c.hpp"
#include "aws/xml.hpp"

namespace fe::aws {

namespace {

constexpr std::string_view kS3Ns = "http://s3.amazonaws.com/doc/2006-03-01/";

std::string xml_escape(std::string_view s) {
  return xml::escape(s);
}

std::uint64_t to_u64(std::string_view s) {
  std::uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

int to_int(std::string_view s) {
  int v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::string hv(const HttpResponse& r, std::string_view name) {
  return std::string(r.header(name).value_or(std::string_view{}));
}

// A body that should be XML but is not: treat like a server fault (retryable), as the SDKs do.
AwsError bad_xml(const HttpResponse& r, std::string_view what, std::string_view why) {
  AwsError e;
  e.http_status = static_cast<int>(r.status);
  e.code = "InternalError";
  e.message = "unparsable " + std::string(what) + " response: " + std::string(why);
  e.request_id = hv(r, "x-amz-request-id");
  e.category = ErrorCategory::retryable;
  return e;
}

template <class T>
S3Result<T> from_call(const CallResult& cr) {
  return S3Result<T>::from_call(cr);
}

template <class T>
S3Result<T> invalid(std::string context, std::string message) {
  return S3Result<T>::invalid(std::move(context), "InvalidArgument", std::move(message));
}

std::string q(std::string_view v) {
  return uri_encode(v, true);
}

// SSE-KMS on a request that creates an object (PutObject, CreateMultipartUpload, CopyObject).
void add_sse(AwsCall& c, const Sse& sse) {
  if (sse.kms_key_id.empty()) return;
  c.headers.push_back({"x-amz-server-side-encryption", "aws:kms"});
  c.headers.push_back({"x-amz-server-side-encryption-aws-kms-key-id", sse.kms_key_id});
}

// S3 may answer 200 and then report an error in the body (CompleteMultipartUpload, CopyObject:
// the request ran long); the SDKs treat that as the error it names.
std::function<std::optional<AwsError>(const HttpResponse&)> error_in_body(std::string op) {
  return [op = std::move(op)](const HttpResponse& resp) -> std::optional<AwsError> {
    auto doc = xml::parse(resp.body);
    if (!doc.root) return bad_xml(resp, op, doc.error);
    if (doc.root->name != "Error") return std::nullopt;
    ErrorResponse er;
    er.http_status = static_cast<int>(resp.status);
    er.body = resp.body;
    er.request_id = resp.header("x-amz-request-id").value_or(std::string_view{});
    er.date = resp.header("date").value_or(std::string_view{});
    return parse_s3_error(er);
  };
}

// The body of a PutObject/UploadPart with its CRC32C, signed as payload_mode says: the checksum
// in a header and the SHA-256 signed (`sha256` when the caller has it, else one read pass in
// AwsCaller), or aws-chunked with the checksum in the trailer and no hash at all.
void set_payload(AwsCall& c, const ClientConfig& cfg, BodySource body, std::uint32_t crc,
                 const std::string& sha256) {
  c.headers.push_back({"x-amz-sdk-checksum-algorithm", "CRC32C"});
  if (payload_mode(cfg, c.base_url, body.size) == PayloadMode::unsigned_trailer) {
    c.crc32c_trailer = true;
    c.trailer_crc32c = crc;  // known: the trailer costs no pass over the bytes
  } else {
    c.headers.push_back({"x-amz-checksum-crc32c", crc32c_base64(crc)});
    c.payload_sha256 = sha256;
  }
  c.source = std::move(body);
}

}  // namespace

PayloadMode payload_mode(const ClientConfig& cfg, std::string_view base_url,
                         std::uint64_t body_bytes) {
  switch (cfg.payload_signing) {
    case PayloadSigning::signed_payload:
      return PayloadMode::signed_sha256;
    case PayloadSigning::unsigned_trailer:
      return PayloadMode::unsigned_trailer;
    case PayloadSigning::automatic:
      break;
  }
  // Over plain http nothing but the signature protects the bytes from being changed on the way.
  const bool tls = base_url.starts_with("https://");
  return tls && body_bytes > cfg.signed_payload_max_bytes ? PayloadMode::unsigned_trailer
                                                          : PayloadMode::signed_sha256;
}

std::string composite_crc32c(const std::vector<std::uint32_t>& part_crcs) {
  std::string bytes;
  for (auto c : part_crcs) {
    bytes += static_cast<char>((c >> 24) & 0xff);
    bytes += static_cast<char>((c >> 16) & 0xff);
    bytes += static_cast<char>((c >> 8) & 0xff);
    bytes += static_cast<char>(c & 0xff);
  }
  return crc32c_base64(crc32c(bytes)) + "-" + std::to_string(part_crcs.size());
}

S3Client::S3Client(AwsCaller& caller) : caller_(caller) {}

PayloadMode S3Client::payload_mode_for(std::string_view bucket, std::uint64_t body_bytes) const {
  auto t = target(bucket, "");
  if (!t) return PayloadMode::signed_sha256;  // no usable endpoint: hash (the request will fail)
  return payload_mode(caller_.config(), t->base_url, body_bytes);
}

std::optional<S3Client::Target> S3Client::target(std::string_view bucket,
                                                 std::string_view key) const {
  const auto& cfg = caller_.config();
  Target t;
  std::string enc_key = key.empty() ? "" : "/" + uri_encode(key, false);
  if (cfg.s3_endpoint) {
    auto ep = parse_endpoint(*cfg.s3_endpoint);
    if (!ep) return std::nullopt;
    t.base_url = ep->base();
    t.host = ep->authority();
    t.path = "/" + std::string(bucket) + enc_key;
    return t;
  }
  const std::string regional = "s3." + cfg.region + ".amazonaws.com";
  if (cfg.s3_path_style || bucket.find('.') != std::string_view::npos) {
    t.host = regional;
    t.path = "/" + std::string(bucket) + enc_key;
  } else {
    t.host = std::string(bucket) + "." + regional;
    t.path = enc_key.empty() ? "/" : enc_key;
  }
  t.base_url = "https://" + t.host;
  return t;
}

AwsCall S3Client::make_call(std::string op, const Target& t, std::string bucket, std::string key) {
  AwsCall c;
  c.description = "S3 " + op + " " + bucket + (key.empty() ? "" : "/" + key);
  c.service = "s3";
  c.s3_rules = true;
  c.base_url = t.base_url;
  c.host = t.host;
  c.path = t.path;
  return c;
}

// Validates bucket (and key when `needs_key`) and resolves the target, or reports why not.
#define FE_S3_TARGET(T, opname, bucket, key, needs_key)                                     \
  std::string ctx_ = std::string("S3 ") + opname + " " + bucket + "/" + key;                \
  if (auto why = validate_bucket(bucket); !why.empty()) return done(invalid<T>(ctx_, why)); \
  if (needs_key) {                                                                          \
    if (auto why = validate_key(key); !why.empty()) return done(invalid<T>(ctx_, why));     \
  }                                                                                         \
  auto tgt_ = target(bucket, key);                                                          \
  if (!tgt_) return done(invalid<T>(ctx_, "invalid S3 endpoint URL"));

void S3Client::put_object(PutObjectRequest req, Done<PutObjectResult> done) {
  FE_S3_TARGET(PutObjectResult, "PutObject", req.bucket, req.key, true)
  AwsCall c = make_call("PutObject", *tgt_, req.bucket, req.key);
  c.method = "PUT";
  c.headers = {{"content-type", req.content_type}};
  add_sse(c, req.sse);
  if (req.if_none_match) c.headers.push_back({"if-none-match", "*"});
  if (!req.if_match.empty()) c.headers.push_back({"if-match", req.if_match});
  set_payload(c, caller_.config(), std::move(req.body), req.crc32c, req.payload_sha256);
  caller_.call(std::move(c), [done = std::move(done)](CallResult cr) {
    auto r = from_call<PutObjectResult>(cr);
    if (cr.ok())
      r.value = PutObjectResult{hv(cr.response, "etag"), hv(cr.response, "x-amz-checksum-crc32c"),
                                hv(cr.response, "x-amz-version-id")};
    done(std::move(r));
  });
}

void S3Client::create_multipart_upload(CreateMultipartRequest req,
                                       Done<CreateMultipartResult> done) {
  FE_S3_TARGET(CreateMultipartResult, "CreateMultipartUpload", req.bucket, req.key, true)
  AwsCall c = make_call("CreateMultipartUpload", *tgt_, req.bucket, req.key);
  c.method = "POST";
  c.query = "uploads";
  c.headers = {{"content-type", req.content_type}, {"x-amz-checksum-algorithm", "CRC32C"}};
  add_sse(c, req.sse);
  caller_.call(std::move(c), [done = std::move(done)](CallResult cr) {
    auto r = from_call<CreateMultipartResult>(cr);
    if (cr.ok()) {
      auto doc = xml::parse(cr.response.body);
      std::string id = doc.root ? doc.root->child_text("UploadId") : "";
      if (id.empty())
        r.error =
            bad_xml(cr.response, "CreateMultipartUpload", doc.root ? "no UploadId" : doc.error);
      else
        r.value = CreateMultipartResult{id};
    }
    done(std::move(r));
  });
}

void S3Client::upload_part(UploadPartRequest req, Done<UploadPartResult> done) {
  FE_S3_TARGET(UploadPartResult, "UploadPart", req.bucket, req.key, true)
  if (req.part_number < 1 || req.part_number > 10000)
    return done(invalid<UploadPartResult>(ctx_, "part number must be 1..10000"));
  if (req.upload_id.empty()) return done(invalid<UploadPartResult>(ctx_, "empty upload id"));
  AwsCall c = make_call("UploadPart", *tgt_, req.bucket, req.key);
  c.description += " #" + std::to_string(req.part_number);
  c.method = "PUT";
  c.query = "partNumber=" + std::to_string(req.part_number) + "&uploadId=" + q(req.upload_id);
  set_payload(c, caller_.config(), std::move(req.body), req.crc32c, req.payload_sha256);
  caller_.call(std::move(c), [done = std::move(done)](CallResult cr) {
    auto r = from_call<UploadPartResult>(cr);
    if (cr.ok())
      r.value = UploadPartResult{hv(cr.response, "etag"), hv(cr.response, "x-amz-checksum-crc32c")};
    done(std::move(r));
  });
}

void S3Client::complete_multipart_upload(CompleteMultipartRequest req,
                                         Done<CompleteMultipartResult> done) {
  FE_S3_TARGET(CompleteMultipartResult, "CompleteMultipartUpload", req.bucket, req.key, true)
  if (req.parts.empty()) return done(invalid<CompleteMultipartResult>(ctx_, "no parts"));
  AwsCall c = make_call("CompleteMultipartUpload", *tgt_, req.bucket, req.key);
  c.method = "POST";
  c.query = "uploadId=" + q(req.upload_id);
  std::string body = "<CompleteMultipartUpload xmlns=\"" + std::string(kS3Ns) + "\">";
  for (auto& p : req.parts) {
    body += "<Part>";
    if (!p.checksum_crc32c.empty())
      body += "<ChecksumCRC32C>" + xml_escape(p.checksum_crc32c) + "</ChecksumCRC32C>";
    body += "<ETag>" + xml_escape(p.etag) + "</ETag>";
    body += "<PartNumber>" + std::to_string(p.part_number) + "</PartNumber></Part>";
  }
  body += "</CompleteMultipartUpload>";
  c.body = std::move(body);
  c.headers = {{"content-type", "application/xml"}};
  if (req.if_none_match) c.headers.push_back({"if-none-match", "*"});
  c.check_success = error_in_body("CompleteMultipartUpload");
  caller_.call(std::move(c), [done = std::move(done)](CallResult cr) {
    auto r = from_call<CompleteMultipartResult>(cr);
    if (cr.ok()) {
      auto doc = xml::parse(cr.response.body);
      CompleteMultipartResult v;
      v.etag = doc.root->child_text("ETag");
      v.checksum_crc32c = doc.root->child_text("ChecksumCRC32C");
      if (v.checksum_crc32c.empty()) v.checksum_crc32c = hv(cr.response, "x-amz-checksum-crc32c");
      v.location = doc.root->child_text("Location");
      r.value = std::move(v);
    }
    done(std::move(r));
  });
}

void S3Client::abort_multipart_upload(std::string bucket, std::string key, std::string upload_id,
                                      Done<Empty> done) {
  FE_S3_TARGET(Empty, "AbortMultipartUpload", bucket, key, true)
  AwsCall c = make_call("AbortMultipartUpload", *tgt_, bucket, key);
  c.method = "DELETE";
  c.query = "uploadId=" + q(upload_id);
  caller_.call(std::move(c), [done = std::move(done)](CallResult cr) {
    auto r = from_call<Empty>(cr);
    if (cr.ok()) r.value = Empty{};
    done(std::move(r));
  });
}

void S3Client::delete_object(std::string bucket, std::string key, Done<Empty> done) {
  FE_S3_TARGET(Empty, "DeleteObject", bucket, key, true)
  AwsCall c = make_call("DeleteObject", *tgt_, bucket, key);
  c.method = "DELETE";
  caller_.call(std::move(c), [done = std::move(done)](CallResult cr) {
    auto r = from_call<Empty>(cr);
    if (cr.ok()) r.value = Empty{};
    done(std::move(r));
  });
}

void S3Client::copy_object(std::string bucket, std::string key, std::string src_bucket,
                           std::string src_key, Sse sse, Done<PutObjectResult> done) {
  FE_S3_TARGET(PutObjectResult, "CopyObject", bucket, key, true)
  AwsCall c = make_call("CopyObject", *tgt_, bucket, key);
  c.method = "PUT";
  c.headers = {{"x-amz-copy-source", "/" + src_bucket + "/" + uri_encode(src_key, false)}};
  add_sse(c, sse);
  c.check_success = error_in_body("CopyObject");
  caller_.call(std::move(c), [done = std::move(done)](CallResult cr) {
    auto r = from_call<PutObjectResult>(cr);
    if (cr.ok()) {
      auto doc = xml::parse(cr.response.body);
      std::string etag = doc.root ? doc.root->child_text("ETag") : "";
      r.value = PutObjectResult{etag, "", hv(cr.response, "x-amz-version-id")};
    }
    done(std::move(r));
  });
}

void S3Client::list_parts(ListPartsRequest req, Done<ListPartsResult> done) {
  FE_S3_TARGET(ListPartsResult, "ListParts", req.bucket, req.key, true)
  AwsCall c = make_call("ListParts", *tgt_, req.bucket, req.key);
  c.query = "max-parts=" + std::to_string(req.max_parts);
  if (req.part_number_marker > 0)
    c.query += "&part-number-marker=" + std::to_string(req.part_number_marker);
  c.query += "&uploadId=" + q(req.upload_id);
  caller_.call(std::move(c), [done = std::move(done)](CallResult cr) {
    auto r = from_call<ListPartsResult>(cr);
    if (cr.ok()) {
      auto doc = xml::parse(cr.response.body);
      if (!doc.root) {
        r.error = bad_xml(cr.response, "ListParts", doc.error);
      } else {
        ListPartsResult v;
        v.is_truncated = doc.root->child_text("IsTruncated") == "true";
        v.next_part_number_marker = to_int(doc.root->child_text("NextPartNumberMarker"));
        for (auto* p : doc.root->children_named("Part")) {
          PartInfo pi;
          pi.part_number = to_int(p->child_text("PartNumber"));
          pi.etag = p->child_text("ETag");
          pi.size = to_u64(p->child_text("Size"));
          pi.checksum_crc32c = p->child_text("ChecksumCRC32C");
          v.parts.push_back(std::move(pi));
        }
        r.value = std::move(v);
      }
    }
    done(std::move(r));
  });
}

void S3Client::list_all_parts(std::string bucket, std::string key, std::string upload_id,
                              Done<std::vector<PartInfo>> done) {
  struct State {
    std::vector<PartInfo> parts;
    ListPartsRequest req;
    Done<std::vector<PartInfo>> done;
    std::function<void()> next;
  };
  auto st = std::make_shared<State>();
  st->req = ListPartsRequest{std::move(bucket), std::move(key), std::move(upload_id), 0, 1000};
  st->done = std::move(done);
  std::weak_ptr<State> weak = st;
  st->next = [this, weak] {
    auto s = weak.lock();
    if (!s) return;
    list_parts(s->req, [s](S3Result<ListPartsResult> page) {
      if (!page.ok()) {
        S3Result<std::vector<PartInfo>> r;
        r.error = page.error;
        r.context = page.context;
        r.attempts = page.attempts;
        auto d = std::move(s->done);
        s->next = nullptr;  // break the cycle
        d(std::move(r));
        return;
      }
      for (auto& p : page.value->parts) s->parts.push_back(std::move(p));
      // A truncated page must move the marker forward, or a broken server would loop us forever.
      if (page.value->is_truncated &&
          page.value->next_part_number_marker > s->req.part_number_marker) {
        s->req.part_number_marker = page.value->next_part_number_marker;
        s->next();
        return;
      }
      S3Result<std::vector<PartInfo>> r;
      r.value = std::move(s->parts);
      r.context = page.context;
      auto d = std::move(s->done);
      s->next = nullptr;
      d(std::move(r));
    });
  };
  st->next();
}

void S3Client::list_all_objects(ListObjectsRequest req, Done<ListObjectsResult> done,
                                int max_pages) {
  struct State {
    ListObjectsResult all;
    ListObjectsRequest req;
    Done<ListObjectsResult> done;
    std::function<void()> next;
    int pages = 0;
  };
  auto st = std::make_shared<State>();
  st->req = std::move(req);
  st->done = std::move(done);
  std::weak_ptr<State> weak = st;
  st->next = [this, weak, max_pages] {
    auto s = weak.lock();
    if (!s) return;
    list_objects_v2(s->req, [s, max_pages](S3Result<ListObjectsResult> page) {
      auto finish = [&](S3Result<ListObjectsResult> r) {
        auto d = std::move(s->done);
        s->next = nullptr;  // break the cycle
        d(std::move(r));
      };
      if (!page.ok()) return finish(std::move(page));
      auto& v = *page.value;
      for (auto& o : v.objects) s->all.objects.push_back(std::move(o));
      for (auto& p : v.common_prefixes) s->all.common_prefixes.push_back(std::move(p));
      ++s->pages;
      // A truncated page must carry a new token, or a broken server would loop us forever.
      if (v.is_truncated && !v.next_continuation_token.empty() &&
          v.next_continuation_token != s->req.continuation_token) {
        if (s->pages >= max_pages) {
          S3Result<ListObjectsResult> r;
          AwsError e;
          e.code = "TooManyPages";
          e.message = "listing exceeds " + std::to_string(max_pages) + " pages";
          e.category = ErrorCategory::validation;
          r.error = e;
          r.context = page.context;
          return finish(std::move(r));
        }
        s->req.continuation_token = v.next_continuation_token;
        s->next();
        return;
      }
      S3Result<ListObjectsResult> r;
      r.value = std::move(s->all);
      r.context = page.context;
      r.attempts = page.attempts;
      finish(std::move(r));
    });
  };
  st->next();
}

void S3Client::head_object(std::string bucket, std::string key, Done<HeadObjectResult> done) {
  FE_S3_TARGET(HeadObjectResult, "HeadObject", bucket, key, true)
  AwsCall c = make_call("HeadObject", *tgt_, bucket, key);
  c.method = "HEAD";
  c.headers = {{"x-amz-checksum-mode", "ENABLED"}};
  caller_.call(std::move(c), [done = std::move(done)](CallResult cr) {
    auto r = from_call<HeadObjectResult>(cr);
    if (cr.ok()) {
      HeadObjectResult v;
      v.size = to_u64(hv(cr.response, "content-length"));
      v.etag = hv(cr.response, "etag");
      v.checksum_crc32c = hv(cr.response, "x-amz-checksum-crc32c");
      v.checksum_type = hv(cr.response, "x-amz-checksum-type");
      v.last_modified = hv(cr.response, "last-modified");
      v.sse = hv(cr.response, "x-amz-server-side-encryption");
      v.sse_kms_key_id = hv(cr.response, "x-amz-server-side-encryption-aws-kms-key-id");
      r.value = std::move(v);
    }
    done(std::move(r));
  });
}

void S3Client::get_object(GetObjectRequest req, Done<GetObjectResult> done) {
  FE_S3_TARGET(GetObjectResult, "GetObject", req.bucket, req.key, true)
  if (!req.sink) return done(invalid<GetObjectResult>(ctx_, "no sink"));
  // A transfer that breaks after part of the body reached the sink is resumed with a Range from
  // the first undelivered byte (If-Match pins the object version), up to 3 times: flaky uplinks
  // should not restart large reads from zero, and the sink must never see a byte twice.
  struct State {
    GetObjectRequest req;
    Target target;
    Done<GetObjectResult> done;
    std::uint64_t delivered = 0;
    int resumes = 0;
    std::string etag;
    std::string first_content_range;
    std::function<void()> next;
  };
  auto st = std::make_shared<State>();
  st->req = std::move(req);
  st->target = *tgt_;
  st->done = std::move(done);
  std::weak_ptr<State> weak = st;
  st->next = [this, weak] {
    auto s = weak.lock();
    if (!s) return;
    AwsCall c = make_call("GetObject", s->target, s->req.bucket, s->req.key);
    const std::uint64_t from = (s->req.range ? s->req.range->first : 0) + s->delivered;
    if (s->req.range)
      c.headers.push_back(
          {"range", "bytes=" + std::to_string(from) + "-" + std::to_string(s->req.range->second)});
    else if (s->delivered > 0)
      c.headers.push_back({"range", "bytes=" + std::to_string(from) + "-"});
    if (s->delivered > 0 && !s->etag.empty()) c.headers.push_back({"if-match", s->etag});
    auto piece = std::make_shared<std::uint64_t>(0);
    c.sink = [s, piece](std::string_view chunk) {
      *piece += chunk.size();
      s->delivered += chunk.size();
      return s->req.sink(chunk);
    };
    caller_.call(std::move(c), [s, piece](CallResult cr) {
      if (s->etag.empty()) s->etag = hv(cr.response, "etag");
      if (s->first_content_range.empty()) s->first_content_range = hv(cr.response, "content-range");
      if (!cr.ok() && *piece > 0 && cr.error->retryable() && s->resumes < 3) {
        ++s->resumes;
        s->next();
        return;
      }
      auto r = from_call<GetObjectResult>(cr);
      if (cr.ok()) r.value = GetObjectResult{s->delivered, s->etag, s->first_content_range};
      auto d = std::move(s->done);
      s->next = nullptr;  // break the cycle
      d(std::move(r));
    });
  };
  st->next();
}

void S3Client::list_objects_v2(ListObjectsRequest req, Done<ListObjectsResult> done) {
  FE_S3_TARGET(ListObjectsResult, "ListObjectsV2", req.bucket, std::string(), false)
  AwsCall c = make_call("ListObjectsV2", *tgt_, req.bucket, "");
  std::vector<std::pair<std::string, std::string>> params = {{"list-type", "2"}};
  if (!req.continuation_token.empty())
    params.emplace_back("continuation-token", req.continuation_token);
  if (!req.delimiter.empty()) params.emplace_back("delimiter", req.delimiter);
  params.emplace_back("max-keys", std::to_string(req.max_keys));
  if (!req.prefix.empty()) params.emplace_back("prefix", req.prefix);
  std::sort(params.begin(), params.end());
  for (auto& [k, v] : params) c.query += (c.query.empty() ? "" : "&") + k + "=" + q(v);
  caller_.call(std::move(c), [done = std::move(done)](CallResult cr) {
    auto r = from_call<ListObjectsResult>(cr);
    if (cr.ok()) {
      auto doc = xml::parse(cr.response.body);
      if (!doc.root) {
        r.error = bad_xml(cr.response, "ListObjectsV2", doc.error);
      } else {
        ListObjectsResult v;
        v.is_truncated = doc.root->child_text("IsTruncated") == "true";
        v.next_continuation_token = doc.root->child_text("NextContinuationToken");
        for (auto* o : doc.root->children_named("Contents"))
          v.objects.push_back(ObjectInfo{o->child_text("Key"), to_u64(o->child_text("Size")),
                                         o->child_text("ETag"), o->child_text("LastModified")});
        for (auto* p : doc.root->children_named("CommonPrefixes"))
          v.common_prefixes.push_back(p->child_text("Prefix"));
        r.value = std::move(v);
      }
    }
    done(std::move(r));
  });
}

void S3Client::list_multipart_uploads(ListUploadsRequest req, Done<ListUploadsResult> done) {
  FE_S3_TARGET(ListUploadsResult, "ListMultipartUploads", req.bucket, std::string(), false)
  AwsCall c = make_call("ListMultipartUploads", *tgt_, req.bucket, "");
  std::vector<std::pair<std::string, std::string>> params;
  if (!req.key_marker.empty()) params.emplace_back("key-marker", req.key_marker);
  params.emplace_back("max-uploads", std::to_string(req.max_uploads));
  if (!req.prefix.empty()) params.emplace_back("prefix", req.prefix);
  if (!req.upload_id_marker.empty()) params.emplace_back("upload-id-marker", req.upload_id_marker);
  std::sort(params.begin(), params.end());
  for (auto& [k, v] : params) c.query += (c.query.empty() ? "" : "&") + k + "=" + q(v);
  c.query += (c.query.empty() ? "" : "&") + std::string("uploads");
  caller_.call(std::move(c), [done = std::move(done)](CallResult cr) {
    auto r = from_call<ListUploadsResult>(cr);
    if (cr.ok()) {
      auto doc = xml::parse(cr.response.body);
      if (!doc.root || doc.root->name != "ListMultipartUploadsResult") {
        r.error = bad_xml(cr.response, "ListMultipartUploads",
                          doc.root ? "unexpected root element" : doc.error);
      } else {
        ListUploadsResult v;
        v.is_truncated = doc.root->child_text("IsTruncated") == "true";
        v.next_key_marker = doc.root->child_text("NextKeyMarker");
        v.next_upload_id_marker = doc.root->child_text("NextUploadIdMarker");
        for (auto* u : doc.root->children_named("Upload"))
          v.uploads.push_back(UploadInfo{u->child_text("Key"), u->child_text("UploadId"),
                                         u->child_text("Initiated")});
        r.value = std::move(v);
      }
    }
    done(std::move(r));
  });
}

void S3Client::list_all_multipart_uploads(ListUploadsRequest req, Done<ListUploadsResult> done,
                                          int max_pages) {
  struct State {
    ListUploadsResult all;
    ListUploadsRequest req;
    Done<ListUploadsResult> done;
    std::function<void()> next;
    int pages = 0;
  };
  auto st = std::make_shared<State>();
  st->req = std::move(req);
  st->done = std::move(done);
  std::weak_ptr<State> weak = st;
  st->next = [this, weak, max_pages] {
    auto s = weak.lock();
    if (!s) return;
    list_multipart_uploads(s->req, [s, max_pages](S3Result<ListUploadsResult> page) {
      auto finish = [&](S3Result<ListUploadsResult> r) {
        auto d = std::move(s->done);
        s->next = nullptr;  // break the cycle
        d(std::move(r));
      };
      if (!page.ok()) return finish(std::move(page));
      auto& v = *page.value;
      for (auto& u : v.uploads) s->all.uploads.push_back(std::move(u));
      ++s->pages;
      // A truncated page must move the markers, or a broken server would loop us forever.
      const bool moved = v.next_key_marker != s->req.key_marker ||
                         v.next_upload_id_marker != s->req.upload_id_marker;
      if (v.is_truncated && moved &&
          (!v.next_key_marker.empty() || !v.next_upload_id_marker.empty())) {
        if (s->pages >= max_pages) {
          S3Result<ListUploadsResult> r;
          AwsError e;
          e.code = "TooManyPages";
          e.message = "listing exceeds " + std::to_string(max_pages) + " pages";
          e.category = ErrorCategory::validation;
          r.error = e;
          r.context = page.context;
          return finish(std::move(r));
        }
        s->req.key_marker = v.next_key_marker;
        s->req.upload_id_marker = v.next_upload_id_marker;
        s->next();
        return;
      }
      S3Result<ListUploadsResult> r;
      r.value = std::move(s->all);
      r.context = page.context;
      r.attempts = page.attempts;
      finish(std::move(r));
    });
  };
  st->next();
}

}  // namespace fe::aws
