#include "s3_store.hpp"
#include "common/json_writer.hpp"
#include "common/s3_names.hpp"

#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

namespace fe::hll {
namespace fs = std::filesystem;

namespace {

S3Error no_such_bucket(const std::string& b) {
  return S3Error(404, "NoSuchBucket", "The specified bucket does not exist", {{"BucketName", b}});
}
S3Error no_such_key(const std::string& k) {
  return S3Error(404, "NoSuchKey", "The specified key does not exist.", {{"Key", k}});
}
S3Error no_such_upload(const std::string& id) {
  return S3Error(404, "NoSuchUpload",
                 "The specified upload does not exist. The upload ID may be invalid, or the "
                 "upload may have been aborted or completed.",
                 {{"UploadId", id}});
}

std::string strip_quotes(std::string_view e) {
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return std::string(e);
}

int64_t to_ms(SysTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
SysTime from_ms(int64_t ms) {
  return SysTime(std::chrono::milliseconds(ms));
}

void map_json(json::Writer& w, const std::map<std::string, std::string>& m) {
  w.begin_object();
  for (const auto& [k, v] : m) w.field(k, v);
  w.end_object();
}

std::map<std::string, std::string> json_map(simdjson::dom::element e) {
  std::map<std::string, std::string> m;
  simdjson::dom::object o;
  if (e.get(o)) return m;
  for (auto [k, v] : o) {
    std::string_view sv;
    if (!v.get(sv)) m[std::string(k)] = std::string(sv);
  }
  return m;
}

std::string jstr(simdjson::dom::element e, const char* field) {
  std::string_view sv;
  if (e[field].get(sv)) return {};
  return std::string(sv);
}
int64_t jint(simdjson::dom::element e, const char* field) {
  int64_t v = 0;
  if (e[field].get(v)) return 0;
  return v;
}

struct FileDescriptor {
  int fd;
  explicit FileDescriptor(int f) : fd(f) {}
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
};

// Appends the `size` bytes of `from` to `out_fd` with copy_file_range (no pass through user
// space), falling back to read/write where the kernel or file system cannot.
void append_file(const fs::path& from, int out_fd, uint64_t size) {
  auto fail = [] {
    return S3Error(500, "InternalError", "healthlake-local could not write the object");
  };
  FileDescriptor in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) throw fail();
  uint64_t left = size;
  while (left > 0) {
    ssize_t n = ::copy_file_range(in.fd, nullptr, out_fd, nullptr,
                                  static_cast<size_t>(std::min<uint64_t>(left, 1u << 30)), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
      std::vector<char> buf(1 << 20);
      while (left > 0) {
        ssize_t r = ::read(in.fd, buf.data(), std::min<uint64_t>(left, buf.size()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) throw fail();
        for (ssize_t done = 0; done < r;) {
          ssize_t w = ::write(out_fd, buf.data() + done, static_cast<size_t>(r - done));
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) throw fail();
          done += w;
        }
        left -= static_cast<uint64_t>(r);
      }
      return;
    }
    if (n <= 0) throw fail();  // an error, or the part is shorter than its recorded size
    left -= static_cast<uint64_t>(n);
  }
}

void check_key(const std::string& key) {
  if (key.empty()) throw S3Error(400, "InvalidArgument", "Key must not be empty");
  if (key.size() > fe::s3::kMaxKeyBytes)
    throw S3Error(400, "KeyTooLongError", "Your key is too long",
                  {{"Size", std::to_string(key.size())},
                   {"MaxSizeAllowed", std::to_string(fe::s3::kMaxKeyBytes)}});
}

const char* header_name(const std::string& algorithm) {
  if (algorithm == "CRC32C") return "x-amz-checksum-crc32c";
  if (algorithm == "CRC32") return "x-amz-checksum-crc32";
  if (algorithm == "SHA256") return "x-amz-checksum-sha256";
  if (algorithm == "SHA1") return "x-amz-checksum-sha1";
  return "x-amz-checksum-crc64nvme";
}

}  // namespace

std::string checksum_b64(const Digests& d, const std::string& algorithm) {
  // A digest nobody computed must never pass for a value (S3Store computes what its rules use).
  if (unsigned bit = digest_bit(algorithm); bit && !(d.have & bit))
    throw std::logic_error("healthlake-local: " + algorithm + " was not computed");
  if (algorithm == "CRC32C") return base64(be32(d.crc32c));
  if (algorithm == "CRC32") return base64(be32(d.crc32));
  if (algorithm == "SHA256") return base64(d.sha256);
  return {};
}

void verify_body(const Digests& d, const WriteRequest& req) {
  if (req.content_md5) {
    auto raw = base64_decode(*req.content_md5);
    if (!raw || raw->size() != 16)
      throw S3Error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.",
                    {{"Content-MD5", *req.content_md5}});
    if (*raw != d.md5)
      throw S3Error(400, "BadDigest",
                    "The Content-MD5 you specified did not match what we received.",
                    {{"ExpectedDigest", hex(*raw)}, {"CalculatedDigest", base64(d.md5)}});
  }
  if (req.checksums.size() > 1)
    throw S3Error(
        400, "InvalidRequest",
        "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.");
  for (const auto& [alg, sent] : req.checksums) {
    std::string mine = checksum_b64(d, alg);
    if (mine.empty())
      throw S3Error(400, "InvalidRequest",
                    "healthlake-local does not implement checksum algorithm " + alg +
                        " (supported: CRC32C, CRC32, SHA256)");
    auto raw = base64_decode(sent);
    size_t want = alg == "SHA256" ? 32 : 4;
    if (!raw || raw->size() != want)
      throw S3Error(400, "InvalidRequest",
                    std::string("Value for ") + header_name(alg) + " header is invalid.");
    if (sent != mine)
      throw S3Error(400, "BadDigest",
                    "The " + alg + " you specified did not match the calculated checksum.");
  }
  if (req.content_sha256 && *req.content_sha256 != hex(d.sha256))
    throw S3Error(400, "XAmzContentSHA256Mismatch",
                  "The provided 'x-amz-content-sha256' header does not match what was computed.",
                  {{"ClientComputedContentSHA256", *req.content_sha256},
                   {"S3ComputedContentSHA256", hex(d.sha256)}});
}

// The digests a write's rules use: MD5 (the ETag, or a Content-MD5 sent), each x-amz-checksum-*
// sent, SHA-256 for a hex x-amz-content-sha256, and `algorithm` (an upload's, stored per part).
unsigned S3Store::digests_used(const WriteRequest& req, const std::string& algorithm) const {
  unsigned need = digest_bit(algorithm);
  if (md5_etags_ || req.content_md5) need |= kDigestMd5;
  for (const auto& [alg, v] : req.checksums) need |= digest_bit(alg);
  if (req.content_sha256) need |= kDigestSha256;
  return need;
}

std::string S3Store::etag_bytes(const Digests& d) {
  if (md5_etags_) return d.md5;
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string b(16, '\0');
  for (size_t i = 0; i < 16; i += 8) {
    uint64_t v = rng();
    std::memcpy(b.data() + i, &v, 8);
  }
  return b;
}

namespace {
// `known` when the caller hashed the body as it arrived and has every digest the rules use; else
// (a digest it did not compute, or no caller digests at all) from the file.
Digests digests_for(const fs::path& body, const Digests* known, unsigned need) {
  if (known && (known->have & need) == need) return *known;
  return digest_file(body, need);
}
}  // namespace

S3Store::S3Store(fs::path dir, uint64_t min_part_size, bool md5_etags)
    : dir_(std::move(dir)), min_part_size_(min_part_size), md5_etags_(md5_etags) {
  fs::create_directories(dir_ / "buckets");
  fs::create_directories(dir_ / "uploads");
  fs::remove_all(dir_ / "tmp");  // bodies of requests that never finished
  fs::create_directories(dir_ / "tmp");
  load();
}

fs::path S3Store::new_temp_path() {
  return dir_ / "tmp" / ("body-" + std::to_string(++temp_counter_));
}

bool S3Store::valid_bucket_name(std::string_view n) {
  return fe::s3::valid_bucket_name(n);  // the S3 user guide's rules, common/s3_names.hpp
}

bool S3Store::create_bucket(const std::string& name) {
  if (!valid_bucket_name(name))
    throw S3Error(400, "InvalidBucketName", "The specified bucket is not valid.",
                  {{"BucketName", name}});
  if (buckets_.count(name)) return false;
  fs::create_directories(dir_ / "buckets" / name);
  buckets_[name];
  return true;
}

bool S3Store::has_bucket(const std::string& name) const {
  return buckets_.count(name) > 0;
}

void S3Store::require_bucket(const std::string& name) const {
  if (!has_bucket(name)) throw no_such_bucket(name);
}

void S3Store::delete_bucket(const std::string& name) {
  require_bucket(name);
  if (!buckets_[name].empty())
    throw S3Error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty",
                  {{"BucketName", name}});
  for (const auto& [id, u] : uploads_)
    if (u.bucket == name)
      throw S3Error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty",
                    {{"BucketName", name}});
  fs::remove_all(dir_ / "buckets" / name);
  buckets_.erase(name);
}

fs::path S3Store::object_path(const std::string& bucket, const std::string& key) const {
  return dir_ / "buckets" / bucket / hex(sha256(key));
}

void S3Store::save_object_meta(const ObjectInfo& o) const {
  json::Writer w;
  w.begin_object()
      .field("key", o.key)
      .field("size", o.size)
      .field("etag", o.etag)
      .field("mtime_ms", to_ms(o.last_modified))
      .field("content_type", o.content_type)
      .key("headers");
  map_json(w, o.stored_headers);
  w.key("checksums");
  map_json(w, o.checksums);
  w.field("checksum_type", o.checksum_type).field("parts", o.parts).end_object();
  auto p = o.data;
  p += ".json";
  write_file_atomic(p, w.str());
}

void S3Store::save_upload_meta(const UploadInfo& u) const {
  json::Writer w;
  w.begin_object()
      .field("bucket", u.bucket)
      .field("key", u.key)
      .field("initiated_ms", to_ms(u.initiated))
      .field("content_type", u.content_type)
      .key("headers");
  map_json(w, u.stored_headers);
  w.field("checksum_algorithm", u.checksum_algorithm).end_object();
  write_file_atomic(dir_ / "uploads" / u.upload_id / "upload.json", w.str());
}

void S3Store::load() {
  simdjson::dom::parser parser;
  for (const auto& b : fs::directory_iterator(dir_ / "buckets")) {
    if (!b.is_directory()) continue;
    auto& objects = buckets_[b.path().filename().string()];
    for (const auto& f : fs::directory_iterator(b.path())) {
      if (f.path().extension() != ".json") continue;
      simdjson::dom::element e;
      if (parser.load(f.path().string()).get(e)) continue;
      ObjectInfo o;
      o.bucket = b.path().filename().string();
      o.key = jstr(e, "key");
      o.size = static_cast<uint64_t>(jint(e, "size"));
      o.etag = jstr(e, "etag");
      o.last_modified = from_ms(jint(e, "mtime_ms"));
      o.content_type = jstr(e, "content_type");
      o.stored_headers = json_map(e["headers"]);
      o.checksums = json_map(e["checksums"]);
      o.checksum_type = jstr(e, "checksum_type");
      o.parts = static_cast<int>(jint(e, "parts"));
      o.data = f.path();
      o.data.replace_extension();
      if (fs::exists(o.data)) objects[o.key] = std::move(o);
    }
  }
  for (const auto& d : fs::directory_iterator(dir_ / "uploads")) {
    simdjson::dom::element e;
    if (parser.load((d.path() / "upload.json").string()).get(e)) continue;
    UploadInfo u;
    u.upload_id = d.path().filename().string();
    u.bucket = jstr(e, "bucket");
    u.key = jstr(e, "key");
    u.initiated = from_ms(jint(e, "initiated_ms"));
    u.content_type = jstr(e, "content_type");
    u.stored_headers = json_map(e["headers"]);
    u.checksum_algorithm = jstr(e, "checksum_algorithm");
    for (const auto& f : fs::directory_iterator(d.path())) {
      if (f.path().extension() != ".json" || f.path().filename() == "upload.json") continue;
      simdjson::dom::element pe;
      if (parser.load(f.path().string()).get(pe)) continue;
      PartInfo p;
      p.number = static_cast<int>(jint(pe, "number"));
      p.size = static_cast<uint64_t>(jint(pe, "size"));
      p.etag = jstr(pe, "etag");
      p.md5 = base64_decode(jstr(pe, "md5")).value_or("");
      p.last_modified = from_ms(jint(pe, "mtime_ms"));
      p.checksums = json_map(pe["checksums"]);
      u.parts[p.number] = std::move(p);
    }
    uploads_[u.upload_id] = std::move(u);
  }
}

ObjectInfo S3Store::put_object(const std::string& bucket, const std::string& key,
                               const fs::path& body, const WriteRequest& req,
                               const Digests* known) {
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove(p, ec);
    }
  } cleanup{body};
  require_bucket(bucket);
  check_key(key);
  Digests d = digests_for(body, known, digests_used(req));
  verify_body(d, req);
  check_conditions(bucket, key, req, req.began_at.value_or(delete_seq_));
  ObjectInfo o;
  o.bucket = bucket;
  o.key = key;
  o.size = d.size;
  o.etag = "\"" + hex(etag_bytes(d)) + "\"";
  o.last_modified = std::chrono::system_clock::now();
  o.content_type = req.content_type.empty() ? "binary/octet-stream" : req.content_type;
  o.stored_headers = req.stored_headers;
  o.checksums = req.checksums;
  // S3 now always stores a full-object checksum; CRC64NVME is its default, which we do not
  // compute, so keep what the client sent (or nothing) and say FULL_OBJECT when there is one.
  o.checksum_type = o.checksums.empty() ? "" : "FULL_OBJECT";
  o.data = object_path(bucket, key);
  fs::rename(body, o.data);
  save_object_meta(o);
  buckets_[bucket][key] = o;
  return o;
}

ObjectInfo S3Store::put_bytes(const std::string& bucket, const std::string& key,
                              std::string_view data, const std::string& content_type) {
  auto tmp = new_temp_path();
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  WriteRequest req;
  req.content_type = content_type;
  return put_object(bucket, key, tmp, req);
}

const ObjectInfo* S3Store::find_object(const std::string& bucket, const std::string& key) const {
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return nullptr;
  auto o = b->second.find(key);
  return o == b->second.end() ? nullptr : &o->second;
}

const ObjectInfo& S3Store::head_object(const std::string& bucket, const std::string& key) const {
  require_bucket(bucket);
  const ObjectInfo* o = find_object(bucket, key);
  if (!o) throw no_such_key(key);
  return *o;
}

void S3Store::delete_object(const std::string& bucket, const std::string& key) {
  require_bucket(bucket);
  auto& objects = buckets_[bucket];
  auto it = objects.find(key);
  if (it == objects.end()) return;  // S3 answers 204 for a missing key too
  std::error_code ec;
  fs::remove(it->second.data, ec);
  auto meta = it->second.data;
  meta += ".json";
  fs::remove(meta, ec);
  objects.erase(it);
  deleted_at_[bucket + "/" + key] = ++delete_seq_;
}

void S3Store::check_conditions(const std::string& bucket, const std::string& key,
                               const WriteRequest& cond, uint64_t began_at) const {
  if (!cond.if_none_match_star && !cond.if_match) return;
  auto d = deleted_at_.find(bucket + "/" + key);
  if (d != deleted_at_.end() && d->second > began_at)
    throw S3Error(409, "ConditionalRequestConflict",
                  "A conflicting operation occurred. If using PutObject you can retry the "
                  "request. If using multipart upload you should initiate another "
                  "CreateMultipartUpload request and re-upload each part.",
                  {{"Key", key}});
  const ObjectInfo* o = find_object(bucket, key);
  if (cond.if_none_match_star && o)
    throw S3Error(412, "PreconditionFailed",
                  "At least one of the pre-conditions you specified did not hold",
                  {{"Condition", "If-None-Match"}});
  if (cond.if_match) {
    // S3 answers If-Match on a key with no current object 404 NoSuchKey, not 412.
    if (!o) throw no_such_key(key);
    if (strip_quotes(*cond.if_match) != strip_quotes(o->etag))
      throw S3Error(412, "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                    {{"Condition", "If-Match"}});
  }
}

ListV2Result S3Store::list_objects_v2(const std::string& bucket, const ListV2Request& req) const {
  require_bucket(bucket);
  if (req.max_keys < 0)
    throw S3Error(400, "InvalidArgument",
                  "Provided max-keys not an integer or within integer range",
                  {{"ArgumentName", "max-keys"}, {"ArgumentValue", std::to_string(req.max_keys)}});
  // The continuation token is opaque to clients; ours is base64 of the last key (or common
  // prefix) returned, so listing resumes strictly after it.
  std::string after = req.start_after;
  if (!req.continuation_token.empty()) {
    auto raw = base64_decode(req.continuation_token);
    if (!raw || raw->empty() || raw->front() != 'k')
      throw S3Error(400, "InvalidArgument", "The continuation token provided is incorrect",
                    {{"ArgumentName", "continuation-token"}});
    after = raw->substr(1);
  }
  ListV2Result r;
  const auto& objects = buckets_.at(bucket);
  auto it = after.empty() ? objects.lower_bound(req.prefix) : objects.upper_bound(after);
  int count = 0;
  std::string last;
  for (; it != objects.end(); ++it) {
    const std::string& k = it->first;
    if (!k.starts_with(req.prefix)) {
      if (k > req.prefix) break;
      continue;
    }
    std::string entry;
    bool is_prefix = false;
    if (!req.delimiter.empty()) {
      auto pos = k.find(req.delimiter, req.prefix.size());
      if (pos != std::string::npos) {
        entry = k.substr(0, pos + req.delimiter.size());
        is_prefix = true;
        // Keys under one common prefix are contiguous in key order: report the prefix once, and
        // never again on the page after the token that named it.
        if (!after.empty() && entry <= after) continue;
        if (!r.common_prefixes.empty() && r.common_prefixes.back() == entry) continue;
      }
    }
    if (count == req.max_keys) {
      r.truncated = true;
      break;
    }
    if (is_prefix) {
      r.common_prefixes.push_back(entry);
      last = entry;
    } else {
      r.contents.push_back(&it->second);
      last = k;
    }
    ++count;
  }
  if (r.truncated) r.next_token = base64("k" + last);
  return r;
}

const UploadInfo& S3Store::create_upload(const std::string& bucket, const std::string& key,
                                         const WriteRequest& req,
                                         const std::string& checksum_algorithm) {
  require_bucket(bucket);
  check_key(key);
  if (!checksum_algorithm.empty() && checksum_algorithm != "CRC32C" &&
      checksum_algorithm != "CRC32" && checksum_algorithm != "SHA256")
    throw S3Error(400, "InvalidRequest",
                  "healthlake-local does not implement checksum algorithm " + checksum_algorithm);
  UploadInfo u;
  // Real upload ids are long opaque strings; ours are random so a stale id never matches.
  u.upload_id = random_hex(24);
  u.bucket = bucket;
  u.key = key;
  u.initiated = std::chrono::system_clock::now();
  u.content_type = req.content_type.empty() ? "binary/octet-stream" : req.content_type;
  u.stored_headers = req.stored_headers;
  u.checksum_algorithm = checksum_algorithm;
  u.began_at = delete_seq_;
  fs::create_directories(dir_ / "uploads" / u.upload_id);
  save_upload_meta(u);
  return uploads_[u.upload_id] = std::move(u);
}

UploadInfo& S3Store::upload_mut(const std::string& bucket, const std::string& key,
                                const std::string& upload_id) {
  require_bucket(bucket);
  auto it = uploads_.find(upload_id);
  if (it == uploads_.end() || it->second.bucket != bucket || it->second.key != key)
    throw no_such_upload(upload_id);
  return it->second;
}

const UploadInfo& S3Store::upload(const std::string& bucket, const std::string& key,
                                  const std::string& upload_id) const {
  return const_cast<S3Store*>(this)->upload_mut(bucket, key, upload_id);
}

const UploadInfo* S3Store::find_upload(const std::string& upload_id) const {
  auto it = uploads_.find(upload_id);
  return it == uploads_.end() ? nullptr : &it->second;
}

PartInfo S3Store::upload_part(const std::string& bucket, const std::string& key,
                              const std::string& upload_id, int part_number, const fs::path& body,
                              const WriteRequest& req, const Digests* known) {
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove(p, ec);
    }
  } cleanup{body};
  if (part_number < 1 || part_number > kMaxPartNumber)
    throw S3Error(400, "InvalidArgument",
                  "Part number must be an integer between 1 and 10000, inclusive",
                  {{"ArgumentName", "partNumber"}, {"ArgumentValue", std::to_string(part_number)}});
  UploadInfo& u = upload_mut(bucket, key, upload_id);
  Digests d = digests_for(body, known, digests_used(req, u.checksum_algorithm));
  verify_body(d, req);
  if (!u.checksum_algorithm.empty() && !req.checksums.empty() &&
      !req.checksums.count(u.checksum_algorithm))
    throw S3Error(
        400, "InvalidRequest",
        "Checksum Type mismatch occurred, expected checksum Type: " +
            [&] {
              std::string s = u.checksum_algorithm;
              std::transform(s.begin(), s.end(), s.begin(), ::tolower);
              return s;
            }() +
            ", actual checksum Type: " +
            [&] {
              std::string s = req.checksums.begin()->first;
              std::transform(s.begin(), s.end(), s.begin(), ::tolower);
              return s;
            }());
  PartInfo p;
  p.number = part_number;
  p.size = d.size;
  p.md5 = etag_bytes(d);  // what the multipart ETag is made of
  p.etag = "\"" + hex(p.md5) + "\"";
  p.last_modified = std::chrono::system_clock::now();
  p.checksums = req.checksums;
  // Parts of an upload created with a checksum algorithm always carry it (S3 computes it when
  // the client did not send one), so Complete can build the composite checksum.
  if (!u.checksum_algorithm.empty())
    p.checksums[u.checksum_algorithm] = checksum_b64(d, u.checksum_algorithm);
  fs::path dir = dir_ / "uploads" / upload_id;
  fs::rename(body, dir / std::to_string(part_number));
  json::Writer w;
  w.begin_object()
      .field("number", p.number)
      .field("size", p.size)
      .field("etag", p.etag)
      .field("md5", base64(p.md5))
      .field("mtime_ms", to_ms(p.last_modified))
      .key("checksums");
  map_json(w, p.checksums);
  w.end_object();
  write_file_atomic(dir / (std::to_string(part_number) + ".json"), w.str());
  u.parts[part_number] = p;
  return p;
}

ListPartsResult S3Store::list_parts(const std::string& bucket, const std::string& key,
                                    const std::string& upload_id, int marker, int max_parts) const {
  const UploadInfo& u = upload(bucket, key, upload_id);
  if (max_parts < 0)
    throw S3Error(400, "InvalidArgument",
                  "Argument max-parts must be an integer between 0 and 2147483647",
                  {{"ArgumentName", "max-parts"}, {"ArgumentValue", std::to_string(max_parts)}});
  max_parts = std::min(max_parts, 1000);
  ListPartsResult r;
  for (auto it = u.parts.upper_bound(marker); it != u.parts.end(); ++it) {
    if (static_cast<int>(r.parts.size()) == max_parts) {
      r.truncated = true;
      break;
    }
    r.parts.push_back(&it->second);
  }
  if (!r.parts.empty()) r.next_marker = r.parts.back()->number;
  return r;
}

ObjectInfo S3Store::complete_upload(const std::string& bucket, const std::string& key,
                                    const std::string& upload_id,
                                    const std::vector<CompletePart>& parts,
                                    const WriteRequest& cond) {
  UploadInfo& u = upload_mut(bucket, key, upload_id);
  if (parts.empty())
    throw S3Error(400, "MalformedXML",
                  "The XML you provided was not well-formed or did not validate against our "
                  "published schema");
  for (size_t i = 1; i < parts.size(); ++i)
    if (parts[i].number <= parts[i - 1].number)
      throw S3Error(400, "InvalidPartOrder",
                    "The list of parts was not in ascending order. Parts must be ordered by part "
                    "number.",
                    {{"UploadId", upload_id}});
  const std::string invalid_part =
      "One or more of the specified parts could not be found.  The part may not have been "
      "uploaded, or the specified entity tag may not match the part's entity tag.";
  std::string alg = u.checksum_algorithm;
  for (size_t i = 0; i < parts.size(); ++i) {
    const CompletePart& cp = parts[i];
    auto it = u.parts.find(cp.number);
    if (it == u.parts.end() || strip_quotes(cp.etag) != strip_quotes(it->second.etag))
      throw S3Error(400, "InvalidPart", invalid_part,
                    {{"UploadId", upload_id},
                     {"PartNumber", std::to_string(cp.number)},
                     {"ETag", strip_quotes(cp.etag)}});
    for (const auto& [a, v] : cp.checksums) {
      auto have = it->second.checksums.find(a);
      if (have == it->second.checksums.end() || have->second != v)
        throw S3Error(400, "InvalidPart", invalid_part,
                      {{"UploadId", upload_id},
                       {"PartNumber", std::to_string(cp.number)},
                       {"ETag", strip_quotes(cp.etag)}});
    }
    if (!alg.empty() && !cp.checksums.count(alg))
      throw S3Error(
          400, "InvalidRequest",
          "The upload was created using a " +
              [&] {
                std::string s = alg;
                std::transform(s.begin(), s.end(), s.begin(), ::tolower);
                return s;
              }() +
              " checksum. The complete request must include the checksum for each part. "
              "It was missing for part " +
              std::to_string(cp.number) + " in the request.");
    if (i + 1 < parts.size() && it->second.size < min_part_size_)
      throw S3Error(400, "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size",
                    {{"ProposedSize", std::to_string(it->second.size)},
                     {"MinSizeAllowed", std::to_string(min_part_size_)},
                     {"PartNumber", std::to_string(cp.number)},
                     {"ETag", strip_quotes(it->second.etag)}});
  }
  check_conditions(bucket, key, cond, u.began_at);

  // Concatenate the parts (in order) into the final object, copied by the kernel.
  fs::path tmp = new_temp_path();
  std::string md5s, part_checksums;
  uint64_t total = 0;
  {
    FileDescriptor out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (out.fd < 0)
      throw S3Error(500, "InternalError", "healthlake-local could not write the object");
    for (const CompletePart& cp : parts) {
      const PartInfo& p = u.parts.at(cp.number);
      md5s += p.md5;
      if (!alg.empty()) part_checksums += base64_decode(p.checksums.at(alg)).value_or("");
      append_file(dir_ / "uploads" / upload_id / std::to_string(cp.number), out.fd, p.size);
      total += p.size;
    }
    if (::close(std::exchange(out.fd, -1)) != 0)
      throw S3Error(500, "InternalError", "healthlake-local could not write the object");
  }
  ObjectInfo o;
  o.bucket = bucket;
  o.key = key;
  o.size = total;
  o.etag = "\"" + hex(md5(md5s)) + "-" + std::to_string(parts.size()) + "\"";
  o.last_modified = std::chrono::system_clock::now();
  o.content_type = u.content_type;
  o.stored_headers = u.stored_headers;
  o.parts = static_cast<int>(parts.size());
  if (!alg.empty()) {
    // Composite checksum: checksum of the concatenated raw part checksums, "-N".
    std::string raw;
    if (alg == "CRC32C")
      raw = be32(crc32c(part_checksums));
    else if (alg == "CRC32")
      raw = be32(crc32(part_checksums));
    else
      raw = sha256(part_checksums);
    o.checksums[alg] = base64(raw) + "-" + std::to_string(parts.size());
    o.checksum_type = "COMPOSITE";
  }
  o.data = object_path(bucket, key);
  fs::rename(tmp, o.data);
  save_object_meta(o);
  buckets_[bucket][key] = o;
  fs::remove_all(dir_ / "uploads" / upload_id);
  uploads_.erase(upload_id);
  return o;
}

void S3Store::abort_upload(const std::string& bucket, const std::string& key,
                           const std::string& upload_id) {
  upload_mut(bucket, key, upload_id);
  fs::remove_all(dir_ / "uploads" / upload_id);
  uploads_.erase(upload_id);
}

ListUploadsResult S3Store::list_uploads(const std::string& bucket, const std::string& prefix,
                                        const std::string& delimiter, const std::string& key_marker,
                                        const std::string& upload_id_marker,
                                        int max_uploads) const {
  require_bucket(bucket);
  max_uploads = std::clamp(max_uploads, 0, 1000);
  // S3 orders uploads by key, then by initiation time.
  std::vector<const UploadInfo*> all;
  for (const auto& [id, u] : uploads_)
    if (u.bucket == bucket && u.key.starts_with(prefix)) all.push_back(&u);
  std::sort(all.begin(), all.end(), [](const UploadInfo* a, const UploadInfo* b) {
    if (a->key != b->key) return a->key < b->key;
    if (a->initiated != b->initiated) return a->initiated < b->initiated;
    return a->upload_id < b->upload_id;
  });
  ListUploadsResult r;
  std::set<std::string> seen_prefixes;
  bool past_marker = key_marker.empty();
  for (const UploadInfo* u : all) {
    if (!past_marker) {
      if (u->key < key_marker) continue;
      if (u->key == key_marker) {
        if (upload_id_marker.empty() || u->upload_id <= upload_id_marker) continue;
      }
      past_marker = true;
    }
    if (!delimiter.empty()) {
      auto pos = u->key.find(delimiter, prefix.size());
      if (pos != std::string::npos) {
        std::string cp = u->key.substr(0, pos + delimiter.size());
        if (seen_prefixes.insert(cp).second) r.common_prefixes.push_back(cp);
        continue;
      }
    }
    if (static_cast<int>(r.uploads.size()) == max_uploads) {
      r.truncated = true;
      break;
    }
    r.uploads.push_back(u);
  }
  if (r.truncated && !r.uploads.empty()) {
    r.next_key_marker = r.uploads.back()->key;
    r.next_upload_id_marker = r.uploads.back()->upload_id;
  }
  return r;
}

}  // namespace fe::hll
