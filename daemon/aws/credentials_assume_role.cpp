// AssumeRole profiles (role_arn with source_profile or credential_source), as the AWS CLI and
// SDKs read them from the shared config file, and the STS calls they need (AssumeRole, and the
// endpoint/error helpers web identity shares). The rules are in credentials.hpp.
//
// Why these semantics: an operator copies a profile that works with `aws --profile x` onto the
// gateway; it must mean the same thing here (botocore's AssumeRoleProvider: role_arn wins over
// keys in the same profile; a source profile with keys is used as-is even if it also names a
// role; one without keys but with role_arn is assumed first; a profile may be its own source only
// when it holds keys). What needs a person (an MFA code, an SSO browser login) is refused up front
// with the alternative named, instead of failing later in a way that reads like a network error.
//
// Secrets: the caller's secret only signs; the answer's secret and token go into Credentials and
// nowhere else. external_id is treated as confidential (never in a message).
#include <algorithm>
#include <ctime>
#include <regex>
#include <set>

#include "aws/credentials.hpp"
#include "aws/credentials_util.hpp"
#include "aws/xml.hpp"

namespace fe::aws {

using namespace cred_detail;

namespace cred_detail {

StsTarget sts_target(const CredentialsOptions& opts, const std::optional<std::string>& region) {
  StsTarget t;
  if (opts.sts_endpoint && !opts.sts_endpoint->empty())
    t.url = *opts.sts_endpoint;
  else if (auto ep = env_nonempty(opts.env, "AWS_ENDPOINT_URL_STS"))
    t.url = *ep;
  else if (region && !region->empty())
    t.url = "https://sts." + *region + ".amazonaws.com";
  else
    t.url = "https://sts.amazonaws.com";
  while (!t.url.empty() && t.url.back() == '/') t.url.pop_back();
  t.url += "/";
  t.region = region && !region->empty() ? *region : "us-east-1";
  t.extras.use_proxy = true;
  t.extras.proxy = opts.proxy;
  if (opts.ca_bundle && !opts.ca_bundle->empty())
    t.extras.ca_bundle = *opts.ca_bundle;
  else if (auto ca = env_nonempty(opts.env, "AWS_CA_BUNDLE"))
    t.extras.ca_bundle = *ca;
  return t;
}

std::string sts_error_text(std::string_view body) {
  auto doc = xml::parse(body);
  if (!doc.root) return "";
  const xml::Element* e = doc.root->name == "Error" ? &*doc.root : doc.root->child("Error");
  if (!e) return "";
  std::string out = e->child_text("Code");
  std::string msg = e->child_text("Message");
  for (auto& c : msg)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  if (msg.size() > 300) msg = msg.substr(0, 300) + "...";
  if (out.size() > 80) out = out.substr(0, 80);
  if (!msg.empty()) out += (out.empty() ? "" : ": ") + msg;
  return out;
}

Credentials sts_credentials(MiniResponse& r, std::string_view result_element,
                            bool expiration_required, const std::string& where) {
  if (!r.error.empty()) throw CredentialsError(where + ": " + r.error);
  if (r.status != 200) {
    std::string why = sts_error_text(r.body);
    throw CredentialsError(where + ": HTTP " + std::to_string(r.status) +
                           (why.empty() ? "" : " " + why));
  }
  auto doc = xml::parse(r.body);
  std::fill(r.body.begin(), r.body.end(), '\0');
  const xml::Element* cr = nullptr;
  if (doc.root)
    if (const xml::Element* res = doc.root->child(result_element)) cr = res->child("Credentials");
  if (!cr) throw CredentialsError(where + ": unexpected response (no Credentials)");
  Credentials c;
  c.access_key_id = trim(cr->child_text("AccessKeyId"));
  c.secret_access_key = trim(cr->child_text("SecretAccessKey"));
  c.session_token = trim(cr->child_text("SessionToken"));
  if (c.access_key_id.empty() || c.secret_access_key.empty() || c.session_token.empty())
    throw CredentialsError(where + ": response lacks AccessKeyId/SecretAccessKey/SessionToken");
  std::string exp = trim(cr->child_text("Expiration"));
  if (exp.empty() && !expiration_required) return c;
  auto t = parse_iso8601(exp);
  if (!t)
    throw CredentialsError(
        where + (exp.empty() ? ": Expiration missing" : ": Expiration is not an ISO 8601 time"));
  c.expiration = t;
  return c;
}

}  // namespace cred_detail

namespace {

std::string where_profile(const std::string& name, const Profile& p) {
  std::string file = !p.config_file.empty() ? p.config_path : p.credentials_path;
  return "profile " + name + (file.empty() ? "" : " (" + file + ")");
}

bool has_static_keys(const Profile& p) {
  return p.credentials_file.count("aws_access_key_id") || p.config_file.count("aws_access_key_id");
}

// The value of a key in the profile, nullopt when absent or empty (an empty value is unset, as
// in botocore).
std::optional<std::string> value(const Profile& p, const std::string& key) {
  auto v = p.get(key);
  if (!v || v->empty()) return std::nullopt;
  return v;
}

RoleStep read_role(const std::string& name, const Profile& p) {
  const std::string where = where_profile(name, p);
  RoleStep r;
  r.profile = name;
  r.file = !p.config_file.empty() ? p.config_path : p.credentials_path;
  r.role_arn = *value(p, "role_arn");
  static const std::regex arn(R"(arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512})");
  if (!std::regex_match(r.role_arn, arn))
    throw CredentialsError(where + ": role_arn '" + r.role_arn.substr(0, 200) +
                           "' is not a role ARN (arn:aws:iam::123456789012:role/name)");
  if (auto s = value(p, "role_session_name")) {
    static const std::regex name_re(R"([\w+=,.@-]{2,64})");
    if (!std::regex_match(*s, name_re))
      throw CredentialsError(where +
                             ": role_session_name must be 2-64 of letters, digits and "
                             "_ + = , . @ -");
    r.session_name = *s;
  } else {
    r.session_name = "fhir-edge-" + std::to_string(std::time(nullptr));
  }
  if (auto e = value(p, "external_id")) {
    static const std::regex ext_re(R"([\w+=,.@:/-]{2,1224})");
    if (!std::regex_match(*e, ext_re))  // the value is not quoted: it may be confidential
      throw CredentialsError(where +
                             ": external_id must be 2-1224 of letters, digits and "
                             "_ + = , . @ : / -");
    r.external_id = *e;
  }
  if (auto d = value(p, "duration_seconds")) {
    int secs = -1;
    if (d->size() <= 6 && d->find_first_not_of("0123456789") == std::string::npos)
      secs = std::stoi(*d);
    if (secs < 900 || secs > 43200)
      throw CredentialsError(where +
                             ": duration_seconds must be a number of seconds from 900 "
                             "to 43200, got '" +
                             d->substr(0, 20) + "'");
    r.duration_seconds = secs;
  }
  return r;
}

std::string chain_text(const std::vector<std::string>& names, const std::string& next) {
  std::string s;
  for (const auto& n : names) s += n + " -> ";
  return s + next;
}

}  // namespace

void refuse_sso_profile(const std::string& name, const Profile& p) {
  if (!p.get("sso_session") && !p.get("sso_start_url") && !p.get("sso_account_id") &&
      !p.get("sso_role_name"))
    return;
  throw CredentialsError(
      where_profile(name, p) +
      " is an IAM Identity Center (SSO) profile: SSO is not supported by a daemon (its tokens "
      "come from an interactive `aws sso login` in a browser and expire within hours); give the "
      "service an IAM role instead: the instance role (IMDS), an AssumeRole profile (role_arn "
      "with source_profile or credential_source), or IAM Roles Anywhere through "
      "credential_process (docs/aws-credentials.md)");
}

std::optional<RolePlan> plan_assume_role(const std::string& profile, const EnvLookup& env) {
  RolePlan plan;
  std::vector<std::string> visited;  // profiles whose role_arn we follow, outermost first
  std::string cur = profile;
  for (;;) {
    Profile p = load_profile(cur, env);
    const std::string where = where_profile(cur, p);
    if (!p.found()) {
      if (visited.empty()) return std::nullopt;
      throw CredentialsError(
          "profile " + visited.back() + ": source_profile " + cur + " does not exist (looked in " +
          (p.config_path.empty() ? "no config file" : p.config_path) + " and " +
          (p.credentials_path.empty() ? "no credentials file" : p.credentials_path) + ")");
    }
    refuse_sso_profile(cur, p);
    const bool is_source = !visited.empty();
    // A source profile with keys is used as-is, whatever else it holds (botocore); so is one
    // without role_arn (keys or credential_process, checked when it is resolved).
    if (is_source && (has_static_keys(p) || !value(p, "role_arn"))) {
      if (!has_static_keys(p) && !value(p, "credential_process"))
        throw CredentialsError(where + ", the source_profile of profile " + visited.back() +
                               ", has no credentials (aws_access_key_id/aws_secret_access_key or "
                               "credential_process)");
      plan.base_profile = cur;
      break;
    }
    if (!value(p, "role_arn")) return std::nullopt;  // the requested profile is no role profile
    if (value(p, "mfa_serial"))
      throw CredentialsError(
          where +
          " sets mfa_serial: a role that needs an MFA code cannot be assumed by a daemon "
          "(nobody is there to type the code); use a role whose trust policy does not "
          "require MFA for this gateway's principal, or an instance role "
          "(docs/aws-credentials.md)");
    if (value(p, "web_identity_token_file"))
      throw CredentialsError(where +
                             ": web_identity_token_file in a profile is not supported; set "
                             "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN in the environment");
    auto src = value(p, "source_profile");
    auto cs = value(p, "credential_source");
    if (src && cs)
      throw CredentialsError(where + " has both source_profile and credential_source; keep one");
    if (!src && !cs)
      throw CredentialsError(where +
                             " has role_arn but neither source_profile nor "
                             "credential_source: name where the credentials that assume "
                             "the role come from");
    plan.roles.push_back(read_role(cur, p));
    visited.push_back(cur);
    if (cs) {
      if (*cs != "Environment" && *cs != "Ec2InstanceMetadata" && *cs != "EcsContainer")
        throw CredentialsError(where + ": credential_source '" + cs->substr(0, 40) +
                               "' is not one of Environment, Ec2InstanceMetadata, EcsContainer");
      plan.credential_source = *cs;
      break;
    }
    if (*src == cur) {
      // Its own source: allowed when it holds keys (they assume the role), as in botocore.
      if (!has_static_keys(p))
        throw CredentialsError(where +
                               ": source_profile names the profile itself, which has "
                               "no aws_access_key_id: the chain " +
                               chain_text(visited, cur) + " is a cycle");
      plan.base_profile = cur;
      break;
    }
    for (const auto& v : visited)
      if (v == *src)
        throw CredentialsError("profile " + profile + ": source_profile chain " +
                               chain_text(visited, *src) + " is a cycle");
    cur = *src;
  }
  std::reverse(plan.roles.begin(), plan.roles.end());
  return plan;
}

Credentials assume_role(const Credentials& caller, const RoleStep& role,
                        const CredentialsOptions& opts, const std::optional<std::string>& region) {
  StsTarget sts = sts_target(opts, region);
  const std::string where =
      "assume role " + role.role_arn + " (profile " + role.profile + ", STS " + sts.url + ")";
  auto enc = [](std::string_view v) { return uri_encode(v, true); };
  std::string body = "Action=AssumeRole&Version=2011-06-15&RoleArn=" + enc(role.role_arn) +
                     "&RoleSessionName=" + enc(role.session_name);
  if (role.duration_seconds) body += "&DurationSeconds=" + std::to_string(*role.duration_seconds);
  if (role.external_id) body += "&ExternalId=" + enc(*role.external_id);

  // host[:port] of the URL: the Host header curl sends, signed.
  std::string authority = sts.url.substr(sts.url.find("://") + 3);
  authority = authority.substr(0, authority.find('/'));
  const std::string content_type = "application/x-www-form-urlencoded; charset=utf-8";
  MiniResponse r;
  for (int attempt = 0; attempt < 2; ++attempt) {
    SignableRequest req;
    req.method = "POST";
    req.path = "/";
    req.headers = {{"Host", authority}, {"Content-Type", content_type}};
    req.payload_hash = sha256_hex(body);
    SigningOptions so;
    so.region = sts.region;
    so.service = "sts";
    so.time = std::chrono::system_clock::now();
    Signed sig = sign(req, caller, so);
    std::vector<std::string> headers = {"Host: " + authority, "Content-Type: " + content_type,
                                        "Accept: text/xml"};
    for (const auto& h : sig.headers_to_add) headers.push_back(h.name + ": " + h.value);
    FetchExtras extras = sts.extras;
    extras.body = body;
    r = http_fetch("POST", sts.url, headers, std::chrono::milliseconds(5000), extras);
    std::fill(headers.begin(), headers.end(), std::string());
    if (r.error.empty() && r.status < 500) break;
  }
  Credentials c = sts_credentials(r, "AssumeRoleResult", /*expiration_required=*/true, where);
  c.source = "assume role " + role.role_arn + " (profile " + role.profile + ")";
  return c;
}

std::optional<Credentials> credentials_from_assume_role(const CredentialsOptions& opts,
                                                        const std::string& profile) {
  auto plan = plan_assume_role(profile, opts.env);
  if (!plan) return std::nullopt;
  Credentials c;
  std::string via;
  if (plan->credential_source.empty()) {
    Profile p = load_profile(plan->base_profile, opts.env);
    auto own = profile_own_credentials(plan->base_profile, p, opts);
    if (!own)
      throw CredentialsError("profile " + plan->base_profile +
                             " has no credentials to assume role " + plan->roles.front().role_arn +
                             " with");
    c = *own;
    via = "profile " + plan->base_profile;
  } else {
    const std::string& cs = plan->credential_source;
    std::optional<Credentials> base;
    if (cs == "Environment") {
      base = credentials_from_env(opts.env);
    } else if (cs == "EcsContainer") {
      base = credentials_from_container(opts);
    } else {
      base = credentials_from_imds(opts);
    }
    if (!base)
      throw CredentialsError("profile " + plan->roles.front().profile + ": credential_source " +
                             cs + " gave no credentials (" +
                             (cs == "Environment"    ? "AWS_ACCESS_KEY_ID is not set"
                              : cs == "EcsContainer" ? "AWS_CONTAINER_CREDENTIALS_*_URI is "
                                                       "not set"
                                                     : "AWS_EC2_METADATA_DISABLED is set") +
                             ")");
    c = *base;
    via = "credential_source " + cs;
  }
  // The Region of the requested profile signs every call of the chain.
  std::optional<std::string> region = opts.region;
  if (!region) region = resolve_region(opts);
  for (const auto& role : plan->roles) c = assume_role(c, role, opts, region);
  c.source += ", via " + via;
  return c;
}

}  // namespace fe::aws
