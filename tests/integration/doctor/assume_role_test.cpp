// AssumeRole profiles end to end against healthlake-local (issue 17 item 11): `fhir-edge doctor`
// names the role as the credential source with its expiry and passes every AWS check with the
// role's temporary credentials; a role the emulator does not trust, and an SSO profile, fail the
// credentials line with the reason and no secret; and `fhir-edge run` uploads and imports an
// export with the role while the short-lived role credentials are refreshed underneath it.
#include <gtest/gtest.h>

#include <sstream>

#include "../hostile/daemon_run.hpp"

namespace {

using namespace fe::test;

const std::string kRole = "arn:aws:iam::123456789012:role/FhirEdgeGateway";

struct Profiles {
  TempDir dir;
  std::map<std::string, std::string> env;
  Profiles(HealthLakeLocal& hll, const std::string& profile) {
    env["AWS_CONFIG_FILE"] =
        dir.write("config",
                  "[profile gateway]\nregion = us-east-1\n"
                  "[profile upload]\nrole_arn = " +
                      kRole +
                      "\nsource_profile = gateway\nrole_session_name = fhir-edge-test\n"
                      "[profile untrusted]\nrole_arn = arn:aws:iam::123456789012:role/Other\n"
                      "source_profile = gateway\n"
                      "[profile sso]\nsso_session = corp\nsso_account_id = 123456789012\n"
                      "sso_role_name = Admin\n[sso-session corp]\n"
                      "sso_start_url = https://corp.awsapps.com/start\n");
    env["AWS_SHARED_CREDENTIALS_FILE"] =
        dir.write("credentials", "[gateway]\naws_access_key_id = " + hll.access_key() +
                                     "\naws_secret_access_key = " + hll.secret_key() + "\n");
    ::chmod(env["AWS_SHARED_CREDENTIALS_FILE"].c_str(), 0600);
    env["AWS_PROFILE"] = profile;
    env["AWS_ENDPOINT_URL_STS"] = hll.endpoint();
  }
};

DaemonRun::Options options(std::vector<std::string> extra = {}) {
  DaemonRun::Options o;
  o.credentials = "{ source: profile }";
  o.hll.extra_args = {"--role", kRole};
  for (auto& a : extra) o.hll.extra_args.push_back(a);
  return o;
}

struct Out {
  int rc = -1;
  std::string text;
  std::string line(const std::string& check) const {
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
      if (l.size() > 5 && l.compare(5, check.size(), check) == 0) return l;
    return "";
  }
};

Out doctor(DaemonRun& d, const Profiles& p) {
  // The emulator's keys are NOT in the environment: only the profile files hold them.
  std::string cmd =
      "env -u AWS_SESSION_TOKEN -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "
      "AWS_EC2_METADATA_DISABLED=true";
  for (const auto& [k, v] : p.env) cmd += " " + k + "=" + shell_quote(v);
  cmd +=
      std::string(" ") + FE_EXE + " doctor --config " + shell_quote(d.config().string()) + " 2>&1";
  Out o;
  o.text = capture(cmd, &o.rc);
  std::cout << o.text;
  return o;
}

int assume_role_calls(HealthLakeLocal& hll) {
  int n = 0;
  for (const auto& l : hll.request_log_lines())
    n += l.find("\"AssumeRole\"") != std::string::npos &&
         l.find("\"status\":200") != std::string::npos;
  return n;
}

}  // namespace

TEST(AssumeRoleProfile, DoctorShowsTheRoleAndItsExpiryAndPassesWithIt) {
  DaemonRun d(options());
  Profiles p(d.hll(), "upload");
  auto out = doctor(d, p);
  EXPECT_EQ(out.rc, 0) << out.text;
  const std::string cred = out.line("credentials");
  EXPECT_TRUE(cred.starts_with("ok ")) << cred;
  EXPECT_NE(cred.find("assume role " + kRole + " (profile upload), via profile gateway"),
            std::string::npos)
      << cred;
  EXPECT_NE(cred.find("ASIA"), std::string::npos) << "the masked temporary key id: " << cred;
  EXPECT_NE(cred.find(", expires "), std::string::npos) << cred;
  // S3 (probe put/head/delete) and HealthLake accepted the role's temporary credentials.
  EXPECT_TRUE(out.line("landing bucket").starts_with("ok ")) << out.line("landing bucket");
  EXPECT_TRUE(out.line("data store").starts_with("ok ")) << out.line("data store");
  EXPECT_GE(assume_role_calls(d.hll()), 1);
  EXPECT_EQ(out.text.find(d.hll().secret_key()), std::string::npos);
}

TEST(AssumeRoleProfile, DoctorNamesARefusedRoleAndAnSsoProfile) {
  DaemonRun d(options());
  Profiles untrusted(d.hll(), "untrusted");
  auto out = doctor(d, untrusted);
  EXPECT_EQ(out.rc, 1);
  std::string cred = out.line("credentials");
  EXPECT_TRUE(cred.starts_with("FAIL ")) << cred;
  EXPECT_NE(cred.find("AccessDenied"), std::string::npos) << cred;
  EXPECT_NE(cred.find("arn:aws:iam::123456789012:role/Other"), std::string::npos) << cred;
  EXPECT_EQ(out.text.find(d.hll().secret_key()), std::string::npos);

  Profiles sso(d.hll(), "sso");
  out = doctor(d, sso);
  EXPECT_EQ(out.rc, 1);
  cred = out.line("credentials");
  EXPECT_TRUE(cred.starts_with("FAIL ")) << cred;
  EXPECT_NE(cred.find("SSO is not supported by a daemon"), std::string::npos) << cred;
  EXPECT_NE(cred.find("AssumeRole profile"), std::string::npos) << cred;
}

TEST(AssumeRoleProfile, RunUploadsAndImportsWithTheRoleWhileItsCredentialsAreRefreshed) {
  // Role credentials that last 3 s: the daemon must refresh them (at half their lifetime) and
  // never sign with expired ones while it uploads and follows the import.
  DaemonRun d(options({"--session-lifetime", "3s"}));
  Profiles p(d.hll(), "upload");
  std::map<std::string, std::string> env = p.env;
  // Wrong keys in the environment prove that the profile, not the environment, signs.
  env["AWS_ACCESS_KEY_ID"] = "AKIAWRONGWRONGWRONG1";
  env["AWS_SECRET_ACCESS_KEY"] = "wrong-secret-wrong-secret-wrong-secret00";
  d.start(env);
  drop_export(d.watch(), "exp1", {{"Patient.ndjson", patients("ar", 20)}});
  EXPECT_EQ(d.wait_final("exp1"), "imported") << d.log();
  // Refreshes happened underneath (each is one AssumeRole), and the emulator refused nothing.
  EXPECT_TRUE(DaemonRun::wait_until([&] { return assume_role_calls(d.hll()) >= 3; },
                                    std::chrono::seconds(60)))
      << assume_role_calls(d.hll());
  for (const auto& l : d.hll().request_log_lines())
    EXPECT_EQ(l.find("ExpiredToken"), std::string::npos) << l;
  EXPECT_TRUE(d.log_has("assume role " + kRole)) << d.log();
  EXPECT_EQ(d.log().find(d.hll().secret_key()), std::string::npos);
  EXPECT_EQ(d.stop(), 0);
}
