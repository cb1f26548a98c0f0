// AWS identifier checks used by the section readers (checker.hpp): KMS keys, S3 URIs, endpoint
// URLs and S3 key parts, each as AWS itself accepts them. Bucket names are common/s3_names's
// (s3::bucket_name_error), the rules the S3 client and healthlake-local apply too.
#include "config/checker.hpp"

#include "common/s3_names.hpp"

namespace fe::config::detail {
// ---- AWS identifier checks (each returns "" when fine, else the reason) ---------------------

std::string check_kms(const std::string& k) {
  // HealthLake's KmsKeyId pattern (also what S3 accepts for SSE-KMS): key id, key ARN, alias,
  // alias ARN, multi-region key id.
  if (k.empty() || k.size() > 400) {
    return "a KMS key is 1 to 400 characters";
  }
  if (matches(k,
              "arn:aws(-[a-z]+)*:kms:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:(key/[A-Za-z0-9-]+|alias/"
              "[A-Za-z0-9:/_-]+)") ||
      matches(k,
              "(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})") ||
      matches(k, "alias/[A-Za-z0-9:/_-]+")) {
    return "";
  }
  return "expected a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), alias ARN, key id or "
         "alias/NAME";
}

std::string check_s3_uri(const std::string& u) {
  std::smatch m;
  if (!std::regex_match(u, m, re("s3://([^/]+)(/.*)?"))) {
    return "expected an S3 URI such as s3://bucket/prefix/";
  }
  std::string why = s3::bucket_name_error(m[1].str());
  if (!why.empty()) {
    return "bucket '" + m[1].str() + "': " + why;
  }
  return "";
}

std::string check_url(const std::string& u) {
  if (!matches(u, "https?://(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?(/[^\\s]*)?")) {
    return "expected an http:// or https:// URL such as http://127.0.0.1:4566";
  }
  return "";
}

std::string check_key_part(const std::string& s, bool allow_slash) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      return "must not contain control characters";
    }
  }
  if (!allow_slash && s.find('/') != std::string::npos) {
    return "must not contain '/'";
  }
  std::string_view v = s;
  size_t pos = 0;
  while (pos <= v.size()) {
    size_t next = v.find('/', pos);
    auto seg = v.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
    if (seg == "..") {
      return "must not contain '..' segments";
    }
    if (next == std::string_view::npos) {
      break;
    }
    pos = next + 1;
  }
  return "";
}

}  // namespace fe::config::detail
