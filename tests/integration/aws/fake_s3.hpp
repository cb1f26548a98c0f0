#pragma once
// A small in-memory S3 for the loopback server: enough of PutObject, multipart, ListParts,
// HeadObject, GetObject (Range) and ListObjectsV2 to drive the client end to end, computing
// CRC32C of what it received so tests check the headers the client sent against the bytes.
// It does not check signatures (botocore does that in botocore_test); scripted faults can be
// injected with `fault`.
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "aws/crc32c.hpp"
#include "aws/sigv4.hpp"
#include "loopback_server.hpp"

namespace fe::test {

class FakeS3 {
 public:
  // Return a Reply to override the normal answer for this request (faults, throttling...).
  std::function<std::optional<Reply>(const Recorded&)> fault;

  Reply handle(const Recorded& r) {
    if (fault)
      if (auto f = fault(r)) return *f;
    std::lock_guard lock(mu_);
    auto [path, query] = split(r.target);
    auto params = parse_query(query);
    Reply rep;
    rep.headers.push_back({"x-amz-request-id", "FAKE" + std::to_string(++seq_)});
    if (r.method == "GET" && params.count("list-type")) return list(path, params, rep);
    if (r.method == "POST" && params.count("uploads")) {
      std::string id = "upload-" + std::to_string(++seq_);
      uploads_[id] = {};
      rep.body =
          "<?xml version=\"1.0\" "
          "encoding=\"UTF-8\"?><InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</"
          "Key><UploadId>" +
          id + "</UploadId></InitiateMultipartUploadResult>";
      return rep;
    }
    if (r.method == "PUT" && params.count("partNumber")) {
      auto it = uploads_.find(params["uploadId"]);
      if (it == uploads_.end()) return error(404, "NoSuchUpload", rep);
      std::string crc = aws::crc32c_base64(aws::crc32c(r.body));
      if (!r.header("x-amz-checksum-crc32c").empty() && r.header("x-amz-checksum-crc32c") != crc)
        return error(400, "BadDigest", rep);
      it->second[std::stoi(params["partNumber"])] = {r.body, crc};
      rep.headers.push_back({"ETag", "\"" + aws::sha256_hex(r.body).substr(0, 32) + "\""});
      rep.headers.push_back({"x-amz-checksum-crc32c", crc});
      return rep;
    }
    if (r.method == "GET" && params.count("uploadId")) {
      auto it = uploads_.find(params["uploadId"]);
      if (it == uploads_.end()) return error(404, "NoSuchUpload", rep);
      int marker = params.count("part-number-marker") ? std::stoi(params["part-number-marker"]) : 0;
      int max = params.count("max-parts") ? std::stoi(params["max-parts"]) : 1000;
      max = std::min(max, list_parts_page);
      std::string xml = "<ListPartsResult>";
      int n = 0, last = 0;
      bool more = false;
      for (auto& [num, part] : it->second) {
        if (num <= marker) continue;
        if (n == max) {
          more = true;
          break;
        }
        xml += "<Part><PartNumber>" + std::to_string(num) + "</PartNumber><ETag>\"" +
               aws::sha256_hex(part.first).substr(0, 32) + "\"</ETag><Size>" +
               std::to_string(part.first.size()) + "</Size><ChecksumCRC32C>" + part.second +
               "</ChecksumCRC32C></Part>";
        ++n;
        last = num;
      }
      xml += std::string("<IsTruncated>") + (more ? "true" : "false") + "</IsTruncated>";
      xml += "<NextPartNumberMarker>" + std::to_string(last) + "</NextPartNumberMarker>";
      rep.body = xml + "</ListPartsResult>";
      return rep;
    }
    if (r.method == "POST" && params.count("uploadId")) {
      auto it = uploads_.find(params["uploadId"]);
      if (it == uploads_.end()) return error(404, "NoSuchUpload", rep);
      if (r.header("if-none-match") == "*" && objects_.count(path))
        return error(412, "PreconditionFailed", rep);
      std::string all, crcs;
      for (auto& [num, part] : it->second) {
        all += part.first;
        std::uint32_t c = 0;
        aws::crc32c_from_base64(part.second, c);
        for (int s = 24; s >= 0; s -= 8) crcs += static_cast<char>((c >> s) & 0xff);
      }
      std::string composite =
          aws::crc32c_base64(aws::crc32c(crcs)) + "-" + std::to_string(it->second.size());
      objects_[path] = {all, composite};
      uploads_.erase(it);
      rep.body = "<CompleteMultipartUploadResult><Location>x</Location><ETag>\"etag-" +
                 std::to_string(all.size()) + "\"</ETag><ChecksumCRC32C>" + composite +
                 "</ChecksumCRC32C></CompleteMultipartUploadResult>";
      return rep;
    }
    if (r.method == "DELETE" && params.count("uploadId")) {
      uploads_.erase(params["uploadId"]);
      rep.status = 204;
      return rep;
    }
    if (r.method == "PUT") {
      if (r.header("if-none-match") == "*" && objects_.count(path))
        return error(412, "PreconditionFailed", rep);
      std::string crc = aws::crc32c_base64(aws::crc32c(r.body));
      if (r.header("x-amz-checksum-crc32c") != crc) return error(400, "BadDigest", rep);
      objects_[path] = {r.body, crc};
      rep.headers.push_back({"ETag", "\"e\""});
      rep.headers.push_back({"x-amz-checksum-crc32c", crc});
      return rep;
    }
    if (r.method == "HEAD" || r.method == "GET") {
      auto it = objects_.find(path);
      if (it == objects_.end()) return error(404, "NoSuchKey", rep);
      rep.headers.push_back({"ETag", "\"e\""});
      if (r.header("x-amz-checksum-mode") == "ENABLED")
        rep.headers.push_back({"x-amz-checksum-crc32c", it->second.second});
      std::string body = it->second.first;
      auto range = r.header("range");
      if (!range.empty()) {
        auto dash = range.find('-');
        auto a = std::stoull(range.substr(6, dash - 6));
        auto b = dash + 1 < range.size() ? std::stoull(range.substr(dash + 1)) : body.size() - 1;
        if (!r.header("if-match").empty() && r.header("if-match") != "\"e\"")
          return error(412, "PreconditionFailed", rep);
        rep.status = 206;
        rep.headers.push_back({"Content-Range", "bytes " + std::to_string(a) + "-" +
                                                    std::to_string(b) + "/" +
                                                    std::to_string(body.size())});
        body = body.substr(a, b - a + 1);
      }
      if (r.method == "HEAD")
        rep.headers.push_back({"Content-Length", std::to_string(body.size())});
      rep.body = body;
      return rep;
    }
    return error(400, "NotImplemented", rep);
  }

  std::string object(const std::string& path) {
    std::lock_guard lock(mu_);
    auto it = objects_.find(path);
    return it == objects_.end() ? std::string() : it->second.first;
  }
  int list_parts_page = 1000;

 private:
  static std::pair<std::string, std::string> split(const std::string& target) {
    auto q = target.find('?');
    if (q == std::string::npos) return {target, ""};
    return {target.substr(0, q), target.substr(q + 1)};
  }
  static std::string decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size()) {
        out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        out += s[i];
      }
    }
    return out;
  }
  static std::map<std::string, std::string> parse_query(const std::string& q) {
    std::map<std::string, std::string> m;
    std::size_t start = 0;
    while (start <= q.size() && !q.empty()) {
      auto amp = q.find('&', start);
      auto kv = q.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
      auto eq = kv.find('=');
      if (eq == std::string::npos)
        m[decode(kv)] = "";
      else
        m[decode(kv.substr(0, eq))] = decode(kv.substr(eq + 1));
      if (amp == std::string::npos) break;
      start = amp + 1;
    }
    return m;
  }
  Reply error(int status, const std::string& code, Reply rep) {
    rep.status = status;
    rep.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + code +
               "</Code><Message>fake " + code + "</Message><RequestId>" + rep.headers[0].second +
               "</RequestId></Error>";
    return rep;
  }
  Reply list(const std::string& path, std::map<std::string, std::string>& p, Reply rep) {
    std::string prefix = path + "/" + p["prefix"];
    std::string delim = p["delimiter"];
    std::string xml = "<ListBucketResult>";
    std::set<std::string> prefixes;
    const std::string after = p["continuation-token"];
    const int max_keys = p.count("max-keys") ? std::stoi(p["max-keys"]) : 1000;
    int n = 0;
    std::string last;
    bool truncated = false;
    for (auto& [k, v] : objects_) {
      if (k.rfind(prefix, 0) != 0) continue;
      std::string key = decode(k.substr(path.size() + 1));
      if (!after.empty() && key <= after) continue;
      if (n == max_keys) {
        truncated = true;
        break;
      }
      ++n;
      last = key;
      std::string rest = key.substr(p["prefix"].size());
      if (!delim.empty() && rest.find(delim) != std::string::npos) {
        prefixes.insert(p["prefix"] + rest.substr(0, rest.find(delim) + delim.size()));
        continue;
      }
      xml += "<Contents><Key>" + key + "</Key><Size>" + std::to_string(v.first.size()) +
             "</Size><ETag>\"e\"</ETag></Contents>";
    }
    for (auto& cp : prefixes) xml += "<CommonPrefixes><Prefix>" + cp + "</Prefix></CommonPrefixes>";
    xml += std::string("<IsTruncated>") + (truncated ? "true" : "false") + "</IsTruncated>";
    if (truncated) xml += "<NextContinuationToken>" + last + "</NextContinuationToken>";
    xml += "</ListBucketResult>";
    rep.body = xml;
    return rep;
  }

  std::mutex mu_;
  int seq_ = 0;
  std::map<std::string, std::map<int, std::pair<std::string, std::string>>> uploads_;
  std::map<std::string, std::pair<std::string, std::string>> objects_;  // path -> body, crc
};

}  // namespace fe::test
