// The individual credential sources: environment, shared files, credential_process, container
// endpoint, IMDSv2, systemd credentials. The chain and the provider are in credentials.cpp.
//
// IMDS and container endpoints are fetched with a libcurl *easy* handle on the caller's thread
// (the provider's refresh thread, or start-up): they are a few tiny requests per hour, off the
// upload hot path, so they do not go through the curl-multi engine on the Asio loop.
//
// The HTTP sources (container endpoint, IMDSv2, web identity) are in credentials_endpoints.cpp.
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

extern char** environ;

namespace fe::aws {

namespace cred_detail {

std::string trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return std::string(s);
}

std::optional<std::string> env_nonempty(const EnvLookup& env, std::string_view name) {
  auto v = env(name);
  if (!v || v->empty()) return std::nullopt;
  return v;
}

bool env_true(const EnvLookup& env, std::string_view name) {
  auto v = env(name);
  if (!v) return false;
  std::string t = trim(*v);
  for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return t == "true" || t == "1";
}

std::optional<std::string> read_small_file(const std::string& path, std::size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::nullopt;
    throw CredentialsError("cannot read " + path + ": " + std::strerror(errno));
  }
  std::string data;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    data.append(buf, static_cast<std::size_t>(in.gcount()));
    if (data.size() > limit) throw CredentialsError(path + " is larger than expected");
  }
  return data;
}

}  // namespace cred_detail

using namespace cred_detail;

namespace {

// A file holding AWS secrets that group or others may read (or write) gets one loud warning per
// process naming the file and its mode, as ssh does for private keys. Warn, not refuse: on a
// hospital gateway refusing would stop every upload over a file mode, while the warning in the
// journal tells the administrator exactly what to chmod (docs/secrets.md).
void warn_if_exposed(const std::string& path, std::string_view what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  const unsigned mode = st.st_mode & 07777;
  if ((mode & (S_IRWXG | S_IRWXO)) == 0) return;
  static std::mutex mu;
  static std::set<std::string> warned;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!warned.insert(path).second) return;
  }
  char octal[8];
  std::snprintf(octal, sizeof octal, "%04o", mode);
  log::warning(std::string(what) + " " + path + " is accessible by group or others (mode " + octal +
                   "); it holds AWS secrets: run chmod 600 " + path,
               {{"CREDENTIALS_FILE", path}, {"MODE", octal}});
}

bool holds_secrets(const IniFile& ini) {
  for (const auto& [section, kv] : ini.sections)
    if (kv.count("aws_secret_access_key") || kv.count("aws_session_token")) return true;
  return false;
}

}  // namespace

EnvLookup process_environment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::string mask_key_id(std::string_view id) {
  if (id.size() <= 8) return std::string(id.size(), '*');
  return std::string(id.substr(0, 4)) + "****" + std::string(id.substr(id.size() - 4));
}

// ---------------------------------------------------------------------------------------------
// Time

std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm|-hh:mm]
  if (s.size() < 19) return std::nullopt;
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    out = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, se;
  if (!num(0, 4, y) || s[4] != '-' || !num(5, 2, mo) || s[7] != '-' || !num(8, 2, d) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !num(11, 2, h) || s[13] != ':' ||
      !num(14, 2, mi) || s[16] != ':' || !num(17, 2, se))
    return std::nullopt;
  // Years bounded so the time fits system_clock (int64 ns: up to 2262).
  if (y < 1970 || y > 2200 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
    return std::nullopt;
  std::size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
  }
  long offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (s.size() < pos + 6 || !num(pos + 1, 2, oh) || s[pos + 3] != ':' || !num(pos + 4, 2, om))
      return std::nullopt;
    offset = (s[pos] == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
    pos += 6;
  } else {
    return std::nullopt;  // no zone: ambiguous, refuse
  }
  if (pos != s.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  return std::chrono::system_clock::from_time_t(timegm(&tm) - offset);
}

// ---------------------------------------------------------------------------------------------
// Shared files

IniFile parse_ini(std::string_view text, std::string_view file_name) {
  IniFile ini;
  std::map<std::string, std::string>* section = nullptr;
  std::string* last_value = nullptr;
  int line_no = 0;
  std::size_t pos = 0;
  auto where = [&] { return std::string(file_name) + ":" + std::to_string(line_no) + ": "; };
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    const bool indented = raw[0] == ' ' || raw[0] == '\t';
    if (line[0] == '[') {
      auto close = line.find(']');
      if (close == std::string::npos)
        throw CredentialsError(where() + "section header without ']'");
      std::string rest = trim(std::string_view(line).substr(close + 1));
      if (!rest.empty() && rest[0] != '#' && rest[0] != ';')
        throw CredentialsError(where() + "unexpected text after section header");
      std::string name = trim(std::string_view(line).substr(1, close - 1));
      if (name.empty()) throw CredentialsError(where() + "empty section name");
      section = &ini.sections[name];
      last_value = nullptr;
      continue;
    }
    if (indented && last_value) {
      // Continuation / sub-property line ("s3 =\n  max_concurrent_requests = 20").
      if (!last_value->empty()) last_value->push_back('\n');
      last_value->append(line);
      continue;
    }
    auto eq = line.find('=');
    if (eq == std::string::npos)
      throw CredentialsError(where() + "expected 'key = value' or '[section]'");
    if (!section) throw CredentialsError(where() + "property outside of any [section]");
    std::string key = trim(std::string_view(line).substr(0, eq));
    if (key.empty()) throw CredentialsError(where() + "empty property name");
    std::string value = trim(std::string_view(line).substr(eq + 1));
    // Trailing comments need whitespace before '#'/';' so that values like secrets containing
    // those characters survive (the AWS profile-file rule).
    for (std::size_t i = 1; i < value.size(); ++i) {
      if ((value[i] == '#' || value[i] == ';') && (value[i - 1] == ' ' || value[i - 1] == '\t')) {
        value = trim(std::string_view(value).substr(0, i));
        break;
      }
    }
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    (*section)[key] = value;
    last_value = &(*section)[key];
  }
  return ini;
}

std::optional<std::string> Profile::get(const std::string& key) const {
  if (auto it = credentials_file.find(key); it != credentials_file.end()) return it->second;
  if (auto it = config_file.find(key); it != config_file.end()) return it->second;
  return std::nullopt;
}

std::string profile_name(const CredentialsOptions& opts) {
  if (opts.profile && !opts.profile->empty()) return *opts.profile;
  if (auto p = env_nonempty(opts.env, "AWS_PROFILE")) return *p;
  return "default";
}

Profile load_profile(const std::string& name, const EnvLookup& env) {
  Profile p;
  auto home = env_nonempty(env, "HOME");
  if (auto f = env_nonempty(env, "AWS_SHARED_CREDENTIALS_FILE"))
    p.credentials_path = *f;
  else if (home)
    p.credentials_path = *home + "/.aws/credentials";
  if (auto f = env_nonempty(env, "AWS_CONFIG_FILE"))
    p.config_path = *f;
  else if (home)
    p.config_path = *home + "/.aws/config";

  if (!p.credentials_path.empty()) {
    if (auto text = read_small_file(p.credentials_path)) {
      IniFile ini = parse_ini(*text, p.credentials_path);
      if (holds_secrets(ini)) warn_if_exposed(p.credentials_path, "AWS credentials file");
      // The credentials file names sections without the "profile " prefix.
      if (auto it = ini.sections.find(name); it != ini.sections.end())
        p.credentials_file = it->second;
    }
  }
  if (!p.config_path.empty()) {
    if (auto text = read_small_file(p.config_path)) {
      IniFile ini = parse_ini(*text, p.config_path);
      // ~/.aws/config is usually world-readable and that is fine, unless it holds keys.
      if (holds_secrets(ini)) warn_if_exposed(p.config_path, "AWS config file");
      // The config file uses [profile name]; [default] (and [profile default]) for the default.
      auto take = [&](const std::string& section) {
        auto it = ini.sections.find(section);
        if (it == ini.sections.end()) return false;
        p.config_file = it->second;
        return true;
      };
      // Whitespace inside the brackets is allowed ("[profile   x]").
      for (auto& [sec, kv] : ini.sections) {
        if (sec.rfind("profile", 0) == 0 && sec.size() > 7 && (sec[7] == ' ' || sec[7] == '\t') &&
            trim(std::string_view(sec).substr(7)) == name) {
          p.config_file = kv;
          break;
        }
      }
      if (p.config_file.empty() && name == "default") take("default");
    }
  }
  return p;
}

std::optional<std::string> resolve_region(const CredentialsOptions& opts) {
  if (auto r = env_nonempty(opts.env, "AWS_REGION")) return r;
  if (auto r = env_nonempty(opts.env, "AWS_DEFAULT_REGION")) return r;
  try {
    Profile p = load_profile(profile_name(opts), opts.env);
    if (auto it = p.config_file.find("region"); it != p.config_file.end() && !it->second.empty())
      return it->second;
  } catch (const CredentialsError&) {
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Environment, systemd

std::optional<Credentials> credentials_from_env(const EnvLookup& env) {
  auto id = env_nonempty(env, "AWS_ACCESS_KEY_ID");
  auto secret = env_nonempty(env, "AWS_SECRET_ACCESS_KEY");
  if (!id && !secret) return std::nullopt;
  if (!id || !secret)
    throw CredentialsError(std::string("environment: ") +
                           (id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID") +
                           " is missing (both must be set)");
  Credentials c;
  c.access_key_id = trim(*id);
  c.secret_access_key = trim(*secret);
  if (auto t = env_nonempty(env, "AWS_SESSION_TOKEN")) c.session_token = trim(*t);
  c.source = "environment";
  return c;
}

std::optional<Credentials> credentials_from_systemd(const EnvLookup& env) {
  auto dir = env_nonempty(env, "CREDENTIALS_DIRECTORY");
  if (!dir) return std::nullopt;
  auto id = read_small_file(*dir + "/aws_access_key_id", 4096);
  auto secret = read_small_file(*dir + "/aws_secret_access_key", 4096);
  if (!id && !secret) {
    // One credential named "aws" in the AWS credentials-file format (LoadCredential=aws:<file>):
    // section $AWS_PROFILE, else [default], else the only section.
    auto file = read_small_file(*dir + "/aws", 64 * 1024);
    if (!file) return std::nullopt;  // the unit passes other credentials, not ours
    const std::string path = *dir + "/aws";
    warn_if_exposed(path, "systemd credential");
    IniFile ini = parse_ini(*file, path);
    std::string want = env_nonempty(env, "AWS_PROFILE").value_or("default");
    auto it = ini.sections.find(want);
    if (it == ini.sections.end() && ini.sections.size() == 1) it = ini.sections.begin();
    if (it == ini.sections.end())
      throw CredentialsError("systemd credential " + path + ": no [" + want + "] section");
    auto& kv = it->second;
    auto fid = kv.find("aws_access_key_id");
    auto fsecret = kv.find("aws_secret_access_key");
    if (fid == kv.end() || fsecret == kv.end() || fid->second.empty() || fsecret->second.empty())
      throw CredentialsError("systemd credential " + path + " [" + it->first +
                             "]: aws_access_key_id and aws_secret_access_key must both be set");
    Credentials c;
    c.access_key_id = fid->second;
    c.secret_access_key = fsecret->second;
    if (auto t = kv.find("aws_session_token"); t != kv.end()) c.session_token = t->second;
    c.source = "systemd credential " + path + " [" + it->first + "]";
    return c;
  }
  if (!id || !secret)
    throw CredentialsError("systemd credentials in " + *dir + ": " +
                           (id ? "aws_secret_access_key" : "aws_access_key_id") +
                           " is missing (LoadCredential= both)");
  warn_if_exposed(*dir + "/aws_secret_access_key", "systemd credential");
  Credentials c;
  c.access_key_id = trim(*id);
  c.secret_access_key = trim(*secret);
  if (auto t = read_small_file(*dir + "/aws_session_token", 8192)) {
    warn_if_exposed(*dir + "/aws_session_token", "systemd credential");
    c.session_token = trim(*t);
  }
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    throw CredentialsError("systemd credentials in " + *dir + ": empty key file");
  c.source = "systemd credentials (" + *dir + ")";
  return c;
}

// ---------------------------------------------------------------------------------------------
// credential_process

std::vector<std::string> split_command_line(std::string_view cmd) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  for (std::size_t i = 0; i < cmd.size(); ++i) {
    char c = cmd[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else if (c == '\'') {
      auto end = cmd.find('\'', i + 1);
      if (end == std::string_view::npos)
        throw CredentialsError("credential_process: unterminated single quote");
      cur.append(cmd.substr(i + 1, end - i - 1));
      i = end;
      in_word = true;
    } else if (c == '"') {
      std::size_t j = i + 1;
      for (;; ++j) {
        if (j >= cmd.size())
          throw CredentialsError("credential_process: unterminated double quote");
        if (cmd[j] == '"') break;
        if (cmd[j] == '\\' && j + 1 < cmd.size() &&
            (cmd[j + 1] == '"' || cmd[j + 1] == '\\' || cmd[j + 1] == '$' || cmd[j + 1] == '`' ||
             cmd[j + 1] == '\n')) {
          if (cmd[j + 1] != '\n') cur.push_back(cmd[j + 1]);
          ++j;
          continue;
        }
        cur.push_back(cmd[j]);
      }
      i = j;
      in_word = true;
    } else if (c == '\\') {
      if (i + 1 < cmd.size()) {
        if (cmd[i + 1] != '\n') cur.push_back(cmd[i + 1]);
        ++i;
      }
      in_word = true;
    } else {
      cur.push_back(c);
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(cur));
  if (words.empty()) throw CredentialsError("credential_process: empty command");
  return words;
}

Credentials parse_process_output(std::string_view json, std::string_view source) {
  const std::string where = "credential_process (" + std::string(source) + ")";
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  // Never quote the output in an error: it is a secret when it is nearly right.
  if (parser.parse(json.data(), json.size()).get(doc) != simdjson::SUCCESS || !doc.is_object())
    throw CredentialsError(where + ": output is not a JSON object");
  int64_t version = 0;
  if (doc["Version"].get(version) != simdjson::SUCCESS || version != 1)
    throw CredentialsError(where + ": output must have \"Version\": 1");
  auto str = [&](const char* key, bool required) -> std::string {
    std::string_view v;
    auto err = doc[key].get(v);
    if (err == simdjson::SUCCESS) return std::string(v);
    if (required) throw CredentialsError(where + ": output has no string \"" + key + "\"");
    return {};
  };
  Credentials c;
  c.access_key_id = str("AccessKeyId", true);
  c.secret_access_key = str("SecretAccessKey", true);
  c.session_token = str("SessionToken", false);
  std::string exp = str("Expiration", false);
  if (!exp.empty()) {
    auto t = parse_iso8601(exp);
    if (!t) throw CredentialsError(where + ": Expiration is not an ISO 8601 time");
    c.expiration = t;
  }
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    throw CredentialsError(where + ": empty AccessKeyId or SecretAccessKey");
  c.source = where;
  return c;
}

std::optional<Credentials> credentials_from_process(const std::string& command,
                                                    std::chrono::seconds timeout,
                                                    const std::string& source) {
  std::vector<std::string> argv_s = split_command_line(command);
  const std::string where = "credential_process (" + source + ")";
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) throw CredentialsError(where + ": pipe failed");
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    throw CredentialsError(where + ": pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  // No shell: the words are exec'd directly (quoting as split_command_line documents).
  // The daemon ignores SIGPIPE and may block signals in its threads; the helper starts with
  // default dispositions and an empty mask, as it would from a shell.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2})
    sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  int rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    throw CredentialsError(where + ": cannot run '" + argv_s[0] + "': " + std::strerror(rc));
  }
  std::string out, err;
  constexpr std::size_t kMaxOut = 64 * 1024, kMaxErr = 4096;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false, too_big = false;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int n = poll(fds, 2, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      if (r <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      std::string& dst = i == 0 ? out : err;
      std::size_t limit = i == 0 ? kMaxOut : kMaxErr;
      if (dst.size() < limit) dst.append(buf, std::min<std::size_t>(r, limit - dst.size()));
      if (i == 0 && out.size() >= kMaxOut) too_big = true;
    }
    if (too_big) break;
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  if (timed_out || too_big) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    throw CredentialsError(where + ": no answer within " + std::to_string(timeout.count()) +
                           " s (killed)");
  if (too_big) throw CredentialsError(where + ": output larger than 64 KiB");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    // stderr is the helper's diagnostics (what aws_signing_helper prints on failure); stdout is
    // never shown. Bounded, one line.
    std::string diag = trim(err);
    for (auto& c : diag)
      if (c == '\n' || c == '\r' || static_cast<unsigned char>(c) < 0x20) c = ' ';
    if (diag.size() > 300) diag = diag.substr(0, 300) + "...";
    throw CredentialsError(where + ": " +
                           (WIFEXITED(status)
                                ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                : "killed by signal " + std::to_string(WTERMSIG(status))) +
                           (diag.empty() ? "" : ": " + diag));
  }
  Credentials c = parse_process_output(out, source);
  std::fill(out.begin(), out.end(), '\0');
  return c;
}

std::optional<Credentials> profile_own_credentials(const std::string& name, const Profile& p,
                                                   const CredentialsOptions& opts) {
  auto static_keys = [&](const std::map<std::string, std::string>& kv,
                         const std::string& file) -> std::optional<Credentials> {
    auto id = kv.find("aws_access_key_id");
    auto secret = kv.find("aws_secret_access_key");
    if (id == kv.end() && secret == kv.end()) return std::nullopt;
    if (id == kv.end() || secret == kv.end() || id->second.empty() || secret->second.empty())
      throw CredentialsError("profile " + name + " in " + file +
                             ": aws_access_key_id and aws_secret_access_key must both be set");
    Credentials c;
    c.access_key_id = id->second;
    c.secret_access_key = secret->second;
    if (auto t = kv.find("aws_session_token"); t != kv.end()) c.session_token = t->second;
    c.source = "profile " + name + " (" + file + ")";
    return c;
  };
  if (auto c = static_keys(p.credentials_file, p.credentials_path)) return c;
  if (auto cmd = p.get("credential_process"); cmd && !cmd->empty())
    return credentials_from_process(*cmd, opts.process_timeout, "profile " + name);
  if (auto c = static_keys(p.config_file, p.config_path)) return c;
  return std::nullopt;
}

std::optional<Credentials> credentials_from_profile(const CredentialsOptions& opts) {
  const std::string name = profile_name(opts);
  Profile p = load_profile(name, opts.env);
  if (!p.found()) return std::nullopt;
  refuse_sso_profile(name, p);
  if (p.get("web_identity_token_file"))
    throw CredentialsError("profile " + name +
                           ": web_identity_token_file in a profile is not supported; set "
                           "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN in the service's "
                           "environment instead (docs/aws-credentials.md)");
  // role_arn makes it an AssumeRole profile, even when it also holds keys (botocore's order).
  if (p.get("role_arn")) return credentials_from_assume_role(opts, name);
  return profile_own_credentials(name, p, opts);
}

}  // namespace fe::aws
