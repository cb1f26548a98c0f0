#pragma once
// healthlake-local's STS: AssumeRole (AWS Query protocol, Version 2011-06-15), enough for
// fhir-edge's AssumeRole profiles and for real AWS clients (botocore) to be tested against it.
//
// Contract:
//  - A request is `POST /` with a form body (Content-Type application/x-www-form-urlencoded) and
//    no X-Amz-Target; it is SigV4-verified for service `sts` (the emulator's region) against the
//    configured key or against temporary credentials this STS issued (role chaining).
//  - AssumeRole succeeds only for a role named by --role (repeatable); any other RoleArn is
//    AccessDenied, as STS answers when the trust policy does not allow the caller.
//    --role-external-id makes ExternalId mandatory and checked. RoleSessionName, DurationSeconds
//    (900-43200; at most 3600 when the caller is itself an assumed role: role chaining) and RoleArn
//    are validated with STS's ValidationError texts; other Actions are InvalidAction.
//  - The answer is STS's XML: AssumedRoleUser{Arn, AssumedRoleId}, Credentials{AccessKeyId
//    (ASIA...), SecretAccessKey, SessionToken, Expiration}. The credentials are accepted for S3,
//    HealthLake and STS calls (lookup) until Expiration, then `expired`; a wrong or missing
//    x-amz-security-token is `invalid_token`. --session-lifetime DUR grants DUR instead of
//    DurationSeconds (a test knob: expiry and refresh within seconds); Expiration says DUR.
//  - Errors: <ErrorResponse><Error><Type>Sender</Type><Code/><Message/></Error><RequestId/>.
//  - Thread-safe (the server calls it from its io thread; tests may call lookup from others).
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/sigv4.hpp"
#include "util.hpp"

namespace fe::hll {

struct StsOptions {
  std::vector<std::string> roles;          // --role ARN
  std::optional<std::string> external_id;  // --role-external-id X
  std::optional<double> session_lifetime;  // --session-lifetime DUR, seconds
  std::string account = "123456789012";    // ARNs of the caller and assumed roles
  std::string region = "us-east-1";        // signing region
};

struct StsReply {
  int status = 200;
  std::string body;        // XML
  std::string error_code;  // "" on success (for the request log)
  std::string role_arn;    // the role asked for (request log)
};

class Sts {
 public:
  explicit Sts(StsOptions options);

  // Whether a request is for STS: POST / with a form body, no X-Amz-Target, no bucket in Host.
  static bool is_sts_request(std::string_view method, std::string_view path,
                             std::string_view content_type, std::string_view amz_target,
                             bool has_vhost_bucket);

  // One request: `request` as received (headers include Authorization), `body` the form body,
  // `base` the emulator's own key (--access-key/--secret-key/--session-token).
  StsReply handle(const fe::aws::SignableRequest& request, std::string_view body,
                  const fe::aws::Credentials& base, SysTime now, const std::string& request_id);

  // Temporary credentials issued here, with their expiration; nullopt for unknown keys.
  std::optional<fe::aws::Credentials> lookup(std::string_view access_key_id) const;

 private:
  struct Session {
    fe::aws::Credentials creds;
    std::string role_arn, session_name;
  };
  StsReply assume_role(const std::multimap<std::string, std::string>& params,
                       const std::string& caller_arn, bool caller_is_role, SysTime now,
                       const std::string& request_id);

  StsOptions opt_;
  mutable std::mutex mu_;
  std::map<std::string, Session, std::less<>> sessions_;  // by access key id
};

}  // namespace fe::hll
