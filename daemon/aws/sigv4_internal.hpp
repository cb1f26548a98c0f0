#pragma once
// SigV4 pieces shared by the signer (sigv4.cpp) and the verifier (sigv4_verify.cpp), which
// rebuilds the canonical request from a received request exactly as the signer does. Private to
// daemon/aws.
#include <string>
#include <string_view>
#include <vector>

#include "aws/sigv4.hpp"

namespace fe::aws::sigv4_detail {

inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

std::string lower(std::string_view s);
// Percent-decoding; a malformed escape is kept literally. '+' stays '+'.
std::string percent_decode(std::string_view s);
// Trimmed, every run of whitespace collapsed into one space (canonical header values).
std::string trim_collapse(std::string_view v);
// "date8/region/service/aws4_request"
std::string scope_of(std::string_view date8, std::string_view region, std::string_view service);
// Hex HMAC of the string to sign under the derived signing key.
std::string signature_hex(std::string_view secret, std::string_view date8, std::string_view region,
                          std::string_view service, std::string_view sts);

struct QueryParam {
  std::string key;    // encoded (canonical) form
  std::string value;  // encoded (canonical) form
};
// "a=1&b" → {("a","1"), ("b","")}, undecoded.
std::vector<std::pair<std::string, std::string>> split_query_raw(std::string_view q);
// Sorted by key then value, joined with '&'.
std::string join_canonical(std::vector<QueryParam> params);
// The raw query's parameters, decoded and re-encoded canonically.
std::vector<QueryParam> canonical_params(std::string_view raw_query);

}  // namespace fe::aws::sigv4_detail
