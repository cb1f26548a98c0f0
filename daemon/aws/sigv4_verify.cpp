// SigV4 verification (the emulator's and the tests' side): parses an Authorization header or a
// presigned query, rebuilds the canonical request as sign() does (sigv4_internal.hpp) and
// compares signatures in constant time; every refusal has a VerifyStatus and the AWS error code.
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

using namespace sigv4_detail;

// ---------------------------------------------------------------------------------------------
// Verifier

std::string_view verify_error_code(VerifyStatus status, bool json_protocol) {
  switch (status) {
    case VerifyStatus::ok:
      return "";
    case VerifyStatus::missing:
      return json_protocol ? "MissingAuthenticationTokenException" : "AccessDenied";
    case VerifyStatus::malformed:
      return json_protocol ? "IncompleteSignatureException" : "AuthorizationHeaderMalformed";
    case VerifyStatus::unknown_access_key:
      return json_protocol ? "UnrecognizedClientException" : "InvalidAccessKeyId";
    case VerifyStatus::signature_mismatch:
    case VerifyStatus::scope_mismatch:
      return json_protocol ? "InvalidSignatureException" : "SignatureDoesNotMatch";
    case VerifyStatus::request_time_too_skewed:
      return json_protocol ? "InvalidSignatureException" : "RequestTimeTooSkewed";
    case VerifyStatus::expired:
      return json_protocol ? "ExpiredTokenException" : "ExpiredToken";
    case VerifyStatus::invalid_token:
      return json_protocol ? "UnrecognizedClientException" : "InvalidToken";
    case VerifyStatus::content_sha256_mismatch:
      return json_protocol ? "InvalidSignatureException" : "XAmzContentSHA256Mismatch";
  }
  return "SignatureDoesNotMatch";
}

namespace {

struct ParsedAuth {
  std::string access_key_id, date8, region, service;
  std::vector<std::string> signed_headers;
  std::string signature;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string> split_names(std::string_view s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    std::size_t semi = s.find(';', pos);
    if (semi == std::string_view::npos) semi = s.size();
    auto n = trim(s.substr(pos, semi - pos));
    if (!n.empty()) out.push_back(lower(n));
    pos = semi + 1;
  }
  return out;
}

// "AKID/20150830/us-east-1/service/aws4_request"
bool parse_credential(std::string_view cred, ParsedAuth& out) {
  std::vector<std::string_view> parts;
  // Split from the right: the key id itself never contains '/', but be strict about the count.
  std::size_t pos = 0;
  while (pos <= cred.size()) {
    std::size_t slash = cred.find('/', pos);
    if (slash == std::string_view::npos) slash = cred.size();
    parts.push_back(cred.substr(pos, slash - pos));
    pos = slash + 1;
  }
  if (parts.size() != 5 || parts[4] != "aws4_request" || parts[0].empty() || parts[1].size() != 8)
    return false;
  out.access_key_id = parts[0];
  out.date8 = parts[1];
  out.region = parts[2];
  out.service = parts[3];
  return true;
}

bool parse_authorization(std::string_view v, ParsedAuth& out, std::string& why) {
  v = trim(v);
  if (v.substr(0, kAlgorithm.size()) != kAlgorithm || v.size() == kAlgorithm.size() ||
      v[kAlgorithm.size()] != ' ') {
    why = "Authorization header must start with AWS4-HMAC-SHA256";
    return false;
  }
  v.remove_prefix(kAlgorithm.size() + 1);
  bool have_cred = false, have_sh = false, have_sig = false;
  std::size_t pos = 0;
  while (pos <= v.size()) {
    std::size_t comma = v.find(',', pos);
    if (comma == std::string_view::npos) comma = v.size();
    auto item = trim(v.substr(pos, comma - pos));
    pos = comma + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      // Not echoed: a confused client may have put a secret there.
      why =
          "Authorization component without '=' (expected Credential=, SignedHeaders=, "
          "Signature=)";
      return false;
    }
    auto key = item.substr(0, eq);
    auto val = item.substr(eq + 1);
    if (key == "Credential") {
      if (!parse_credential(val, out)) {
        why = "malformed Credential (expected <key>/<yyyymmdd>/<region>/<service>/aws4_request)";
        return false;
      }
      have_cred = true;
    } else if (key == "SignedHeaders") {
      out.signed_headers = split_names(val);
      have_sh = !out.signed_headers.empty();
    } else if (key == "Signature") {
      out.signature = std::string(val);
      have_sig = val.size() == 64;
    }
  }
  if (!have_cred || !have_sh || !have_sig) {
    why =
        std::string("Authorization header is missing ") + (!have_cred ? "Credential"
                                                           : !have_sh ? "SignedHeaders"
                                                                      : "a 64-hex-digit Signature");
    return false;
  }
  return true;
}

std::string fmt_time(std::chrono::system_clock::time_point t) {
  return amz_date(t);
}

}  // namespace

// one piece: the verification sequence (parse, check scope and dates, rebuild the canonical
// request, compare), each step a refusal with its own VerifyStatus through the same `fail`.
VerifyResult verify(const SignableRequest& request, const SecretLookup& lookup,
                    const VerifyOptions& opts) {
  VerifyResult r;
  auto fail = [&](VerifyStatus s, std::string msg) {
    r.status = s;
    r.message = std::move(msg);
    return r;
  };

  // Header form, else query (presigned) form.
  const Header* auth = find_header(request.headers, "authorization");
  ParsedAuth pa;
  std::string why;
  std::string date;
  std::optional<long long> expires;
  std::string token;
  std::vector<QueryParam> query_params;
  bool query_form = false;
  if (auth) {
    if (!parse_authorization(auth->value, pa, why)) return fail(VerifyStatus::malformed, why);
    if (const Header* d = find_header(request.headers, "x-amz-date")) {
      date = trim_collapse(d->value);
    } else if (const Header* hd = find_header(request.headers, "date")) {
      auto t = parse_http_date(hd->value);
      if (!t) return fail(VerifyStatus::malformed, "unparsable Date header");
      date = amz_date(*t);
    }
    if (const Header* t = find_header(request.headers, "x-amz-security-token")) token = t->value;
    query_params = canonical_params(request.query);
  } else {
    std::string algorithm, credential, signed_headers;
    bool has_sig = false;
    for (auto& [k, v] : split_query_raw(request.query)) {
      std::string key = percent_decode(k), val = percent_decode(v);
      if (key == "X-Amz-Signature") {
        pa.signature = val;
        has_sig = true;
        continue;  // everything but the signature is signed
      }
      if (key == "X-Amz-Algorithm") algorithm = val;
      if (key == "X-Amz-Credential") credential = val;
      if (key == "X-Amz-Date") date = val;
      if (key == "X-Amz-SignedHeaders") signed_headers = val;
      if (key == "X-Amz-Security-Token") {
        token = val;
        // Appended after X-Amz-Signature = added after signing (omit-session-token style): not
        // part of what was signed. Before it (the usual SDK form) it is signed.
        if (has_sig) continue;
      }
      if (key == "X-Amz-Expires") {
        try {
          expires = std::stoll(val);
        } catch (const std::exception&) {
          return fail(VerifyStatus::malformed, "X-Amz-Expires is not a number");
        }
      }
      query_params.push_back({uri_encode(key, true), uri_encode(val, true)});
    }
    if (!has_sig && algorithm.empty())
      return fail(VerifyStatus::missing, "Request is missing Authentication Token");
    query_form = true;
    if (algorithm != kAlgorithm)
      return fail(VerifyStatus::malformed, "X-Amz-Algorithm must be AWS4-HMAC-SHA256");
    if (!parse_credential(credential, pa))
      return fail(VerifyStatus::malformed, "malformed X-Amz-Credential");
    pa.signed_headers = split_names(signed_headers);
    if (pa.signed_headers.empty() || pa.signature.size() != 64 || !expires)
      return fail(VerifyStatus::malformed,
                  "presigned request needs X-Amz-SignedHeaders, X-Amz-Expires and X-Amz-Signature");
    if (*expires < 1 || *expires > 7 * 24 * 3600)
      return fail(VerifyStatus::malformed, "X-Amz-Expires must be between 1 and 604800 seconds");
  }
  r.access_key_id = pa.access_key_id;
  r.signed_headers = pa.signed_headers;

  auto t = parse_amz_date(date);
  if (t) r.request_time = date;  // S3's RequestTimeTooSkewed body reports it
  if (!t)
    return fail(VerifyStatus::malformed,
                date.empty() ? "missing x-amz-date (or Date) header" : "malformed x-amz-date");
  if (std::find(pa.signed_headers.begin(), pa.signed_headers.end(), "host") ==
      pa.signed_headers.end())
    return fail(VerifyStatus::malformed, "SignedHeaders must include host");
  for (const auto& name : pa.signed_headers)
    if (!find_header(request.headers, name))
      return fail(VerifyStatus::malformed, "signed header '" + name + "' is not in the request");

  // Skew / expiry before looking at the key, as AWS does.
  const auto skew = opts.now > *t ? opts.now - *t : *t - opts.now;
  if (query_form) {
    if (*t > opts.now + opts.max_skew)
      return fail(
          VerifyStatus::request_time_too_skewed,
          "X-Amz-Date " + date + " is in the future (server time " + fmt_time(opts.now) + ")");
    if (opts.now > *t + std::chrono::seconds(*expires))
      return fail(VerifyStatus::expired, "Request has expired (X-Amz-Date " + date +
                                             ", X-Amz-Expires " + std::to_string(*expires) + ")");
  } else if (skew > opts.max_skew) {
    return fail(VerifyStatus::request_time_too_skewed,
                "The difference between the request time and the current time is too large "
                "(request " +
                    date + ", server " + fmt_time(opts.now) + ", max skew " +
                    std::to_string(opts.max_skew.count()) + " s)");
  }
  if (pa.date8 != date.substr(0, 8))
    return fail(
        VerifyStatus::scope_mismatch,
        "Credential date " + pa.date8 + " does not match the request date " + date.substr(0, 8));
  if (!opts.region.empty() && pa.region != opts.region)
    return fail(VerifyStatus::scope_mismatch,
                "Credential should be scoped to a valid region, not '" + pa.region +
                    "' (expected '" + opts.region + "')");
  if (!opts.service.empty() && pa.service != opts.service)
    return fail(VerifyStatus::scope_mismatch, "Credential should be scoped to correct service: '" +
                                                  opts.service + "', not '" + pa.service + "'");

  std::optional<Credentials> creds = lookup ? lookup(pa.access_key_id) : std::nullopt;
  if (!creds || creds->secret_access_key.empty())
    return fail(VerifyStatus::unknown_access_key,
                "The AWS Access Key Id you provided does not exist in our records.");
  if (creds->expiration && *creds->expiration <= opts.now)
    return fail(VerifyStatus::expired, "The provided token has expired.");
  if (creds->session_token != token) {
    // Never echo either token.
    return fail(VerifyStatus::invalid_token, creds->session_token.empty()
                                                 ? "The security token included in the request "
                                                   "is invalid (this key takes none)."
                                             : token.empty() ? "This access key needs a "
                                                               "session token "
                                                               "(x-amz-security-token)."
                                                             : "The security token included "
                                                               "in the request is invalid.");
  }

  // Payload hash as the client claimed it; check the claim against the body when possible.
  std::string payload;
  const Header* content_sha = find_header(request.headers, "x-amz-content-sha256");
  if (content_sha) {
    payload = trim_collapse(content_sha->value);
    bool is_hash = payload.size() == 64 && std::all_of(payload.begin(), payload.end(), [](char c) {
                     return std::isxdigit(static_cast<unsigned char>(c));
                   });
    if (is_hash && !request.payload_hash.empty() && lower(payload) != request.payload_hash)
      return fail(VerifyStatus::content_sha256_mismatch,
                  "The provided 'x-amz-content-sha256' header does not match what was computed.");
  } else if (query_form && opts.s3_rules) {
    payload = std::string(kUnsignedPayload);
  } else {
    payload = request.payload_hash.empty() ? sha256_hex("") : request.payload_hash;
  }

  CanonicalHeaders ch = canonical_headers(request.headers, pa.signed_headers);
  r.canonical_request =
      canonical_request(request.method, canonical_uri(request.path, opts.s3_rules),
                        join_canonical(query_params), ch, payload);
  r.string_to_sign =
      string_to_sign(date, scope_of(pa.date8, pa.region, pa.service), r.canonical_request);
  std::string expected =
      signature_hex(creds->secret_access_key, pa.date8, pa.region, pa.service, r.string_to_sign);
  std::string given = lower(pa.signature);
  if (expected.size() != given.size() ||
      CRYPTO_memcmp(expected.data(), given.data(), expected.size()) != 0)
    return fail(VerifyStatus::signature_mismatch,
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.");
  r.status = VerifyStatus::ok;
  r.message.clear();
  return r;
}

}  // namespace fe::aws
