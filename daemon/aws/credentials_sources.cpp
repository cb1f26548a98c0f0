// The individual credential sources: environment, shared files, credential_process, container
// endpoint, IMDSv2, systemd credentials. The chain and the provider are in credentials.cpp.
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
#include "aws/xml.hpp"
#include "service/log.hpp"

extern char** environ;

namespace fe::aws {
namespace {

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

// Reads a small file; nullopt when it does not exist; throws when it exists but cannot be read.
std::optional<std::string> read_small_file(const std::string& path, std::size_t limit = 1 << 20) {
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

std::optional<Credentials> credentials_from_profile(const CredentialsOptions& opts) {
  const std::string name = profile_name(opts);
  Profile p = load_profile(name, opts.env);
  if (!p.found()) return std::nullopt;
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
  if (p.get("role_arn") || p.get("sso_session") || p.get("sso_start_url") ||
      p.get("web_identity_token_file"))
    throw CredentialsError("profile " + name +
                           ": role_arn/SSO/web identity profiles need STS and are not supported; "
                           "use credential_process (e.g. aws_signing_helper) or static keys");
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// HTTP (container endpoint, IMDS)

namespace {

struct MiniResponse {
  long status = 0;
  std::string body;
  std::string error;  // transport error (curl's text); empty when the server answered
};

size_t collect(char* ptr, size_t size, size_t nmemb, void* user) {
  auto* s = static_cast<std::string*>(user);
  size_t n = size * nmemb;
  if (s->size() + n > 64 * 1024) return 0;  // credentials documents are tiny
  s->append(ptr, n);
  return n;
}

struct FetchExtras {
  std::string body;                  // request body (POST)
  bool use_proxy = false;            // metadata endpoints: never; STS: yes
  std::optional<std::string> proxy;  // explicit proxy ("" = none); unset: the environment's
  std::string ca_bundle;             // AWS_CA_BUNDLE for STS (hospital TLS inspection)
};

MiniResponse http_fetch(const char* method, const std::string& url,
                        const std::vector<std::string>& headers, std::chrono::milliseconds timeout,
                        const FetchExtras& extras = {}) {
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
  std::string region = env_nonempty(opts.env, "AWS_REGION")
                           .value_or(env_nonempty(opts.env, "AWS_DEFAULT_REGION").value_or(""));
  std::string url;
  if (auto ep = env_nonempty(opts.env, "AWS_ENDPOINT_URL_STS"))
    url = *ep;
  else if (!region.empty())
    url = "https://sts." + region + ".amazonaws.com";
  else
    url = "https://sts.amazonaws.com";
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += "/";
  const std::string where = "web identity (STS " + url + ", role " + *role_arn + ")";
  // AssumeRoleWithWebIdentity is an unsigned call: the token is the proof.
  FetchExtras extras;
  extras.body =
      "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + form_encode(*role_arn) +
      "&RoleSessionName=" + form_encode(session) + "&WebIdentityToken=" + form_encode(trim(*token));
  extras.use_proxy = true;
  extras.proxy = opts.proxy;
  if (opts.ca_bundle && !opts.ca_bundle->empty())
    extras.ca_bundle = *opts.ca_bundle;
  else if (auto ca = env_nonempty(opts.env, "AWS_CA_BUNDLE"))
    extras.ca_bundle = *ca;
  MiniResponse r;
  for (int attempt = 0; attempt < 2; ++attempt) {
    r = http_fetch(
        "POST", url,
        {"Content-Type: application/x-www-form-urlencoded; charset=utf-8", "Accept: text/xml"},
        std::chrono::milliseconds(5000), extras);
    if (r.error.empty() && r.status < 500) break;
  }
  std::fill(extras.body.begin(), extras.body.end(), '\0');
  if (!r.error.empty()) throw CredentialsError(where + ": " + r.error);
  auto doc = xml::parse(r.body);
  if (r.status != 200) {
    std::string code;
    if (doc.root) {
      const xml::Element* e = doc.root->name == "Error" ? &*doc.root : doc.root->child("Error");
      if (e) code = e->child_text("Code");
    }
    throw CredentialsError(where + ": HTTP " + std::to_string(r.status) +
                           (code.empty() ? "" : " " + code.substr(0, 80)));
  }
  const xml::Element* cr = nullptr;
  if (doc.root)
    if (const xml::Element* res = doc.root->child("AssumeRoleWithWebIdentityResult"))
      cr = res->child("Credentials");
  if (!cr) throw CredentialsError(where + ": unexpected response (no Credentials)");
  Credentials c;
  c.access_key_id = cr->child_text("AccessKeyId");
  c.secret_access_key = cr->child_text("SecretAccessKey");
  c.session_token = cr->child_text("SessionToken");
  if (c.access_key_id.empty() || c.secret_access_key.empty() || c.session_token.empty())
    throw CredentialsError(where + ": response lacks AccessKeyId/SecretAccessKey/SessionToken");
  if (auto exp = cr->child_text("Expiration"); !exp.empty()) {
    auto t = parse_iso8601(exp);
    if (!t) throw CredentialsError(where + ": Expiration is not an ISO 8601 time");
    c.expiration = t;
  }
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
