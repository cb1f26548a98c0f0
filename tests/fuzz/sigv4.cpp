// Fuzz target: the SigV4 canonicaliser, signer and verifier (aws/sigv4.hpp).
// Input: byte 0 = flags (S3 rules, content-sha256 header, session token, token signed), bytes
// 1-4 = signing time, then lines: method, path, query, body, and "name:value" header lines.
// Checked beyond "does not crash":
//  - sign() then verify() of the request as it would go on the wire is `ok` (header form), and
//    the same for presign() (query form) when the caller's query has no X-Amz-* parameter of its
//    own; what the signer produces, the verifier (healthlake-local) accepts, for any path, query,
//    method, body and header set;
//  - canonical_query is idempotent and uri_encode emits only unreserved characters and %XX;
//  - parse_amz_date / parse_http_date accept only dates they can print back unchanged.
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "aws/sigv4.hpp"

namespace {

using namespace fe::aws;

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "sigv4 fuzz: property violated: %s\n%.*s\n", what,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

bool iequals_prefix(std::string_view s, std::string_view needle) {
  for (std::size_t i = 0; i + needle.size() <= s.size(); ++i) {
    bool eq = true;
    for (std::size_t j = 0; j < needle.size() && eq; ++j)
      eq = std::tolower(static_cast<unsigned char>(s[i + j])) == needle[j];
    if (eq) return true;
  }
  return false;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

void check_dates(std::string_view s) {
  if (auto t = parse_amz_date(s); t && !s.ends_with("60Z") && amz_date(*t) != s)
    fail("parse_amz_date accepted a date it prints differently", s);
  (void)parse_http_date(s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  const uint8_t flags = data[0];
  const uint32_t tbits = uint32_t(data[1]) << 24 | uint32_t(data[2]) << 16 |
                         uint32_t(data[3]) << 8 | uint32_t(data[4]);
  std::string_view in(reinterpret_cast<const char*>(data) + 5, size - 5);
  std::vector<std::string_view> lines;
  while (!in.empty()) {
    auto nl = in.find('\n');
    lines.push_back(in.substr(0, nl));
    in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
  }
  auto line = [&](std::size_t i) { return i < lines.size() ? lines[i] : std::string_view{}; };

  // Building blocks on raw text.
  for (auto l : lines) {
    check_dates(l);
    std::string enc = uri_encode(l, (flags & 0x80) != 0);
    for (std::size_t i = 0; i < enc.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(enc[i]);
      if (c == '%') {
        if (i + 2 >= enc.size() || !std::isxdigit(static_cast<unsigned char>(enc[i + 1])) ||
            !std::isxdigit(static_cast<unsigned char>(enc[i + 2])))
          fail("uri_encode emitted a bare '%'", l);
        i += 2;
      } else if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
                   (c == '/' && !(flags & 0x80)))) {
        fail("uri_encode emitted a reserved character", l);
      }
    }
    std::string cq = canonical_query(l);
    if (canonical_query(cq) != cq) fail("canonical_query is not idempotent", l);
    (void)canonical_uri(l, true);
    (void)canonical_uri(l, false);
  }

  // One request, signed then verified.
  SignableRequest req;
  req.method = std::string(line(0).empty() ? "GET" : line(0));
  req.path = std::string(line(1));
  req.query = std::string(line(2));
  const std::string body(line(3));
  req.headers.push_back({"Host", "127.0.0.1:9000"});
  for (std::size_t i = 4; i < lines.size(); ++i) {
    auto l = lines[i];
    auto colon = l.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string name(l.substr(0, colon));
    bool ok = true;
    for (char c : name) ok = ok && token_char(c);
    // The signer owns these (it adds or replaces them); a caller never passes them.
    for (const char* own :
         {"authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "host"})
      if (ok && iequals_prefix(name, own) && name.size() == std::string_view(own).size())
        ok = false;
    if (!ok) continue;
    req.headers.push_back({std::move(name), std::string(l.substr(colon + 1))});
  }

  Credentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "", std::nullopt,
                    "fuzz"};
  if (flags & 0x04) creds.session_token = "FQoGZXIvYXdzE/+token==";
  SigningOptions so;
  so.region = "us-east-1";
  so.service = (flags & 0x01) ? "s3" : "healthlake";
  so.s3_rules = (flags & 0x01) != 0;
  if (flags & 0x02) so.add_content_sha256 = true;
  so.sign_security_token = (flags & 0x08) == 0;
  // 2001-09-09 .. 2137: any second the signer may be asked to use.
  so.time = std::chrono::system_clock::time_point(std::chrono::seconds(1'000'000'000LL + tbits));

  const std::string body_hash = sha256_hex(body);
  // UNSIGNED-PAYLOAD only where the request says so in x-amz-content-sha256 (else the verifier
  // cannot know the client did not sign the body's hash).
  const bool content_header = so.add_content_sha256.value_or(so.s3_rules);
  req.payload_hash = (flags & 0x20) && content_header ? "UNSIGNED-PAYLOAD" : body_hash;
  const SecretLookup lookup = [&](std::string_view id) -> std::optional<Credentials> {
    if (id == creds.access_key_id) return creds;
    return std::nullopt;
  };
  VerifyOptions vo;
  vo.region = so.region;
  vo.service = so.service;
  vo.now = so.time;
  vo.s3_rules = so.s3_rules;

  Signed s = sign(req, creds, so);
  SignableRequest wire = req;
  for (const auto& h : s.headers_to_add)
    std::erase_if(wire.headers, [&](const Header& w) {
      return iequals_prefix(w.name, lower(h.name)) && w.name.size() == h.name.size();
    });
  for (const auto& h : s.headers_to_add) wire.headers.push_back(h);
  wire.payload_hash = body_hash;  // what the server computes from the body it received
  VerifyResult v = verify(wire, lookup, vo);
  if (!v.ok())
    fail("a request signed by sign() is rejected by verify()",
         v.message + "\n--- signer:\n" + s.canonical_request + "\n--- verifier:\n" +
             v.canonical_request);

  // Query (presigned) form: the caller's own query must not carry X-Amz-* parameters (the
  // verifier reads those as the signature's own).
  if (!iequals_prefix(canonical_query(req.query), "x-amz-")) {
    SignableRequest preq = req;
    preq.payload_hash.clear();
    Presigned p = presign(preq, creds, so, std::chrono::seconds(1 + tbits % (7 * 24 * 3600)));
    SignableRequest pwire = preq;
    pwire.query = p.query;
    VerifyResult pv = verify(pwire, lookup, vo);
    if (!pv.ok())
      fail("a request presigned by presign() is rejected by verify()",
           pv.message + "\n--- signer:\n" + p.canonical_request + "\n--- verifier:\n" +
               pv.canonical_request);
  }
  return 0;
}
