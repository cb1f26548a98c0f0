// SigV4 per https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html, checked
// against the aws-c-auth test suite (tests/unit/aws-sigv4). OpenSSL does the cryptography.
// This file: hashing, dates, canonical forms and sign(); the verifier is in sigv4_verify.cpp.
#include "aws/sigv4.hpp"
#include "aws/sigv4_internal.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <utility>

namespace fe::aws {

namespace sigv4_detail {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; a malformed escape is kept literally (it is then re-encoded as %25..).
// '+' stays '+': callers put spaces on the wire as %20 (uri_encode), never as '+'.
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::string trim_collapse(std::string_view v) {
  // Trim and collapse every run of whitespace (incl. the folded newlines of obsolete multi-line
  // header values) into one space, as the SigV4 spec and the SDKs do.
  std::string out;
  out.reserve(v.size());
  bool pending_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string scope_of(std::string_view date8, std::string_view region, std::string_view service) {
  std::string s;
  s.append(date8).append("/").append(region).append("/").append(service).append("/aws4_request");
  return s;
}

std::string signature_hex(std::string_view secret, std::string_view date8, std::string_view region,
                          std::string_view service, std::string_view sts) {
  auto key = derive_signing_key(secret, date8, region, service);
  auto sig =
      hmac_sha256(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()), sts);
  return hex(sig.data(), sig.size());
}

std::vector<std::pair<std::string, std::string>> split_query_raw(std::string_view q) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t pos = 0;
  while (pos <= q.size()) {
    std::size_t amp = q.find('&', pos);
    if (amp == std::string_view::npos) amp = q.size();
    std::string_view part = q.substr(pos, amp - pos);
    if (!part.empty()) {
      std::size_t eq = part.find('=');
      if (eq == std::string_view::npos)
        out.emplace_back(std::string(part), std::string());
      else
        out.emplace_back(std::string(part.substr(0, eq)), std::string(part.substr(eq + 1)));
    }
    pos = amp + 1;
  }
  return out;
}

std::string join_canonical(std::vector<QueryParam> params) {
  std::sort(params.begin(), params.end(), [](const QueryParam& a, const QueryParam& b) {
    return a.key != b.key ? a.key < b.key : a.value < b.value;
  });
  std::string out;
  for (const auto& p : params) {
    if (!out.empty()) out.push_back('&');
    out.append(p.key).append("=").append(p.value);
  }
  return out;
}

std::vector<QueryParam> canonical_params(std::string_view raw_query) {
  std::vector<QueryParam> params;
  for (auto& [k, v] : split_query_raw(raw_query))
    params.push_back({uri_encode(percent_decode(k), true), uri_encode(percent_decode(v), true)});
  return params;
}

}  // namespace sigv4_detail

using namespace sigv4_detail;

const Header* find_header(const std::vector<Header>& headers, std::string_view name) {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return &h;
  return nullptr;
}

std::string uri_encode(std::string_view s, bool encode_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (unsigned char c : s) {
    if (is_unreserved(c) || (c == '/' && !encode_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::array<unsigned char, 32> hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, 32> md{};
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), md.data(), &len))
    throw std::runtime_error("HMAC-SHA256 failed (OpenSSL)");
  return md;
}

std::array<unsigned char, 32> derive_signing_key(std::string_view secret, std::string_view date8,
                                                 std::string_view region,
                                                 std::string_view service) {
  std::string k0 = "AWS4";
  k0.append(secret);
  auto as_view = [](const std::array<unsigned char, 32>& a) {
    return std::string_view(reinterpret_cast<const char*>(a.data()), a.size());
  };
  auto k_date = hmac_sha256(k0, date8);
  OPENSSL_cleanse(k0.data(), k0.size());
  auto k_region = hmac_sha256(as_view(k_date), region);
  auto k_service = hmac_sha256(as_view(k_region), service);
  return hmac_sha256(as_view(k_service), "aws4_request");
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

namespace {
// timegm() would silently turn "Feb 31" into "Mar 3": a date that does not exist is malformed
// (and the verifier must not accept a request time other than the one the client signed).
int days_in_month(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}
}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_amz_date(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return std::nullopt;
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    out = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  std::tm tm{};
  int y, mo, d, h, mi, se;
  if (!num(0, 4, y) || !num(4, 2, mo) || !num(6, 2, d) || !num(9, 2, h) || !num(11, 2, mi) ||
      !num(13, 2, se))
    return std::nullopt;
  // Years bounded so the time fits system_clock (int64 ns: up to 2262).
  if (y < 1970 || y > 2200 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
      mi > 59 || se > 60)
    return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view s) {
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (what S3 and every AWS front end send).
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  auto comma = s.find(", ");
  if (comma == std::string_view::npos) return std::nullopt;
  s.remove_prefix(comma + 2);
  if (s.size() != 24 || s.substr(20) != " GMT") return std::nullopt;
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    out = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int d, y, h, mi, se;
  if (!num(0, 2, d) || s[2] != ' ' || s[6] != ' ' || !num(7, 4, y) || s[11] != ' ' ||
      !num(12, 2, h) || s[14] != ':' || !num(15, 2, mi) || s[17] != ':' || !num(18, 2, se))
    return std::nullopt;
  int mon = -1;
  for (int i = 0; i < 12; ++i)
    if (s.substr(3, 3) == kMonths[i]) mon = i;
  if (y < 1970 || y > 2200 || mon < 0 || d < 1 || d > days_in_month(y, mon + 1) || h > 23 ||
      mi > 59 || se > 60)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mon;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string canonical_uri(std::string_view path, bool s3_rules) {
  if (path.empty()) return "/";
  if (s3_rules) return std::string(path);  // S3: the key as sent, already encoded once
  // Other services: RFC 3986 dot-segment removal, empty segments dropped, then every segment
  // encoded again (the "double encoding" of the spec: the wire path is encoded once already).
  std::vector<std::string_view> segs;
  std::size_t pos = 0;
  bool trailing = false;
  while (pos <= path.size()) {
    std::size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view seg = path.substr(pos, slash - pos);
    bool last = slash == path.size();
    if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
      trailing = last;
    } else if (seg == ".") {
      trailing = last;
    } else if (!seg.empty()) {
      segs.push_back(seg);
      trailing = false;
    } else {
      trailing = last && !segs.empty();
    }
    pos = slash + 1;
  }
  std::string out;
  for (auto seg : segs) out.append("/").append(uri_encode(seg, true));
  if (out.empty() || trailing) out.push_back('/');
  return out;
}

std::string canonical_query(std::string_view raw_query) {
  return join_canonical(canonical_params(raw_query));
}

CanonicalHeaders canonical_headers(const std::vector<Header>& headers,
                                   const std::vector<std::string>& only) {
  std::vector<std::pair<std::string, std::string>> entries;  // lower name, joined value
  for (const auto& h : headers) {
    std::string name = lower(trim_collapse(h.name));
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
    std::string value = trim_collapse(h.value);
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const auto& e) { return e.first == name; });
    if (it == entries.end())
      entries.emplace_back(std::move(name), std::move(value));
    else
      it->second.append(",").append(value);  // repeated header: values in order, ','-joined
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  CanonicalHeaders out;
  for (const auto& [n, v] : entries) {
    out.canonical.append(n).append(":").append(v).append("\n");
    if (!out.signed_headers.empty()) out.signed_headers.push_back(';');
    out.signed_headers.append(n);
  }
  return out;
}

std::string canonical_request(std::string_view method, std::string_view canonical_uri,
                              std::string_view canonical_query, const CanonicalHeaders& headers,
                              std::string_view payload_hash) {
  std::string cr;
  cr.reserve(256 + headers.canonical.size() + canonical_query.size());
  cr.append(method).append("\n");
  cr.append(canonical_uri).append("\n");
  cr.append(canonical_query).append("\n");
  cr.append(headers.canonical).append("\n");
  cr.append(headers.signed_headers).append("\n");
  cr.append(payload_hash);
  return cr;
}

std::string string_to_sign(std::string_view amz_date_str, std::string_view scope,
                           std::string_view canonical_request) {
  std::string s;
  s.append(kAlgorithm).append("\n");
  s.append(amz_date_str).append("\n");
  s.append(scope).append("\n");
  s.append(sha256_hex(canonical_request));
  return s;
}

Signed sign(const SignableRequest& request, const Credentials& creds, const SigningOptions& opts) {
  if (!creds.valid()) throw std::invalid_argument("SigV4: no credentials to sign with");
  if (opts.region.empty() || opts.service.empty())
    throw std::invalid_argument("SigV4: region and service are required");
  if (!find_header(request.headers, "host"))
    throw std::invalid_argument("SigV4: request has no Host header");
  const std::string date = amz_date(opts.time);
  const std::string date8 = date.substr(0, 8);
  std::string payload = request.payload_hash.empty()
                            ? (opts.s3_rules ? std::string(kUnsignedPayload) : sha256_hex(""))
                            : request.payload_hash;

  Signed out;
  std::vector<Header> headers = request.headers;
  auto add = [&](std::string name, std::string value) {
    // Replace a caller's copy so the header is never sent twice with different values.
    std::erase_if(headers, [&](const Header& h) { return iequals(h.name, name); });
    headers.push_back({name, value});
    out.headers_to_add.push_back({std::move(name), std::move(value)});
  };
  add("x-amz-date", date);
  if (opts.add_content_sha256.value_or(opts.s3_rules)) add("x-amz-content-sha256", payload);
  bool token_after = false;
  if (!creds.session_token.empty()) {
    if (opts.sign_security_token)
      add("x-amz-security-token", creds.session_token);
    else
      token_after = true;
  }
  std::erase_if(headers, [](const Header& h) { return iequals(h.name, "authorization"); });

  CanonicalHeaders ch = canonical_headers(headers);
  out.canonical_request =
      canonical_request(request.method, canonical_uri(request.path, opts.s3_rules),
                        canonical_query(request.query), ch, payload);
  const std::string scope = scope_of(date8, opts.region, opts.service);
  out.string_to_sign = string_to_sign(date, scope, out.canonical_request);
  out.signature =
      signature_hex(creds.secret_access_key, date8, opts.region, opts.service, out.string_to_sign);
  out.signed_headers = ch.signed_headers;
  out.authorization = std::string(kAlgorithm) + " Credential=" + creds.access_key_id + "/" + scope +
                      ", SignedHeaders=" + ch.signed_headers + ", Signature=" + out.signature;
  if (token_after) out.headers_to_add.push_back({"x-amz-security-token", creds.session_token});
  out.headers_to_add.push_back({"Authorization", out.authorization});
  return out;
}

Presigned presign(const SignableRequest& request, const Credentials& creds,
                  const SigningOptions& opts, std::chrono::seconds expires) {
  if (!creds.valid()) throw std::invalid_argument("SigV4: no credentials to sign with");
  if (expires.count() < 1 || expires.count() > 7 * 24 * 3600)
    throw std::invalid_argument("SigV4: presign expiry must be 1 s .. 7 days");
  if (opts.region.empty() || opts.service.empty())
    throw std::invalid_argument("SigV4: region and service are required");
  if (!find_header(request.headers, "host"))
    throw std::invalid_argument("SigV4: request has no Host header");
  const std::string date = amz_date(opts.time);
  const std::string date8 = date.substr(0, 8);
  const std::string scope = scope_of(date8, opts.region, opts.service);
  std::string payload = request.payload_hash.empty()
                            ? (opts.s3_rules ? std::string(kUnsignedPayload) : sha256_hex(""))
                            : request.payload_hash;
  std::vector<Header> headers = request.headers;
  std::erase_if(headers, [](const Header& h) { return iequals(h.name, "authorization"); });
  CanonicalHeaders ch = canonical_headers(headers);

  std::vector<std::pair<std::string, std::string>> added = {
      {"X-Amz-Algorithm", std::string(kAlgorithm)},
      {"X-Amz-Credential", creds.access_key_id + "/" + scope},
      {"X-Amz-Date", date},
      {"X-Amz-Expires", std::to_string(expires.count())},
      {"X-Amz-SignedHeaders", ch.signed_headers},
  };
  const bool token_signed = !creds.session_token.empty() && opts.sign_security_token;
  if (token_signed) added.emplace_back("X-Amz-Security-Token", creds.session_token);
  std::vector<QueryParam> params = canonical_params(request.query);
  std::string query = request.query;
  for (const auto& [k, v] : added) {
    params.push_back({uri_encode(k, true), uri_encode(v, true)});
    if (!query.empty()) query.push_back('&');
    query.append(uri_encode(k, true)).append("=").append(uri_encode(v, true));
  }

  Presigned out;
  out.canonical_request =
      canonical_request(request.method, canonical_uri(request.path, opts.s3_rules),
                        join_canonical(params), ch, payload);
  out.string_to_sign = string_to_sign(date, scope, out.canonical_request);
  out.signature =
      signature_hex(creds.secret_access_key, date8, opts.region, opts.service, out.string_to_sign);
  query.append("&X-Amz-Signature=").append(out.signature);
  if (!creds.session_token.empty() && !token_signed)
    query.append("&X-Amz-Security-Token=").append(uri_encode(creds.session_token, true));
  out.query = std::move(query);
  return out;
}

}  // namespace fe::aws
