#pragma once
// The YAML checker behind load_config() (internal to daemon/config): a walker over yaml-cpp nodes
// that records *every* problem with its file:line:col and key path, suggests the nearest known
// name for a typo ("did you mean"), and expands ${VAR} / ${VAR:-default} / $$ in every scalar
// before it is checked. The per-section readers (readers.hpp) use it; they never throw.
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "config/units.hpp"

namespace fe::config::detail {

namespace fs = std::filesystem;

// A configuration file larger than this is refused unread (it is a few KiB).
inline constexpr size_t kMaxConfigBytes = 1 << 20;

// The nearest candidate if it is close enough to be a plausible typo; "" otherwise.
std::string suggest(std::string_view word, const std::vector<std::string_view>& candidates);
std::string join(const std::vector<std::string_view>& v, std::string_view sep);
// ${VAR}, ${VAR:-default}, $$ -> $. Any other '$' stays as written. false (with why) on a bad
// reference or an unset variable without a default.
bool expand_env(std::string_view in, std::string& out, std::string& why);
// One compiled regex per pattern literal (the pointer is the key).
const std::regex& re(const char* pattern);
bool matches(const std::string& s, const char* pattern);
// a is b or below b (lexically, after normalisation).
bool inside_or_same(const fs::path& a, const fs::path& b);
fs::path normal(const std::string& s);

// AWS identifier checks (identifiers.cpp): each returns "" when fine, else the reason. Bucket
// names: s3::bucket_name_error (common/s3_names.hpp).
std::string check_kms(const std::string& k);
std::string check_s3_uri(const std::string& u);
std::string check_url(const std::string& u);
std::string check_key_part(const std::string& s, bool allow_slash);

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

}  // namespace fe::config::detail
