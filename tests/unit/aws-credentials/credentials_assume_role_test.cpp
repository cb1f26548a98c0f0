// AssumeRole profiles without a network: how a profile with role_arn is read into a plan (chains,
// self-reference, cycles, missing or empty source profiles, credential_source), and what is
// refused up front with the alternative named (mfa_serial, SSO). The STS calls themselves are in
// tests/integration/aws/sts_test.cpp, against healthlake-local.
#include <gtest/gtest.h>

#include "aws/credentials.hpp"
#include "aws/credentials_util.hpp"
#include "test_env.hpp"

using namespace fe::aws;
using fe::test::FakeEnv;
using fe::test::TempDir;

namespace {

const char* kKeys = "aws_access_key_id = AKIDBASE\naws_secret_access_key = base-secret-value\n";

struct Files {
  TempDir dir;
  FakeEnv env;
  Files(const std::string& config, const std::string& credentials = "") {
    env.vars["AWS_EC2_METADATA_DISABLED"] = "true";
    env.vars["AWS_CONFIG_FILE"] = dir.write("config", config);
    env.vars["AWS_SHARED_CREDENTIALS_FILE"] = dir.write("credentials", credentials);
  }
  std::optional<RolePlan> plan(const std::string& profile) const {
    return plan_assume_role(profile, env.lookup());
  }
  // The error plan_assume_role throws ("" when it does not).
  std::string error(const std::string& profile) const {
    try {
      plan(profile);
    } catch (const CredentialsError& e) {
      return e.what();
    }
    return "";
  }
  std::string profile_error(const std::string& profile) const {
    CredentialsOptions o;
    o.env = env.lookup();
    o.profile = profile;
    try {
      credentials_from_profile(o);
    } catch (const CredentialsError& e) {
      return e.what();
    }
    return "";
  }
};

bool has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

}  // namespace

TEST(AssumeRolePlan, ProfileWithoutRoleArnIsNoRoleProfile) {
  Files f("[profile plain]\nregion = eu-west-1\n", std::string("[plain]\n") + kKeys);
  EXPECT_FALSE(f.plan("plain"));
  EXPECT_FALSE(f.plan("absent"));
}

TEST(AssumeRolePlan, SourceProfileChainIsAssumedInnermostFirst) {
  Files f(
      "[profile app]\nrole_arn = arn:aws:iam::123456789012:role/App\nsource_profile = mid\n"
      "role_session_name = gateway-1\nexternal_id = ext-secret-1234\nduration_seconds = 1800\n"
      "[profile mid]\nrole_arn = arn:aws:iam::210987654321:role/Hop\nsource_profile = base\n",
      std::string("[base]\n") + kKeys);
  auto p = f.plan("app");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->base_profile, "base");
  EXPECT_EQ(p->credential_source, "");
  ASSERT_EQ(p->roles.size(), 2u);
  EXPECT_EQ(p->roles[0].role_arn, "arn:aws:iam::210987654321:role/Hop");
  EXPECT_EQ(p->roles[0].profile, "mid");
  EXPECT_TRUE(p->roles[0].session_name.starts_with("fhir-edge-")) << p->roles[0].session_name;
  EXPECT_FALSE(p->roles[0].duration_seconds);
  EXPECT_EQ(p->roles[1].role_arn, "arn:aws:iam::123456789012:role/App");
  EXPECT_EQ(p->roles[1].session_name, "gateway-1");
  EXPECT_EQ(p->roles[1].external_id, "ext-secret-1234");
  EXPECT_EQ(p->roles[1].duration_seconds, 1800);
}

TEST(AssumeRolePlan, SourceProfileWithKeysIsUsedAsIsEvenWithItsOwnRole) {
  // botocore: a source profile that holds keys gives those keys; its role_arn is not followed.
  Files f(
      "[profile app]\nrole_arn = arn:aws:iam::123456789012:role/App\nsource_profile = base\n"
      "[profile base]\nrole_arn = arn:aws:iam::123456789012:role/Other\nsource_profile = app\n",
      std::string("[base]\n") + kKeys);
  auto p = f.plan("app");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->base_profile, "base");
  ASSERT_EQ(p->roles.size(), 1u);
}

TEST(AssumeRolePlan, SourceProfileWithCredentialProcessIsABase) {
  Files f(
      "[profile app]\nrole_arn = arn:aws:iam::123456789012:role/App\nsource_profile = ra\n"
      "[profile ra]\ncredential_process = /usr/bin/aws_signing_helper credential-process\n");
  auto p = f.plan("app");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->base_profile, "ra");
}

TEST(AssumeRolePlan, SelfReferenceNeedsKeys) {
  Files ok(std::string("[profile self]\nrole_arn = arn:aws:iam::123456789012:role/App\n"
                       "source_profile = self\n") +
           kKeys);
  auto p = ok.plan("self");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->base_profile, "self");
  ASSERT_EQ(p->roles.size(), 1u);

  Files loop(
      "[profile self]\nrole_arn = arn:aws:iam::123456789012:role/App\nsource_profile = self\n");
  const std::string e = loop.error("self");
  EXPECT_TRUE(has(e, "cycle")) << e;
  EXPECT_TRUE(has(e, "self -> self")) << e;
}

TEST(AssumeRolePlan, CyclesAreRefusedNamingTheChain) {
  Files f(
      "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/A\nsource_profile = b\n"
      "[profile b]\nrole_arn = arn:aws:iam::123456789012:role/B\nsource_profile = c\n"
      "[profile c]\nrole_arn = arn:aws:iam::123456789012:role/C\nsource_profile = b\n");
  const std::string e = f.error("a");
  EXPECT_TRUE(has(e, "cycle")) << e;
  EXPECT_TRUE(has(e, "a -> b -> c -> b")) << e;
  // The daemon's path gives the same error (no STS call is attempted).
  EXPECT_TRUE(has(f.profile_error("a"), "a -> b -> c -> b"));
}

TEST(AssumeRolePlan, MissingOrEmptySourceProfile) {
  Files f(
      "[profile a]\nrole_arn = arn:aws:iam::123456789012:role/A\nsource_profile = nope\n"
      "[profile b]\nrole_arn = arn:aws:iam::123456789012:role/B\nsource_profile = empty\n"
      "[profile empty]\nregion = us-east-1\n");
  std::string e = f.error("a");
  EXPECT_TRUE(has(e, "source_profile nope does not exist")) << e;
  EXPECT_TRUE(has(e, f.env.vars["AWS_CONFIG_FILE"])) << e;
  e = f.error("b");
  EXPECT_TRUE(has(e, "profile empty")) << e;
  EXPECT_TRUE(has(e, "has no credentials")) << e;
}

TEST(AssumeRolePlan, SourceMustBeExactlyOne) {
  Files f(
      "[profile both]\nrole_arn = arn:aws:iam::123456789012:role/A\nsource_profile = x\n"
      "credential_source = Environment\n"
      "[profile neither]\nrole_arn = arn:aws:iam::123456789012:role/A\n"
      "[profile bad]\nrole_arn = arn:aws:iam::123456789012:role/A\ncredential_source = Imds\n");
  EXPECT_TRUE(has(f.error("both"), "both source_profile and credential_source"));
  EXPECT_TRUE(has(f.error("neither"), "neither source_profile nor credential_source"));
  const std::string e = f.error("bad");
  EXPECT_TRUE(has(e, "Environment, Ec2InstanceMetadata, EcsContainer")) << e;
}

TEST(AssumeRolePlan, CredentialSources) {
  Files f(
      "[profile env]\nrole_arn = arn:aws:iam::123456789012:role/A\n"
      "credential_source = Environment\n"
      "[profile ec2]\nrole_arn = arn:aws:iam::123456789012:role/A\n"
      "credential_source = Ec2InstanceMetadata\n"
      "[profile ecs]\nrole_arn = arn:aws:iam::123456789012:role/A\n"
      "credential_source = EcsContainer\n");
  EXPECT_EQ(f.plan("env")->credential_source, "Environment");
  EXPECT_EQ(f.plan("ec2")->credential_source, "Ec2InstanceMetadata");
  EXPECT_EQ(f.plan("ecs")->credential_source, "EcsContainer");
  // Environment without keys: a clear error before any STS call.
  const std::string e = f.profile_error("env");
  EXPECT_TRUE(has(e, "credential_source Environment gave no credentials")) << e;
  // IMDS disabled in the test environment: said so.
  EXPECT_TRUE(has(f.profile_error("ec2"), "AWS_EC2_METADATA_DISABLED")) << f.profile_error("ec2");
}

TEST(AssumeRolePlan, MfaIsRefusedBecauseADaemonCannotPrompt) {
  Files f(
      "[profile mfa]\nrole_arn = arn:aws:iam::123456789012:role/A\nsource_profile = base\n"
      "mfa_serial = arn:aws:iam::123456789012:mfa/alice\n",
      std::string("[base]\n") + kKeys);
  const std::string e = f.profile_error("mfa");
  EXPECT_TRUE(has(e, "mfa_serial")) << e;
  EXPECT_TRUE(has(e, "cannot be assumed by a daemon")) << e;
  EXPECT_TRUE(has(e, "instance role")) << e;
}

TEST(AssumeRolePlan, SsoProfilesAreRefusedNamingTheAlternative) {
  Files f(
      "[profile sso]\nsso_session = corp\nsso_account_id = 123456789012\n"
      "sso_role_name = Admin\n"
      "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
      "[profile legacy]\nsso_start_url = https://corp.awsapps.com/start\n"
      "[profile via]\nrole_arn = arn:aws:iam::123456789012:role/A\nsource_profile = sso\n");
  for (const char* name : {"sso", "legacy", "via"}) {
    const std::string e = f.profile_error(name);
    EXPECT_TRUE(has(e, "SSO is not supported by a daemon")) << name << ": " << e;
    EXPECT_TRUE(has(e, "AssumeRole profile")) << e;
    EXPECT_TRUE(has(e, "instance role")) << e;
  }
}

TEST(AssumeRolePlan, BadValuesNameTheKeyButNeverTheExternalId) {
  Files f(
      "[profile dur]\nrole_arn = arn:aws:iam::123456789012:role/A\nsource_profile = dur\n"
      "duration_seconds = 60\n" +
      std::string(kKeys) +
      "[profile ext]\nrole_arn = arn:aws:iam::123456789012:role/A\nsource_profile = ext\n"
      "external_id = has spaces secret\n" +
      kKeys + "[profile arn]\nrole_arn = arn:aws:iam::1:role/A\nsource_profile = arn\n" + kKeys);
  EXPECT_TRUE(has(f.error("dur"), "duration_seconds must be a number of seconds from 900"));
  const std::string e = f.error("ext");
  EXPECT_TRUE(has(e, "external_id must be")) << e;
  EXPECT_FALSE(has(e, "has spaces secret")) << e;
  EXPECT_TRUE(has(f.error("arn"), "is not a role ARN"));
}

// The STS answer parsing shared by AssumeRole profiles and web identity.
namespace {
fe::aws::cred_detail::MiniResponse sts_answer(long status, const std::string& inner,
                                              const std::string& result = "AssumeRoleResult") {
  fe::aws::cred_detail::MiniResponse r;
  r.status = status;
  r.body = "<AssumeRoleResponse><" + result + "><Credentials>" + inner + "</Credentials></" +
           result + "></AssumeRoleResponse>";
  return r;
}
const std::string kStsKeys =
    "<AccessKeyId> ASIAEXAMPLE </AccessKeyId><SecretAccessKey>s3cr3t-value</SecretAccessKey>"
    "<SessionToken>tok</SessionToken>";
}  // namespace

TEST(StsCredentials, ParsesKeysTrimmedWithExpirationAndWipesTheBody) {
  auto r = sts_answer(200, kStsKeys + "<Expiration>2026-12-06T10:00:00Z</Expiration>");
  auto c = fe::aws::cred_detail::sts_credentials(r, "AssumeRoleResult", true, "where");
  EXPECT_EQ(c.access_key_id, "ASIAEXAMPLE");
  EXPECT_EQ(c.secret_access_key, "s3cr3t-value");
  EXPECT_EQ(c.session_token, "tok");
  ASSERT_TRUE(c.expiration.has_value());
  EXPECT_EQ(r.body.find("s3cr3t"), std::string::npos);
}

TEST(StsCredentials, ExpirationRequiredForAssumeRoleOptionalForWebIdentity) {
  auto r = sts_answer(200, kStsKeys);
  try {
    fe::aws::cred_detail::sts_credentials(r, "AssumeRoleResult", true, "profile p");
    FAIL() << "no Expiration accepted";
  } catch (const CredentialsError& e) {
    EXPECT_STREQ(e.what(), "profile p: Expiration missing");
  }
  auto w = sts_answer(200, kStsKeys, "AssumeRoleWithWebIdentityResult");
  auto c = fe::aws::cred_detail::sts_credentials(w, "AssumeRoleWithWebIdentityResult", false, "w");
  EXPECT_FALSE(c.expiration.has_value());
  auto bad = sts_answer(200, kStsKeys + "<Expiration>soon</Expiration>");
  EXPECT_THROW(fe::aws::cred_detail::sts_credentials(bad, "AssumeRoleResult", false, "w"),
               CredentialsError);
}

TEST(StsCredentials, ErrorsNameTheCallAndTheStsCodeButNeverTheSecret) {
  fe::aws::cred_detail::MiniResponse denied;
  denied.status = 403;
  denied.body =
      "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not allowed</Message></Error>"
      "</ErrorResponse>";
  try {
    fe::aws::cred_detail::sts_credentials(denied, "AssumeRoleResult", true, "role r");
    FAIL();
  } catch (const CredentialsError& e) {
    EXPECT_STREQ(e.what(), "role r: HTTP 403 AccessDenied: not allowed");
  }
  auto partial =
      sts_answer(200, "<AccessKeyId>A</AccessKeyId><SecretAccessKey>s3cr3t</SecretAccessKey>");
  try {
    fe::aws::cred_detail::sts_credentials(partial, "AssumeRoleResult", true, "role r");
    FAIL();
  } catch (const CredentialsError& e) {
    EXPECT_EQ(std::string(e.what()).find("s3cr3t"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("lacks"), std::string::npos);
  }
  auto wrong = sts_answer(200, kStsKeys, "SomethingElse");
  EXPECT_THROW(fe::aws::cred_detail::sts_credentials(wrong, "AssumeRoleResult", true, "r"),
               CredentialsError);
}
