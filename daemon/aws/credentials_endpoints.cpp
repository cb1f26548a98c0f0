// The HTTP credential sources: the container endpoint (ECS/EKS), IMDSv2 and web identity
// (AssumeRoleWithWebIdentity). The chain and the provider are in credentials.cpp, the local
// sources in credentials_sources.cpp.
//
// IMDS and container endpoints are fetched with a libcurl *easy* handle on the caller's thread
// (the provider's refresh thread, or start-up): they are a few tiny requests per hour, off the
// upload hot path, so they do not go through the curl-multi engine on the Asio loop.
#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <simdjson.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "aws/credentials.hpp"
#include "aws/credentials_util.hpp"
#include "aws/xml.hpp"
#include "service/log.hpp"

namespace fe::aws {

using namespace cred_detail;

// ---------------------------------------------------------------------------------------------
// HTTP (container endpoint, IMDS)

namespace {

size_t collect(char* ptr, size_t size, size_t nmemb, void* user) {
  auto* s = static_cast<std::string*>(user);
  size_t n = size * nmemb;
  if (s->size() + n > 64 * 1024) return 0;  // credentials documents are tiny
  s->append(ptr, n);
  return n;
}

}  // namespace

MiniResponse cred_detail::http_fetch(const char* method, const std::string& url,
                                     const std::vector<std::string>& headers,
                                     std::chrono::milliseconds timeout, const FetchExtras& extras) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  MiniResponse r;
  CURL* h = curl_easy_init();
  if (!h) {
    r.error = "curl_easy_init failed";
    return r;
  }
  curl_slist* hl = nullptr;
  for (const auto& hd : headers) hl = curl_slist_append(hl, hd.c_str());
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (std::string_view(method) == "PUT" || std::string_view(method) == "POST") {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, extras.body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(extras.body.size()));
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  // Link-local/loopback metadata endpoints are never reached through a proxy (SDK behaviour);
  // STS is, through the proxy the environment names (libcurl reads HTTPS_PROXY/NO_PROXY).
  if (!extras.use_proxy) curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  if (extras.use_proxy && extras.proxy) curl_easy_setopt(h, CURLOPT_PROXY, extras.proxy->c_str());
  if (!extras.ca_bundle.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, extras.ca_bundle.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    r.error = curl_easy_strerror(rc);
  } else {
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  }
  curl_slist_free_all(hl);
  curl_easy_cleanup(h);
  return r;
}

namespace {

// {"AccessKeyId","SecretAccessKey","Token","Expiration"} (container and IMDS share the shape).
Credentials parse_endpoint_credentials(std::string_view json, const std::string& where) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS || !doc.is_object())
    throw CredentialsError(where + ": response is not a JSON object");
  std::string_view code;
  if (doc["Code"].get(code) == simdjson::SUCCESS && code != "Success")
    throw CredentialsError(where + ": Code " + std::string(code.substr(0, 64)));
  auto str = [&](const char* key) -> std::string {
    std::string_view v;
    return doc[key].get(v) == simdjson::SUCCESS ? std::string(v) : std::string();
  };
  Credentials c;
  c.access_key_id = str("AccessKeyId");
  c.secret_access_key = str("SecretAccessKey");
  c.session_token = str("Token");
  std::string exp = str("Expiration");
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    throw CredentialsError(where + ": response lacks AccessKeyId/SecretAccessKey");
  if (!exp.empty()) {
    auto t = parse_iso8601(exp);
    if (!t) throw CredentialsError(where + ": Expiration is not an ISO 8601 time");
    c.expiration = t;
  }
  c.source = where;
  return c;
}

// host part of scheme://host[:port]/...; IPv6 in brackets kept without them.
bool split_url(const std::string& url, std::string& scheme, std::string& host) {
  auto p = url.find("://");
  if (p == std::string::npos) return false;
  scheme = url.substr(0, p);
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string rest = url.substr(p + 3);
  auto slash = rest.find('/');
  std::string auth = rest.substr(0, slash);
  if (auth.find('@') != std::string::npos) return false;  // no userinfo
  if (!auth.empty() && auth[0] == '[') {
    auto close = auth.find(']');
    if (close == std::string::npos) return false;
    host = auth.substr(1, close - 1);
  } else {
    host = auth.substr(0, auth.find(':'));
  }
  return !host.empty();
}

bool allowed_container_host(const std::string& host) {
  // The SDKs allow plain http only to loopback and the ECS/EKS agent addresses.
  if (host == "localhost" || host == "::1" || host == "169.254.170.2" || host == "169.254.170.23" ||
      host == "fd00:ec2::23")
    return true;
  return host.rfind("127.", 0) == 0;
}

}  // namespace

namespace {
std::string form_encode(std::string_view v) {
  return uri_encode(v, true);
}
}  // namespace

std::optional<Credentials> credentials_from_web_identity(const CredentialsOptions& opts) {
  auto token_file = env_nonempty(opts.env, "AWS_WEB_IDENTITY_TOKEN_FILE");
  auto role_arn = env_nonempty(opts.env, "AWS_ROLE_ARN");
  if (!token_file && !role_arn) return std::nullopt;
  if (!token_file || !role_arn)
    throw CredentialsError(std::string("web identity: ") +
                           (token_file ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE") +
                           " is missing (both must be set)");
  // Read on every refresh: Kubernetes rotates the projected token.
  auto token = read_small_file(*token_file, 64 * 1024);
  if (!token) throw CredentialsError("web identity: token file " + *token_file + " does not exist");
  std::string session = env_nonempty(opts.env, "AWS_ROLE_SESSION_NAME")
                            .value_or("fhir-edge-" + std::to_string(std::time(nullptr)));
  auto region = env_nonempty(opts.env, "AWS_REGION");
  if (!region) region = env_nonempty(opts.env, "AWS_DEFAULT_REGION");
  StsTarget sts = sts_target(opts, region);
  const std::string& url = sts.url;
  const std::string where = "web identity (STS " + url + ", role " + *role_arn + ")";
  // AssumeRoleWithWebIdentity is an unsigned call: the token is the proof.
  FetchExtras extras = sts.extras;
  extras.body =
      "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + form_encode(*role_arn) +
      "&RoleSessionName=" + form_encode(session) + "&WebIdentityToken=" + form_encode(trim(*token));
  MiniResponse r;
  for (int attempt = 0; attempt < 2; ++attempt) {
    r = http_fetch(
        "POST", url,
        {"Content-Type: application/x-www-form-urlencoded; charset=utf-8", "Accept: text/xml"},
        std::chrono::milliseconds(5000), extras);
    if (r.error.empty() && r.status < 500) break;
  }
  std::fill(extras.body.begin(), extras.body.end(), '\0');
  Credentials c =
      sts_credentials(r, "AssumeRoleWithWebIdentityResult", /*expiration_required=*/false, where);
  c.source = "web identity (role " + *role_arn + ")";
  return c;
}

std::optional<Credentials> credentials_from_container(const CredentialsOptions& opts) {
  std::string url;
  if (auto rel = env_nonempty(opts.env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) {
    url = "http://169.254.170.2" + (rel->front() == '/' ? *rel : "/" + *rel);
  } else if (auto full = env_nonempty(opts.env, "AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
    url = *full;
    std::string scheme, host;
    if (!split_url(url, scheme, host) || (scheme != "http" && scheme != "https"))
      throw CredentialsError(
          "container credentials: AWS_CONTAINER_CREDENTIALS_FULL_URI is not an "
          "http(s) URL");
    if (scheme == "http" && !allowed_container_host(host))
      throw CredentialsError(
          "container credentials: plain http is only allowed to loopback or "
          "the ECS/EKS agent address, not " +
          host);
  } else {
    return std::nullopt;
  }
  const std::string where = "container credentials (" + url + ")";
  std::vector<std::string> headers;
  if (auto file = env_nonempty(opts.env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
    auto tok = read_small_file(*file, 16 * 1024);
    if (!tok) throw CredentialsError(where + ": token file " + *file + " does not exist");
    std::string t = trim(*tok);
    if (t.find_first_of("\r\n") != std::string::npos)
      throw CredentialsError(where + ": token file holds more than one line");
    headers.push_back("Authorization: " + t);
  } else if (auto tok = env_nonempty(opts.env, "AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
    std::string t = trim(*tok);
    if (t.find_first_of("\r\n") != std::string::npos)
      throw CredentialsError(where + ": AWS_CONTAINER_AUTHORIZATION_TOKEN holds a line break");
    headers.push_back("Authorization: " + t);
  }
  headers.push_back("Accept: application/json");
  MiniResponse r;
  for (int attempt = 0; attempt < 2; ++attempt) {
    r = http_fetch("GET", url, headers, opts.container_timeout);
    if (r.error.empty() && r.status < 500) break;
  }
  if (!r.error.empty()) throw CredentialsError(where + ": " + r.error);
  if (r.status != 200)
    throw CredentialsError(
        where + ": HTTP " + std::to_string(r.status) +
        (r.status == 401 || r.status == 403 ? " (authorization token refused)" : ""));
  return parse_endpoint_credentials(r.body, where);
}

std::optional<Credentials> credentials_from_imds(const CredentialsOptions& opts) {
  if (env_true(opts.env, "AWS_EC2_METADATA_DISABLED")) return std::nullopt;
  std::string base = "http://169.254.169.254";
  if (auto mode = env_nonempty(opts.env, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
      mode && (*mode == "IPv6" || *mode == "ipv6"))
    base = "http://[fd00:ec2::254]";
  if (auto ep = env_nonempty(opts.env, "AWS_EC2_METADATA_SERVICE_ENDPOINT")) base = *ep;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string where = "IMDSv2 (" + base + ")";
  auto fetch = [&](const char* method, const std::string& path,
                   const std::vector<std::string>& headers) {
    MiniResponse r;
    for (int attempt = 0; attempt < std::max(1, opts.imds_attempts); ++attempt) {
      r = http_fetch(method, base + path, headers, opts.imds_timeout);
      if (r.error.empty() && r.status < 500) break;
    }
    return r;
  };
  MiniResponse tok =
      fetch("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds: 21600"});
  if (!tok.error.empty()) throw CredentialsError(where + ": no metadata service: " + tok.error);
  if (tok.status != 200)
    throw CredentialsError(where + ": token request answered HTTP " + std::to_string(tok.status) +
                           " (IMDSv2 required; IMDSv1 is not used)");
  const std::string token_header = "X-aws-ec2-metadata-token: " + trim(tok.body);
  MiniResponse role = fetch("GET", "/latest/meta-data/iam/security-credentials/", {token_header});
  if (!role.error.empty()) throw CredentialsError(where + ": " + role.error);
  if (role.status == 404)
    throw CredentialsError(where + ": this instance has no IAM role (instance profile)");
  if (role.status != 200)
    throw CredentialsError(where + ": role lookup answered HTTP " + std::to_string(role.status));
  std::string name = trim(role.body.substr(0, role.body.find('\n')));
  if (name.empty() || name.find('/') != std::string::npos)
    throw CredentialsError(where + ": unexpected role name");
  MiniResponse cr =
      fetch("GET", "/latest/meta-data/iam/security-credentials/" + name, {token_header});
  if (!cr.error.empty()) throw CredentialsError(where + ": " + cr.error);
  if (cr.status != 200)
    throw CredentialsError(where + ": credentials answered HTTP " + std::to_string(cr.status));
  Credentials c = parse_endpoint_credentials(cr.body, where);
  c.source = "IMDSv2 role " + name;
  return c;
}

}  // namespace fe::aws
