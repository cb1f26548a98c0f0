// AssumeRole profiles against healthlake-local's STS (SigV4-verified, service sts): a profile
// with source_profile, a chain of two roles (the second AssumeRole is signed with the first
// role's temporary credentials, which the emulator must accept), credential_source Environment,
// external_id, a role the emulator does not know, a wrong secret, expiry (--session-lifetime) and
// the provider's refresh before Expiration. S3/HealthLake calls with the role's credentials are
// in tests/integration/doctor/assume_role_test.cpp (doctor and a real upload).
#include <gtest/gtest.h>

#include <thread>

#include "aws/credentials.hpp"
#include "healthlake_local.hpp"
#include "temp_dir.hpp"

namespace {

using namespace fe::aws;
using fe::test::HealthLakeLocal;
using fe::test::HealthLakeLocalOptions;
using fe::test::TempDir;

const std::string kRole = "arn:aws:iam::123456789012:role/FhirEdgeUpload";
const std::string kHop = "arn:aws:iam::123456789012:role/Hop";

HealthLakeLocalOptions emulator(std::vector<std::string> extra = {}) {
  HealthLakeLocalOptions o;
  o.extra_args = {"--role", kRole, "--role", kHop};
  for (auto& a : extra) o.extra_args.push_back(a);
  return o;
}

struct ProfileFiles {
  TempDir dir;
  std::map<std::string, std::string> vars;
  ProfileFiles(const HealthLakeLocal& hll, const std::string& config,
               const std::string& secret = "") {
    vars["AWS_EC2_METADATA_DISABLED"] = "true";
    vars["AWS_ENDPOINT_URL_STS"] = hll.endpoint();
    vars["AWS_REGION"] = hll.region();
    vars["AWS_CONFIG_FILE"] = dir.write("config", config);
    vars["AWS_SHARED_CREDENTIALS_FILE"] = dir.write(
        "credentials",
        "[gateway]\naws_access_key_id = " + hll.access_key() +
            "\naws_secret_access_key = " + (secret.empty() ? hll.secret_key() : secret) + "\n");
  }
  CredentialsOptions options(const std::string& profile) const {
    CredentialsOptions o;
    auto copy = vars;
    o.env = [copy](std::string_view n) -> std::optional<std::string> {
      auto it = copy.find(std::string(n));
      if (it == copy.end()) return std::nullopt;
      return it->second;
    };
    o.profile = profile;
    o.source = CredentialSourceKind::profile;
    return o;
  }
};

int assume_role_calls(const HealthLakeLocal& hll, const std::string& status = "200") {
  int n = 0;
  for (const auto& l : hll.request_log_lines())
    n += l.find("\"AssumeRole\"") != std::string::npos &&
         l.find("\"status\":" + status) != std::string::npos;
  return n;
}

std::string error_of(const CredentialsOptions& o) {
  try {
    resolve_credentials(o);
  } catch (const CredentialsError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(AssumeRole, SourceProfileGivesTemporaryCredentialsWithExpiry) {
  HealthLakeLocal hll(emulator());
  ProfileFiles s(hll, "[profile upload]\nrole_arn = " + kRole +
                          "\nsource_profile = gateway\nrole_session_name = gw-test\n"
                          "duration_seconds = 1800\n");
  const auto before = std::chrono::system_clock::now();
  Credentials c = resolve_credentials(s.options("upload"));
  EXPECT_TRUE(c.access_key_id.starts_with("ASIA")) << c.access_key_id;
  EXPECT_FALSE(c.session_token.empty());
  EXPECT_NE(c.secret_access_key, hll.secret_key());
  ASSERT_TRUE(c.expiration);
  const auto lifetime = std::chrono::duration_cast<std::chrono::seconds>(*c.expiration - before);
  EXPECT_GE(lifetime.count(), 1790);
  EXPECT_LE(lifetime.count(), 1815);
  EXPECT_EQ(c.source, "assume role " + kRole + " (profile upload), via profile gateway");
  EXPECT_EQ(assume_role_calls(hll), 1);
}

TEST(AssumeRole, ChainOfRolesSignsEachCallWithThePreviousRole) {
  HealthLakeLocal hll(emulator());
  ProfileFiles s(hll, "[profile hop]\nrole_arn = " + kHop + "\nsource_profile = gateway\n" +
                          "[profile upload]\nrole_arn = " + kRole + "\nsource_profile = hop\n");
  Credentials c = resolve_credentials(s.options("upload"));
  EXPECT_TRUE(c.access_key_id.starts_with("ASIA"));
  EXPECT_NE(c.source.find("assume role " + kRole + " (profile upload)"), std::string::npos);
  EXPECT_EQ(assume_role_calls(hll), 2) << "the second call was signed with the Hop role's keys";
}

TEST(AssumeRole, CredentialSourceEnvironmentAndExternalId) {
  HealthLakeLocal hll(emulator({"--role-external-id", "ext-0123456789"}));
  ProfileFiles s(hll, "[profile env]\nrole_arn = " + kRole +
                          "\ncredential_source = Environment\nexternal_id = ext-0123456789\n"
                          "[profile wrongext]\nrole_arn = " +
                          kRole +
                          "\ncredential_source = Environment\nexternal_id = ext-9999999999\n");
  s.vars["AWS_ACCESS_KEY_ID"] = hll.access_key();
  s.vars["AWS_SECRET_ACCESS_KEY"] = hll.secret_key();
  Credentials c = resolve_credentials(s.options("env"));
  EXPECT_TRUE(c.access_key_id.starts_with("ASIA"));
  EXPECT_NE(c.source.find("via credential_source Environment"), std::string::npos) << c.source;
  const std::string e = error_of(s.options("wrongext"));
  EXPECT_NE(e.find("AccessDenied"), std::string::npos) << e;
  EXPECT_EQ(e.find("ext-9999999999"), std::string::npos) << "external_id is never shown";
}

TEST(AssumeRole, UnknownRoleAndWrongSecretAreRefusedWithoutSecrets) {
  HealthLakeLocal hll(emulator());
  const std::string other = "arn:aws:iam::123456789012:role/NotConfigured";
  ProfileFiles s(hll, "[profile other]\nrole_arn = " + other + "\nsource_profile = gateway\n");
  std::string e = error_of(s.options("other"));
  EXPECT_NE(e.find("HTTP 403 AccessDenied"), std::string::npos) << e;
  EXPECT_NE(e.find("sts:AssumeRole on resource: " + other), std::string::npos) << e;
  EXPECT_NE(e.find("profile other"), std::string::npos) << e;
  EXPECT_EQ(e.find(hll.secret_key()), std::string::npos);

  const std::string wrong = "wrongSecretThatMustNeverBePrinted000000";
  ProfileFiles bad(hll, "[profile upload]\nrole_arn = " + kRole + "\nsource_profile = gateway\n",
                   wrong);
  e = error_of(bad.options("upload"));
  EXPECT_NE(e.find("SignatureDoesNotMatch"), std::string::npos) << e;
  EXPECT_EQ(e.find(wrong), std::string::npos);
}

TEST(AssumeRole, ExpiredRoleCredentialsAreRefusedAndTheProviderRefreshesBeforeExpiry) {
  HealthLakeLocal hll(emulator({"--session-lifetime", "2s"}));
  ProfileFiles s(hll, "[profile hop]\nrole_arn = " + kHop + "\nsource_profile = gateway\n" +
                          "[profile upload]\nrole_arn = " + kRole + "\nsource_profile = hop\n");
  // The emulator refuses a role's credentials once they expired: plan the chain by hand and sign
  // the second AssumeRole with the first role's keys after their Expiration.
  auto plan = plan_assume_role("upload", s.options("upload").env);
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->roles.size(), 2u);
  Credentials base;
  base.access_key_id = hll.access_key();
  base.secret_access_key = hll.secret_key();
  const auto opts = s.options("upload");
  Credentials hop = assume_role(base, plan->roles[0], opts, hll.region());
  ASSERT_TRUE(hop.expiration);
  EXPECT_NO_THROW(assume_role(hop, plan->roles[1], opts, hll.region()));
  while (std::chrono::system_clock::now() <= *hop.expiration + std::chrono::milliseconds(100))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  try {
    assume_role(hop, plan->roles[1], opts, hll.region());
    FAIL() << "expired credentials accepted";
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("ExpiredToken"), std::string::npos) << e.what();
  }

  // The provider refreshes before Expiration (short-lived: at half the remaining lifetime), so
  // current() keeps answering with credentials that have not expired.
  CredentialsProvider provider(opts);
  provider.start();
  const std::string first = provider.current().access_key_id;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (provider.refresh_count() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_GE(provider.refresh_count(), 3);
  EXPECT_EQ(provider.refresh_failures(), 0);
  Credentials now = provider.current();  // throws if they had expired
  EXPECT_NE(now.access_key_id, first);
  EXPECT_GT(*now.expiration, std::chrono::system_clock::now());
}
