#pragma once
// Internal: the compiled R4 core schema (from the generated blob in schema_data.cpp) and the
// lexical checks of FHIR primitive types. Built once per process, read-only afterwards.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fe::fhir::schema {

enum class Kind : uint8_t { resource, complex, primitive, backbone };

// Primitive lexical families (FHIR R4 "Primitive Types" table).
enum class Prim : uint8_t {
  none,
  boolean,
  integer,
  unsigned_int,
  positive_int,
  decimal,
  string,
  markdown,
  code,
  id,
  uri,
  oid,
  uuid,
  base64,
  date,
  date_time,
  instant,
  time,
  xhtml,
};

enum class VsMode : uint8_t { enumerated, mime, ucum, currency, any };

struct ValueSet {
  std::string_view url;
  VsMode mode = VsMode::any;
  std::vector<std::string_view> systems;
  std::vector<std::string_view> codes;  // sorted
  bool contains(std::string_view code) const;
  bool has_system(std::string_view system) const;
};

struct Element {
  std::string_view name;  // JSON name (choice variants expanded: valueString)
  uint32_t type = 0;      // index into Schema::types
  uint8_t min = 0;
  bool many = false;
  int16_t choice = -1;  // choice group within its type (variants share it), -1 if none
  int32_t vs = -1;      // required binding, index into Schema::value_sets
  uint16_t invariants = 0;
  std::string_view choice_base;  // "value" for valueString
};

struct Type {
  std::string_view name;
  Kind kind = Kind::complex;
  Prim prim = Prim::none;
  bool abstract = false;  // Resource, DomainResource: never a resourceType on the wire
  uint32_t first = 0;     // elements [first, first+count)
  uint32_t count = 0;
  uint16_t invariants = 0;
  uint16_t choice_groups = 0;
  std::vector<uint32_t> required;  // element indexes with min >= 1 (one per choice group)
};

class Schema {
 public:
  std::vector<Type> types;
  std::vector<Element> elements;
  std::vector<ValueSet> value_sets;
  uint32_t extension_type = 0, element_type = 0, resource_type = 0, coding_type = 0,
           codeable_concept_type = 0, quantity_type = 0, element_definition_type = 0;

  // Element of `type` with JSON name `name`, or -1.
  int32_t find(uint32_t type, std::string_view name) const;
  // Concrete resource type by resourceType, or -1.
  int32_t find_resource(std::string_view name) const;
  int32_t find_type(std::string_view name) const;
  int32_t find_value_set(std::string_view url) const;

  void build_index();  // after filling types/elements

 private:
  // One element's key (schema.cpp, NameKey): a lookup reads one slot, one cache line.
  struct alignas(32) Slot {
    static constexpr uint32_t kEmpty = UINT32_MAX;  // no type has index 2^24 - 1 and length 255
    uint32_t tag = kEmpty;                          // type | name length << 24
    uint32_t elem = 0;
    uint64_t w[3] = {0, 0, 0};  // the name's bytes (its first 24)
  };
  std::vector<Slot> slots_;
  uint64_t mask_ = 0;
  std::unordered_map<std::string_view, uint32_t> by_name_;
  std::unordered_map<std::string_view, uint32_t> vs_by_url_;
};

const Schema& core();  // parsed once, thread-safe (function-local static)

// Lexical check of a JSON string value for a string-kind primitive. Returns nullptr when fine,
// else a static message fragment ("is not a valid date (YYYY, YYYY-MM or YYYY-MM-DD)").
const char* check_lexical(Prim prim, std::string_view v);
bool check_mime(std::string_view v);
bool check_ucum(std::string_view v);
bool check_currency(std::string_view v);
bool is_id(std::string_view v);
std::string_view prim_name(Prim p);

}  // namespace fe::fhir::schema
