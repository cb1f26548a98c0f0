// Parses the generated schema blob once and implements the primitive lexical rules.
#include "fhir/schema.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstring>
#include <stdexcept>

namespace fe::fhir::schema_data {
extern const char kBlob[];
extern const std::size_t kBlobSize;
}  // namespace fe::fhir::schema_data

namespace fe::fhir::schema {
namespace {

// The key Schema::find looks up, for every key of every object validated: (type, name length) in
// one word, the name's bytes in three. A name of up to 24 bytes is all in the words (overlapping
// loads, so no byte past the name is read): a lookup compares one 32-byte slot and touches
// nothing else. Before, it followed the slot to its Element and the Element to its name, three
// dependent cache misses per key, and the validator's top symbol in bench/e2e's profile.
struct NameKey {
  uint32_t tag = 0;  // type | length << 24
  uint64_t w[3] = {0, 0, 0};
};

[[gnu::always_inline]] inline uint64_t load8(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

// Precondition: type < 2^24 and name.size() < 256 (Schema::find checks the length).
[[gnu::always_inline]] inline NameKey name_key(uint32_t type, std::string_view name) {
  const char* p = name.data();
  const size_t n = name.size();
  NameKey k;
  k.tag = type | static_cast<uint32_t>(n) << 24;
  if (n >= 17) {  // 17..24: the last load overlaps the second; longer: the first 24 bytes
    k.w[0] = load8(p);
    k.w[1] = load8(p + 8);
    k.w[2] = load8(n <= 24 ? p + n - 8 : p + 16);
  } else if (n >= 8) {
    k.w[0] = load8(p);
    k.w[1] = load8(p + n - 8);
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    k.w[0] = (uint64_t{a} << 32) | b;
  } else if (n > 0) {  // 1..3 bytes: first, middle and last cover them all
    k.w[0] = (uint64_t{static_cast<unsigned char>(p[0])} << 16) |
             (uint64_t{static_cast<unsigned char>(p[n >> 1])} << 8) |
             static_cast<unsigned char>(p[n - 1]);
  }
  return k;
}

// Four independent multiplies folded once, not a chain of dependent ones: the hash's latency was
// a third of find()'s samples. The table is at most half full, so a weaker mix costs at most a
// probe.
[[gnu::always_inline]] inline uint64_t hash_key(const NameKey& k) {
  const uint64_t a = (k.w[0] ^ 0x2545F4914F6CDD1Dull) * 0xBF58476D1CE4E5B9ull;
  const uint64_t b = (k.w[1] ^ 0x9E3779B97F4A7C15ull) * 0x94D049BB133111EBull;
  const uint64_t c = (k.w[2] ^ 0xD6E8FEB86659FD93ull) * 0x9E3779B97F4A7C15ull;
  const uint64_t d = (uint64_t{k.tag} + 1) * 0xFF51AFD7ED558CCDull;
  uint64_t h = a ^ std::rotl(b, 21) ^ std::rotl(c, 42) ^ d;
  return h ^ (h >> 29) ^ (h >> 47);
}

constexpr size_t kInlineName = 24;  // longer names compare their tail with the Element's name
constexpr uint32_t kMaxTypes = 1u << 24;

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t t = line.find('\t', start);
    out.push_back(
        line.substr(start, t == std::string_view::npos ? std::string_view::npos : t - start));
    if (t == std::string_view::npos) break;
    start = t + 1;
  }
  return out;
}

int to_int(std::string_view s) {
  int v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

Prim prim_of(std::string_view n) {
  static const std::pair<std::string_view, Prim> kMap[] = {
      {"boolean", Prim::boolean},
      {"integer", Prim::integer},
      {"unsignedInt", Prim::unsigned_int},
      {"positiveInt", Prim::positive_int},
      {"decimal", Prim::decimal},
      {"string", Prim::string},
      {"markdown", Prim::markdown},
      {"code", Prim::code},
      {"id", Prim::id},
      {"uri", Prim::uri},
      {"url", Prim::uri},
      {"canonical", Prim::uri},
      {"oid", Prim::oid},
      {"uuid", Prim::uuid},
      {"base64Binary", Prim::base64},
      {"date", Prim::date},
      {"dateTime", Prim::date_time},
      {"instant", Prim::instant},
      {"time", Prim::time},
      {"xhtml", Prim::xhtml},
  };
  for (auto& [k, v] : kMap)
    if (k == n) return v;
  return Prim::none;
}

Schema parse_blob() {
  Schema s;
  std::string_view blob(schema_data::kBlob, schema_data::kBlobSize);
  // First pass: value sets and type names (elements reference types by name).
  std::vector<std::vector<std::string_view>> rows;
  size_t pos = 0;
  while (pos < blob.size()) {
    size_t nl = blob.find('\n', pos);
    if (nl == std::string_view::npos) nl = blob.size();
    std::string_view line = blob.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty() || line[0] == '#') continue;
    rows.push_back(split_tabs(line));
  }
  std::unordered_map<std::string_view, uint32_t> type_ix;
  for (auto& r : rows) {
    if (r[0] == "V") {
      ValueSet vs;
      vs.url = r[1];
      vs.mode = r[2] == "enum"       ? VsMode::enumerated
                : r[2] == "mime"     ? VsMode::mime
                : r[2] == "ucum"     ? VsMode::ucum
                : r[2] == "currency" ? VsMode::currency
                                     : VsMode::any;
      std::string_view sys = r[3];
      while (!sys.empty()) {
        size_t c = sys.find(',');
        vs.systems.push_back(sys.substr(0, c));
        if (c == std::string_view::npos) break;
        sys.remove_prefix(c + 1);
      }
      vs.codes.assign(r.begin() + 4, r.end());
      std::sort(vs.codes.begin(), vs.codes.end());
      s.value_sets.push_back(std::move(vs));
    } else if (r[0] == "T") {
      type_ix.emplace(r[1], static_cast<uint32_t>(type_ix.size()));
    }
  }
  for (auto& r : rows) {
    if (r[0] == "T") {
      Type t;
      t.name = r[1];
      t.kind = r[2] == "R"   ? Kind::resource
               : r[2] == "P" ? Kind::primitive
               : r[2] == "B" ? Kind::backbone
                             : Kind::complex;
      t.prim = t.kind == Kind::primitive ? prim_of(t.name) : Prim::none;
      t.abstract = t.name == "Resource" || t.name == "DomainResource";
      t.invariants = static_cast<uint16_t>(to_int(r[3]));
      t.first = static_cast<uint32_t>(s.elements.size());
      s.types.push_back(t);
    } else if (r[0] == "E") {
      Type& t = s.types.back();
      Element e;
      e.name = r[1];
      auto it = type_ix.find(r[2]);
      if (it == type_ix.end())
        throw std::logic_error("schema blob: unknown type " + std::string(r[2]));
      e.type = it->second;
      e.min = static_cast<uint8_t>(to_int(r[3]));
      e.many = r[4] == "*";
      e.choice_base = r[5];
      e.vs = to_int(r[6]);
      e.invariants = static_cast<uint16_t>(to_int(r[7]));
      if (!e.choice_base.empty()) {
        // Variants of one choice are adjacent; they share a group number.
        const Element* prev = t.count ? &s.elements.back() : nullptr;
        if (prev && prev->choice_base == e.choice_base)
          e.choice = prev->choice;
        else
          e.choice = static_cast<int16_t>(t.choice_groups++);
      }
      s.elements.push_back(e);
      t.count++;
      uint32_t ix = static_cast<uint32_t>(s.elements.size() - 1);
      if (e.min > 0 && (e.choice < 0 || s.elements[ix - 1].choice != e.choice || t.count == 1))
        t.required.push_back(ix);
    }
  }
  auto must = [&](std::string_view n) {
    int32_t i = -1;
    auto it = type_ix.find(n);
    if (it != type_ix.end()) i = static_cast<int32_t>(it->second);
    if (i < 0) throw std::logic_error("schema blob: missing type " + std::string(n));
    return static_cast<uint32_t>(i);
  };
  s.build_index();
  s.extension_type = must("Extension");
  s.element_type = must("Element");
  s.resource_type = must("Resource");
  s.coding_type = must("Coding");
  s.codeable_concept_type = must("CodeableConcept");
  s.quantity_type = must("Quantity");
  s.element_definition_type = must("ElementDefinition");
  return s;
}

bool digits(std::string_view v, size_t pos, size_t n) {
  if (pos + n > v.size()) return false;
  for (size_t i = pos; i < pos + n; i++)
    if (v[i] < '0' || v[i] > '9') return false;
  return true;
}
int num(std::string_view v, size_t pos, size_t n) {
  int x = 0;
  for (size_t i = pos; i < pos + n; i++) x = x * 10 + (v[i] - '0');
  return x;
}

// YYYY, YYYY-MM, YYYY-MM-DD with real calendar days. Returns characters consumed or 0.
size_t parse_date(std::string_view v, bool full_only) {
  if (!digits(v, 0, 4) || num(v, 0, 4) == 0) return 0;
  if (v.size() == 4 || v[4] != '-') return full_only ? 0 : 4;
  if (!digits(v, 5, 2)) return 0;
  int m = num(v, 5, 2);
  if (m < 1 || m > 12) return 0;
  if (v.size() == 7 || v[7] != '-') return full_only ? 0 : 7;
  if (!digits(v, 8, 2)) return 0;
  int y = num(v, 0, 4), d = num(v, 8, 2);
  static const int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  int maxd = m == 2 ? (leap ? 29 : 28) : kDays[m - 1];
  if (d < 1 || d > maxd) return 0;
  return 10;
}

// hh:mm:ss(.f+)? ; returns consumed or 0.
size_t parse_time(std::string_view v, size_t p) {
  if (!digits(v, p, 2) || p + 2 >= v.size() || v[p + 2] != ':' || !digits(v, p + 3, 2) ||
      p + 5 >= v.size() || v[p + 5] != ':' || !digits(v, p + 6, 2))
    return 0;
  if (num(v, p, 2) > 23 || num(v, p + 3, 2) > 59 || num(v, p + 6, 2) > 60) return 0;
  size_t q = p + 8;
  if (q < v.size() && v[q] == '.') {
    size_t s = ++q;
    while (q < v.size() && v[q] >= '0' && v[q] <= '9') q++;
    if (q == s) return 0;
  }
  return q - p;
}

// Z | (+|-)hh:mm with hh <= 14.
bool parse_zone(std::string_view v, size_t p) {
  if (p >= v.size()) return false;
  if (v[p] == 'Z') return p + 1 == v.size();
  if (v[p] != '+' && v[p] != '-') return false;
  if (!digits(v, p + 1, 2) || p + 3 >= v.size() || v[p + 3] != ':' || !digits(v, p + 4, 2))
    return false;
  if (num(v, p + 1, 2) > 14 || num(v, p + 4, 2) > 59) return false;
  return p + 6 == v.size();
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

}  // namespace

bool ValueSet::contains(std::string_view code) const {
  return std::binary_search(codes.begin(), codes.end(), code);
}
bool ValueSet::has_system(std::string_view system) const {
  return std::find(systems.begin(), systems.end(), system) != systems.end();
}

void Schema::build_index() {
  if (types.size() >= kMaxTypes) throw std::logic_error("schema blob: too many types");
  size_t cap = 16;
  while (cap < elements.size() * 2) cap <<= 1;
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (uint32_t t = 0; t < types.size(); t++) {
    for (uint32_t e = types[t].first; e < types[t].first + types[t].count; e++) {
      if (elements[e].name.size() > UINT8_MAX)
        throw std::logic_error("schema blob: element name too long: " +
                               std::string(elements[e].name));
      const NameKey k = name_key(t, elements[e].name);
      uint64_t h = hash_key(k) & mask_;
      while (slots_[h].tag != Slot::kEmpty) h = (h + 1) & mask_;
      slots_[h] = Slot{k.tag, e, {k.w[0], k.w[1], k.w[2]}};
    }
    by_name_.emplace(types[t].name, t);
  }
  for (uint32_t i = 0; i < value_sets.size(); i++) vs_by_url_.emplace(value_sets[i].url, i);
}

int32_t Schema::find(uint32_t type, std::string_view name) const {
  if (name.size() > UINT8_MAX) return -1;  // no element name is that long (build_index)
  const NameKey k = name_key(type, name);
  uint64_t h = hash_key(k) & mask_;
  while (true) {
    const Slot& s = slots_[h];
    if (s.tag == Slot::kEmpty) return -1;
    if (s.tag == k.tag && s.w[0] == k.w[0] && s.w[1] == k.w[1] && s.w[2] == k.w[2] &&
        (name.size() <= kInlineName ||
         elements[s.elem].name.substr(kInlineName) == name.substr(kInlineName)))
      return static_cast<int32_t>(s.elem);
    h = (h + 1) & mask_;
  }
}

int32_t Schema::find_type(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? -1 : static_cast<int32_t>(it->second);
}

int32_t Schema::find_resource(std::string_view name) const {
  int32_t t = find_type(name);
  if (t < 0 || types[t].kind != Kind::resource || types[t].abstract) return -1;
  return t;
}

int32_t Schema::find_value_set(std::string_view url) const {
  auto bar = url.find('|');
  if (bar != std::string_view::npos) url = url.substr(0, bar);
  auto it = vs_by_url_.find(url);
  return it == vs_by_url_.end() ? -1 : static_cast<int32_t>(it->second);
}

const Schema& core() {
  static const Schema s = parse_blob();
  return s;
}

bool is_id(std::string_view v) {
  static const auto kTable = [] {
    std::array<bool, 256> t{};
    for (int c = 'A'; c <= 'Z'; c++) t[static_cast<size_t>(c)] = true;
    for (int c = 'a'; c <= 'z'; c++) t[static_cast<size_t>(c)] = true;
    for (int c = '0'; c <= '9'; c++) t[static_cast<size_t>(c)] = true;
    t['-'] = t['.'] = true;
    return t;
  }();
  if (v.empty() || v.size() > 64) return false;
  for (unsigned char c : v)
    if (!kTable[c]) return false;
  return true;
}

bool check_mime(std::string_view v) {
  // type "/" subtype [";" parameters]: RFC 6838 token characters, no whitespace around '/'.
  auto tok = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           std::strchr("!#$&-^_.+", c) != nullptr;
  };
  // FHIR's _format shorthands appear where R4 binds mimetypes (TestScript accept/contentType).
  if (v == "xml" || v == "json" || v == "ttl") return true;
  size_t slash = v.find('/');
  if (slash == 0 || slash == std::string_view::npos) return false;
  size_t end = v.find(';');
  std::string_view main = v.substr(0, end);
  for (size_t i = 0; i < main.size(); i++)
    if (i != slash && !tok(main[i])) return false;
  return slash + 1 < main.size();
}

bool check_ucum(std::string_view v) {
  // Full UCUM grammar is out of scope: printable ASCII without spaces.
  for (char c : v)
    if (c <= 32 || c >= 127) return false;
  return !v.empty();
}

bool check_currency(std::string_view v) {
  return v.size() == 3 &&
         std::all_of(v.begin(), v.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

std::string_view prim_name(Prim p) {
  switch (p) {
    case Prim::boolean:
      return "boolean";
    case Prim::integer:
      return "integer";
    case Prim::unsigned_int:
      return "unsignedInt";
    case Prim::positive_int:
      return "positiveInt";
    case Prim::decimal:
      return "decimal";
    case Prim::string:
      return "string";
    case Prim::markdown:
      return "markdown";
    case Prim::code:
      return "code";
    case Prim::id:
      return "id";
    case Prim::uri:
      return "uri";
    case Prim::oid:
      return "oid";
    case Prim::uuid:
      return "uuid";
    case Prim::base64:
      return "base64Binary";
    case Prim::date:
      return "date";
    case Prim::date_time:
      return "dateTime";
    case Prim::instant:
      return "instant";
    case Prim::time:
      return "time";
    case Prim::xhtml:
      return "xhtml";
    case Prim::none:
      break;
  }
  return "?";
}

const char* check_lexical(Prim prim, std::string_view v) {
  switch (prim) {
    case Prim::string:
    case Prim::markdown:
      // FHIR: strings SHALL NOT exceed 1 MB; content must not be only whitespace.
      if (v.size() > (1u << 20)) return "is longer than 1 MiB (FHIR string size limit)";
      if (std::all_of(v.begin(), v.end(), is_space)) return "is only whitespace";
      return nullptr;
    case Prim::code: {
      // [^\s]+( [^\s]+)*
      if (is_space(v.front()) || is_space(v.back()))
        return "is not a valid code (leading or trailing whitespace)";
      for (size_t i = 0; i < v.size(); i++) {
        if (v[i] == '\t' || v[i] == '\r' || v[i] == '\n')
          return "is not a valid code (contains a tab or newline)";
        if (v[i] == ' ' && v[i + 1] == ' ') return "is not a valid code (double space)";
      }
      return nullptr;
    }
    case Prim::id:
      return is_id(v) ? nullptr : "is not a valid id (1-64 of A-Z a-z 0-9 - .)";
    case Prim::uri:
      for (char c : v)
        if (is_space(c)) return "is not a valid uri (contains whitespace)";
      return nullptr;
    case Prim::oid: {
      // urn:oid:[0-2](\.(0|[1-9][0-9]*))+
      if (v.substr(0, 8) != "urn:oid:" || v.size() < 11 || v[8] < '0' || v[8] > '2' || v[9] != '.')
        return "is not a valid oid (urn:oid:1.2.3)";
      size_t i = 9;
      while (i < v.size()) {
        if (v[i] != '.') return "is not a valid oid (urn:oid:1.2.3)";
        size_t s = ++i;
        while (i < v.size() && v[i] >= '0' && v[i] <= '9') i++;
        if (i == s || (v[s] == '0' && i - s > 1)) return "is not a valid oid (urn:oid:1.2.3)";
      }
      return nullptr;
    }
    case Prim::uuid: {
      static constexpr const char* kMsg =
          "is not a valid uuid (urn:uuid: + lower-case 8-4-4-4-12 hex)";
      if (v.size() != 45 || v.substr(0, 9) != "urn:uuid:") return kMsg;
      for (size_t i = 9; i < 45; i++) {
        char c = v[i];
        bool dash = i == 17 || i == 22 || i == 27 || i == 32;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return kMsg;
      }
      return nullptr;
    }
    case Prim::base64: {
      // Hot path (attachments are often megabytes): table-driven, one pass.
      static const auto kTable = [] {
        std::array<uint8_t, 256> t{};  // 0 invalid, 1 alphabet, 2 whitespace, 3 '='
        for (int c = 'A'; c <= 'Z'; c++) t[static_cast<size_t>(c)] = 1;
        for (int c = 'a'; c <= 'z'; c++) t[static_cast<size_t>(c)] = 1;
        for (int c = '0'; c <= '9'; c++) t[static_cast<size_t>(c)] = 1;
        t['+'] = t['/'] = 1;
        t[' '] = t['\t'] = t['\r'] = t['\n'] = 2;
        t['='] = 3;
        return t;
      }();
      size_t n = 0, pad = 0;
      const unsigned char* p = reinterpret_cast<const unsigned char*>(v.data());
      const unsigned char* end = p + v.size();
      for (; p != end; ++p) {
        uint8_t k = kTable[*p];
        if (k == 1) {
          if (pad) return "is not valid base64 ('=' padding inside the data)";
          n++;
        } else if (k == 3) {
          pad++;
          n++;
        } else if (k == 0) {
          return "is not valid base64";
        }
      }
      if (n % 4 != 0 || pad > 2) return "is not valid base64 (length not a multiple of 4)";
      return nullptr;
    }
    case Prim::date:
      return parse_date(v, false) == v.size() ? nullptr
                                              : "is not a valid date (YYYY, YYYY-MM or YYYY-MM-DD)";
    case Prim::date_time: {
      static constexpr const char* kMsg =
          "is not a valid dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a time "
          "zone)";
      size_t d = parse_date(v, false);
      if (d == 0) return kMsg;
      if (d == v.size()) return nullptr;
      if (d != 10 || v[10] != 'T') return kMsg;
      size_t t = parse_time(v, 11);
      if (t == 0) return kMsg;
      if (11 + t == v.size())
        return "is not a valid dateTime (a time needs a time zone: Z or +hh:mm)";
      return parse_zone(v, 11 + t) ? nullptr : kMsg;
    }
    case Prim::instant: {
      static constexpr const char* kMsg =
          "is not a valid instant (YYYY-MM-DDThh:mm:ss(.sss)(Z|+hh:mm))";
      if (parse_date(v, true) != 10 || v.size() < 11 || v[10] != 'T') return kMsg;
      size_t t = parse_time(v, 11);
      if (t == 0 || !parse_zone(v, 11 + t)) return kMsg;
      return nullptr;
    }
    case Prim::time: {
      size_t t = parse_time(v, 0);
      return t != 0 && t == v.size() ? nullptr : "is not a valid time (hh:mm:ss)";
    }
    case Prim::xhtml: {
      size_t i = 0;
      while (i < v.size() && is_space(v[i])) i++;
      return v.substr(i, 4) == "<div" ? nullptr
                                      : "is not XHTML narrative (must be a <div> element)";
    }
    default:
      return nullptr;
  }
}

}  // namespace fe::fhir::schema
