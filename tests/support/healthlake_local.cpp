#include "healthlake_local.hpp"

#include "temp_dir.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace fe::test {
namespace fs = std::filesystem;

fs::path HealthLakeLocal::binary() {
  if (const char* env = std::getenv("HEALTHLAKE_LOCAL_BIN")) return env;
  return HEALTHLAKE_LOCAL_BIN;
}

HealthLakeLocal::HealthLakeLocal(HealthLakeLocalOptions options) : opt_(std::move(options)) {
  if (opt_.data_dir.empty()) {
    data_ = make_temp_dir("healthlake-local");
    own_dir_ = true;
  } else {
    data_ = opt_.data_dir;
    fs::create_directories(data_);
  }
  fs::path port_file = data_ / "port";
  fs::remove(port_file);
  std::vector<std::string> args = {binary().string(),
                                   "--data",
                                   (data_ / "store").string(),
                                   "--listen",
                                   "127.0.0.1:" + std::to_string(opt_.port),
                                   "--port-file",
                                   port_file.string(),
                                   "--access-key",
                                   opt_.access_key,
                                   "--secret-key",
                                   opt_.secret_key,
                                   "--region",
                                   opt_.region,
                                   "--request-log",
                                   request_log().string()};
  if (!opt_.job_timing.empty()) args.insert(args.end(), {"--job-timing", opt_.job_timing});
  for (const auto& d : opt_.datastores) args.insert(args.end(), {"--datastore", d});
  for (const auto& b : opt_.buckets) args.insert(args.end(), {"--bucket", b});
  if (!opt_.faults.empty()) args.insert(args.end(), {"--faults", opt_.faults});
  if (!opt_.session_token.empty()) args.insert(args.end(), {"--session-token", opt_.session_token});
  if (opt_.min_part_size)
    args.insert(args.end(), {"--min-part-size", std::to_string(opt_.min_part_size)});
  for (const auto& a : opt_.extra_args) args.push_back(a);

  std::string err_path = stderr_log().string();
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 2);
      dup2(fd, 1);
      close(fd);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  // Wait for the port file (sanitizer builds start slowly; allow a generous minute).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream e(err_path);
      std::string text((std::istreambuf_iterator<char>(e)), {});
      throw std::runtime_error("healthlake-local exited during start-up: " + text);
    }
    std::ifstream pf(port_file);
    int port = 0;
    if (pf >> port && port > 0) {
      port_ = static_cast<uint16_t>(port);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop();
  throw std::runtime_error("healthlake-local did not write its port file within 60 s");
}

HealthLakeLocal::~HealthLakeLocal() {
  stop();
  if (own_dir_ && !std::getenv("HEALTHLAKE_LOCAL_KEEP")) {
    std::error_code ec;
    fs::remove_all(data_, ec);
  }
}

int HealthLakeLocal::stop() {
  if (pid_ <= 0) return 0;
  kill(pid_, SIGTERM);
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}

std::string HealthLakeLocal::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

std::vector<std::string> HealthLakeLocal::request_log_lines() const {
  std::vector<std::string> lines;
  std::ifstream in(request_log());
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

std::map<std::string, uint64_t> HealthLakeLocal::imported_resources(
    const std::string& datastore) const {
  std::string ds = datastore.empty() ? this->datastore() : datastore;
  std::map<std::string, uint64_t> counts;
  std::ifstream in(data_ / "store" / "healthlake" / ds / "resources.jsonl");
  std::string line;
  // Lines are written by the emulator as {"resourceType":"T","id":"I",...}.
  auto field = [](const std::string& l, const std::string& name) {
    std::string key = "\"" + name + "\":\"";
    auto a = l.find(key);
    if (a == std::string::npos) return std::string();
    a += key.size();
    return l.substr(a, l.find('"', a) - a);
  };
  while (std::getline(in, line))
    if (!line.empty()) ++counts[field(line, "resourceType") + "/" + field(line, "id")];
  return counts;
}

std::optional<std::string> HealthLakeLocal::object(const std::string& bucket,
                                                   const std::string& key) const {
  // Objects are stored as <data>/s3/buckets/<bucket>/<hex sha256(key)>.
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(key.data(), key.size(), md, &len, EVP_sha256(), nullptr);
  static const char* digits = "0123456789abcdef";
  std::string name;
  for (unsigned i = 0; i < len; ++i) {
    name.push_back(digits[md[i] >> 4]);
    name.push_back(digits[md[i] & 15]);
  }
  std::ifstream in(data_ / "store" / "s3" / "buckets" / bucket / name, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace fe::test
