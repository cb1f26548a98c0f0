#pragma once
// Field descriptions for the stages' Settings structs (issue 14 item 3): how each field is named
// in the YAML and whether a reload (SIGHUP) may change it while the daemon runs.
//
// A Settings struct is a plain aggregate with a defaulted operator==. Next to it, in the same
// header, its stage writes
//
//   constexpr auto fields(const Settings*) {
//     using enum settings::Reload;
//     return std::tuple{settings::field("part_size", &Settings::part_size, restart), ...};
//   }
//   static_assert(settings::described<Settings>());
//
// The static_assert counts the struct's fields (aggregate initialisation) and the description's
// entries, and checks no field is described twice: a field added without a description, or a
// description left behind by a removed field, does not compile. config/reload.cpp walks these
// descriptions to name the first changed key that needs a restart; a field whose type has a
// description of its own is walked into ("complete_when.marker": its own reload flag is then
// unused), and so is a list of such (pipelines, named by their `name`). Any other field is one
// key, compared with operator== (after_upload's kind and move_to are one YAML value).
#include <cstddef>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace fe::settings {

// live: the running daemon applies a new value at a reload. restart: a change is refused at a
// reload (naming the key) and takes effect at the next start.
enum class Reload { restart, live };

template <class S, class M>
struct Field {
  std::string_view name;  // as in the YAML, relative to the struct ("endpoints" of aws)
  M S::*member;
  Reload reload;
};

template <class S, class M>
constexpr Field<S, M> field(std::string_view name, M S::*member, Reload reload) {
  return {name, member, reload};
}

// A type with a description (found by argument-dependent lookup next to the type).
template <class T>
concept Described = requires {
  fields(static_cast<const T*>(nullptr));
};

namespace detail {

// Converts to any field type; only used unevaluated, to count an aggregate's fields.
struct AnyField {
  template <class T>
  operator T&() const noexcept;  // never defined: only named in requires-expressions
};

template <class T, std::size_t... I>
constexpr bool initialisable_with(std::index_sequence<I...>) {
  return requires {
    T{(void(I), AnyField{})...};
  };
}

}  // namespace detail

// Number of fields of the aggregate T: the largest N such that T{x1, ..., xN} compiles.
template <class T, std::size_t N = 0>
constexpr std::size_t field_count() {
  if constexpr (detail::initialisable_with<T>(std::make_index_sequence<N + 1>{}))
    return field_count<T, N + 1>();
  else
    return N;
}

// True when T's description has one entry per field and names no field twice.
template <Described T>
constexpr bool described() {
  constexpr auto fs = fields(static_cast<const T*>(nullptr));
  constexpr std::size_t n = std::tuple_size_v<std::remove_cv_t<decltype(fs)>>;
  if constexpr (n != field_count<T>()) {
    return false;
  } else {
    std::size_t same = 0;  // pairs (i, j) naming the same member, i == j included
    std::apply(
        [&](const auto&... a) {
          auto count = [&](const auto& x) {
            auto eq = [&](const auto& y) {
              if constexpr (std::is_same_v<decltype(x), decltype(y)>)
                return x.member == y.member;
              else
                return false;
            };
            same += (std::size_t{0} + ... + (eq(a) ? 1 : 0));
          };
          (count(a), ...);
        },
        fs);
    return same == n;
  }
}

}  // namespace fe::settings
