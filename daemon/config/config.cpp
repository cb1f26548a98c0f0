// Loading and checking the YAML configuration. The walker below reads every key the daemon knows,
// records *every* problem with its position, and only hands out a Config when there are none, so
// an operator fixes a file in one round instead of one error per restart.
#include "config/config.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include "config/units.hpp"

namespace fe::config {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxConfigBytes = 1 << 20;

// ---- small helpers --------------------------------------------------------------------------

// Optimal string alignment distance (Levenshtein plus adjacent transpositions), for "did you mean".
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The nearest candidate if it is close enough to be a plausible typo; "" otherwise.
std::string suggest(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string lower(word);
  for (char& c : lower) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (auto c : candidates) {
    size_t d = std::min(edit_distance(word, c), edit_distance(lower, c));
    // '-' vs '_' confusion is the most common typo in these files; count it as half an edit.
    std::string alt(word);
    std::replace(alt.begin(), alt.end(), '-', '_');
    if (alt == c) {
      d = 1;
    }
    std::replace(alt.begin(), alt.end(), '_', '-');
    if (alt == c) {
      d = 1;
    }
    if (d < best_d) {
      best_d = d;
      best = std::string(c);
    }
  }
  return best;
}

std::string join(const std::vector<std::string_view>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) {
      out += sep;
    }
    out += v[i];
  }
  return out;
}

bool is_name_char(char c, bool first) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         (!first && std::isdigit(static_cast<unsigned char>(c)));
}

// ${VAR}, ${VAR:-default}, $$ -> $. Any other '$' stays as written.
bool expand_env(std::string_view in, std::string& out, std::string& why) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c != '$' || i + 1 >= in.size()) {
      out += c;
      continue;
    }
    if (in[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (in[i + 1] != '{') {
      out += c;
      continue;
    }
    size_t close = in.find('}', i + 2);
    if (close == std::string_view::npos) {
      why = "unterminated '${' (write '$$' for a literal '$')";
      return false;
    }
    std::string_view body = in.substr(i + 2, close - i - 2);
    std::string_view name = body;
    std::optional<std::string_view> fallback;
    if (auto p = body.find(":-"); p != std::string_view::npos) {
      name = body.substr(0, p);
      fallback = body.substr(p + 2);
    }
    bool valid = !name.empty();
    for (size_t k = 0; k < name.size(); ++k) {
      valid = valid && is_name_char(name[k], k == 0);
    }
    if (!valid) {
      why = "'${" + std::string(body) + "}' is not a valid environment reference (${NAME} or " +
            "${NAME:-default})";
      return false;
    }
    const char* v = std::getenv(std::string(name).c_str());
    if (v && (*v || !fallback)) {
      out += v;
    } else if (fallback) {
      out += *fallback;
    } else {
      why = "environment variable " + std::string(name) + " is not set (use ${" +
            std::string(name) + ":-default} for a default)";
      return false;
    }
    i = close;
  }
  return true;
}

const std::regex& re(const char* pattern) {
  // One compiled regex per pattern literal; config loading is rare, so a small map is fine.
  static std::mutex mu;
  static std::map<const char*, std::regex> cache;
  std::lock_guard lock(mu);
  auto it = cache.find(pattern);
  if (it == cache.end()) {
    it = cache.emplace(pattern, std::regex(pattern, std::regex::ECMAScript)).first;
  }
  return it->second;
}

bool matches(const std::string& s, const char* pattern) {
  return std::regex_match(s, re(pattern));
}

// ---- AWS identifier checks (each returns "" when fine, else the reason) ---------------------

std::string check_bucket(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) {
    return "S3 bucket names are 3 to 63 characters long";
  }
  if (!matches(b, "[a-z0-9.-]+")) {
    return "S3 bucket names use only lowercase letters, digits, '.' and '-'";
  }
  auto edge = [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c));
  };
  if (!edge(b.front()) || !edge(b.back())) {
    return "S3 bucket names begin and end with a lowercase letter or a digit";
  }
  if (b.find("..") != std::string::npos) {
    return "S3 bucket names have no two adjacent periods";
  }
  if (matches(b, "[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+")) {
    return "S3 bucket names are not formatted as IP addresses";
  }
  for (const char* p : {"xn--", "sthree-", "amzn-s3-demo-"}) {
    if (b.starts_with(p)) {
      return std::string("S3 bucket names do not start with '") + p + "'";
    }
  }
  for (const char* s : {"-s3alias", "--ol-s3", ".mrap", "--x-s3"}) {
    if (b.ends_with(s)) {
      return std::string("S3 bucket names do not end with '") + s + "'";
    }
  }
  return "";
}

std::string check_kms(const std::string& k) {
  // HealthLake's KmsKeyId pattern (also what S3 accepts for SSE-KMS): key id, key ARN, alias,
  // alias ARN, multi-region key id.
  if (k.empty() || k.size() > 400) {
    return "a KMS key is 1 to 400 characters";
  }
  if (matches(k,
              "arn:aws(-[a-z]+)*:kms:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:(key/[A-Za-z0-9-]+|alias/"
              "[A-Za-z0-9:/_-]+)") ||
      matches(k,
              "(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})") ||
      matches(k, "alias/[A-Za-z0-9:/_-]+")) {
    return "";
  }
  return "expected a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), alias ARN, key id or "
         "alias/NAME";
}

std::string check_s3_uri(const std::string& u) {
  std::smatch m;
  if (!std::regex_match(u, m, re("s3://([^/]+)(/.*)?"))) {
    return "expected an S3 URI such as s3://bucket/prefix/";
  }
  std::string why = check_bucket(m[1].str());
  if (!why.empty()) {
    return "bucket '" + m[1].str() + "': " + why;
  }
  return "";
}

std::string check_url(const std::string& u) {
  if (!matches(u, "https?://(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?(/[^\\s]*)?")) {
    return "expected an http:// or https:// URL such as http://127.0.0.1:4566";
  }
  return "";
}

std::string check_key_part(const std::string& s, bool allow_slash) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      return "must not contain control characters";
    }
  }
  if (!allow_slash && s.find('/') != std::string::npos) {
    return "must not contain '/'";
  }
  std::string_view v = s;
  size_t pos = 0;
  while (pos <= v.size()) {
    size_t next = v.find('/', pos);
    auto seg = v.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
    if (seg == "..") {
      return "must not contain '..' segments";
    }
    if (next == std::string_view::npos) {
      break;
    }
    pos = next + 1;
  }
  return "";
}

// a is b, or a is inside b.
bool inside_or_same(const fs::path& a, const fs::path& b) {
  auto ai = a.begin();
  for (auto bi = b.begin(); bi != b.end(); ++bi, ++ai) {
    if (bi->empty()) {
      continue;  // trailing separator
    }
    if (ai == a.end() || *ai != *bi) {
      return false;
    }
  }
  return true;
}

fs::path normal(const std::string& s) {
  fs::path p = fs::path(s).lexically_normal();
  std::string t = p.string();
  while (t.size() > 1 && t.back() == '/') {
    t.pop_back();
  }
  return t;
}

// ---- the walker ---------------------------------------------------------------------------

struct Item {
  YAML::Node key;
  YAML::Node value;
  std::string path;
  YAML::Mark mark;  // where to point for problems with the value
};

class Checker;

// One YAML mapping, with unknown and duplicate keys already reported.
class Map {
 public:
  Map(Checker& c, const YAML::Node& node, std::string path, YAML::Mark mark,
      std::vector<std::string_view> known);
  bool ok() const { return ok_; }
  const Item* get(std::string_view key) const {
    for (const auto& i : items_) {
      if (i.key.Scalar() == key) {
        return &i;
      }
    }
    return nullptr;
  }
  // Position of the mapping itself (for "missing key" errors).
  YAML::Mark mark() const { return mark_; }
  const std::string& path() const { return path_; }

 private:
  bool ok_ = false;
  std::vector<Item> items_;
  std::string path_;
  YAML::Mark mark_;
};

class Checker {
 public:
  explicit Checker(std::string file) : file_(std::move(file)) {}

  std::vector<Error> errors;
  std::vector<Error> warnings;  // not fatal; LoadResult::warnings

  void error(const YAML::Mark& m, const std::string& path, std::string msg) {
    errors.push_back(at(m, path, std::move(msg)));
  }
  void warning(const YAML::Mark& m, const std::string& path, std::string msg) {
    warnings.push_back(at(m, path, std::move(msg)));
  }
  Error at(const YAML::Mark& m, const std::string& path, std::string msg) const {
    Error e;
    e.file = file_;
    e.line = m.line >= 0 ? m.line + 1 : 0;
    e.column = m.column >= 0 ? m.column + 1 : 0;
    e.path = path;
    e.message = std::move(msg);
    return e;
  }

  static YAML::Mark mark_of(const YAML::Node& n, const YAML::Mark& fallback) {
    if (n.IsDefined()) {
      auto m = n.Mark();
      if (m.line >= 0) {
        return m;
      }
    }
    return fallback;
  }

  static std::string child(const std::string& parent, std::string_view key) {
    return parent.empty() ? std::string(key) : parent + "." + std::string(key);
  }

  static const char* kind(const YAML::Node& n) {
    switch (n.Type()) {
      case YAML::NodeType::Map:
        return "a mapping";
      case YAML::NodeType::Sequence:
        return "a list";
      case YAML::NodeType::Null:
        return "null";
      case YAML::NodeType::Scalar:
        return "a scalar";
      default:
        return "nothing";
    }
  }

  // Scalar text after ${VAR} expansion; nullopt (with an error) if not a scalar or bad expansion.
  std::optional<std::string> text(const Item& it, bool allow_null = false) {
    if (it.value.IsNull() && allow_null) {
      return std::nullopt;
    }
    if (!it.value.IsScalar()) {
      error(it.mark, it.path, std::string("expected a value, got ") + kind(it.value));
      return std::nullopt;
    }
    std::string out, why;
    if (!expand_env(it.value.Scalar(), out, why)) {
      error(it.mark, it.path, why);
      return std::nullopt;
    }
    return out;
  }

  bool is_null(const Item& it) {
    if (it.value.IsNull()) {
      return true;
    }
    // "${EMPTY_VAR:-}" style values count as null too, so env expansion can disable a setting.
    if (it.value.IsScalar() && it.value.Tag() != "!") {
      std::string out, why;
      if (expand_env(it.value.Scalar(), out, why) && (out == "null" || out == "~")) {
        return true;
      }
    }
    return false;
  }

  void missing(const Map& m, std::string_view key, std::string_view hint = "") {
    std::string msg = "missing required key '" + std::string(key) + "'";
    if (!hint.empty()) {
      msg += " (" + std::string(hint) + ")";
    }
    error(m.mark(), child(m.path(), key), msg);
  }

  // --- typed getters: each leaves `out` untouched when the key is absent or invalid ---

  bool string(const Map& m, std::string_view key, std::string& out, bool required,
              const std::function<std::string(const std::string&)>& check = {}) {
    const Item* it = m.get(key);
    if (!it || it->value.IsNull()) {
      if (required) {
        missing(m, key);
      }
      return false;
    }
    auto v = text(*it);
    if (!v) {
      return false;
    }
    if (required && v->empty()) {
      error(it->mark, it->path, "must not be empty");
      return false;
    }
    if (check) {
      std::string why = check(*v);
      if (!why.empty()) {
        error(it->mark, it->path, why);
        return false;
      }
    }
    out = *v;
    return true;
  }

  void opt_string(const Map& m, std::string_view key, std::optional<std::string>& out,
                  const std::function<std::string(const std::string&)>& check = {}) {
    const Item* it = m.get(key);
    if (!it) {
      return;
    }
    if (is_null(*it)) {
      out.reset();
      return;
    }
    auto v = text(*it);
    if (!v) {
      return;
    }
    if (v->empty()) {
      out.reset();
      return;
    }
    if (check) {
      std::string why = check(*v);
      if (!why.empty()) {
        error(it->mark, it->path, why);
        return;
      }
    }
    out = *v;
  }

  void boolean(const Map& m, std::string_view key, bool& out) {
    const Item* it = m.get(key);
    if (!it) {
      return;
    }
    auto v = text(*it);
    if (!v) {
      return;
    }
    if (*v == "true") {
      out = true;
    } else if (*v == "false") {
      out = false;
    } else {
      error(it->mark, it->path, "expected true or false, got '" + *v + "'");
    }
  }

  void integer(const Map& m, std::string_view key, int& out, int lo, int hi) {
    const Item* it = m.get(key);
    if (!it) {
      return;
    }
    auto v = text(*it);
    if (!v) {
      return;
    }
    long long n = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc{} || p != v->data() + v->size()) {
      error(it->mark, it->path, "expected a whole number, got '" + *v + "'");
      return;
    }
    if (n < lo || n > hi) {
      error(it->mark, it->path,
            "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + *v);
      return;
    }
    out = static_cast<int>(n);
  }

  template <typename E>
  void enumeration(const Map& m, std::string_view key, E& out,
                   const std::vector<std::pair<std::string_view, E>>& values) {
    const Item* it = m.get(key);
    if (!it) {
      return;
    }
    auto v = text(*it);
    if (!v) {
      return;
    }
    std::vector<std::string_view> names;
    for (const auto& [n, e] : values) {
      if (n == *v) {
        out = e;
        return;
      }
      names.push_back(n);
    }
    std::string msg = "must be one of " + join(names, ", ") + ", got '" + *v + "'";
    if (auto s = suggest(*v, names); !s.empty()) {
      msg += "; did you mean '" + s + "'?";
    }
    error(it->mark, it->path, msg);
  }

  bool abs_path(const Item& it, fs::path& out) {
    auto v = text(it);
    if (!v) {
      return false;
    }
    if (v->empty() || (*v)[0] != '/') {
      error(it.mark, it.path, "must be an absolute path, got '" + *v + "'");
      return false;
    }
    out = normal(*v);
    return true;
  }

  bool path(const Map& m, std::string_view key, fs::path& out, bool required) {
    const Item* it = m.get(key);
    if (!it || it->value.IsNull()) {
      if (required) {
        missing(m, key);
      }
      return false;
    }
    return abs_path(*it, out);
  }

  void size(const Map& m, std::string_view key, Bytes& out, Bytes lo, Bytes hi) {
    const Item* it = m.get(key);
    if (!it) {
      return;
    }
    auto v = text(*it);
    if (!v) {
      return;
    }
    std::string why;
    auto n = parse_size(*v, why);
    if (!n) {
      error(it->mark, it->path, why);
      return;
    }
    if (*n < lo || *n > hi) {
      error(it->mark, it->path,
            (hi == ~Bytes{0} ? "must be at least " + format_size(lo)
                             : "must be between " + format_size(lo) + " and " + format_size(hi)) +
                ", got " + *v);
      return;
    }
    out = *n;
  }

  void duration(const Map& m, std::string_view key, Seconds& out, Seconds hi) {
    const Item* it = m.get(key);
    if (!it) {
      return;
    }
    auto v = text(*it);
    if (!v) {
      return;
    }
    std::string why;
    auto d = parse_duration(*v, why);
    if (!d) {
      error(it->mark, it->path, why);
      return;
    }
    if (d->count() % 1000 != 0) {
      error(it->mark, it->path, "must be a whole number of seconds, got '" + *v + "'");
      return;
    }
    auto s = std::chrono::duration_cast<Seconds>(*d);
    if (s > hi) {
      error(it->mark, it->path,
            "must be at most " + std::to_string(hi.count()) + " seconds, got '" + *v + "'");
      return;
    }
    out = s;
  }

  // Like duration() but milliseconds are allowed ("500ms").
  void duration_ms(const Map& m, std::string_view key, std::chrono::milliseconds& out,
                   std::chrono::milliseconds hi) {
    const Item* it = m.get(key);
    if (!it) {
      return;
    }
    auto v = text(*it);
    if (!v) {
      return;
    }
    std::string why;
    auto d = parse_duration(*v, why);
    if (!d) {
      error(it->mark, it->path, why);
      return;
    }
    if (*d > hi) {
      error(it->mark, it->path,
            "must be at most " + std::to_string(hi.count() / 1000) + " seconds, got '" + *v + "'");
      return;
    }
    out = *d;
  }

  // A bandwidth: a rate of at least 1KiB/s, or unlimited (null, "unlimited", "off", "").
  void rate(const Item& it, std::optional<Bytes>& out) {
    if (is_null(it)) {
      out.reset();
      return;
    }
    auto v = text(it);
    if (!v) {
      return;
    }
    if (*v == "off" || *v == "unlimited" || v->empty()) {
      out.reset();
      return;
    }
    std::string why;
    auto r = parse_rate(*v, why);
    if (!r) {
      error(it.mark, it.path,
            "expected a rate such as 20MiB/s or 500KB/s, or unlimited, got '" + *v + "'");
    } else if (*r < 1024) {
      error(it.mark, it.path, "must be at least 1KiB/s, got '" + *v + "'");
    } else {
      out = *r;
    }
  }

  // A list of scalars (a single scalar is accepted as a one-element list).
  std::vector<std::pair<std::string, const Item*>> list(const Item& it,
                                                        std::vector<Item>& storage) {
    std::vector<std::pair<std::string, const Item*>> out;
    storage.clear();
    if (it.value.IsNull()) {
      return out;
    }
    if (it.value.IsScalar()) {
      if (auto v = text(it)) {
        out.emplace_back(*v, &it);
      }
      return out;
    }
    if (!it.value.IsSequence()) {
      error(it.mark, it.path, std::string("expected a list, got ") + kind(it.value));
      return out;
    }
    for (size_t i = 0; i < it.value.size(); ++i) {
      const YAML::Node& e = it.value[i];
      storage.push_back(
          Item{YAML::Node(), e, it.path + "[" + std::to_string(i) + "]", mark_of(e, it.mark)});
    }
    for (const auto& s : storage) {
      if (auto v = text(s)) {
        out.emplace_back(*v, &s);
      }
    }
    return out;
  }

 private:
  std::string file_;
};

Map::Map(Checker& c, const YAML::Node& node, std::string path, YAML::Mark mark,
         std::vector<std::string_view> known)
    : path_(std::move(path)), mark_(Checker::mark_of(node, mark)) {
  if (!node.IsDefined() || node.IsNull()) {
    ok_ = true;  // an empty section: all defaults
    return;
  }
  if (!node.IsMap()) {
    c.error(mark_, path_, std::string("expected a mapping, got ") + Checker::kind(node));
    return;
  }
  ok_ = true;
  std::set<std::string> seen;
  for (auto kv : node) {
    const YAML::Node& k = kv.first;
    YAML::Mark km = Checker::mark_of(k, mark_);
    if (!k.IsScalar()) {
      c.error(km, path_, "keys must be plain names");
      continue;
    }
    std::string name = k.Scalar();
    std::string p = Checker::child(path_, name);
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string msg = "unknown key '" + name + "'";
      if (auto s = suggest(name, known); !s.empty()) {
        msg += "; did you mean '" + s + "'?";
      }
      c.error(km, p, msg);
      continue;
    }
    if (!seen.insert(name).second) {
      c.error(km, p, "duplicate key '" + name + "'");
      continue;
    }
    items_.push_back(Item{k, kv.second, p, Checker::mark_of(kv.second, km)});
  }
}

// Positions kept for checks that compare pipelines with each other.
struct PipelineMarks {
  YAML::Mark name, watch, after_upload;
  bool watch_ok = false, after_ok = false;
};

void read_aws(Checker& c, const YAML::Node& n, YAML::Mark at, Aws& aws) {
  Map m(c, n, "aws", at,
        {"region", "credentials", "profile", "endpoints", "s3_path_style", "proxy", "no_proxy",
         "ca_bundle"});
  if (!m.ok()) {
    return;
  }
  c.opt_string(m, "region", aws.region, [](const std::string& r) -> std::string {
    if (matches(r, "[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")) {
      return "";
    }
    return "expected an AWS region such as us-east-1, got '" + r + "'";
  });
  if (const Item* it = m.get("credentials")) {
    Map cm(c, it->value, it->path, it->mark, {"source"});
    if (cm.ok()) {
      c.enumeration<CredentialSource>(cm, "source", aws.credential_source,
                                      {{"auto", CredentialSource::automatic},
                                       {"env", CredentialSource::env},
                                       {"profile", CredentialSource::profile},
                                       {"process", CredentialSource::process},
                                       {"imds", CredentialSource::imds},
                                       {"container", CredentialSource::container},
                                       {"systemd", CredentialSource::systemd}});
    }
  }
  c.opt_string(m, "profile", aws.profile, [](const std::string& p) -> std::string {
    if (matches(p, "[A-Za-z0-9_.+@-]+")) {
      return "";
    }
    return "a profile name uses letters, digits and _ . + @ -";
  });
  if (const Item* it = m.get("endpoints")) {
    Map em(c, it->value, it->path, it->mark, {"s3", "healthlake"});
    if (em.ok()) {
      c.opt_string(em, "s3", aws.endpoints.s3, check_url);
      c.opt_string(em, "healthlake", aws.endpoints.healthlake, check_url);
    }
  }
  c.boolean(m, "s3_path_style", aws.s3_path_style);
  // proxy / no_proxy: null (or absent) = the environment decides; "" = explicitly none (direct
  // connections / no bypass list), whatever the environment says.
  if (const Item* it = m.get("proxy"); it && !c.is_null(*it)) {
    if (auto v = c.text(*it)) {
      std::string why = v->empty() ? "" : check_url(*v);
      if (why.empty()) {
        aws.proxy = *v;
      } else {
        c.error(it->mark, it->path,
                "expected a proxy URL such as http://proxy.hospital:3128, or \"\" for "
                "direct connections, got '" +
                    *v + "'");
      }
    }
  }
  if (const Item* it = m.get("no_proxy"); it && !c.is_null(*it)) {
    if (auto v = c.text(*it)) {
      if (matches(*v, "[A-Za-z0-9.*:/\\[\\]_, -]*")) {
        aws.no_proxy = *v;
      } else {
        c.error(it->mark, it->path,
                "expected comma-separated host names, domains (.example.org), IP addresses or "
                "CIDR ranges, or *, got '" +
                    *v + "'");
      }
    }
  }
  if (const Item* it = m.get("ca_bundle"); it && !c.is_null(*it)) {
    fs::path p;
    if (c.abs_path(*it, p)) {
      aws.ca_bundle = p;
    }
  }
}

void read_pipeline(Checker& c, const Item& it, Pipeline& p, PipelineMarks& marks) {
  Map m(c, it.value, it.path, it.mark,
        {"name", "watch", "patterns", "complete_when", "validation_level", "on_invalid",
         "on_changed", "fhir_packages", "s3", "healthlake", "after_upload", "max_line_bytes"});
  if (!m.ok()) {
    return;
  }
  if (c.string(m, "name", p.name, true, [](const std::string& n) -> std::string {
        if (matches(n, "[A-Za-z0-9][A-Za-z0-9._-]{0,63}")) {
          return "";
        }
        return "a pipeline name is 1-64 of [A-Za-z0-9._-], starting with a letter or digit";
      })) {
    marks.name = m.get("name")->mark;
  }
  if (c.path(m, "watch", p.watch, true)) {
    marks.watch = m.get("watch")->mark;
    marks.watch_ok = true;
  }
  if (const Item* pi = m.get("patterns")) {
    std::vector<Item> storage;
    auto pats = c.list(*pi, storage);
    std::vector<std::string> out;
    bool bad = false;
    for (auto& [s, at] : pats) {
      if (s.empty() || s.find('/') != std::string::npos) {
        c.error(at->mark, at->path, "a pattern is a non-empty file-name glob without '/'");
        bad = true;
      }
      out.push_back(s);
    }
    if (out.empty() && !bad) {
      c.error(pi->mark, pi->path, "needs at least one pattern");
    }
    if (!bad && !out.empty()) {
      p.patterns = out;
    }
  }
  if (const Item* ci = m.get("complete_when")) {
    Map cm(c, ci->value, ci->path, ci->mark,
           {"marker", "bulk_manifest", "client_log", "settle_seconds"});
    if (cm.ok()) {
      std::optional<std::string> marker = p.complete_when.marker;
      c.opt_string(cm, "marker", marker, [](const std::string& s) -> std::string {
        if (s.find('/') != std::string::npos || s == "." || s == "..") {
          return "the marker is a file name, not a path";
        }
        return "";
      });
      p.complete_when.marker = marker.value_or("");
      c.boolean(cm, "bulk_manifest", p.complete_when.bulk_manifest);
      c.boolean(cm, "client_log", p.complete_when.client_log);
      c.duration(cm, "settle_seconds", p.complete_when.settle, std::chrono::hours(24));
      const auto& w = p.complete_when;
      if (w.marker.empty() && !w.bulk_manifest && !w.client_log && w.settle.count() == 0) {
        c.error(cm.mark(), ci->path,
                "no completion rule is enabled: an export would never be picked up (set "
                "marker, bulk_manifest, client_log or settle_seconds)");
      }
    }
  }
  c.enumeration<ValidationLevel>(m, "validation_level", p.validation_level,
                                 {{"strict", ValidationLevel::strict},
                                  {"structure-only", ValidationLevel::structure_only},
                                  {"minimal", ValidationLevel::minimal}});
  c.enumeration<OnInvalid>(m, "on_invalid", p.on_invalid,
                           {{"reject-resource", OnInvalid::reject_resource},
                            {"reject-file", OnInvalid::reject_file},
                            {"fail-export", OnInvalid::fail_export}});
  // Peak memory grows with it (docs/configuration.md: per worker thread about 16 x this while
  // such a line is validated): 64 KiB .. 1 GiB (the reader reserves one line's worth).
  c.size(m, "max_line_bytes", p.max_line_bytes, Bytes{64} << 10, Bytes{1} << 30);
  c.enumeration<OnChanged>(m, "on_changed", p.on_changed,
                           {{"hold", OnChanged::hold}, {"reimport", OnChanged::reimport}});
  if (const Item* fi = m.get("fhir_packages")) {
    std::vector<Item> storage;
    auto pk = c.list(*fi, storage);
    for (auto& [s, at] : pk) {
      fs::path path;
      if (c.abs_path(*at, path)) {
        p.fhir_packages.push_back(path);
      }
    }
  }
  // strict with no package can only check the built-in US Core 3.1.x (HealthLake's default
  // guide); HealthLake also validates other guides and US Core versions it knows, which would
  // then be rejected only after the upload (issue 12).
  if (p.validation_level == ValidationLevel::strict && p.fhir_packages.empty()) {
    const Item* li = m.get("validation_level");
    c.warning(li ? li->mark : it.mark, it.path + ".validation_level",
              "strict with no fhir_packages checks meta.profile only against the built-in US "
              "Core 3.1.0 (also answering |3.1.1, HealthLake's default) and R4 core profiles "
              "(vitalsigns...); profiles of other guides "
              "or US Core versions (4.0.0, 5.0.1, 6.1.0, 7.0.0) are reported as not checked: add "
              "their packages to fhir_packages");
  }
  if (const Item* si = m.get("s3")) {
    Map sm(c, si->value, si->path, si->mark,
           {"bucket", "prefix", "kms_key_id", "archive", "upload_rejects"});
    if (sm.ok()) {
      c.string(sm, "bucket", p.s3.bucket, true, check_bucket);
      if (c.string(sm, "prefix", p.s3.prefix, false,
                   [](const std::string& s) { return check_key_part(s, true); })) {
        while (!p.s3.prefix.empty() && p.s3.prefix.back() == '/') {
          p.s3.prefix.pop_back();
        }
        if (!p.s3.prefix.empty() && p.s3.prefix.front() == '/') {
          c.error(sm.get("prefix")->mark, sm.get("prefix")->path,
                  "an S3 key prefix does not start with '/'");
        }
      }
      c.opt_string(sm, "kms_key_id", p.s3.kms_key_id, check_kms);
      c.boolean(sm, "archive", p.s3.archive);
      c.boolean(sm, "upload_rejects", p.s3.upload_rejects);
    }
  } else {
    c.missing(m, "s3", "the bucket HealthLake imports from");
  }
  if (const Item* hi = m.get("healthlake")) {
    Map hm(c, hi->value, hi->path, hi->mark,
           {"datastore_id", "data_access_role_arn", "output_s3_uri", "output_kms_key_id",
            "max_outstanding_starts", "accept_statuses"});
    if (hm.ok()) {
      auto& h = p.healthlake;
      c.string(hm, "datastore_id", h.datastore_id, true, [](const std::string& s) -> std::string {
        if (matches(s, "[A-Za-z0-9]{32}")) {
          return "";
        }
        return "a HealthLake data store id is 32 letters and digits, got '" + s + "' (" +
               std::to_string(s.size()) + " characters)";
      });
      c.string(hm, "data_access_role_arn", h.data_access_role_arn, true,
               [](const std::string& s) -> std::string {
                 if (matches(s, "arn:aws(-[^:]+)?:iam::[0-9]{12}:role/.+")) {
                   return "";
                 }
                 return "expected an IAM role ARN such as arn:aws:iam::123456789012:role/Name";
               });
      c.string(hm, "output_s3_uri", h.output_s3_uri, true, check_s3_uri);
      if (!hm.get("output_kms_key_id")) {
        c.missing(hm, "output_kms_key_id", "StartFHIRImportJob requires a KMS key for its output");
      } else {
        c.string(hm, "output_kms_key_id", h.output_kms_key_id, true, check_kms);
      }
      c.integer(hm, "max_outstanding_starts", h.max_outstanding_starts, 1, 10);
      if (const Item* ai = hm.get("accept_statuses")) {
        std::vector<Item> storage;
        auto st = c.list(*ai, storage);
        std::vector<std::string> out;
        bool bad = false;
        for (auto& [s, at] : st) {
          if (s != "COMPLETED" && s != "COMPLETED_WITH_ERRORS") {
            std::string msg = "must be COMPLETED or COMPLETED_WITH_ERRORS, got '" + s + "'";
            if (auto sg = suggest(s, {"COMPLETED", "COMPLETED_WITH_ERRORS"}); !sg.empty()) {
              msg += "; did you mean '" + sg + "'?";
            }
            c.error(at->mark, at->path, msg);
            bad = true;
          } else if (std::find(out.begin(), out.end(), s) == out.end()) {
            out.push_back(s);
          }
        }
        if (!bad && std::find(out.begin(), out.end(), "COMPLETED") == out.end()) {
          c.error(ai->mark, ai->path, "must include COMPLETED");
        } else if (!bad) {
          h.accept_statuses = out;
        }
      }
    }
  } else {
    c.missing(m, "healthlake", "the data store to import into");
  }
  if (const Item* ai = m.get("after_upload")) {
    if (auto v = c.text(*ai)) {
      if (*v == "keep") {
        p.after_upload.kind = AfterUploadKind::keep;
      } else if (*v == "delete") {
        p.after_upload.kind = AfterUploadKind::remove;
      } else if (v->starts_with("move:")) {
        std::string dir = v->substr(5);
        if (dir.empty() || dir[0] != '/') {
          c.error(ai->mark, ai->path, "move: needs an absolute directory, e.g. move:/var/archive");
        } else {
          p.after_upload.kind = AfterUploadKind::move;
          p.after_upload.move_to = normal(dir);
          marks.after_upload = ai->mark;
          marks.after_ok = true;
        }
      } else {
        std::string msg = "must be keep, delete or move:/absolute/dir, got '" + *v + "'";
        if (auto s = suggest(*v, {"keep", "delete"}); !s.empty()) {
          msg += "; did you mean '" + s + "'?";
        }
        c.error(ai->mark, ai->path, msg);
      }
    }
  }
}

// "HH:MM" (24-hour local time) -> minutes after midnight; "24:00" only when allow_24.
std::optional<int> parse_hhmm(const std::string& s, bool allow_24) {
  std::smatch m;
  if (!std::regex_match(s, m, re("([01]?[0-9]|2[0-4]):([0-5][0-9])"))) {
    return std::nullopt;
  }
  int h = std::stoi(m[1].str());
  int mi = std::stoi(m[2].str());
  if (h == 24 && (mi != 0 || !allow_24)) {
    return std::nullopt;
  }
  return h * 60 + mi;
}

std::string hhmm(int minute) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d", minute / 60, minute % 60);
  return buf;
}

void read_upload(Checker& c, const Item& it, Upload& up) {
  Map m(c, it.value, it.path, it.mark,
        {"part_size", "concurrency", "bandwidth_limit", "bandwidth_schedule"});
  if (!m.ok()) {
    return;
  }
  if (const Item* ps = m.get("part_size"); ps && !c.is_null(*ps)) {
    if (auto v = c.text(*ps); v && *v != "auto") {
      Bytes b = 0;
      c.size(m, "part_size", b, Bytes{5} << 20, Bytes{5} << 30);
      if (b) {
        up.part_size = b;
      }
    }
  }
  c.integer(m, "concurrency", up.concurrency, 1, 64);
  if (const Item* bl = m.get("bandwidth_limit")) {
    c.rate(*bl, up.bandwidth_limit);
  }
  const Item* bs = m.get("bandwidth_schedule");
  if (!bs || c.is_null(*bs)) {
    return;
  }
  if (!bs->value.IsSequence()) {
    c.error(bs->mark, bs->path,
            std::string("expected a list of {from, to, limit} windows, got ") +
                Checker::kind(bs->value));
    return;
  }
  // Which window owns each minute of the day, to refuse overlaps (one rule per minute).
  std::vector<int> owner(1440, -1);
  for (size_t i = 0; i < bs->value.size(); ++i) {
    const YAML::Node& wn = bs->value[i];
    Item wit{YAML::Node(), wn, bs->path + "[" + std::to_string(i) + "]",
             Checker::mark_of(wn, bs->mark)};
    Map wm(c, wn, wit.path, wit.mark, {"from", "to", "limit"});
    if (!wm.ok()) {
      continue;
    }
    BandwidthWindow w;
    bool ok = true;
    for (const char* key : {"from", "to"}) {
      const Item* t = wm.get(key);
      if (!t) {
        c.missing(wm, key, "a local time such as \"22:00\"");
        ok = false;
        continue;
      }
      auto v = c.text(*t);
      if (!v) {
        ok = false;
        continue;
      }
      const bool is_to = std::string_view(key) == "to";
      auto minute = parse_hhmm(*v, is_to);
      if (!minute) {
        c.error(t->mark, t->path,
                std::string("expected a 24-hour local time HH:MM such as \"22:00\"") +
                    (is_to ? " (or \"24:00\")" : "") + ", got '" + *v + "'");
        ok = false;
        continue;
      }
      (is_to ? w.to_minute : w.from_minute) = *minute;
    }
    if (const Item* l = wm.get("limit")) {
      const size_t before = c.errors.size();
      c.rate(*l, w.limit);
      ok = ok && c.errors.size() == before;
    } else {
      c.missing(wm, "limit", "a rate such as 20MiB/s, or unlimited");
      ok = false;
    }
    if (!ok) {
      continue;
    }
    const Item* at = wm.get("to");
    if (w.from_minute == w.to_minute) {
      c.error(at->mark, at->path,
              "the window is empty (from equals to); use from: \"00:00\", to: \"24:00\" for the "
              "whole day");
      continue;
    }
    // Minutes covered: "00:00"-"24:00" is all 1440; to < from wraps midnight.
    const int len = w.to_minute > w.from_minute ? w.to_minute - w.from_minute
                                                : w.to_minute + 1440 - w.from_minute;
    int clash = -1;
    for (int k = 0; k < len && clash < 0; ++k) {
      clash = owner[(w.from_minute + k) % 1440];
    }
    if (clash < 0) {
      for (int k = 0; k < len; ++k) {
        owner[(w.from_minute + k) % 1440] = static_cast<int>(i);
      }
    } else {
      c.error(wit.mark, wit.path,
              hhmm(w.from_minute) + "-" + hhmm(w.to_minute) + " overlaps " + bs->path + "[" +
                  std::to_string(clash) + "]: windows must not overlap");
      continue;
    }
    up.bandwidth_schedule.push_back(w);
  }
}

void read_metrics(Checker& c, const Item& it, Metrics& out) {
  if (c.is_null(it)) {
    out.enabled = false;
    return;
  }
  auto v = c.text(it);
  if (!v) {
    return;
  }
  if (*v == "off" || v->empty()) {
    out.enabled = false;
    return;
  }
  std::string host, port;
  std::smatch mm;
  if (std::regex_match(*v, mm, re("\\[([0-9A-Fa-f:.]+)\\]:([0-9]{1,5})"))) {
    host = mm[1].str();
    port = mm[2].str();
    in6_addr a6{};
    if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) {
      host.clear();
    }
  } else if (std::regex_match(*v, mm, re("([0-9.]+|localhost):([0-9]{1,5})"))) {
    host = mm[1].str();
    port = mm[2].str();
    in_addr a4{};
    if (host != "localhost" && inet_pton(AF_INET, host.c_str(), &a4) != 1) {
      host.clear();
    }
  }
  int pn = port.empty() ? 0 : std::stoi(port);
  if (host.empty() || pn < 1 || pn > 65535) {
    c.error(it.mark, it.path,
            "expected HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464) or off, got '" + *v + "'");
    return;
  }
  out.enabled = true;
  out.host = host;
  out.port = static_cast<std::uint16_t>(pn);
}

Config read(Checker& c, const YAML::Node& root) {
  Config cfg;
  Map top(c, root, "", YAML::Mark{},
          {"aws", "pipelines", "spool", "journal", "upload", "import", "watch", "metrics", "log"});
  if (!top.ok()) {
    return cfg;
  }

  if (const Item* it = top.get("aws")) {
    read_aws(c, it->value, it->mark, cfg.aws);
  }

  std::vector<PipelineMarks> marks;
  if (const Item* it = top.get("pipelines")) {
    if (!it->value.IsSequence()) {
      c.error(it->mark, it->path,
              std::string("expected a list of pipelines, got ") + Checker::kind(it->value));
    } else if (it->value.size() == 0) {
      c.error(it->mark, it->path, "needs at least one pipeline");
    } else {
      for (size_t i = 0; i < it->value.size(); ++i) {
        const YAML::Node& pn = it->value[i];
        Item pit{YAML::Node(), pn, "pipelines[" + std::to_string(i) + "]",
                 Checker::mark_of(pn, it->mark)};
        Pipeline p;
        PipelineMarks pm;
        read_pipeline(c, pit, p, pm);
        cfg.pipelines.push_back(std::move(p));
        marks.push_back(pm);
      }
    }
  } else {
    c.missing(top, "pipelines", "at least one pipeline");
  }

  if (const Item* it = top.get("spool")) {
    Map m(c, it->value, it->path, it->mark, {"dir", "max_bytes", "zstd_level", "keep_for"});
    if (m.ok()) {
      c.path(m, "dir", cfg.spool.dir, false);
      c.size(m, "max_bytes", cfg.spool.max_bytes, Bytes{64} << 20, ~Bytes{0});
      c.integer(m, "zstd_level", cfg.spool.zstd_level, 1, 19);
      c.duration(m, "keep_for", cfg.spool.keep_for, std::chrono::hours(24 * 3650));
    }
  }
  if (const Item* it = top.get("journal")) {
    Map m(c, it->value, it->path, it->mark, {"path"});
    if (m.ok()) {
      c.path(m, "path", cfg.journal.path, false);
    }
  }
  if (const Item* it = top.get("upload")) {
    read_upload(c, *it, cfg.upload);
  }
  if (const Item* it = top.get("watch")) {
    Map m(c, it->value, it->path, it->mark, {"rescan_interval", "scan_quiet"});
    if (m.ok()) {
      c.duration(m, "rescan_interval", cfg.watch.rescan_interval, std::chrono::hours(24));
      c.duration_ms(m, "scan_quiet", cfg.watch.scan_quiet, std::chrono::hours(1));
    }
  }
  if (const Item* it = top.get("import")) {
    Map m(c, it->value, it->path, it->mark, {"poll_min", "poll_max", "min_imported_share"});
    if (m.ok()) {
      if (const Item* si = m.get("min_imported_share")) {
        if (auto v = c.text(*si)) {
          // "0.9" or "90%": a share of the export's resources, 0..1.
          std::string t = *v;
          double scale = 1.0;
          if (!t.empty() && t.back() == '%') {
            t.pop_back();
            scale = 100.0;
          }
          double d = -1;
          auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
          if (t.empty() || ec != std::errc{} || p != t.data() + t.size()) {
            c.error(si->mark, si->path, "expected a share such as 0.9 or 90%, got '" + *v + "'");
          } else if (d / scale < 0 || d / scale > 1) {
            c.error(si->mark, si->path, "must be between 0 and 1 (0% and 100%), got '" + *v + "'");
          } else {
            cfg.import_jobs.min_imported_share = d / scale;
          }
        }
      }
      c.duration(m, "poll_min", cfg.import_jobs.poll_min, std::chrono::hours(1));
      c.duration(m, "poll_max", cfg.import_jobs.poll_max, std::chrono::hours(1));
      if (cfg.import_jobs.poll_min.count() < 1) {
        c.error(m.get("poll_min")->mark, m.get("poll_min")->path, "must be at least 1s");
      } else if (cfg.import_jobs.poll_max < cfg.import_jobs.poll_min) {
        const Item* at = m.get("poll_max") ? m.get("poll_max") : m.get("poll_min");
        c.error(at->mark, at->path, "poll_max must not be less than poll_min");
      }
    }
  }
  if (const Item* it = top.get("metrics")) {
    Map m(c, it->value, it->path, it->mark, {"listen"});
    if (m.ok()) {
      if (const Item* l = m.get("listen")) {
        read_metrics(c, *l, cfg.metrics);
      }
    }
  }
  if (const Item* it = top.get("log")) {
    Map m(c, it->value, it->path, it->mark, {"level"});
    if (m.ok()) {
      if (const Item* l = m.get("level")) {
        if (auto v = c.text(*l)) {
          if (!fe::log::parse_level(*v, cfg.log.level)) {
            std::vector<std::string_view> names = {"error", "warning", "notice", "info", "debug"};
            std::string msg = "must be one of " + join(names, ", ") + ", got '" + *v + "'";
            if (auto s = suggest(*v, names); !s.empty()) {
              msg += "; did you mean '" + s + "'?";
            }
            c.error(l->mark, l->path, msg);
          }
        }
      }
    }
  }

  // ---- checks across pipelines and sections ----
  for (size_t i = 0; i < cfg.pipelines.size(); ++i) {
    const auto& p = cfg.pipelines[i];
    std::string at = "pipelines[" + std::to_string(i) + "]";
    for (size_t j = 0; j < i; ++j) {
      const auto& q = cfg.pipelines[j];
      std::string other = "pipelines[" + std::to_string(j) + "]";
      if (!p.name.empty() && p.name == q.name) {
        c.error(marks[i].name, at + ".name",
                "duplicate pipeline name '" + p.name + "' (also " + other + ")");
      }
      if (marks[i].watch_ok && marks[j].watch_ok) {
        if (p.watch == q.watch) {
          c.error(marks[i].watch, at + ".watch",
                  "watches the same directory as " + other + " ('" + q.name + "')");
        } else if (inside_or_same(p.watch, q.watch) || inside_or_same(q.watch, p.watch)) {
          c.error(marks[i].watch, at + ".watch",
                  "'" + p.watch.string() + "' and " + other + ".watch '" + q.watch.string() +
                      "' are nested: one pipeline would ingest the other's exports");
        }
      }
    }
    if (marks[i].watch_ok) {
      if (inside_or_same(cfg.spool.dir, p.watch) || inside_or_same(p.watch, cfg.spool.dir)) {
        c.error(marks[i].watch, at + ".watch",
                "overlaps spool.dir '" + cfg.spool.dir.string() + "'");
      }
      if (inside_or_same(cfg.journal.path, p.watch)) {
        c.error(marks[i].watch, at + ".watch",
                "contains journal.path '" + cfg.journal.path.string() + "'");
      }
    }
    if (marks[i].after_ok) {
      for (size_t j = 0; j < cfg.pipelines.size(); ++j) {
        if (marks[j].watch_ok && inside_or_same(p.after_upload.move_to, cfg.pipelines[j].watch)) {
          c.error(marks[i].after_upload, at + ".after_upload",
                  "moving into '" + p.after_upload.move_to.string() +
                      "' would feed the files back into watched directory '" +
                      cfg.pipelines[j].watch.string() + "'");
        }
      }
    }
  }
  return cfg;
}

LoadResult load(std::string_view yaml, const std::string& name, const fs::path& source) {
  Checker c(name);
  LoadResult r;
  if (yaml.size() > kMaxConfigBytes) {
    c.error(YAML::Mark{}, "",
            "the file is larger than " + format_size(kMaxConfigBytes) +
                "; is this really the configuration?");
    r.errors = std::move(c.errors);
    return r;
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    c.error(e.mark, "", "YAML syntax error: " + e.msg);
    r.errors = std::move(c.errors);
    return r;
  }
  if (!root.IsDefined() || root.IsNull()) {
    c.error(YAML::Mark{}, "", "the configuration is empty (see config/fhir-edge.yaml)");
    // Mark{} is 0:0 -> 1:1; the file itself is the problem.
    r.errors = std::move(c.errors);
    return r;
  }
  Config cfg = read(c, root);
  // Report in file order (checks across pipelines run last but point into the middle).
  std::stable_sort(c.errors.begin(), c.errors.end(), [](const Error& a, const Error& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  if (c.errors.empty()) {
    cfg.source = source;
    r.config = std::move(cfg);
  }
  r.errors = std::move(c.errors);
  r.warnings = std::move(c.warnings);
  return r;
}

std::string octal_mode(mode_t m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

// What ssh does for its own files: a file others can change is refused (whoever edits it decides
// where patient data is uploaded, with which role and key); one everybody can read gets a warning.
std::pair<std::vector<Error>, std::vector<Error>> check_permissions(const fs::path& path) {
  std::vector<Error> errors, warnings;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return {errors, warnings};  // reading already failed or it is a pipe/device: nothing to judge
  }
  const std::string file = path.string();
  const std::string mode = octal_mode(st.st_mode);
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    errors.push_back(Error{file, 0, 0, "",
                           "refusing a configuration file writable by " +
                               std::string((st.st_mode & S_IWOTH) ? "all users" : "its group") +
                               " (mode " + mode +
                               "): whoever can change it decides where health "
                               "data is sent; run: chmod go-w " +
                               file});
  }
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    errors.push_back(Error{file, 0, 0, "",
                           "refusing a configuration file owned by uid " +
                               std::to_string(st.st_uid) +
                               ", neither root nor the user fhir-edge "
                               "runs as (uid " +
                               std::to_string(::geteuid()) + ")"});
  }
  if (st.st_mode & S_IROTH) {
    warnings.push_back(Error{file, 0, 0, "",
                             "readable by all users (mode " + mode +
                                 "); it names ARNs, KMS keys "
                                 "and ${VAR} references: consider chmod o-r " +
                                 file + " (the service reads it as root or through its group)"});
  }
  return {errors, warnings};
}

}  // namespace

std::string format(const Error& e) {
  std::string s = e.file;
  if (e.line > 0) {
    s += ":" + std::to_string(e.line) + ":" + std::to_string(e.column);
  }
  s += ": ";
  if (!e.path.empty()) {
    s += e.path + ": ";
  }
  s += e.message;
  return s;
}

std::string format(const std::vector<Error>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += format(e) + "\n";
  }
  return out;
}

LoadResult load_config(const fs::path& path) {
  if (std::error_code ec; fs::is_directory(path, ec)) {
    LoadResult r;
    r.errors.push_back(Error{path.string(), 0, 0, "", "is a directory, not a configuration file"});
    return r;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    LoadResult r;
    r.errors.push_back(
        Error{path.string(), 0, 0, "", std::string("cannot read: ") + std::strerror(err)});
    return r;
  }
  // Read at most one byte past the limit: a config is small, and memory stays bounded even if
  // the path names something huge or endless (a device, a FIFO).
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  auto [perm_errors, perm_warnings] = check_permissions(path);
  LoadResult r = load(text, path.string(), path);
  if (!perm_errors.empty()) {
    r.config.reset();
    r.errors.insert(r.errors.begin(), perm_errors.begin(), perm_errors.end());
  }
  r.warnings.insert(r.warnings.begin(), perm_warnings.begin(), perm_warnings.end());
  return r;
}

LoadResult load_config_text(std::string_view yaml, std::string_view name) {
  return load(yaml, std::string(name), fs::path(name));
}

std::string_view to_string(CredentialSource s) {
  switch (s) {
    case CredentialSource::automatic:
      return "auto";
    case CredentialSource::env:
      return "env";
    case CredentialSource::profile:
      return "profile";
    case CredentialSource::process:
      return "process";
    case CredentialSource::imds:
      return "imds";
    case CredentialSource::container:
      return "container";
    case CredentialSource::systemd:
      return "systemd";
  }
  return "auto";
}

std::string_view to_string(ValidationLevel v) {
  switch (v) {
    case ValidationLevel::strict:
      return "strict";
    case ValidationLevel::structure_only:
      return "structure-only";
    case ValidationLevel::minimal:
      return "minimal";
  }
  return "structure-only";
}

std::string_view to_string(OnChanged o) {
  return o == OnChanged::reimport ? "reimport" : "hold";
}

std::string_view to_string(OnInvalid o) {
  switch (o) {
    case OnInvalid::reject_resource:
      return "reject-resource";
    case OnInvalid::reject_file:
      return "reject-file";
    case OnInvalid::fail_export:
      return "fail-export";
  }
  return "reject-resource";
}

std::string to_string(const AfterUpload& a) {
  switch (a.kind) {
    case AfterUploadKind::keep:
      return "keep";
    case AfterUploadKind::remove:
      return "delete";
    case AfterUploadKind::move:
      return "move:" + a.move_to.string();
  }
  return "keep";
}

}  // namespace fe::config
