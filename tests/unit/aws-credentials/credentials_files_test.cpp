// Credential sources without a network: environment, systemd credentials, the shared files
// (profiles, comments, precedence), credential_process (quoting, JSON output, failures), and the
// chain's order and error summary.
#include <gtest/gtest.h>

#include <csignal>

#include "aws/credentials.hpp"
#include "test_env.hpp"

using namespace fe::aws;
using fe::test::FakeEnv;
using fe::test::TempDir;

namespace {
// Never let a test probe a real metadata service.
FakeEnv base_env() {
  FakeEnv e;
  e.vars["AWS_EC2_METADATA_DISABLED"] = "true";
  return e;
}
CredentialsOptions options(const FakeEnv& env) {
  CredentialsOptions o;
  o.env = env.lookup();
  return o;
}
}  // namespace

TEST(Ini, SectionsCommentsContinuations) {
  const char* text =
      "# comment\n"
      "; another\n"
      "[default]\n"
      "aws_access_key_id = AKIDDEFAULT   # trailing comment\n"
      "aws_secret_access_key=se#cr;et/+=\n"
      "\n"
      "[profile dev]  ; comment after header\n"
      "region = eu-central-1\n"
      "s3 =\n"
      "  max_concurrent_requests = 20\n"
      "  addressing_style = path\n"
      "Credential_Process = /bin/helper --x 'a b'\r\n";
  IniFile ini = parse_ini(text, "cfg");
  ASSERT_EQ(ini.sections.size(), 2u);
  EXPECT_EQ(ini.sections["default"]["aws_access_key_id"], "AKIDDEFAULT");
  // '#'/';' without whitespace before them are part of the value (secrets contain them).
  EXPECT_EQ(ini.sections["default"]["aws_secret_access_key"], "se#cr;et/+=");
  EXPECT_EQ(ini.sections["profile dev"]["region"], "eu-central-1");
  EXPECT_EQ(ini.sections["profile dev"]["s3"],
            "max_concurrent_requests = 20\naddressing_style = path");
  EXPECT_EQ(ini.sections["profile dev"]["credential_process"], "/bin/helper --x 'a b'");
}

TEST(Ini, ErrorsNameFileAndLine) {
  try {
    parse_ini("[ok]\na = 1\nthis is not a property\n", "/etc/aws/config");
    FAIL() << "expected an error";
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("/etc/aws/config:3:"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_ini("key = value\n", "f"), CredentialsError);
  EXPECT_THROW(parse_ini("[unterminated\n", "f"), CredentialsError);
}

TEST(Profiles, CredentialsFileWinsAndConfigPrefix) {
  TempDir d;
  FakeEnv env = base_env();
  env.vars["AWS_SHARED_CREDENTIALS_FILE"] =
      d.write("credentials",
              "[default]\naws_access_key_id = AKIDCREDFILE\naws_secret_access_key = s1\n"
              "[dev]\naws_access_key_id = AKIDDEVCRED\naws_secret_access_key = s2\n"
              "aws_session_token = tok2\n");
  env.vars["AWS_CONFIG_FILE"] =
      d.write("config",
              "[default]\nregion = us-west-2\naws_access_key_id = AKIDCONFIG\n"
              "aws_secret_access_key = s3\n"
              "[profile dev]\nregion = eu-west-1\n"
              "[dev]\nregion = ignored-without-profile-prefix\n"
              "[profile cfgonly]\naws_access_key_id = AKIDCFGONLY\naws_secret_access_key = s4\n");
  auto opts = options(env);
  auto c = credentials_from_profile(opts);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key_id, "AKIDCREDFILE");
  EXPECT_NE(c->source.find("profile default"), std::string::npos);
  EXPECT_EQ(resolve_region(opts), "us-west-2");

  opts.profile = "dev";
  c = credentials_from_profile(opts);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key_id, "AKIDDEVCRED");
  EXPECT_EQ(c->session_token, "tok2");
  EXPECT_EQ(resolve_region(opts), "eu-west-1");

  opts.profile = "cfgonly";
  c = credentials_from_profile(opts);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key_id, "AKIDCFGONLY");

  // AWS_PROFILE selects when the config does not.
  env.vars["AWS_PROFILE"] = "dev";
  EXPECT_EQ(credentials_from_profile(options(env))->access_key_id, "AKIDDEVCRED");

  opts.profile = "missing";
  EXPECT_FALSE(credentials_from_profile(opts));
}

TEST(Profiles, IncompleteAndUnsupportedProfilesAreErrors) {
  TempDir d;
  FakeEnv env = base_env();
  env.vars["AWS_SHARED_CREDENTIALS_FILE"] =
      d.write("credentials", "[default]\naws_access_key_id = X\n");
  env.vars["AWS_CONFIG_FILE"] = d.write(
      "config",
      "[profile role]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = default\n");
  try {
    credentials_from_profile(options(env));
    FAIL();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("aws_secret_access_key"), std::string::npos);
  }
  // An AssumeRole profile whose source profile is incomplete fails on the source profile, before
  // any STS call (AssumeRole profiles: credentials_assume_role_test.cpp).
  auto opts = options(env);
  opts.profile = "role";
  try {
    credentials_from_profile(opts);
    FAIL();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("profile default"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("aws_secret_access_key"), std::string::npos) << e.what();
  }
}

TEST(Env, KeysAndPartialSettings) {
  FakeEnv env;
  EXPECT_FALSE(credentials_from_env(env.lookup()));
  env.vars["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  EXPECT_THROW(credentials_from_env(env.lookup()), CredentialsError);
  env.vars["AWS_SECRET_ACCESS_KEY"] = "secret";
  env.vars["AWS_SESSION_TOKEN"] = "token";
  auto c = credentials_from_env(env.lookup());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key_id, "AKIDENV");
  EXPECT_EQ(c->session_token, "token");
  EXPECT_FALSE(c->expiration);
}

TEST(Systemd, CredentialsDirectory) {
  TempDir d;
  FakeEnv env;
  env.vars["CREDENTIALS_DIRECTORY"] = d.path().string();
  EXPECT_FALSE(credentials_from_systemd(env.lookup()));  // directory without our files
  d.write("aws_access_key_id", "AKIDSYSTEMD\n");
  EXPECT_THROW(credentials_from_systemd(env.lookup()), CredentialsError);
  d.write("aws_secret_access_key", "sysSecret\n");
  auto c = credentials_from_systemd(env.lookup());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key_id, "AKIDSYSTEMD");
  EXPECT_EQ(c->secret_access_key, "sysSecret");
  EXPECT_TRUE(c->session_token.empty());
  d.write("aws_session_token", "sysTok");
  EXPECT_EQ(credentials_from_systemd(env.lookup())->session_token, "sysTok");
}

TEST(Systemd, SingleAwsCredentialInCredentialsFileFormat) {
  TempDir d;
  FakeEnv env;
  env.vars["CREDENTIALS_DIRECTORY"] = d.path().string();
  d.write("aws",
          "# LoadCredential=aws:/etc/fhir-edge/aws-credentials\n[default]\n"
          "aws_access_key_id = AKIDSDFILE\naws_secret_access_key = s#1\n"
          "[other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = s2\n");
  auto c = credentials_from_systemd(env.lookup());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key_id, "AKIDSDFILE");
  EXPECT_EQ(c->secret_access_key, "s#1");
  env.vars["AWS_PROFILE"] = "other";
  EXPECT_EQ(credentials_from_systemd(env.lookup())->access_key_id, "AKIDOTHER");
  env.vars["AWS_PROFILE"] = "missing";
  EXPECT_THROW(credentials_from_systemd(env.lookup()), CredentialsError);
}

TEST(CommandLine, QuotingLikePosixShellWords) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split_command_line("/usr/bin/helper credential-process --region us-east-1"),
            (V{"/usr/bin/helper", "credential-process", "--region", "us-east-1"}));
  EXPECT_EQ(split_command_line("'/opt/my tools/helper' --arn \"arn:aws:x \\\"q\\\" \\\\ $HOME\""),
            (V{"/opt/my tools/helper", "--arn", "arn:aws:x \"q\" \\ $HOME"}));
  EXPECT_EQ(split_command_line("a\\ b c''d \"\" 'it''s'"), (V{"a b", "cd", "", "its"}));
  EXPECT_EQ(split_command_line("  spaced\t\targs  "), (V{"spaced", "args"}));
  EXPECT_THROW(split_command_line("'unterminated"), CredentialsError);
  EXPECT_THROW(split_command_line("\"unterminated"), CredentialsError);
  EXPECT_THROW(split_command_line("   "), CredentialsError);
}

TEST(ProcessOutput, Version1WithExpiration) {
  Credentials c = parse_process_output(
      R"({"Version":1,"AccessKeyId":"ASIAPROC","SecretAccessKey":"procSecret","SessionToken":"procTok","Expiration":"2030-01-02T03:04:05Z"})",
      "profile p");
  EXPECT_EQ(c.access_key_id, "ASIAPROC");
  EXPECT_EQ(c.session_token, "procTok");
  ASSERT_TRUE(c.expiration);
  EXPECT_EQ(amz_date(*c.expiration), "20300102T030405Z");
  Credentials s =
      parse_process_output(R"({"Version":1,"AccessKeyId":"AKIA","SecretAccessKey":"x"})", "p");
  EXPECT_FALSE(s.expiration);
}

TEST(ProcessOutput, ErrorsNeverQuoteTheOutput) {
  const std::string secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  for (std::string bad : {R"({"Version":2,"AccessKeyId":"A","SecretAccessKey":")" + secret + "\"}",
                          R"({"AccessKeyId":"A","SecretAccessKey":")" + secret + "\"}",
                          R"({"Version":1,"SecretAccessKey":")" + secret + "\"}",
                          R"({"Version":1,"AccessKeyId":"A","SecretAccessKey":")" + secret +
                              R"(","Expiration":"tomorrow"})",
                          "not json " + secret}) {
    try {
      parse_process_output(bad, "p");
      FAIL() << "accepted bad output";
    } catch (const CredentialsError& e) {
      EXPECT_EQ(std::string(e.what()).find(secret), std::string::npos) << e.what();
    }
  }
}

TEST(Iso8601, Forms) {
  auto t = parse_iso8601("2026-11-26T10:00:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(amz_date(*t), "20261126T100000Z");
  EXPECT_EQ(amz_date(*parse_iso8601("2026-11-26T10:00:00.123Z")), "20261126T100000Z");
  EXPECT_EQ(amz_date(*parse_iso8601("2026-11-26T12:00:00+02:00")), "20261126T100000Z");
  EXPECT_FALSE(parse_iso8601("2026-11-26T10:00:00"));
  EXPECT_FALSE(parse_iso8601("2026-13-26T10:00:00Z"));
  EXPECT_FALSE(parse_iso8601("yesterday"));
  EXPECT_FALSE(parse_iso8601("9999-12-31T23:59:59Z"));
}

TEST(Process, RunsHelperWithQuotedPathAndParsesOutput) {
  TempDir d;
  std::string helper = d.write("my tools/helper.sh",
                               "#!/bin/sh\n"
                               "# prints its second argument as the key id\n"
                               "printf '{\"Version\": 1, \"AccessKeyId\": \"%s\", "
                               "\"SecretAccessKey\": \"procSecret\", \"SessionToken\": \"t\", "
                               "\"Expiration\": \"2099-01-01T00:00:00Z\"}' \"$2\"\n",
                               true);
  FakeEnv env = base_env();
  env.vars["AWS_CONFIG_FILE"] = d.write(
      "config", "[profile ra]\ncredential_process = \"" + helper + "\" --key 'ASIA WITH SPACE'\n");
  auto opts = options(env);
  opts.profile = "ra";
  auto c = credentials_from_profile(opts);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key_id, "ASIA WITH SPACE");
  EXPECT_EQ(c->secret_access_key, "procSecret");
  ASSERT_TRUE(c->expiration);
  EXPECT_NE(c->source.find("credential_process"), std::string::npos);
  // source: process pins the same helper.
  opts.source = CredentialSourceKind::process;
  EXPECT_EQ(resolve_credentials(opts).access_key_id, "ASIA WITH SPACE");
}

TEST(Process, FailureReportsStatusAndStderrButNeverStdout) {
  TempDir d;
  std::string helper = d.write("fail.sh",
                               "#!/bin/sh\n"
                               "echo '{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":"
                               "\"LEAKEDSECRET\"}'\n"
                               "echo 'signing helper: certificate expired' >&2\n"
                               "exit 3\n",
                               true);
  try {
    credentials_from_process(helper, std::chrono::seconds(10), "profile x");
    FAIL();
  } catch (const CredentialsError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("status 3"), std::string::npos) << m;
    EXPECT_NE(m.find("certificate expired"), std::string::npos) << m;
    EXPECT_EQ(m.find("LEAKEDSECRET"), std::string::npos) << m;
  }
  EXPECT_THROW(
      credentials_from_process(d.path().string() + "/does-not-exist", std::chrono::seconds(5), "p"),
      CredentialsError);
}

TEST(Process, HelperStartsWithDefaultSignalsEvenWhenTheDaemonIgnoresSigpipe) {
  TempDir d;
  // SigIgn in /proc/self/status: the helper reports its ignored-signal mask as the key id.
  std::string helper = d.write("sig.sh",
                               "#!/bin/sh\n"
                               "ign=$(awk '/^SigIgn/ {print $2}' /proc/self/status)\n"
                               "printf '{\"Version\":1,\"AccessKeyId\":\"%s\",\"SecretAccessKey\":"
                               "\"s\"}' \"$ign\"\n",
                               true);
  auto old = std::signal(SIGPIPE, SIG_IGN);
  auto c = credentials_from_process(helper, std::chrono::seconds(10), "p");
  std::signal(SIGPIPE, old);
  ASSERT_TRUE(c);
  // Bit 13 (SIGPIPE) of the hex mask must be clear.
  unsigned long long mask = std::stoull(c->access_key_id, nullptr, 16);
  EXPECT_EQ(mask & (1ULL << (SIGPIPE - 1)), 0ULL) << c->access_key_id;
}

TEST(Process, HungHelperIsKilledAtTheTimeout) {
  TempDir d;
  std::string helper = d.write("hang.sh", "#!/bin/sh\nexec sleep 30\n", true);
  try {
    credentials_from_process(helper, std::chrono::seconds(1), "p");
    FAIL();
  } catch (const CredentialsError& e) {
    EXPECT_NE(std::string(e.what()).find("killed"), std::string::npos) << e.what();
  }
}

TEST(Chain, OrderAndPinnedSource) {
  TempDir d;
  FakeEnv env = base_env();
  env.vars["AWS_SHARED_CREDENTIALS_FILE"] = d.write(
      "credentials", "[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = p\n");
  env.vars["CREDENTIALS_DIRECTORY"] = d.path().string() + "/sd";
  d.write("sd/aws_access_key_id", "AKIDSYSTEMD");
  d.write("sd/aws_secret_access_key", "s");
  env.vars["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  env.vars["AWS_SECRET_ACCESS_KEY"] = "e";
  EXPECT_EQ(resolve_credentials(options(env)).access_key_id, "AKIDENV");
  env.vars.erase("AWS_ACCESS_KEY_ID");
  env.vars.erase("AWS_SECRET_ACCESS_KEY");
  EXPECT_EQ(resolve_credentials(options(env)).access_key_id, "AKIDSYSTEMD");
  env.vars.erase("CREDENTIALS_DIRECTORY");
  EXPECT_EQ(resolve_credentials(options(env)).access_key_id, "AKIDPROFILE");

  // Pinned: only that provider, even when an earlier one would answer.
  env.vars["AWS_ACCESS_KEY_ID"] = "AKIDENV";
  env.vars["AWS_SECRET_ACCESS_KEY"] = "e";
  auto opts = options(env);
  opts.source = CredentialSourceKind::profile;
  EXPECT_EQ(resolve_credentials(opts).access_key_id, "AKIDPROFILE");
  opts.source = CredentialSourceKind::systemd;
  EXPECT_THROW(resolve_credentials(opts), CredentialsError);
}

TEST(Chain, NothingFoundListsWhatWasTried) {
  FakeEnv env = base_env();
  try {
    resolve_credentials(options(env));
    FAIL();
  } catch (const CredentialsError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("environment"), std::string::npos) << m;
    EXPECT_NE(m.find("profile default"), std::string::npos) << m;
    EXPECT_NE(m.find("IMDS"), std::string::npos) << m;
  }
}

TEST(Chain, BrokenConfiguredSourceStopsTheChain) {
  TempDir d;
  FakeEnv env = base_env();
  env.vars["AWS_CONFIG_FILE"] = d.write(
      "config", "[default]\ncredential_process = " + d.path().string() + "/missing-helper\n");
  env.vars["CREDENTIALS_DIRECTORY"] = d.path().string();  // empty: not ours
  EXPECT_THROW(resolve_credentials(options(env)), CredentialsError);
}

TEST(Mask, KeyIds) {
  EXPECT_EQ(mask_key_id("AKIAIOSFODNN7EXAMPLE"), "AKIA****MPLE");
  EXPECT_EQ(mask_key_id("short"), "*****");
}
