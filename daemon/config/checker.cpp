// The YAML checker (checker.hpp): suggestions, ${VAR} expansion, path helpers and the mapping
// walker that reports unknown and duplicate keys.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

#include "config/checker.hpp"

namespace fe::config::detail {

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

}  // namespace fe::config::detail
