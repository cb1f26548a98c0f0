// Walks the stages' field descriptions (common/fields.hpp) over two configurations.
#include "config/reload.hpp"

#include <string_view>
#include <type_traits>

namespace fe::config {
namespace {

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

// Calls visit(key, a_value, b_value, live) for every leaf field of a and b, both of type T, in
// description order; a field whose type is described itself is walked into ("s3.bucket"), a list
// of described entries (pipelines) is walked entry by entry, named by the entry's name. visit
// returns true to stop. Returns true when stopped.
template <class T, class Visit>
bool walk(const T& a, const T& b, const std::string& prefix, Visit& visit);

template <class M, class Visit>
bool walk_member(const M& a, const M& b, const std::string& key, settings::Reload reload,
                 Visit& visit) {
  if constexpr (settings::Described<M>) {
    return walk(a, b, key + ".", visit);
  } else if constexpr (is_vector<M>::value) {
    if constexpr (settings::Described<typename M::value_type>) {
      // A list of sections (pipelines): its length is a key of its own, then each entry is named
      // by its name in the running configuration.
      if (visit(key, a.size(), b.size(), false)) return true;
      for (size_t i = 0; i < a.size() && i < b.size(); ++i)
        if (walk(a[i], b[i], key + "[" + a[i].name + "].", visit)) return true;
      return false;
    } else {
      return visit(key, a, b, reload == settings::Reload::live);
    }
  } else {
    return visit(key, a, b, reload == settings::Reload::live);
  }
}

template <class T, class Visit>
bool walk(const T& a, const T& b, const std::string& prefix, Visit& visit) {
  return std::apply(
      [&](const auto&... f) {
        return (... ||
                (f.name.empty() ? false
                                : walk_member(a.*(f.member), b.*(f.member),
                                              prefix + std::string(f.name), f.reload, visit)));
      },
      fields(static_cast<const T*>(nullptr)));
}

}  // namespace

std::string first_restart_key(const Config& running, const Config& next) {
  std::string found;
  auto visit = [&](const std::string& key, const auto& a, const auto& b, bool live) {
    if (live || a == b) return false;
    found = key;
    return true;
  };
  walk(running, next, "", visit);
  return found;
}

std::string reload_refusal(const Config& running, const Config& next) {
  const std::string key = first_restart_key(running, next);
  return key.empty() ? "" : key + " changed: restart fhir-edge to apply";
}

std::vector<Key> keys(const Config& c) {
  std::vector<Key> out;
  auto visit = [&](const std::string& key, const auto&, const auto&, bool live) {
    if (out.empty() || out.back().name != key) out.push_back({key, live});
    return false;
  };
  walk(c, c, "", visit);
  return out;
}

}  // namespace fe::config
