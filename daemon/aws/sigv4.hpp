#pragma once
// AWS Signature Version 4: client-side signing (header and presigned-query forms) and the
// server-side verifier used by healthlake-local.
//
// Contract:
//  - Pure functions on OpenSSL HMAC/SHA-256; no I/O, no clock reads (the caller passes the time,
//    already corrected for clock skew, see aws/retry.hpp ClockSkew).
//  - `SignableRequest` is the request as it goes on the wire: the path is URI-encoded once by the
//    caller (S3 keys: uri_encode(key, false)); the query is the raw query string as sent.
//  - S3 rules (`SigningOptions::s3_rules`): the path is used as sent (no dot-segment/`//`
//    normalisation, no second encoding) and `x-amz-content-sha256` is added and signed.
//    Other services (HealthLake JSON 1.0): the path is normalised and each segment encoded again.
//  - The verifier recomputes over exactly the SignedHeaders the client listed, so any client
//    (curl, botocore, the JS SDK, our signer) is accepted when it signed correctly.
//  - Secrets never appear in any returned string (canonical request and string-to-sign contain
//    no secret; the signature is a one-way HMAC).
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/hashing.hpp"

namespace fe::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty when the credentials are long-term keys
  std::optional<std::chrono::system_clock::time_point> expiration;  // nullopt: never expires
  std::string source;  // where they came from, e.g. "env", "profile:default", "imds" (for logs)

  bool valid() const { return !access_key_id.empty() && !secret_access_key.empty(); }
};

struct Header {
  std::string name;
  std::string value;
};

// Case-insensitive lookup of the first header with this name; nullptr when absent.
const Header* find_header(const std::vector<Header>& headers, std::string_view name);

struct SignableRequest {
  std::string method;  // "PUT"
  std::string path;    // path exactly as sent, already URI-encoded once ('/' kept); "/" for none
  std::string query;   // raw query as sent, without '?': "partNumber=1&uploadId=abc", "uploads"
  std::vector<Header> headers;  // must include Host (and any x-amz-* the caller wants signed)
  std::string payload_hash;     // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
};

struct SigningOptions {
  std::string region;   // "us-east-1"
  std::string service;  // "s3", "healthlake"
  std::chrono::system_clock::time_point time;
  bool s3_rules = false;  // S3: no path normalisation, no double encoding, x-amz-content-sha256
  // Sign and add x-amz-content-sha256; default (nullopt) = s3_rules. JSON services may want it too.
  std::optional<bool> add_content_sha256;
  bool sign_security_token = true;
};

struct Signed {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;       // lower-case hex
  std::string signed_headers;  // "host;x-amz-content-sha256;x-amz-date"
  std::string authorization;   // full Authorization header value
  // Headers the caller must send in addition to its own: x-amz-date, x-amz-content-sha256 (S3),
  // x-amz-security-token (when there is a session token), and Authorization last.
  std::vector<Header> headers_to_add;
};

// Header form: Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...
Signed sign(const SignableRequest& request, const Credentials& creds, const SigningOptions& opts);

struct Presigned {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;
  std::string query;  // complete query to send (the request's own query + X-Amz-* params)
};

// Query (presigned URL) form. `expires` 1 s .. 7 days. The signed headers are the request's
// headers (at least Host). Payload hash defaults to UNSIGNED-PAYLOAD for S3 when empty.
Presigned presign(const SignableRequest& request, const Credentials& creds,
                  const SigningOptions& opts, std::chrono::seconds expires);

// ---- building blocks (exposed for tests, the verifier and the HTTP layer) ----

// RFC 3986 encoding as SigV4 wants: unreserved A-Z a-z 0-9 - _ . ~ kept, everything else %XX
// (upper-case hex, UTF-8 bytes). '/' kept unless encode_slash.
std::string uri_encode(std::string_view s, bool encode_slash);
// SHA-256 and hex are the project's one implementation (common/hashing.hpp); these names stay
// because the signer, the verifier and their tests speak of them.
using fe::sha256;
using fe::sha256_hex;
std::array<unsigned char, 32> hmac_sha256(std::string_view key, std::string_view data);
inline std::string hex(const unsigned char* data, std::size_t n) {
  return fe::to_hex(data, n);
}
// Incremental SHA-256 for bodies hashed while streaming (upload parts); final_hex() resets.
using Sha256Stream = fe::Sha256;
// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")
std::array<unsigned char, 32> derive_signing_key(std::string_view secret, std::string_view date8,
                                                 std::string_view region, std::string_view service);
std::string amz_date(std::chrono::system_clock::time_point t);  // "20150830T123600Z"
// Parses "20150830T123600Z"; nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_amz_date(std::string_view s);
// Parses an HTTP Date (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT"); nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view s);

std::string canonical_uri(std::string_view path, bool s3_rules);
// Sorted by encoded key then value; each key/value decoded then re-encoded (RFC 3986);
// a key without '=' gets an empty value ("uploads" -> "uploads=").
std::string canonical_query(std::string_view raw_query);
struct CanonicalHeaders {
  std::string canonical;       // "host:example.com\nx-amz-date:...\n"
  std::string signed_headers;  // "host;x-amz-date"
};
// Names lower-cased; values trimmed, inner runs of spaces collapsed; repeated names joined with
// ','; sorted by name. When `only` is non-empty, just those names (the verifier's case).
CanonicalHeaders canonical_headers(const std::vector<Header>& headers,
                                   const std::vector<std::string>& only = {});
std::string canonical_request(std::string_view method, std::string_view canonical_uri,
                              std::string_view canonical_query, const CanonicalHeaders& headers,
                              std::string_view payload_hash);
std::string string_to_sign(std::string_view amz_date, std::string_view scope,
                           std::string_view canonical_request);

// ---- server side (healthlake-local, tests) ----

enum class VerifyStatus {
  ok,
  missing,             // no Authorization header / no X-Amz-Signature: "MissingAuthenticationToken"
  malformed,           // unparsable Authorization / params: "IncompleteSignature"
  unknown_access_key,  // "InvalidAccessKeyId" (S3) / "UnrecognizedClientException"
  signature_mismatch,  // "SignatureDoesNotMatch"
  request_time_too_skewed,  // x-amz-date outside the window: "RequestTimeTooSkewed"
  expired,                  // presigned URL past X-Amz-Expires, or expired credentials
  invalid_token,            // session token missing/wrong for a key that needs one
  scope_mismatch,           // credential scope date/region/service wrong
  content_sha256_mismatch,  // x-amz-content-sha256 does not match the body
};

struct VerifyResult {
  VerifyStatus status = VerifyStatus::missing;
  std::string message;  // human readable, safe for an error body
  std::string access_key_id;
  // What the server computed, for the error body (as S3 returns them on SignatureDoesNotMatch).
  std::string canonical_request;
  std::string string_to_sign;
  std::vector<std::string> signed_headers;
  std::string request_time;  // the request's x-amz-date ("20261126T100000Z") when it had one
  bool ok() const { return status == VerifyStatus::ok; }
};

// S3-style error code for a status ("SignatureDoesNotMatch", ...). `json_protocol` gives the
// names AWS JSON services return ("InvalidSignatureException", "UnrecognizedClientException",
// "MissingAuthenticationTokenException", "ExpiredTokenException", ...).
std::string_view verify_error_code(VerifyStatus status, bool json_protocol = false);

struct VerifyOptions {
  std::string region;   // expected; empty accepts any
  std::string service;  // expected; empty accepts any
  std::chrono::system_clock::time_point now;
  std::chrono::seconds max_skew{15 * 60};
  bool s3_rules = false;
};

// Returns the credentials for an access key id (nullopt: unknown). When the returned
// Credentials have a session_token the request must carry the same x-amz-security-token;
// an `expiration` in the past yields `expired`.
using SecretLookup = std::function<std::optional<Credentials>(std::string_view access_key_id)>;

// `request` is what was received: headers include Authorization (or the query carries
// X-Amz-Algorithm... for the presigned form). `payload_hash` is the hex SHA-256 of the body as
// received; when x-amz-content-sha256 is present and not UNSIGNED-PAYLOAD it must equal it
// (if payload_hash is empty, the header value is trusted).
VerifyResult verify(const SignableRequest& request, const SecretLookup& lookup,
                    const VerifyOptions& opts);

}  // namespace fe::aws
