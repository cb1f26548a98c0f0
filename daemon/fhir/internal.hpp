#pragma once
// Internal pieces shared by validator.cpp, profiles.cpp and reader.cpp.
#include <simdjson.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/schema.hpp"
#include "fhir/validator.hpp"

namespace fe::fhir {

struct PathSeg {
  std::string_view name;
  int64_t index = -1;  // array index, or -1
};

struct Scratch::Impl {
  simdjson::dom::parser parser{0};
  size_t max_capacity = 0, max_depth = 0;
  std::string buf;  // padded copy of the line
  std::vector<PathSeg> path;
  std::vector<uint8_t> seen;               // per-object element flags, stacked by nesting
  std::vector<int32_t> choices;            // per-object chosen variant of each choice group
  std::vector<std::string_view> elem_ids;  // Element.id values of the resources being walked
  uint64_t invariants = 0;
};

class ProfileSet;  // profiles.cpp: compiled StructureDefinitions from packages
void destroy_profiles(ProfileSet* p);
using ProfileSetPtr = std::unique_ptr<ProfileSet, void (*)(ProfileSet*)>;

struct Validator::Impl {
  Options options;
  const schema::Schema* schema = nullptr;
  ProfileSetPtr profiles{nullptr, destroy_profiles};
};

// Issue sink used by the walkers: formats the current path and enforces max_issues.
struct IssueSink {
  Result& result;
  const std::vector<PathSeg>& path;
  size_t max_issues;
  void add(Severity s, std::string_view code, std::string message, std::string_view child = {});
  std::string path_string(std::string_view child = {}) const;
};

// profiles.cpp
ProfileSetPtr load_profiles(const std::vector<std::filesystem::path>& packages,
                            const schema::Schema& core, LoadReport& report);
void check_profiles(const ProfileSet& set, const schema::Schema& core,
                    simdjson::dom::object resource, std::string_view resource_type,
                    Scratch::Impl& sc, IssueSink& sink);

std::string json_quote(std::string_view s);                // JSON string literal with escapes
std::string shorten(std::string_view s, size_t max = 60);  // for quoting values in messages

}  // namespace fe::fhir
