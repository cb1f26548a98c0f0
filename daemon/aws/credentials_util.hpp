#pragma once
// Small helpers shared by the credential sources (credentials_sources.cpp: environment, shared
// files, credential_process, systemd; credentials_endpoints.cpp: container endpoint, IMDSv2, web
// identity; credentials_assume_role.cpp: AssumeRole profiles). Private to daemon/aws.
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.hpp"

namespace fe::aws::cred_detail {

// s without leading and trailing blanks (space, tab, CR, LF).
std::string trim(std::string_view s);
// The variable's value, nullopt when unset or empty.
std::optional<std::string> env_nonempty(const EnvLookup& env, std::string_view name);
// "true" or "1", in any case.
bool env_true(const EnvLookup& env, std::string_view name);
// Reads a small file; nullopt when it does not exist; throws CredentialsError when it exists but
// cannot be read or is larger than limit.
std::optional<std::string> read_small_file(const std::string& path, std::size_t limit = 1 << 20);

// One small HTTP exchange on a libcurl easy handle (credentials documents are tiny: the body is
// capped at 64 KiB). Used off the upload hot path: start-up and the provider's refresh thread.
struct MiniResponse {
  long status = 0;
  std::string body;
  std::string error;  // transport error (curl's text); empty when the server answered
};
struct FetchExtras {
  std::string body;                  // request body (POST)
  bool use_proxy = false;            // metadata endpoints: never; STS: yes
  std::optional<std::string> proxy;  // explicit proxy ("" = none); unset: the environment's
  std::string ca_bundle;             // AWS_CA_BUNDLE for STS (hospital TLS inspection)
};
MiniResponse http_fetch(const char* method, const std::string& url,
                        const std::vector<std::string>& headers, std::chrono::milliseconds timeout,
                        const FetchExtras& extras = {});

// STS, for web identity and AssumeRole profiles: the URL ("https://sts.<region>.amazonaws.com/",
// aws.endpoints.sts or AWS_ENDPOINT_URL_STS when set; the global endpoint when no Region is
// known), the Region to sign for, and the proxy/CA settings of a call on the public internet.
struct StsTarget {
  std::string url;     // ends in "/"
  std::string region;  // signing Region ("us-east-1" for the global endpoint)
  FetchExtras extras;  // use_proxy, proxy, ca_bundle (body empty)
};
StsTarget sts_target(const CredentialsOptions& opts, const std::optional<std::string>& region);
// The error code and message of an STS <ErrorResponse> (or a bare <Error>), one bounded line;
// "" when the body is not one.
std::string sts_error_text(std::string_view body);
// The credentials of an STS answer (AssumeRole, AssumeRoleWithWebIdentity): a transport error, a
// non-200 status (with sts_error_text) or a body without <result_element><Credentials> with all
// three keys throws CredentialsError prefixed with `where`. Expiration is required for AssumeRole
// (the provider must know when to refresh) and optional for web identity (older STS stand-ins
// omit it). Wipes the response body once parsed: it holds the secret key.
Credentials sts_credentials(MiniResponse& r, std::string_view result_element,
                            bool expiration_required, const std::string& where);

}  // namespace fe::aws::cred_detail
