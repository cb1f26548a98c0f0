// healthlake-local's STS AssumeRole (see sts.hpp for the contract).
#include "sts.hpp"

#include <openssl/rand.h>

#include <ctime>
#include <regex>

namespace fe::hll {

namespace {

constexpr const char* kNs = "https://sts.amazonaws.com/doc/2011-06-15/";

std::string tag(const std::string& name, const std::string& value) {
  return "<" + name + ">" + xml_escape(value) + "</" + name + ">";
}

StsReply error(int status, const std::string& code, const std::string& message,
               const std::string& request_id) {
  StsReply r;
  r.status = status;
  r.error_code = code;
  r.body = std::string("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"") +
           kNs + "\"><Error><Type>Sender</Type>" + tag("Code", code) + tag("Message", message) +
           "</Error>" + tag("RequestId", request_id) + "</ErrorResponse>";
  return r;
}

// Random characters from `alphabet` (RAND_bytes; slight modulo bias is irrelevant here).
std::string random_chars(size_t n, std::string_view alphabet) {
  std::string raw(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(n));
  std::string out;
  for (unsigned char c : raw) out.push_back(alphabet[c % alphabet.size()]);
  return out;
}

std::multimap<std::string, std::string> parse_form(std::string_view body) {
  std::multimap<std::string, std::string> m;
  size_t start = 0;
  while (start <= body.size()) {
    size_t amp = body.find('&', start);
    if (amp == std::string_view::npos) amp = body.size();
    std::string_view kv = body.substr(start, amp - start);
    if (!kv.empty()) {
      size_t eq = kv.find('=');
      m.emplace(url_decode(kv.substr(0, eq), true),
                eq == std::string_view::npos ? "" : url_decode(kv.substr(eq + 1), true));
    }
    start = amp + 1;
  }
  return m;
}

std::optional<std::string> param(const std::multimap<std::string, std::string>& m,
                                 const std::string& k) {
  auto it = m.find(k);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

std::string iso8601_s(SysTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string validation(const std::string& value, const std::string& member,
                       const std::string& constraint) {
  return "1 validation error detected: Value '" + value + "' at '" + member +
         "' failed to satisfy constraint: " + constraint;
}

}  // namespace

Sts::Sts(StsOptions options) : opt_(std::move(options)) {}

bool Sts::is_sts_request(std::string_view method, std::string_view path,
                         std::string_view content_type, std::string_view amz_target,
                         bool has_vhost_bucket) {
  return method == "POST" && path == "/" && amz_target.empty() && !has_vhost_bucket &&
         content_type.starts_with("application/x-www-form-urlencoded");
}

std::optional<fe::aws::Credentials> Sts::lookup(std::string_view access_key_id) const {
  std::lock_guard lk(mu_);
  auto it = sessions_.find(access_key_id);
  if (it == sessions_.end()) return std::nullopt;
  return it->second.creds;
}

StsReply Sts::handle(const fe::aws::SignableRequest& request, std::string_view body,
                     const fe::aws::Credentials& base, SysTime now, const std::string& request_id) {
  std::string caller_arn;
  bool caller_is_role = false;
  fe::aws::SecretLookup lookup = [&](std::string_view ak) -> std::optional<fe::aws::Credentials> {
    if (ak == base.access_key_id) {
      caller_arn = "arn:aws:iam::" + opt_.account + ":user/healthlake-local";
      return base;
    }
    std::lock_guard lk(mu_);
    auto it = sessions_.find(ak);
    if (it == sessions_.end()) return std::nullopt;
    caller_is_role = true;
    std::string role_name = it->second.role_arn.substr(it->second.role_arn.rfind('/') + 1);
    caller_arn = "arn:aws:sts::" + opt_.account + ":assumed-role/" + role_name + "/" +
                 it->second.session_name;
    return it->second.creds;
  };
  fe::aws::VerifyOptions vo;
  vo.region = opt_.region;
  vo.service = "sts";
  vo.now = now;
  fe::aws::SignableRequest req = request;
  req.payload_hash = fe::sha256_hex(body);
  fe::aws::VerifyResult v = fe::aws::verify(req, lookup, vo);
  using VS = fe::aws::VerifyStatus;
  switch (v.status) {
    case VS::ok:
      break;
    case VS::missing:
      return error(403, "MissingAuthenticationToken", "Request is missing Authentication Token",
                   request_id);
    case VS::malformed:
      return error(400, "IncompleteSignature", v.message, request_id);
    case VS::unknown_access_key:
    case VS::invalid_token:
      return error(403, "InvalidClientTokenId",
                   "The security token included in the request is invalid.", request_id);
    case VS::expired:
      return error(400, "ExpiredToken", "The security token included in the request is expired",
                   request_id);
    case VS::request_time_too_skewed:
      return error(400, "SignatureDoesNotMatch", "Signature expired: " + v.message, request_id);
    default:
      return error(403, "SignatureDoesNotMatch",
                   "The request signature we calculated does not match the signature you "
                   "provided. Check your AWS Secret Access Key and signing method. Consult the "
                   "service documentation for details.",
                   request_id);
  }
  auto params = parse_form(body);
  std::string action = param(params, "Action").value_or("");
  if (param(params, "Version").value_or("") != "2011-06-15")
    return error(400, "InvalidAction",
                 "Could not find operation " + action + " for version " +
                     param(params, "Version").value_or("NO_VERSION_SPECIFIED"),
                 request_id);
  if (action != "AssumeRole")
    return error(400, "InvalidAction",
                 "Could not find operation " + action + " for version 2011-06-15", request_id);
  return assume_role(params, caller_arn, caller_is_role, now, request_id);
}

StsReply Sts::assume_role(const std::multimap<std::string, std::string>& params,
                          const std::string& caller_arn, bool caller_is_role, SysTime now,
                          const std::string& request_id) {
  auto role = param(params, "RoleArn");
  auto session = param(params, "RoleSessionName");
  if (!role)
    return error(400, "ValidationError",
                 "1 validation error detected: Value null at 'roleArn' failed to satisfy "
                 "constraint: Member must not be null",
                 request_id);
  if (!session)
    return error(400, "ValidationError",
                 "1 validation error detected: Value null at 'roleSessionName' failed to satisfy "
                 "constraint: Member must not be null",
                 request_id);
  StsReply fail;
  if (role->size() < 20 || role->size() > 2048) {
    fail = error(400, "ValidationError",
                 validation(*role, "roleArn", "Member must have length between 20 and 2048"),
                 request_id);
    fail.role_arn = *role;
    return fail;
  }
  static const std::regex session_re(R"([\w+=,.@-]{2,64})");
  if (!std::regex_match(*session, session_re))
    return error(400, "ValidationError",
                 validation(*session, "roleSessionName",
                            "Member must satisfy regular expression pattern: [\\w+=,.@-]* and "
                            "have length between 2 and 64"),
                 request_id);
  int duration = 3600;
  if (auto d = param(params, "DurationSeconds")) {
    int parsed = -1;
    if (!d->empty() && d->size() <= 6 && d->find_first_not_of("0123456789") == std::string::npos)
      parsed = std::stoi(*d);
    if (parsed < 900 || parsed > 43200)
      return error(
          400, "ValidationError",
          validation(*d, "durationSeconds", "Member must have value between 900 and 43200"),
          request_id);
    if (caller_is_role && parsed > 3600)
      return error(400, "ValidationError",
                   "The requested DurationSeconds exceeds the 1 hour session limit for roles "
                   "assumed by role chaining.",
                   request_id);
    duration = parsed;
  }
  const bool known = std::find(opt_.roles.begin(), opt_.roles.end(), *role) != opt_.roles.end();
  const auto ext = param(params, "ExternalId");
  if (!known || (opt_.external_id && ext != opt_.external_id)) {
    fail = error(403, "AccessDenied",
                 "User: " + caller_arn +
                     " is not authorized to perform: sts:AssumeRole on "
                     "resource: " +
                     *role,
                 request_id);
    fail.role_arn = *role;
    return fail;
  }
  Session s;
  s.role_arn = *role;
  s.session_name = *session;
  s.creds.access_key_id = "ASIA" + random_chars(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
  s.creds.secret_access_key =
      random_chars(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
  s.creds.session_token =
      "IQoJb3JpZ2luX2VjE" +
      random_chars(300, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
  // Expiration is whole seconds on the wire; the lifetime counts from there.
  const auto lifetime = opt_.session_lifetime
                            ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::duration<double>(*opt_.session_lifetime))
                            : std::chrono::milliseconds(duration * 1000LL);
  const SysTime expires =
      std::chrono::time_point_cast<std::chrono::seconds>(now + lifetime + std::chrono::seconds(1));
  s.creds.expiration = expires;
  const std::string role_name = role->substr(role->rfind('/') + 1);
  const std::string role_id = "AROA" + random_chars(17, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
  StsReply r;
  r.role_arn = *role;
  r.body =
      std::string("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AssumeRoleResponse xmlns=\"") +
      kNs + "\"><AssumeRoleResult><SourceIdentity/><AssumedRoleUser>" +
      tag("AssumedRoleId", role_id + ":" + *session) +
      tag("Arn", "arn:aws:sts::" + opt_.account + ":assumed-role/" + role_name + "/" + *session) +
      "</AssumedRoleUser><Credentials>" + tag("AccessKeyId", s.creds.access_key_id) +
      tag("SecretAccessKey", s.creds.secret_access_key) +
      tag("SessionToken", s.creds.session_token) + tag("Expiration", iso8601_s(expires)) +
      "</Credentials></AssumeRoleResult><ResponseMetadata>" + tag("RequestId", request_id) +
      "</ResponseMetadata></AssumeRoleResponse>";
  std::lock_guard lk(mu_);
  // Forget sessions that ended long ago (memory stays bounded in a long-running emulator).
  for (auto it = sessions_.begin(); it != sessions_.end();)
    it = *it->second.creds.expiration + std::chrono::hours(1) < now ? sessions_.erase(it)
                                                                    : std::next(it);
  sessions_[s.creds.access_key_id] = std::move(s);
  return r;
}

}  // namespace fe::hll
