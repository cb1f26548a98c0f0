#include "server.hpp"

#include <simdjson.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <fstream>
#include <list>
#include <map>
#include <set>

#include "aws/sigv4.hpp"
#include "body.hpp"
#include "common/json_writer.hpp"
#include "service/log.hpp"
#include "sts.hpp"

namespace fe::hll {
namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;

// ---------------------------------------------------------------------------------------------
// Routing helpers (pure, unit-tested)

namespace {

std::multimap<std::string, std::string> parse_query(std::string_view q) {
  std::multimap<std::string, std::string> m;
  size_t start = 0;
  while (start < q.size()) {
    size_t end = q.find('&', start);
    if (end == std::string_view::npos) end = q.size();
    std::string_view item = q.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string_view::npos)
      m.emplace(url_decode(item), "");
    else
      m.emplace(url_decode(item.substr(0, eq)), url_decode(item.substr(eq + 1)));
  }
  return m;
}

std::string qget(const std::multimap<std::string, std::string>& q, const std::string& k) {
  auto it = q.find(k);
  return it == q.end() ? std::string() : it->second;
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return o;
}

// Sub-resources healthlake-local does not implement: answered with 501 NotImplemented, never
// silently treated as a plain object operation.
const std::set<std::string> kUnsupportedSubresources = {"acl",
                                                        "tagging",
                                                        "versioning",
                                                        "policy",
                                                        "cors",
                                                        "lifecycle",
                                                        "website",
                                                        "logging",
                                                        "notification",
                                                        "replication",
                                                        "encryption",
                                                        "object-lock",
                                                        "retention",
                                                        "legal-hold",
                                                        "restore",
                                                        "select",
                                                        "torrent",
                                                        "versions",
                                                        "delete",
                                                        "attributes",
                                                        "location",
                                                        "accelerate",
                                                        "requestPayment",
                                                        "ownershipControls",
                                                        "publicAccessBlock",
                                                        "intelligent-tiering",
                                                        "inventory",
                                                        "metrics",
                                                        "analytics"};

}  // namespace

const std::vector<std::string>& s3_operations() {
  static const std::vector<std::string> ops = {"ListBuckets",
                                               "CreateBucket",
                                               "HeadBucket",
                                               "DeleteBucket",
                                               "ListObjectsV2",
                                               "ListMultipartUploads",
                                               "PutObject",
                                               "GetObject",
                                               "HeadObject",
                                               "DeleteObject",
                                               "CreateMultipartUpload",
                                               "UploadPart",
                                               "ListParts",
                                               "CompleteMultipartUpload",
                                               "AbortMultipartUpload"};
  return ops;
}

std::string s3_operation(std::string_view method, bool has_bucket, bool has_key,
                         std::string_view raw_query, bool copy_source) {
  auto q = parse_query(raw_query);
  for (const auto& [k, v] : q)
    if (kUnsupportedSubresources.count(k)) return "";
  auto has = [&](const char* k) { return q.count(k) > 0; };
  if (!has_bucket) return method == "GET" ? "ListBuckets" : "";
  if (!has_key) {
    if (method == "PUT") return "CreateBucket";
    if (method == "HEAD") return "HeadBucket";
    if (method == "DELETE") return "DeleteBucket";
    if (method == "GET") {
      if (has("uploads")) return "ListMultipartUploads";
      if (qget(q, "list-type") == "2") return "ListObjectsV2";
      return "";  // ListObjects (v1) is not implemented
    }
    return "";
  }
  if (method == "PUT") {
    if (copy_source) {
      // CopyObject (the importer's batch copies); UploadPartCopy is not implemented.
      return has("partNumber") || has("uploadId") ? "" : "CopyObject";
    }
    if (has("partNumber") || has("uploadId")) return "UploadPart";
    return "PutObject";
  }
  if (method == "POST") {
    if (has("uploads")) return "CreateMultipartUpload";
    if (has("uploadId")) return "CompleteMultipartUpload";
    return "";
  }
  if (method == "GET") return has("uploadId") ? "ListParts" : "GetObject";
  if (method == "HEAD") return "HeadObject";
  if (method == "DELETE") return has("uploadId") ? "AbortMultipartUpload" : "DeleteObject";
  return "";
}

std::string virtual_host_bucket(std::string_view host) {
  std::string h = lower(host);
  if (!h.empty() && h.front() == '[') return "";  // IPv6 literal
  if (auto c = h.rfind(':'); c != std::string::npos) h.resize(c);
  const std::string suffix = ".localhost";
  if (!h.ends_with(suffix)) return "";
  std::string pre = h.substr(0, h.size() - suffix.size());
  if (pre == "s3" || pre.starts_with("s3.")) return "";  // s3.localhost, s3.<region>.localhost
  if (auto p = pre.rfind(".s3."); p != std::string::npos) return pre.substr(0, p);
  if (pre.ends_with(".s3")) return pre.substr(0, pre.size() - 3);
  return pre;
}

// ---------------------------------------------------------------------------------------------

namespace {

std::shared_ptr<FILE> open_read(const fs::path& p) {
  FILE* f = std::fopen(p.c_str(), "rb");
  if (!f) return nullptr;
  return std::shared_ptr<FILE>(f, [](FILE* x) { std::fclose(x); });
}

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  fs::path file;  // when set, the body is [offset, offset+length) of this file
  // The file opened when the response was built: a PUT that replaces the object while this
  // response waits or streams renames a new file over the path, and the reader must still send
  // the version its ETag and Content-Length describe (S3 GETs are a consistent snapshot).
  std::shared_ptr<FILE> opened;
  uint64_t offset = 0, length = 0;
  bool head = false;  // HEAD: Content-Length of the would-be body, no body bytes
  std::string error_code;
  void set(std::string k, std::string v) { headers.emplace_back(std::move(k), std::move(v)); }
  uint64_t body_size() const { return file.empty() ? body.size() : length; }
};

struct LogEntry {
  std::string operation, bucket, key, upload_id, error, client_token, job_id, datastore;
  std::string faults;
  std::string payload;  // x-amz-content-sha256 mode: "hash", UNSIGNED-PAYLOAD, STREAMING-...
  int part_number = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  // Not logged: the S3 store's delete sequence when the headers arrived, so a conditional PUT
  // whose key is deleted while its body streams in fails 409 ConditionalRequestConflict.
  uint64_t began_at = 0;
};

const char* kXmlHeader = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
const char* kS3Ns = "http://s3.amazonaws.com/doc/2006-03-01/";

std::string tag(const std::string& name, const std::string& value) {
  return "<" + name + ">" + xml_escape(value) + "</" + name + ">";
}

// Extracts every <Part> of a CompleteMultipartUpload body. Throws MalformedXML when the document
// is not the expected shape (namespaces and whitespace are tolerated).
std::vector<CompletePart> parse_complete_xml(const std::string& xml) {
  auto malformed = [] {
    return S3Error(400, "MalformedXML",
                   "The XML you provided was not well-formed or did not validate against our "
                   "published schema");
  };
  if (xml.find("CompleteMultipartUpload") == std::string::npos) throw malformed();
  std::vector<CompletePart> parts;
  size_t pos = 0;
  auto inner = [&](const std::string& block,
                   const std::string& name) -> std::optional<std::string> {
    auto a = block.find("<" + name + ">");
    if (a == std::string::npos) return std::nullopt;
    a += name.size() + 2;
    auto b = block.find("</" + name + ">", a);
    if (b == std::string::npos) throw malformed();
    std::string v = block.substr(a, b - a);
    // Unescape the entities S3 clients use in ETags.
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '&') {
        auto semi = v.find(';', i);
        if (semi == std::string::npos) throw malformed();
        std::string ent = v.substr(i, semi - i + 1);
        if (ent == "&quot;")
          out += '"';
        else if (ent == "&amp;")
          out += '&';
        else if (ent == "&lt;")
          out += '<';
        else if (ent == "&gt;")
          out += '>';
        else if (ent == "&apos;")
          out += '\'';
        else if (ent == "&#34;")
          out += '"';
        else
          throw malformed();
        i = semi;
      } else {
        out += v[i];
      }
    }
    while (!out.empty() && isspace(static_cast<unsigned char>(out.back()))) out.pop_back();
    while (!out.empty() && isspace(static_cast<unsigned char>(out.front()))) out.erase(0, 1);
    return out;
  };
  while (true) {
    auto a = xml.find("<Part>", pos);
    if (a == std::string::npos) break;
    auto b = xml.find("</Part>", a);
    if (b == std::string::npos) throw malformed();
    std::string block = xml.substr(a + 6, b - a - 6);
    pos = b + 7;
    CompletePart p;
    auto n = inner(block, "PartNumber");
    auto e = inner(block, "ETag");
    if (!n || !e) throw malformed();
    try {
      size_t used = 0;
      long v = std::stol(*n, &used);
      if (used != n->size()) throw malformed();
      if (v < 1 || v > kMaxPartNumber)
        throw S3Error(400, "InvalidArgument",
                      "Part number must be an integer between 1 and 10000, inclusive",
                      {{"ArgumentName", "partNumber"}, {"ArgumentValue", *n}});
      p.number = static_cast<int>(v);
    } catch (const std::logic_error&) {
      throw malformed();
    }
    p.etag = *e;
    for (const char* alg : {"CRC32C", "CRC32", "SHA256", "SHA1", "CRC64NVME"})
      if (auto c = inner(block, std::string("Checksum") + alg)) p.checksums[alg] = *c;
    parts.push_back(std::move(p));
  }
  return parts;
}

bool keep_alive_of(const http::request_header<>& h) {
  std::string c = lower(h[http::field::connection]);
  if (h.version() >= 11) return c.find("close") == std::string::npos;
  return c.find("keep-alive") != std::string::npos;
}

std::string hl_op_from_target(std::string_view target) {
  // "HealthLake.StartFHIRImportJob"
  auto dot = target.find('.');
  return dot == std::string_view::npos ? std::string() : std::string(target.substr(dot + 1));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Server::Impl {
  asio::io_context& io;
  ServerOptions opt;
  std::unique_ptr<S3Store> s3;
  std::unique_ptr<HealthLake> hl;
  std::unique_ptr<Sts> sts;
  Faults faults;
  tcp::acceptor acceptor;
  asio::steady_timer ticker;
  std::ofstream log;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  std::list<std::weak_ptr<beast::tcp_stream>> streams;
  bool stopping = false;
  uint64_t request_counter = 0;

  Impl(asio::io_context& io_, ServerOptions o)
      : io(io_), opt(std::move(o)), acceptor(io_), ticker(io_) {
    fs::create_directories(opt.data);
    s3 = std::make_unique<S3Store>(opt.data / "s3", opt.min_part_size, opt.md5_etags);
    opt.healthlake.region = opt.region;
    hl = std::make_unique<HealthLake>(*s3, opt.data / "healthlake", opt.healthlake);
    for (const auto& d : opt.datastores) hl->add_datastore(d);
    opt.sts.account = opt.healthlake.account;
    opt.sts.region = opt.region;
    sts = std::make_unique<Sts>(opt.sts);
    for (const auto& b : opt.buckets) {
      if (!S3Store::valid_bucket_name(b))
        throw std::invalid_argument("--bucket '" + b + "' is not a valid S3 bucket name");
      s3->create_bucket(b);
    }
    std::vector<std::string> ops = s3_operations();
    ops.push_back("CopyObject");  // the importer's batch copies (docs/import.md "Batches")
    for (const auto& o2 : HealthLake::operations()) ops.push_back(o2);
    faults = Faults::parse(opt.faults, ops);
    if (opt.request_log.empty()) opt.request_log = opt.data / "requests.jsonl";
    log.open(opt.request_log, std::ios::app);
    if (!log) throw std::runtime_error("cannot open request log " + opt.request_log.string());
  }

  double now_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  void write_log(const LogEntry& e, int status, double ms) {
    json::Writer w;
    w.begin_object()
        .field("time", iso8601_ms(std::chrono::system_clock::now()))
        .field("operation", e.operation);
    auto field = [&](const char* k, const std::string& v) {
      if (!v.empty()) w.field(k, v);
    };
    field("bucket", e.bucket);
    field("key", e.key);
    field("upload_id", e.upload_id);
    if (e.part_number) w.field("part_number", e.part_number);
    w.field("status", status);
    field("error", e.error);
    field("client_token", e.client_token);
    field("job_id", e.job_id);
    field("datastore_id", e.datastore);
    field("faults", e.faults);
    field("payload", e.payload);
    char ms_buf[32];
    std::snprintf(ms_buf, sizeof ms_buf, "%.1f", ms);
    w.field("bytes_in", e.bytes_in).field("bytes_out", e.bytes_out).raw_field("ms", ms_buf);
    log << w.end_object().str() << '\n';
    log.flush();
  }

  Response s3_error(const S3Error& e, const std::string& resource, bool head) {
    Response r;
    r.status = e.status;
    r.error_code = e.code;
    r.head = head;
    std::string x =
        std::string(kXmlHeader) + "<Error>" + tag("Code", e.code) + tag("Message", e.message);
    for (const auto& [k, v] : e.fields) x += tag(k, v);
    if (!resource.empty()) x += tag("Resource", resource);
    x += tag("RequestId", "hll" + std::to_string(request_counter)) +
         tag("HostId", "healthlake-local") + "</Error>";
    r.body = x;
    r.set("Content-Type", "application/xml");
    return r;
  }

  Response hl_error(const HlError& e) {
    Response r;
    r.status = e.status;
    r.error_code = e.type;
    r.set("Content-Type", "application/x-amz-json-1.0");
    r.set("x-amzn-ErrorType", e.type);
    r.body = json::Writer()
                 .begin_object()
                 .field("__type", "com.amazonaws.healthlake#" + e.type)
                 .field("message", e.message)
                 .end_object()
                 .str();
    return r;
  }

  fe::aws::Credentials base_credentials() const {
    fe::aws::Credentials c;
    c.access_key_id = opt.access_key;
    c.secret_access_key = opt.secret_key;
    c.session_token = opt.session_token;
    return c;
  }

  // STS (sts.hpp): the form body is small; read it whole (bounded), verify, answer.
  awaitable<bool> handle_sts(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                             http::request_parser<http::empty_body>& hp, const std::string& path,
                             const std::string& raw_query, LogEntry& le) {
    http::request_parser<http::string_body> sp{std::move(hp)};
    sp.body_limit(64 * 1024);
    if (!sp.is_done()) co_await http::async_read(stream, buffer, sp, use_awaitable);
    const auto& req = sp.get();
    SysTime now = std::chrono::system_clock::now();
    fe::aws::SignableRequest sr;
    sr.method = std::string(req.method_string());
    sr.path = path;
    sr.query = raw_query;
    for (const auto& f : req)
      sr.headers.push_back({std::string(f.name_string()), std::string(f.value())});
    StsReply sts_reply = sts->handle(sr, req.body(), base_credentials(), now,
                                     "hll-sts-" + std::to_string(request_counter));
    Response r;
    r.status = sts_reply.status;
    r.error_code = sts_reply.error_code;
    r.body = std::move(sts_reply.body);
    r.set("Content-Type", "text/xml");
    le.bytes_in = req.body().size();
    le.bytes_out = r.body.size();
    le.error = r.error_code;
    le.key = sts_reply.role_arn;  // the request log names the role asked for
    write_log(le, r.status, 0);
    const bool ka = keep_alive_of(req);
    co_await write_response(stream, r, ka, now, false);
    co_return ka;
  }

  // ---- signature check -----------------------------------------------------------------------
  struct AuthOutcome {
    bool ok = true;
    std::optional<S3Error> s3;
    std::optional<HlError> json;
    std::optional<ChunkSigning> chunk;
  };

  // A request body as received: the file holds the bytes S3 stores (aws-chunked decoded).
  struct Received {
    fs::path path;  // empty: no body
    uint64_t raw_size = 0;
    std::string raw_sha256_hex;  // of the bytes as received; "" when the request needs none
    Digests decoded;             // of the stored bytes (only those the request needs)
    std::map<std::string, std::string> trailers;
    std::optional<S3Error> decode_error;    // aws-chunked framing / chunk signature
    std::optional<AuthOutcome> early_auth;  // signed chunks: judged at the header
  };

  AuthOutcome authenticate(const http::request_header<>& h, std::string_view path,
                           std::string_view query, const std::string& payload_hash, bool json,
                           SysTime now) {
    AuthOutcome out;
    if (!opt.verify_signatures) return out;
    fe::aws::SignableRequest sr;
    sr.method = std::string(h.method_string());
    sr.path = std::string(path);
    sr.query = std::string(query);
    for (const auto& f : h)
      sr.headers.push_back({std::string(f.name_string()), std::string(f.value())});
    sr.payload_hash = payload_hash;
    fe::aws::VerifyOptions vo;
    vo.region = opt.region;
    vo.service = json ? "healthlake" : "s3";
    vo.now = now;
    vo.s3_rules = !json;
    std::string secret;  // of the key that signed: the chunk signatures' key
    fe::aws::SecretLookup lookup =
        [this, &secret](std::string_view ak) -> std::optional<fe::aws::Credentials> {
      // The configured key, or temporary credentials from this emulator's STS AssumeRole.
      std::optional<fe::aws::Credentials> c =
          ak == opt.access_key ? std::optional(base_credentials()) : sts->lookup(ak);
      if (c) secret = c->secret_access_key;
      return c;
    };
    fe::aws::VerifyResult v = fe::aws::verify(sr, lookup, vo);
    using VS = fe::aws::VerifyStatus;
    if (v.ok()) {
      // Streaming signed payloads: keep what the chunk-signature chain needs.
      auto sha = h["x-amz-content-sha256"];
      if (!json && sha.starts_with("STREAMING-AWS4-HMAC-SHA256-PAYLOAD")) {
        auto auth = std::string(h[http::field::authorization]);
        auto cred = auth.find("Credential=");
        auto sigp = auth.find("Signature=");
        ChunkSigning cs;
        std::string credential = auth.substr(cred + 11, auth.find(',', cred) - cred - 11);
        // AK/date/region/service/aws4_request
        auto p1 = credential.find('/');
        std::string scope = credential.substr(p1 + 1);
        cs.scope = scope;
        cs.amz_date = std::string(h["x-amz-date"]);
        cs.seed_signature = auth.substr(sigp + 10, 64);
        cs.key = fe::aws::derive_signing_key(secret, scope.substr(0, 8), opt.region, "s3");
        out.chunk = cs;
      }
      return out;
    }
    out.ok = false;
    if (json) {
      switch (v.status) {
        case VS::missing:
          out.json =
              HlError(403, "MissingAuthenticationTokenException", "Missing Authentication Token");
          break;
        case VS::malformed:
          out.json = HlError(400, "IncompleteSignatureException", v.message);
          break;
        case VS::unknown_access_key:
        case VS::invalid_token:
          out.json = HlError(403, "UnrecognizedClientException",
                             "The security token included in the request is invalid.");
          break;
        case VS::expired:
          out.json = HlError(403, "ExpiredTokenException",
                             "The security token included in the request is expired");
          break;
        case VS::request_time_too_skewed:
          out.json = HlError(403, "InvalidSignatureException", "Signature expired: " + v.message);
          break;
        case VS::content_sha256_mismatch:
        case VS::signature_mismatch:
        case VS::scope_mismatch:
        default:
          out.json = HlError(403, "InvalidSignatureException", v.message);
      }
      return out;
    }
    switch (v.status) {
      case VS::missing:
        out.s3 = S3Error(403, "AccessDenied", "Access Denied");
        break;
      case VS::malformed:
      case VS::scope_mismatch:
        out.s3 = S3Error(400, "AuthorizationHeaderMalformed",
                         "The authorization header is malformed; " + v.message);
        break;
      case VS::unknown_access_key:
        out.s3 = S3Error(403, "InvalidAccessKeyId",
                         "The AWS Access Key Id you provided does not exist in our records.",
                         {{"AWSAccessKeyId", v.access_key_id}});
        break;
      case VS::invalid_token:
        out.s3 =
            S3Error(400, "InvalidToken", "The provided token is malformed or otherwise invalid.");
        break;
      case VS::expired:
        // A presigned URL past X-Amz-Expires is AccessDenied; expired credentials ExpiredToken.
        if (h.count(http::field::authorization) == 0)
          out.s3 = S3Error(403, "AccessDenied", "Request has expired");
        else
          out.s3 = S3Error(400, "ExpiredToken", "The provided token has expired.");
        break;
      case VS::request_time_too_skewed: {
        std::string req_time(h["x-amz-date"]);
        out.s3 =
            S3Error(403, "RequestTimeTooSkewed",
                    "The difference between the request time and the current time is too large.",
                    {{"RequestTime", req_time},
                     {"ServerTime", iso8601_ms(now)},
                     {"MaxAllowedSkewMilliseconds", "900000"}});
        break;
      }
      case VS::content_sha256_mismatch:
        out.s3 =
            S3Error(400, "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    {{"ClientComputedContentSHA256", std::string(h["x-amz-content-sha256"])},
                     {"S3ComputedContentSHA256", payload_hash}});
        break;
      case VS::signature_mismatch:
      default:
        out.s3 = S3Error(403, "SignatureDoesNotMatch",
                         "The request signature we calculated does not match the signature you "
                         "provided. Check your key and signing method.",
                         {{"AWSAccessKeyId", v.access_key_id},
                          {"StringToSign", v.string_to_sign},
                          {"CanonicalRequest", v.canonical_request}});
    }
    return out;
  }

  // ---- S3
  // ----------------------------------------------------------------------------------------
  static WriteRequest write_request(const http::request_header<>& h) {
    WriteRequest w;
    w.content_type = std::string(h[http::field::content_type]);
    for (const auto& f : h) {
      std::string name = lower(f.name_string());
      std::string value(f.value());
      if (name.starts_with("x-amz-meta-") || name == "x-amz-server-side-encryption" ||
          name == "x-amz-server-side-encryption-aws-kms-key-id" ||
          name == "x-amz-server-side-encryption-context" ||
          name == "x-amz-server-side-encryption-bucket-key-enabled" || name == "cache-control" ||
          name == "content-disposition" || name == "content-language" ||
          name == "x-amz-storage-class")
        w.stored_headers[name] = value;
      if (name == "content-md5") w.content_md5 = value;
      if (name.starts_with("x-amz-checksum-") && name != "x-amz-checksum-algorithm" &&
          name != "x-amz-checksum-type" && name != "x-amz-checksum-mode") {
        std::string alg = name.substr(15);
        for (auto& c : alg) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
        w.checksums[alg] = value;
      }
      if (name == "x-amz-content-sha256" && value.size() == 64 &&
          value.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos)
        w.content_sha256 = lower(value);
      if (name == "if-none-match") w.if_none_match_star = value == "*";
      if (name == "if-match") w.if_match = value;
    }
    return w;
  }

  static void echo_object_headers(Response& r, const ObjectInfo& o, bool checksum_mode) {
    r.set("ETag", o.etag);
    r.set("Last-Modified", http_date(o.last_modified));
    r.set("Content-Type", o.content_type);
    r.set("Accept-Ranges", "bytes");
    for (const auto& [k, v] : o.stored_headers) r.set(k, v);
    if (o.parts) r.set("x-amz-mp-parts-count", std::to_string(o.parts));
    if (checksum_mode) {
      for (const auto& [alg, v] : o.checksums) r.set("x-amz-checksum-" + lower(alg), v);
      if (!o.checksum_type.empty()) r.set("x-amz-checksum-type", o.checksum_type);
    }
  }

  Response handle_s3(const std::string& op, const http::request_header<>& h,
                     const std::string& bucket, const std::string& key,
                     const std::multimap<std::string, std::string>& q, const fs::path& body,
                     const Digests* digests, LogEntry& le) {
    bool head = h.method() == http::verb::head;
    Response r;
    r.head = head;
    if (op == "ListBuckets") {
      std::string x = std::string(kXmlHeader) + "<ListAllMyBucketsResult xmlns=\"" + kS3Ns +
                      "\"><Owner><ID>healthlake-local</ID><DisplayName>healthlake-local</"
                      "DisplayName></Owner><Buckets>";
      for (const auto& entry : fs::directory_iterator(opt.data / "s3" / "buckets")) {
        std::string b = entry.path().filename().string();
        if (s3->has_bucket(b))
          x += "<Bucket>" + tag("Name", b) +
               tag("CreationDate", iso8601_ms(SysTime(std::chrono::duration_cast<SysTime::duration>(
                                       fs::last_write_time(entry.path()).time_since_epoch() -
                                       fs::file_time_type::clock::now().time_since_epoch() +
                                       std::chrono::system_clock::now().time_since_epoch())))) +
               "</Bucket>";
      }
      r.body = x + "</Buckets></ListAllMyBucketsResult>";
      r.set("Content-Type", "application/xml");
      return r;
    }
    if (op == "CreateBucket") {
      bool created = s3->create_bucket(bucket);
      // us-east-1 answers 200 for a bucket you already own; every other region 409.
      if (!created && opt.region != "us-east-1")
        throw S3Error(409, "BucketAlreadyOwnedByYou",
                      "Your previous request to create the named bucket succeeded and you already "
                      "own it.",
                      {{"BucketName", bucket}});
      r.set("Location", "/" + bucket);
      return r;
    }
    if (op == "HeadBucket") {
      s3->require_bucket(bucket);
      r.set("x-amz-bucket-region", opt.region);
      return r;
    }
    if (op == "DeleteBucket") {
      s3->delete_bucket(bucket);
      r.status = 204;
      return r;
    }
    if (op == "ListObjectsV2") {
      ListV2Request lr;
      lr.prefix = qget(q, "prefix");
      lr.delimiter = qget(q, "delimiter");
      lr.continuation_token = qget(q, "continuation-token");
      lr.start_after = qget(q, "start-after");
      std::string mk = qget(q, "max-keys");
      if (!mk.empty()) {
        try {
          size_t used = 0;
          long v = std::stol(mk, &used);
          if (used != mk.size()) throw std::invalid_argument("");
          lr.max_keys = static_cast<int>(std::clamp<long>(v, -1, 1000));
        } catch (const std::exception&) {
          throw S3Error(400, "InvalidArgument",
                        "Provided max-keys not an integer or within integer range",
                        {{"ArgumentName", "max-keys"}, {"ArgumentValue", mk}});
        }
      }
      std::string enc = qget(q, "encoding-type");
      if (!enc.empty() && enc != "url")
        throw S3Error(400, "InvalidArgument", "Invalid Encoding Method specified in Request",
                      {{"ArgumentName", "encoding-type"}, {"ArgumentValue", enc}});
      auto E = [&](const std::string& s) { return enc == "url" ? url_encode(s, true) : s; };
      ListV2Result res = s3->list_objects_v2(bucket, lr);
      std::string x = std::string(kXmlHeader) + "<ListBucketResult xmlns=\"" + kS3Ns + "\">" +
                      tag("Name", bucket) + tag("Prefix", E(lr.prefix));
      if (!lr.delimiter.empty()) x += tag("Delimiter", E(lr.delimiter));
      x += tag("MaxKeys", std::to_string(lr.max_keys)) +
           tag("KeyCount", std::to_string(res.contents.size() + res.common_prefixes.size())) +
           tag("IsTruncated", res.truncated ? "true" : "false");
      if (!enc.empty()) x += tag("EncodingType", enc);
      if (!lr.continuation_token.empty()) x += tag("ContinuationToken", lr.continuation_token);
      if (res.truncated) x += tag("NextContinuationToken", res.next_token);
      if (!lr.start_after.empty()) x += tag("StartAfter", E(lr.start_after));
      for (const ObjectInfo* o : res.contents) {
        x += "<Contents>" + tag("Key", E(o->key)) +
             tag("LastModified", iso8601_ms(o->last_modified)) + tag("ETag", o->etag);
        for (const auto& [alg, v] : o->checksums) x += tag("ChecksumAlgorithm", alg);
        if (!o->checksum_type.empty()) x += tag("ChecksumType", o->checksum_type);
        x += tag("Size", std::to_string(o->size)) + tag("StorageClass", "STANDARD") + "</Contents>";
      }
      for (const auto& p : res.common_prefixes)
        x += "<CommonPrefixes>" + tag("Prefix", E(p)) + "</CommonPrefixes>";
      r.body = x + "</ListBucketResult>";
      r.set("Content-Type", "application/xml");
      return r;
    }
    if (op == "ListMultipartUploads") {
      int max = 1000;
      if (auto mu = qget(q, "max-uploads"); !mu.empty()) {
        try {
          max = std::stoi(mu);
        } catch (const std::exception&) {
          throw S3Error(400, "InvalidArgument",
                        "Provided max-uploads not an integer or within integer range",
                        {{"ArgumentName", "max-uploads"}, {"ArgumentValue", mu}});
        }
      }
      std::string prefix = qget(q, "prefix"), delim = qget(q, "delimiter");
      std::string km = qget(q, "key-marker"), um = qget(q, "upload-id-marker");
      ListUploadsResult res = s3->list_uploads(bucket, prefix, delim, km, um, max);
      std::string x = std::string(kXmlHeader) + "<ListMultipartUploadsResult xmlns=\"" + kS3Ns +
                      "\">" + tag("Bucket", bucket) + tag("KeyMarker", km) +
                      tag("UploadIdMarker", um) + tag("NextKeyMarker", res.next_key_marker) +
                      tag("NextUploadIdMarker", res.next_upload_id_marker) + tag("Prefix", prefix);
      if (!delim.empty()) x += tag("Delimiter", delim);
      x += tag("MaxUploads", std::to_string(max)) +
           tag("IsTruncated", res.truncated ? "true" : "false");
      for (const UploadInfo* u : res.uploads) {
        x += "<Upload>" + tag("Key", u->key) + tag("UploadId", u->upload_id) +
             "<Initiator><ID>healthlake-local</ID><DisplayName>healthlake-local</DisplayName></"
             "Initiator>"
             "<Owner><ID>healthlake-local</ID><DisplayName>healthlake-local</DisplayName></Owner>" +
             tag("StorageClass", "STANDARD") + tag("Initiated", iso8601_ms(u->initiated));
        if (!u->checksum_algorithm.empty()) x += tag("ChecksumAlgorithm", u->checksum_algorithm);
        x += "</Upload>";
      }
      for (const auto& p : res.common_prefixes)
        x += "<CommonPrefixes>" + tag("Prefix", p) + "</CommonPrefixes>";
      r.body = x + "</ListMultipartUploadsResult>";
      r.set("Content-Type", "application/xml");
      return r;
    }
    if (op == "PutObject") {
      WriteRequest w = write_request(h);
      w.began_at = le.began_at;
      ObjectInfo o = s3->put_object(bucket, key, body, w, digests);
      r.set("ETag", o.etag);
      for (const auto& [alg, v] : o.checksums) r.set("x-amz-checksum-" + lower(alg), v);
      if (!o.checksum_type.empty()) r.set("x-amz-checksum-type", o.checksum_type);
      for (const auto& [k, v] : o.stored_headers)
        if (k.starts_with("x-amz-server-side-encryption")) r.set(k, v);
      return r;
    }
    if (op == "CopyObject") {
      // x-amz-copy-source: [/]bucket/key, URL-encoded. The copy gets the request's SSE headers
      // (as S3: the destination's encryption comes from the copy request, not the source); the
      // content type is the source's (metadata directive COPY, the default).
      std::string src = url_decode(std::string(h["x-amz-copy-source"]), false);
      if (src.starts_with("/")) src.erase(0, 1);
      if (auto v = src.find("?versionId="); v != std::string::npos) src.erase(v);
      auto slash = src.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == src.size())
        throw S3Error(400, "InvalidArgument", "Copy Source must mention the source bucket and key",
                      {{"ArgumentName", "x-amz-copy-source"}});
      const ObjectInfo& from = s3->head_object(src.substr(0, slash), src.substr(slash + 1));
      // A copy request has no body, so usually no spooled file: put_object moves this one in.
      fs::path data = body.empty() ? s3->new_temp_path() : body;
      std::error_code ec;
      fs::copy_file(from.data, data, fs::copy_options::overwrite_existing, ec);
      if (ec) throw S3Error(500, "InternalError", "healthlake-local cannot copy the object");
      WriteRequest w = write_request(h);
      w.content_type = from.content_type;
      w.checksums = from.checksums.size() == 1 && from.checksum_type == "FULL_OBJECT"
                        ? from.checksums
                        : std::map<std::string, std::string>{};
      w.content_md5.reset();
      w.content_sha256.reset();
      ObjectInfo o = s3->put_object(bucket, key, data, w, nullptr);
      for (const auto& [k, v] : o.stored_headers)
        if (k.starts_with("x-amz-server-side-encryption")) r.set(k, v);
      r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult>" +
               tag("LastModified", iso8601_ms(o.last_modified)) + tag("ETag", o.etag) +
               "</CopyObjectResult>";
      r.set("Content-Type", "application/xml");
      return r;
    }
    if (op == "GetObject" || op == "HeadObject") {
      const ObjectInfo& o = s3->head_object(bucket, key);
      bool checksum_mode = lower(h["x-amz-checksum-mode"]) == "enabled";
      uint64_t start = 0, len = o.size;
      std::string range(h[http::field::range]);
      if (!range.empty() && range.starts_with("bytes=") && range.find(',') == std::string::npos) {
        std::string spec = range.substr(6);
        auto dash = spec.find('-');
        bool valid = dash != std::string::npos;
        uint64_t a = 0, b = 0;
        try {
          if (valid && dash == 0) {  // suffix: last N bytes
            uint64_t n = std::stoull(spec.substr(1));
            if (n == 0)
              throw S3Error(
                  416, "InvalidRange", "The requested range is not satisfiable",
                  {{"RangeRequested", range}, {"ActualObjectSize", std::to_string(o.size)}});
            a = n >= o.size ? 0 : o.size - n;
            b = o.size ? o.size - 1 : 0;
            if (o.size == 0)
              throw S3Error(416, "InvalidRange", "The requested range is not satisfiable",
                            {{"RangeRequested", range}, {"ActualObjectSize", "0"}});
          } else if (valid) {
            a = std::stoull(spec.substr(0, dash));
            b = dash + 1 < spec.size() ? std::stoull(spec.substr(dash + 1)) : UINT64_MAX;
            if (b < a)
              valid = false;  // syntactically invalid ranges are ignored, as S3 does
            else if (a >= o.size)
              throw S3Error(
                  416, "InvalidRange", "The requested range is not satisfiable",
                  {{"RangeRequested", range}, {"ActualObjectSize", std::to_string(o.size)}});
            b = std::min(b, o.size - 1);
          }
        } catch (const std::logic_error&) {
          valid = false;
        }
        if (valid) {
          start = a;
          len = b - a + 1;
          r.status = 206;
          r.set("Content-Range", "bytes " + std::to_string(a) + "-" + std::to_string(b) + "/" +
                                     std::to_string(o.size));
        }
      }
      echo_object_headers(r, o, checksum_mode && r.status == 200);
      r.file = o.data;
      if (!head) r.opened = open_read(o.data);
      r.offset = start;
      r.length = len;
      return r;
    }
    if (op == "DeleteObject") {
      s3->delete_object(bucket, key);
      r.status = 204;
      return r;
    }
    if (op == "CreateMultipartUpload") {
      WriteRequest w = write_request(h);
      std::string alg(h["x-amz-checksum-algorithm"]);
      for (auto& c : alg) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
      const UploadInfo& u = s3->create_upload(bucket, key, w, alg);
      le.upload_id = u.upload_id;
      r.body = std::string(kXmlHeader) + "<InitiateMultipartUploadResult xmlns=\"" + kS3Ns + "\">" +
               tag("Bucket", bucket) + tag("Key", key) + tag("UploadId", u.upload_id) +
               "</InitiateMultipartUploadResult>";
      r.set("Content-Type", "application/xml");
      if (!alg.empty()) {
        r.set("x-amz-checksum-algorithm", alg);
        r.set("x-amz-checksum-type", "COMPOSITE");
      }
      for (const auto& [k, v] : u.stored_headers)
        if (k.starts_with("x-amz-server-side-encryption")) r.set(k, v);
      return r;
    }
    if (op == "UploadPart") {
      std::string pn = qget(q, "partNumber");
      int n = 0;
      try {
        size_t used = 0;
        long v = std::stol(pn, &used);
        if (used != pn.size()) throw std::invalid_argument("");
        n = static_cast<int>(std::clamp<long>(v, -1, kMaxPartNumber + 1));
      } catch (const std::exception&) {
        n = -1;
      }
      le.part_number = n > 0 ? n : 0;
      if (n < 1 || n > kMaxPartNumber) {
        std::error_code ec;
        fs::remove(body, ec);
        throw S3Error(400, "InvalidArgument",
                      "Part number must be an integer between 1 and 10000, inclusive",
                      {{"ArgumentName", "partNumber"}, {"ArgumentValue", pn}});
      }
      WriteRequest w = write_request(h);
      PartInfo p = s3->upload_part(bucket, key, qget(q, "uploadId"), n, body, w, digests);
      r.set("ETag", p.etag);
      for (const auto& [alg, v] : p.checksums)
        if (w.checksums.count(alg)) r.set("x-amz-checksum-" + lower(alg), v);
      const UploadInfo& u = s3->upload(bucket, key, qget(q, "uploadId"));
      for (const auto& [k, v] : u.stored_headers)
        if (k.starts_with("x-amz-server-side-encryption")) r.set(k, v);
      return r;
    }
    if (op == "ListParts") {
      int max = 1000, marker = 0;
      try {
        if (auto m = qget(q, "max-parts"); !m.empty()) max = std::stoi(m);
        if (auto m = qget(q, "part-number-marker"); !m.empty()) marker = std::stoi(m);
      } catch (const std::exception&) {
        throw S3Error(400, "InvalidArgument", "max-parts and part-number-marker must be integers");
      }
      const UploadInfo& u = s3->upload(bucket, key, qget(q, "uploadId"));
      ListPartsResult res = s3->list_parts(bucket, key, u.upload_id, marker, max);
      std::string x = std::string(kXmlHeader) + "<ListPartsResult xmlns=\"" + kS3Ns + "\">" +
                      tag("Bucket", bucket) + tag("Key", key) + tag("UploadId", u.upload_id) +
                      tag("PartNumberMarker", std::to_string(marker)) +
                      tag("NextPartNumberMarker", std::to_string(res.next_marker)) +
                      tag("MaxParts", std::to_string(std::min(max, 1000))) +
                      tag("IsTruncated", res.truncated ? "true" : "false");
      for (const PartInfo* p : res.parts) {
        x += "<Part>" + tag("PartNumber", std::to_string(p->number)) +
             tag("LastModified", iso8601_ms(p->last_modified)) + tag("ETag", p->etag) +
             tag("Size", std::to_string(p->size));
        for (const auto& [alg, v] : p->checksums) x += tag("Checksum" + alg, v);
        x += "</Part>";
      }
      x += "<Initiator><ID>healthlake-local</ID><DisplayName>healthlake-local</DisplayName></"
           "Initiator>"
           "<Owner><ID>healthlake-local</ID><DisplayName>healthlake-local</DisplayName></Owner>" +
           tag("StorageClass", "STANDARD");
      if (!u.checksum_algorithm.empty())
        x += tag("ChecksumAlgorithm", u.checksum_algorithm) + tag("ChecksumType", "COMPOSITE");
      r.body = x + "</ListPartsResult>";
      r.set("Content-Type", "application/xml");
      return r;
    }
    if (op == "CompleteMultipartUpload") {
      std::string upload_id = qget(q, "uploadId");
      s3->upload(bucket, key, upload_id);  // NoSuchUpload before looking at the body
      std::string xml = body.empty() || !fs::exists(body) ? std::string() : read_file(body);
      std::vector<CompletePart> parts = parse_complete_xml(xml);
      ObjectInfo o = s3->complete_upload(bucket, key, upload_id, parts, write_request(h));
      std::string x = std::string(kXmlHeader) + "<CompleteMultipartUploadResult xmlns=\"" + kS3Ns +
                      "\">" +
                      tag("Location", "http://" + std::string(h[http::field::host]) + "/" + bucket +
                                          "/" + url_encode(key, true)) +
                      tag("Bucket", bucket) + tag("Key", key) + tag("ETag", o.etag);
      for (const auto& [alg, v] : o.checksums) x += tag("Checksum" + alg, v);
      if (!o.checksum_type.empty()) x += tag("ChecksumType", o.checksum_type);
      r.body = x + "</CompleteMultipartUploadResult>";
      r.set("Content-Type", "application/xml");
      for (const auto& [k, v] : o.stored_headers)
        if (k.starts_with("x-amz-server-side-encryption")) r.set(k, v);
      return r;
    }
    if (op == "AbortMultipartUpload") {
      s3->abort_upload(bucket, key, qget(q, "uploadId"));
      r.status = 204;
      return r;
    }
    throw S3Error(501, "NotImplemented",
                  "A header you provided implies functionality that is not implemented");
  }

  // ---- one connection --------------------------------------------------------------------------
  awaitable<void> write_response(beast::tcp_stream& stream, Response& r, bool keep_alive,
                                 SysTime date, bool cut_body) {
    // A cut with no body to cut: the request was applied, but the client gets nothing back.
    if (cut_body && (r.head || r.body_size() == 0)) co_return;
    http::response<http::empty_body> res{static_cast<http::status>(r.status), 11};
    res.set(http::field::server, "healthlake-local");
    res.set(http::field::date, http_date(date));
    res.set("x-amz-request-id", "hll" + std::to_string(request_counter));
    res.set("x-amzn-RequestId", "hll-" + std::to_string(request_counter));
    for (const auto& [k, v] : r.headers) res.set(k, v);
    uint64_t size = r.body_size();
    bool no_body = r.status == 204 || r.status == 304;
    if (!no_body) res.set(http::field::content_length, std::to_string(size));
    res.keep_alive(keep_alive && !cut_body);
    http::response_serializer<http::empty_body> sr{res};
    co_await http::async_write_header(stream, sr, use_awaitable);
    if (r.head || no_body) co_return;
    uint64_t to_send = cut_body ? size / 2 : size;
    if (r.file.empty()) {
      co_await asio::async_write(stream, asio::buffer(r.body.data(), to_send), use_awaitable);
    } else {
      std::shared_ptr<FILE> f = r.opened ? r.opened : open_read(r.file);
      if (!f) throw std::runtime_error("object file vanished: " + r.file.string());
      if (fseeko(f.get(), static_cast<off_t>(r.offset), SEEK_SET) != 0)
        throw std::runtime_error("cannot seek in " + r.file.string());
      std::vector<char> buf(1 << 16);
      while (to_send > 0) {
        size_t n = std::fread(buf.data(), 1, std::min<uint64_t>(to_send, buf.size()), f.get());
        if (n == 0) throw std::runtime_error("short read of " + r.file.string());
        co_await asio::async_write(stream, asio::buffer(buf.data(), n), use_awaitable);
        to_send -= n;
      }
    }
  }

  awaitable<void> session(tcp::socket socket) {
    auto stream = std::make_shared<beast::tcp_stream>(std::move(socket));
    streams.push_back(stream);
    beast::flat_buffer buffer;
    try {
      for (;;) {
        stream->expires_after(std::chrono::minutes(10));
        http::request_parser<http::empty_body> hp;
        hp.header_limit(64 * 1024);
        hp.body_limit(std::numeric_limits<std::uint64_t>::max());
        co_await http::async_read_header(*stream, buffer, hp, use_awaitable);
        bool keep_alive = co_await handle(*stream, buffer, hp);
        if (!keep_alive || stopping) break;
      }
    } catch (const boost::system::system_error& e) {
      // Client closed, timed out, or we dropped the connection on purpose.
    } catch (const std::exception& e) {
      fe::log::warning(std::string("healthlake-local: connection error: ") + e.what());
    }
    beast::error_code ec;
    stream->socket().shutdown(tcp::socket::shutdown_both, ec);
    stream->socket().close(ec);
  }

  // Returns whether to keep the connection open.
  awaitable<bool> handle(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                         http::request_parser<http::empty_body>& hp) {
    ++request_counter;
    auto started = std::chrono::steady_clock::now();
    const auto& h = hp.get();
    std::string target(h.target());
    std::string path = target.substr(0, target.find('?'));
    std::string raw_query =
        target.find('?') == std::string::npos ? "" : target.substr(target.find('?') + 1);
    auto q = parse_query(raw_query);
    std::string amz_target(h["x-amz-target"]);
    bool json = amz_target.starts_with("HealthLake.");
    LogEntry le;

    // Debug endpoints (unsigned, loopback only): health and per-datastore resource counts.
    if (path.starts_with("/_healthlake-local/")) {
      const bool ka = keep_alive_of(h);
      co_await read_body_discard(stream, buffer, hp);
      Response r;
      r.set("Content-Type", "application/json");
      std::string rest = path.substr(19);
      if (rest == "health") {
        r.body = "{\"status\":\"ok\"}";
      } else if (rest.starts_with("datastores/") && rest.ends_with("/resources")) {
        std::string ds = rest.substr(11, rest.size() - 11 - 10);
        r.body = hl->resources_json(ds);
      } else {
        r.status = 404;
        r.body = "{\"error\":\"unknown debug endpoint\"}";
      }
      le.operation = "Debug";
      co_await write_response(stream, r, ka, std::chrono::system_clock::now(), false);
      write_log(le, r.status, 0);
      co_return ka;
    }

    if (!json &&
        Sts::is_sts_request(h.method_string(), path, h[http::field::content_type], amz_target,
                            !virtual_host_bucket(h[http::field::host]).empty())) {
      le.operation = "AssumeRole";
      co_return co_await handle_sts(stream, buffer, hp, path, raw_query, le);
    }

    // Which operation (from the header alone, so faults can fire before the body arrives).
    std::string bucket, key;
    if (!json) {
      bucket = virtual_host_bucket(h[http::field::host]);
      std::string p = url_decode(path, false);
      if (p.starts_with("/")) p.erase(0, 1);
      if (bucket.empty()) {
        auto slash = p.find('/');
        bucket = p.substr(0, slash);
        if (slash != std::string::npos) key = p.substr(slash + 1);
      } else {
        key = p;
      }
      le.operation = s3_operation(h.method_string(), !bucket.empty(), !key.empty(), raw_query,
                                  h.count("x-amz-copy-source") > 0);
      le.bucket = bucket;
      le.key = key;
      le.upload_id = qget(q, "uploadId");
      le.began_at = s3->delete_sequence();
    } else {
      le.operation = hl_op_from_target(amz_target);
    }
    std::string fault_op = le.operation.empty() ? "Unknown" : le.operation;
    FaultDecision fd = faults.decide(fault_op);
    for (const auto& n : fd.names) le.faults += (le.faults.empty() ? "" : ";") + n;
    SysTime now = std::chrono::system_clock::now() + fd.skew;

    if (fd.drop) {
      // Read part of the body if any, then hang up without applying anything.
      write_log(le, 0, 0);
      co_return false;
    }

    // Take the body in: one pass that stores it (aws-chunked decoded), hashes it with what this
    // request needs and checks its framing (body.hpp). Memory is bounded by the receive buffer,
    // not the body size.
    if (h[http::field::expect] == "100-continue") {
      std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
      co_await asio::async_write(stream, asio::buffer(cont), use_awaitable);
    }
    Received rcv;
    if (hp.is_done()) {
      rcv.decoded = DigestStream(kDigestAll).final();  // the empty body
      rcv.raw_sha256_hex = hex(rcv.decoded.sha256);
      co_return co_await process(stream, h, path, raw_query, q, bucket, key, json, rcv, fd, now,
                                 started, le);
    }
    const std::string sha(h["x-amz-content-sha256"]);
    BodyReceiver::Options bo;
    bo.aws_chunked = !json && sha.starts_with("STREAMING-");
    bo.raw_sha256 = sha.empty() || is_hex_sha256(sha);
    bo.decoded = digests_needed(h, le, bo.aws_chunked);
    if (bo.aws_chunked) {
      bo.declared_trailers = declared_trailers(h);
      // Signed chunks chain from the header's signature: judge the header now (it does not
      // depend on the body), so the chunks are checked as they arrive. process() uses this same
      // outcome, at the same point as for any request.
      if (sha.starts_with("STREAMING-AWS4-HMAC-SHA256-PAYLOAD")) {
        rcv.early_auth = authenticate(h, path, raw_query, "", json, now);
        bo.signing = rcv.early_auth->chunk;
      }
    }
    rcv.path = s3->new_temp_path();
    struct RemoveOnError {  // a body cut off mid-way leaves nothing behind in tmp/
      fs::path p;
      bool armed = true;
      ~RemoveOnError() {
        std::error_code ec;
        if (armed) fs::remove(p, ec);
      }
    } remove_on_error{rcv.path};
    BodyReceiver rx(rcv.path, std::move(bo));
    if (hp.chunked()) {
      // Transfer-Encoding: chunked: Beast undoes the HTTP chunking, into our buffer.
      http::request_parser<http::buffer_body> bp{std::move(hp)};
      bp.body_limit(std::numeric_limits<std::uint64_t>::max());
      while (!bp.is_done()) {
        std::span<char> s = rx.space();
        bp.get().body().data = s.data();
        bp.get().body().size = s.size();
        bp.get().body().more = true;
        beast::error_code ec;
        co_await http::async_read(stream, buffer, bp, asio::redirect_error(use_awaitable, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) throw beast::system_error(ec);
        rx.commit(s.size() - bp.get().body().size);
      }
      finish_received(rx, rcv);
      remove_on_error.armed = false;  // process() owns the file from here
      co_return co_await process(stream, bp.get().base(), path, raw_query, q, bucket, key, json,
                                 rcv, fd, now, started, le);
    }
    // Content-Length: what the header read already buffered, then straight from the socket
    // into the receiver's buffer, never past this body (the next request stays in the stream).
    uint64_t left = hp.content_length().value_or(0);
    if (const size_t have = static_cast<size_t>(std::min<uint64_t>(buffer.size(), left))) {
      rx.put(static_cast<const char*>(buffer.data().data()), have);
      buffer.consume(have);
      left -= have;
    }
    while (left > 0) {
      std::span<char> s = rx.space();
      const size_t want = static_cast<size_t>(std::min<uint64_t>(s.size(), left));
      const size_t n = co_await stream.async_read_some(asio::buffer(s.data(), want), use_awaitable);
      rx.commit(n);
      left -= n;
    }
    finish_received(rx, rcv);
    remove_on_error.armed = false;  // process() owns the file from here
    co_return co_await process(stream, h, path, raw_query, q, bucket, key, json, rcv, fd, now,
                               started, le);
  }

  static void finish_received(BodyReceiver& rx, Received& rcv) {
    rx.finish();
    rcv.raw_size = rx.raw_size();
    rcv.raw_sha256_hex = rx.raw_sha256_hex();
    rcv.decoded = rx.decoded();
    rcv.trailers = rx.trailers();
    rcv.decode_error = rx.error();
  }

  // x-amz-trailer: the trailers an aws-chunked body must end with (comma-separated names).
  static std::set<std::string> declared_trailers(const http::request_header<>& h) {
    std::set<std::string> declared;
    std::string list = lower(h["x-amz-trailer"]);
    size_t at = 0;
    while (at <= list.size()) {
      size_t comma = std::min(list.find(',', at), list.size());
      std::string name = list.substr(at, comma - at);
      while (!name.empty() && name.front() == ' ') name.erase(0, 1);
      while (!name.empty() && name.back() == ' ') name.pop_back();
      if (!name.empty()) declared.insert(name);
      at = comma + 1;
    }
    return declared;
  }

  static bool is_hex_sha256(std::string_view v) {
    return v.size() == 64 && v.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
  }

  // The digests of the stored bytes a request's rules will ask for: MD5 (the ETag); the
  // algorithm of every x-amz-checksum-* header or declared trailer; SHA-256 for a hex
  // x-amz-content-sha256 on a plain body; an UploadPart's upload algorithm (S3 stores it per
  // part). S3Store computes anything missing from the file, so this only has to be right to be
  // fast.
  unsigned digests_needed(const http::request_header<>& h, const LogEntry& le,
                          bool aws_chunked) const {
    // MD5: for the ETag, or only to check a Content-MD5 sent (--etag opaque).
    unsigned need = opt.md5_etags || h.count("content-md5") ? unsigned{kDigestMd5} : 0u;
    auto checksum_bit = [](const std::string& name) -> unsigned {
      if (!name.starts_with("x-amz-checksum-") || name == "x-amz-checksum-algorithm" ||
          name == "x-amz-checksum-type" || name == "x-amz-checksum-mode")
        return 0;
      std::string alg = name.substr(15);
      for (auto& c : alg) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
      return digest_bit(alg);
    };
    for (const auto& f : h) need |= checksum_bit(lower(f.name_string()));
    if (aws_chunked)
      for (const auto& t : declared_trailers(h)) need |= checksum_bit(t);
    else if (is_hex_sha256(h["x-amz-content-sha256"]))
      need |= kDigestSha256;
    if (le.operation == "UploadPart")
      if (const UploadInfo* u = s3->find_upload(le.upload_id))
        need |= digest_bit(u->checksum_algorithm);
    return need;
  }

  awaitable<void> read_body_discard(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                    http::request_parser<http::empty_body>& hp) {
    if (hp.is_done()) co_return;
    http::request_parser<http::string_body> sp{std::move(hp)};
    sp.body_limit(1 << 20);
    co_await http::async_read(stream, buffer, sp, use_awaitable);
  }

  awaitable<bool> process(beast::tcp_stream& stream, const http::request_header<>& h,
                          const std::string& path, const std::string& raw_query,
                          const std::multimap<std::string, std::string>& q,
                          const std::string& bucket, const std::string& key, bool json,
                          Received& rcv, const FaultDecision& fd, SysTime now,
                          std::chrono::steady_clock::time_point started, LogEntry& le) {
    const fs::path body_path = rcv.path;
    struct Cleanup {
      fs::path p;
      ~Cleanup() {
        std::error_code ec;
        if (!p.empty()) fs::remove(p, ec);
      }
    } cleanup{body_path};
    le.bytes_in = rcv.raw_size;
    if (std::string sha(h["x-amz-content-sha256"]); !sha.empty())
      le.payload = sha.size() == 64 && sha.find('-') == std::string::npos ? "hash" : sha;
    bool head = h.method() == http::verb::head;
    std::string resource = json ? "" : "/" + bucket + (key.empty() ? "" : "/" + key);
    Response r;
    try {
      // Payload hash over what arrived (for x-amz-content-sha256 and the signature), hashed as
      // it arrived ("" when x-amz-content-sha256 says the payload is not a hash: then unused).
      Digests d = rcv.decoded;
      AuthOutcome auth = rcv.early_auth
                             ? *rcv.early_auth
                             : authenticate(h, path, raw_query, rcv.raw_sha256_hex, json, now);
      if (!auth.ok) {
        if (json) throw *auth.json;
        throw *auth.s3;
      }
      if (json && fd.error && !body_path.empty()) {
        // The log names the token and job of a request even when a fault answers it, so tests
        // can tell which Start a refused one was (re-sent with the same token or not).
        std::string body = read_file(body_path);
        simdjson::dom::parser p;
        simdjson::dom::element e;
        if (body.size() <= (1u << 20) && !p.parse(body).get(e)) {
          std::string_view sv;
          if (!e["ClientToken"].get(sv)) le.client_token = sv;
          if (!e["JobId"].get(sv)) le.job_id = sv;
          if (!e["DatastoreId"].get(sv)) le.datastore = sv;
        }
      }
      if (fd.error) {
        if (json) {
          if (fd.kind == FaultKind::internal_error)
            throw HlError(500, "InternalServerException", "Injected fault: internal server error");
          if (fd.kind == FaultKind::conflict)
            throw HlError(400, "ConflictException",
                          "Injected fault: the data store is in a transition state and the "
                          "requested action cannot be performed");
          if (fd.kind == FaultKind::access_denied)
            throw HlError(400, "AccessDeniedException",
                          "Injected fault: the caller is not authorized to perform this action");
          throw HlError(400, "ThrottlingException", "Injected fault: rate exceeded");
        }
        if (fd.kind == FaultKind::access_denied)
          throw S3Error(403, "AccessDenied", "Access Denied");
        if (fd.kind == FaultKind::internal_error)
          throw S3Error(500, "InternalError",
                        "We encountered an internal error. Please try again.");
        if (fd.kind == FaultKind::conflict)
          throw S3Error(409, "OperationAborted",
                        "A conflicting conditional operation is currently in progress against "
                        "this resource. Please try again.");
        throw S3Error(503, "SlowDown", "Please reduce your request rate.");
      }
      if (json) {
        if (h.method() != http::verb::post)
          throw HlError(400, "UnknownOperationException", "HealthLake calls are POST /");
        std::string body = body_path.empty() ? "" : read_file(body_path);
        if (body.size() > (1u << 20))
          throw HlError(400, "ValidationException", "Request body larger than 1 MiB");
        {
          simdjson::dom::parser p;
          simdjson::dom::element e;
          if (!p.parse(body).get(e)) {
            std::string_view sv;
            if (!e["ClientToken"].get(sv)) le.client_token = sv;
            if (!e["JobId"].get(sv)) le.job_id = sv;
            if (!e["DatastoreId"].get(sv)) le.datastore = sv;
          }
        }
        r.body = hl->call(le.operation, body, now_s());
        r.set("Content-Type", "application/x-amz-json-1.0");
        if (le.job_id.empty()) {
          simdjson::dom::parser p;
          simdjson::dom::element e;
          std::string_view sv;
          if (!p.parse(r.body).get(e) && !e["JobId"].get(sv)) le.job_id = sv;
        }
      } else {
        if (le.operation.empty())
          throw S3Error(501, "NotImplemented",
                        "A header you provided implies functionality that is not implemented");
        // S3 needs to know an object's length up front: Content-Length, or (aws-chunked, which
        // may travel with Transfer-Encoding: chunked) x-amz-decoded-content-length.
        if ((le.operation == "PutObject" || le.operation == "UploadPart") &&
            (h.count(http::field::content_length) == 0 ||
             lower(h[http::field::transfer_encoding]).find("chunked") != std::string::npos) &&
            h.count("x-amz-decoded-content-length") == 0)
          throw S3Error(411, "MissingContentLength",
                        "You must provide the Content-Length HTTP header.");
        // aws-chunked bodies were decoded (chunk signatures verified) as they arrived.
        std::string sha(h["x-amz-content-sha256"]);
        http::request_header<> h2 = h;  // headers the S3 layer sees (trailers merged in)
        if (sha.starts_with("STREAMING-") && !body_path.empty()) {
          // Decoded (and chunk signatures checked) as it arrived; its first error counts now.
          if (rcv.decode_error) throw *rcv.decode_error;
          std::string dcl(h["x-amz-decoded-content-length"]);
          if (!dcl.empty() && std::to_string(rcv.decoded.size) != dcl)
            throw S3Error(400, "IncompleteBody",
                          "You did not provide the number of bytes specified by the "
                          "x-amz-decoded-content-length header.");
          for (const auto& [k, v] : rcv.trailers) {
            // A checksum both in a header and in the trailer: S3 wants exactly one.
            if (k.starts_with("x-amz-checksum-") && h.count(k))
              throw S3Error(400, "InvalidRequest",
                            "Expecting a single x-amz-checksum- header. Multiple checksum Types "
                            "are not allowed.");
            h2.set(k, v);
          }
          h2.erase("x-amz-content-sha256");
          h2.erase(http::field::content_encoding);
        }
        r = handle_s3(le.operation, h2, bucket, key, q, body_path, &d, le);
      }
    } catch (const S3Error& e) {
      r = s3_error(e, resource, head);
    } catch (const HlError& e) {
      r = hl_error(e);
    } catch (const std::exception& e) {
      fe::log::warning(std::string("healthlake-local: internal error: ") + e.what());
      if (json)
        r = hl_error(HlError(500, "InternalServerException", e.what()));
      else
        r = s3_error(S3Error(500, "InternalError", e.what()), resource, head);
    }
    r.head = head;
    if (fd.delay.count() > 0) {
      asio::steady_timer t(io);
      t.expires_after(fd.delay);
      co_await t.async_wait(use_awaitable);
    }
    le.error = r.error_code;
    le.bytes_out = r.head ? 0 : r.body_size();
    if (fd.drop_after) le.bytes_out /= 2;
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    write_log(le, r.status, ms);
    co_await write_response(stream, r, keep_alive_of(h), now, fd.drop_after);
    co_return keep_alive_of(h) && !fd.drop_after;
  }

  awaitable<void> accept_loop() {
    for (;;) {
      tcp::socket s = co_await acceptor.async_accept(use_awaitable);
      streams.remove_if([](const auto& w) { return w.expired(); });
      asio::co_spawn(io, session(std::move(s)), asio::detached);
    }
  }

  awaitable<void> tick_loop() {
    for (;;) {
      ticker.expires_after(std::chrono::milliseconds(50));
      co_await ticker.async_wait(use_awaitable);
      hl->tick(now_s());
    }
  }
};

Server::Server(asio::io_context& io, ServerOptions options)
    : impl_(std::make_unique<Impl>(io, std::move(options))) {}
Server::~Server() = default;

void Server::start() {
  Impl& m = *impl_;
  std::string listen = m.opt.listen;
  auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    throw std::invalid_argument("--listen '" + listen + "': expected HOST:PORT");
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  auto addr = asio::ip::make_address(host);
  if (!addr.is_loopback())
    throw std::invalid_argument("--listen '" + listen +
                                "': healthlake-local only listens on loopback addresses");
  int port = std::stoi(listen.substr(colon + 1));
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  m.acceptor.open(ep.protocol());
  m.acceptor.set_option(asio::socket_base::reuse_address(true));
  m.acceptor.bind(ep);
  m.acceptor.listen();
  if (!m.opt.port_file.empty())
    write_file_atomic(m.opt.port_file, std::to_string(this->port()) + "\n");
  asio::co_spawn(m.io, m.accept_loop(), asio::detached);
  asio::co_spawn(m.io, m.tick_loop(), asio::detached);
}

void Server::stop() {
  Impl& m = *impl_;
  m.stopping = true;
  beast::error_code ec;
  m.acceptor.close(ec);
  m.ticker.cancel();
  for (auto& w : m.streams)
    if (auto s = w.lock()) s->socket().close(ec);
  m.streams.clear();
}

uint16_t Server::port() const {
  return impl_->acceptor.local_endpoint().port();
}
S3Store& Server::s3() {
  return *impl_->s3;
}
HealthLake& Server::healthlake() {
  return *impl_->hl;
}

}  // namespace fe::hll
