// A file holding AWS secrets that group or others can access gets one warning naming the file and
// its mode (as ssh does for private keys); a private file, or a world-readable config file without
// keys, gets none. The warning goes through the real logger to a real stderr file descriptor.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "log_capture.hpp"
#include "service/log.hpp"
#include "test_env.hpp"

namespace {

using namespace fe::aws;
using fe::test::FakeEnv;
using fe::test::TempDir;

// Runs f with stderr captured; returns what was written there.
template <class F>
std::string stderr_of(F f) {
  fe::test::LogCapture cap;
  f();
  return cap.restore();
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

FakeEnv env_with(const std::string& creds, const std::string& config) {
  FakeEnv env;
  env.vars["HOME"] = "/nonexistent";
  env.vars["AWS_SHARED_CREDENTIALS_FILE"] = creds;
  env.vars["AWS_CONFIG_FILE"] = config;
  return env;
}

TEST(CredentialFileModes, GroupOrWorldReadableCredentialsFileWarnsOnceNamingFileAndMode) {
  TempDir d;
  auto creds = d.write("credentials",
                       "[default]\naws_access_key_id = AKIDMODE\naws_secret_access_key = "
                       "modeSecretValue\n");
  auto config = d.write("config", "[default]\nregion = eu-central-1\n");
  ASSERT_EQ(chmod(creds.c_str(), 0644), 0);
  ASSERT_EQ(chmod(config.c_str(), 0644), 0);
  auto env = env_with(creds, config);
  std::string out = stderr_of([&] {
    load_profile("default", env.lookup());
    load_profile("default", env.lookup());  // read again (refresh): still one warning
  });
  EXPECT_EQ(count(out, "warning: AWS credentials file " + creds), 1u) << out;
  EXPECT_NE(out.find("(mode 0644)"), std::string::npos) << out;
  EXPECT_NE(out.find("chmod 600 " + creds), std::string::npos) << out;
  EXPECT_NE(out.find("MODE=0644"), std::string::npos) << out;
  // The config file holds no keys: world-readable is normal for it.
  EXPECT_EQ(out.find(config), std::string::npos) << out;
  EXPECT_EQ(out.find("modeSecretValue"), std::string::npos) << out;
  EXPECT_EQ(count(out, "\n"), 1u) << out;
}

TEST(CredentialFileModes, PrivateFilesAreQuiet) {
  TempDir d;
  auto creds = d.write("credentials",
                       "[default]\naws_access_key_id = AKIDMODE\naws_secret_access_key = s\n");
  auto config = d.write("config", "[default]\naws_secret_access_key = s\n");
  ASSERT_EQ(chmod(creds.c_str(), 0600), 0);
  ASSERT_EQ(chmod(config.c_str(), 0400), 0);
  auto env = env_with(creds, config);
  std::string out = stderr_of([&] { load_profile("default", env.lookup()); });
  EXPECT_EQ(out, "");
}

TEST(CredentialFileModes, ConfigFileWithKeysAndGroupAccessWarns) {
  TempDir d;
  auto creds = d.path() / "no-credentials-file";
  auto config =
      d.write("config", "[default]\naws_access_key_id = AKIDCFG\naws_secret_access_key = s\n");
  ASSERT_EQ(chmod(config.c_str(), 0640), 0);
  auto env = env_with(creds.string(), config);
  std::string out = stderr_of([&] { load_profile("default", env.lookup()); });
  EXPECT_EQ(count(out, "warning: AWS config file " + config), 1u) << out;
  EXPECT_NE(out.find("(mode 0640)"), std::string::npos) << out;
}

TEST(CredentialFileModes, SystemdCredentialFilesAreChecked) {
  TempDir d;
  FakeEnv env;
  env.vars["CREDENTIALS_DIRECTORY"] = d.path().string();
  auto id = d.write("aws_access_key_id", "AKIDSYSTEMD\n");
  auto secret = d.write("aws_secret_access_key", "sysSecretValue\n");
  ASSERT_EQ(chmod(id.c_str(), 0644), 0);  // the key id is not a secret: not warned about
  ASSERT_EQ(chmod(secret.c_str(), 0604), 0);
  std::string out = stderr_of([&] { ASSERT_TRUE(credentials_from_systemd(env.lookup())); });
  EXPECT_EQ(count(out, "warning: systemd credential " + secret), 1u) << out;
  EXPECT_NE(out.find("(mode 0604)"), std::string::npos) << out;
  EXPECT_EQ(out.find(id + " "), std::string::npos) << out;
  EXPECT_EQ(out.find("sysSecretValue"), std::string::npos) << out;
}

}  // namespace
