// The strict rule families that need nothing from outside the resource (docs/validation.md,
// "strict: rules on the resource alone"). The structural walk (validator_walker.cpp) calls them at
// Level::strict on the nodes it already visits: no second walk and no second parse. Each failure
// is an issue naming the JSON path. What the HL7 Java validator reports for the same rule is
// named in the comments (org.hl7.fhir.validation InstanceValidator / BundleValidator).
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "fhir/internal.hpp"

namespace fe::fhir::rules {

namespace dom = simdjson::dom;

namespace {

// RFC 3986 scheme ":" — an absolute URI (the FHIR uri type's "absolute" is this).
bool has_scheme(std::string_view u) {
  if (u.empty() || !std::isalpha(static_cast<unsigned char>(u[0]))) return false;
  for (size_t i = 1; i < u.size(); i++) {
    char c = u[i];
    if (c == ':') return true;
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.')
      return false;
  }
  return false;
}

bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// 8-4-4-4-12 lower-case hex digits (FHIR: "UUIDs must be valid and lowercase").
bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!is_lower_hex(s[i])) {
      return false;
    }
  }
  return true;
}

bool is_id_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
}

// The R4 RESTful URL pattern (https://hl7.org/fhir/R4/references.html#regex):
// ((http|https)://([A-Za-z0-9\-\\\.\:\%\$]*\/)+)?(Type)\/[A-Za-z0-9\-\.]{1,64}
// (\/_history\/[A-Za-z0-9\-\.]{1,64})? — split into the service base (with its trailing '/'),
// the type and the id. `absolute` requires the http(s) base.
struct Restful {
  std::string_view base, type, id, version;
};
std::optional<Restful> parse_restful(std::string_view u, bool absolute) {
  Restful r;
  std::string_view rest = u;
  size_t h = rest.find("/_history/");
  if (h != std::string_view::npos) {
    r.version = rest.substr(h + 10);
    if (r.version.empty() || r.version.size() > 64 ||
        !std::all_of(r.version.begin(), r.version.end(), is_id_char))
      return std::nullopt;
    rest = rest.substr(0, h);
  }
  size_t s2 = rest.rfind('/');
  if (s2 == std::string_view::npos) return std::nullopt;
  r.id = rest.substr(s2 + 1);
  if (r.id.empty() || r.id.size() > 64 || !std::all_of(r.id.begin(), r.id.end(), is_id_char))
    return std::nullopt;
  std::string_view head = rest.substr(0, s2);
  size_t s1 = head.rfind('/');
  r.type = s1 == std::string_view::npos ? head : head.substr(s1 + 1);
  if (schema::core().find_resource(r.type) < 0) return std::nullopt;
  r.base = s1 == std::string_view::npos ? std::string_view{} : u.substr(0, s1 + 1);
  if (r.base.empty()) return absolute ? std::nullopt : std::optional<Restful>(r);
  std::string_view after;
  if (r.base.starts_with("http://"))
    after = r.base.substr(7);
  else if (r.base.starts_with("https://"))
    after = r.base.substr(8);
  else
    return std::nullopt;
  for (char c : after)
    if (!std::isalnum(static_cast<unsigned char>(c)) && !std::strchr("-\\.:%$/", c))
      return std::nullopt;
  return r;
}

// Base64 alphabet value, 64 for '=', 65 for whitespace, 66 for anything else.
uint8_t b64_value(unsigned char c) {
  static const auto kTable = [] {
    std::array<uint8_t, 256> t{};
    t.fill(66);
    for (int c = 'A'; c <= 'Z'; c++) t[static_cast<size_t>(c)] = static_cast<uint8_t>(c - 'A');
    for (int c = 'a'; c <= 'z'; c++) t[static_cast<size_t>(c)] = static_cast<uint8_t>(c - 'a' + 26);
    for (int c = '0'; c <= '9'; c++) t[static_cast<size_t>(c)] = static_cast<uint8_t>(c - '0' + 52);
    t['+'] = 62;
    t['/'] = 63;
    t['='] = 64;
    t[' '] = t['\t'] = t['\r'] = t['\n'] = 65;
    return t;
  }();
  return kTable[c];
}

// Decodes base64 in fixed-size chunks, handing each to `sink` (bounded memory whatever the size
// of the data). Returns the decoded length, or -1 when the text is not base64 (structure-only
// reports that).
template <typename Sink>
int64_t decode_b64(std::string_view t, Sink&& sink) {
  std::array<uint8_t, 3072> out;
  size_t n = 0;
  int64_t total = 0;
  uint32_t acc = 0;
  int bits = 0;
  bool pad = false;
  for (unsigned char c : t) {
    uint8_t v = b64_value(c);
    if (v == 65) continue;
    if (v == 66) return -1;
    if (v == 64) {
      pad = true;
      continue;
    }
    if (pad) return -1;  // data after padding
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = static_cast<uint8_t>((acc >> bits) & 0xFF);
      total++;
      if (n == out.size()) {
        sink(out.data(), n);
        n = 0;
      }
    }
  }
  if (n) sink(out.data(), n);
  return total;
}

std::string b64_encode(const unsigned char* p, size_t n) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = static_cast<uint32_t>(p[i]) << 16;
    if (i + 1 < n) v |= static_cast<uint32_t>(p[i + 1]) << 8;
    if (i + 2 < n) v |= p[i + 2];
    o += k[(v >> 18) & 63];
    o += k[(v >> 12) & 63];
    o += i + 1 < n ? k[(v >> 6) & 63] : '=';
    o += i + 2 < n ? k[v & 63] : '=';
  }
  return o;
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

}  // namespace

// ---- uri, url, canonical: urn:uuid -------------------------------------------------------------

void uri_value(std::string_view v, IssueSink& sink) {
  if (!v.starts_with("urn:uuid:")) return;
  std::string_view s = v.substr(9);
  s = s.substr(0, s.find('#'));
  s = s.substr(0, s.find('|'));  // canonical|version
  if (!is_uuid(s))
    sink.add(Severity::error, code::value,
             "'" + shorten(v) +
                 "': UUIDs must be valid and lowercase (urn:uuid: + 8-4-4-4-12 lower-case hex)");
}

// ---- Coding.system ------------------------------------------------------------------------------

namespace {
// Code systems the validator can answer for without a terminology server: HL7's own (FHIR core,
// terminology.hl7.org, and the IGs under hl7.org/fhir; not the external systems HL7 names under
// hl7.org/fhir/sid/), and the grammars checked lexically.
bool needs_terminology_server(std::string_view sys) {
  if (sys.starts_with("http://hl7.org/fhir/sid/")) return true;
  if (sys.starts_with("http://hl7.org/fhir/") || sys.starts_with("http://terminology.hl7.org/"))
    return false;
  return !(sys == "http://unitsofmeasure.org" || sys == "urn:ietf:bcp:13" ||
           sys == "urn:ietf:bcp:47" || sys == "urn:iso:std:iso:4217");
}
constexpr size_t kMaxTerminologySystems = 256;
}  // namespace

void coding(dom::object c, Scratch::Impl& sc, IssueSink& sink) {
  std::string_view sys;
  if (c["system"].get(sys) != simdjson::SUCCESS || sys.empty()) return;
  // Java: "Coding.system must be an absolute reference, not a local reference" (http:, https:,
  // urn:), and "The Coding references a value set, not a code system".
  if (!(sys.starts_with("http:") || sys.starts_with("https:") || sys.starts_with("urn:"))) {
    sink.add(Severity::error, code::value,
             "Coding.system '" + shorten(sys) +
                 "' must be an absolute URI (http:, https: or urn:), not a local reference",
             "system");
    return;
  }
  if (sys.find("/ValueSet/") != std::string_view::npos &&
      (sys.starts_with("http://hl7.org/fhir/") || sys.starts_with("http://terminology.hl7.org/"))) {
    sink.add(Severity::error, code::value,
             "Coding.system '" + shorten(sys) + "' is a value set URL, not a code system",
             "system");
    return;
  }
  if (!needs_terminology_server(sys)) return;
  dom::element code;
  if (c["code"].get(code) != simdjson::SUCCESS) return;
  auto it = sc.tx_not_checked.find(std::string(sys));
  if (it != sc.tx_not_checked.end())
    it->second++;
  else if (sc.tx_not_checked.size() < kMaxTerminologySystems)
    sc.tx_not_checked.emplace(std::string(sys), 1);
  else
    sc.tx_not_checked["(other code systems)"]++;
}

// ---- ValueSet.compose.include/exclude.system ----------------------------------------------------

void value_set(dom::object vs, Scratch::Impl& sc, IssueSink& sink) {
  dom::object compose;
  if (vs["compose"].get(compose) != simdjson::SUCCESS) return;
  for (const char* part : {"include", "exclude"}) {
    dom::array arr;
    if (compose[part].get(arr) != simdjson::SUCCESS) continue;
    int64_t i = 0;
    for (dom::element inc : arr) {
      std::string_view sys;
      if (inc["system"].get(sys) == simdjson::SUCCESS && !sys.empty() && !has_scheme(sys)) {
        sc.path.push_back(PathSeg{"compose", -1});
        sc.path.push_back(PathSeg{part, i});
        sink.add(Severity::error, code::value,
                 std::string("URI values in ValueSet.compose.") + part +
                     ".system must be absolute ('" + shorten(sys) + "'" +
                     (sys.starts_with("#") ? "; a contained CodeSystem is named by its url" : "") +
                     ")",
                 "system");
        sc.path.pop_back();
        sc.path.pop_back();
      }
      i++;
    }
  }
}

// ---- Attachment ---------------------------------------------------------------------------------

void attachment(dom::object a, IssueSink& sink) {
  std::string_view data;
  if (a["data"].get(data) != simdjson::SUCCESS) return;
  dom::element size_el;
  int64_t size = -1;
  if (a["size"].get(size_el) == simdjson::SUCCESS && size_el.is_int64())
    size = size_el.get_int64().value_unsafe();
  std::string_view hash;
  const bool has_hash = a["hash"].get(hash) == simdjson::SUCCESS;
  if (size < 0 && !has_hash) return;
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> md;
  if (has_hash) {
    md.reset(EVP_MD_CTX_new());
    if (!md || EVP_DigestInit_ex(md.get(), EVP_sha1(), nullptr) != 1) md.reset();
  }
  int64_t n = decode_b64(data, [&](const uint8_t* p, size_t len) {
    if (md) EVP_DigestUpdate(md.get(), p, len);
  });
  if (n < 0) return;  // not base64: structure-only reports it
  if (size >= 0 && size != n)
    sink.add(Severity::error, code::value,
             "size " + std::to_string(size) + " does not match the decoded length of data (" +
                 std::to_string(n) + " bytes)",
             "size");
  if (md) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    std::vector<uint8_t> want;
    int64_t hl = decode_b64(hash, [&](const uint8_t* p, size_t len) {
      // A SHA-1 is 20 bytes: keep at most 64, whatever the size of the text.
      want.insert(want.end(), p, p + std::min<size_t>(len, 64 - std::min<size_t>(64, want.size())));
      if (len > 64) want.push_back(0);  // and stay "not 20 bytes"
    });
    if (hl >= 0 && EVP_DigestFinal_ex(md.get(), d, &dl) == 1) {
      if (want.size() != dl)
        // Not a SHA-1 at all (20 bytes): e.g. hex text read as base64, as in the official R4
        // example DiagnosticReport-example-pgx. Nothing to compare; said, not failed.
        sink.add(Severity::warning, code::value,
                 "hash '" + shorten(hash) + "' is not a base64 SHA-1 (" +
                     std::to_string(want.size()) + " bytes, not 20); the SHA-1 of data is '" +
                     b64_encode(d, dl) + "'",
                 "hash");
      else if (std::memcmp(want.data(), d, dl) != 0)
        sink.add(Severity::error, code::value,
                 "hash '" + shorten(hash) + "' is not the SHA-1 of data (the SHA-1 of data is '" +
                     b64_encode(d, dl) + "')",
                 "hash");
    }
  }
}

// ---- Bundle: fullUrl and references (https://hl7.org/fhir/R4/bundle.html#references) -----------

// one piece: indexes the entries (fullUrl, type/id) and resolves every reference against that
// index in the same scope; the index lives only for this call.
void bundle(dom::object b, const std::vector<BundleRef>& refs, Scratch::Impl& sc, IssueSink& sink) {
  dom::array entries;
  if (b["entry"].get(entries) != simdjson::SUCCESS) return;
  std::string_view btype;
  if (b["type"].get(btype) != simdjson::SUCCESS) btype = {};
  // Documents and messages are expected to carry what they reference; elsewhere a relative
  // reference may well name a resource on a server (bundle-references example).
  const bool self_contained = btype == "document" || btype == "message";
  struct Entry {
    std::string_view full_url, type, id, version;
  };
  std::vector<Entry> es;
  es.reserve(entries.size());
  std::unordered_map<std::string_view, std::vector<uint32_t>> by_url;
  std::unordered_map<std::string, std::vector<uint32_t>> by_type_id;
  int64_t i = 0;
  for (dom::element e : entries) {
    Entry en;
    dom::object res;
    if (e["resource"].get(res) == simdjson::SUCCESS) {
      if (res["resourceType"].get(en.type) != simdjson::SUCCESS) en.type = {};
      if (res["id"].get(en.id) != simdjson::SUCCESS) en.id = {};
      if (res["meta"]["versionId"].get(en.version) != simdjson::SUCCESS) en.version = {};
    }
    if (e["fullUrl"].get(en.full_url) == simdjson::SUCCESS && !en.full_url.empty()) {
      sc.path.push_back(PathSeg{"entry", i});
      if (!has_scheme(en.full_url)) {
        sink.add(Severity::error, code::value,
                 "the fullUrl must be an absolute URL (not '" + shorten(en.full_url) + "')",
                 "fullUrl");
      } else if (auto r = parse_restful(en.full_url, true); r && !en.type.empty()) {
        // "The fullUrl SHALL NOT disagree with the id in the resource" (bundle.html). A warning:
        // official R4 examples break it (Bundle-lri-example, Bundle-10bb101f...), and the entry
        // is still identified by its fullUrl.
        if (r->version.empty() && (r->type != en.type || (!en.id.empty() && r->id != en.id)))
          sink.add(Severity::warning, code::value,
                   "the fullUrl '" + shorten(en.full_url) +
                       "' is a RESTful URL, so it must end with the resource's type and id (" +
                       std::string(en.type) + "/" + shorten(en.id) + ")",
                   "fullUrl");
      }
      sc.path.pop_back();
      by_url[en.full_url].push_back(static_cast<uint32_t>(i));
    }
    if (!en.type.empty() && !en.id.empty())
      by_type_id[std::string(en.type) + "/" + std::string(en.id)].push_back(
          static_cast<uint32_t>(i));
    es.push_back(en);
    i++;
  }
  for (const BundleRef& br : refs) {
    std::string_view ref = br.reference;
    ref = ref.substr(0, ref.find('#'));
    if (ref.empty() || ref.find('?') != std::string_view::npos) continue;  // local, conditional
    std::string_view version;
    std::string target;  // the absolute URL matched against fullUrl
    std::optional<Restful> rel;
    if (has_scheme(ref)) {
      size_t h = ref.find("/_history/");
      if (h != std::string_view::npos) {
        version = ref.substr(h + 10);
        target = std::string(ref.substr(0, h));
      } else {
        target = std::string(ref);
      }
    } else {
      rel = parse_restful(ref, false);
      if (!rel || !rel->base.empty()) continue;  // not Type/id[/_history/v]
      version = rel->version;
      // Resolved against the service base of the referring entry's RESTful fullUrl.
      std::string_view from = br.entry < es.size() ? es[br.entry].full_url : std::string_view{};
      auto fr = parse_restful(from, true);
      if (fr) target = std::string(fr->base) + std::string(rel->type) + "/" + std::string(rel->id);
    }
    std::vector<uint32_t> hits;
    if (!target.empty()) {
      auto it = by_url.find(target);
      if (it != by_url.end()) hits = it->second;
    }
    const std::string shown = shorten(br.reference);
    if (!version.empty() && !hits.empty()) {
      std::vector<uint32_t> same;
      for (uint32_t h : hits)
        if (es[h].version == version) same.push_back(h);
      if (same.empty()) {
        sink.add_at(Severity::error, code::invariant,
                    "reference '" + shown + "': the Bundle has " + std::to_string(hits.size()) +
                        " entries with fullUrl '" + shorten(target) + "', but none with version " +
                        shorten(version) + " (meta.versionId)",
                    br.path);
        continue;
      }
      hits = same;
    }
    if (hits.size() > 1) {
      sink.add_at(Severity::error, code::invariant,
                  "reference '" + shown + "' is ambiguous: " + std::to_string(hits.size()) +
                      " entries have fullUrl '" + shorten(target) + "'",
                  br.path);
      continue;
    }
    if (hits.empty() && rel && self_contained) {
      // Not resolvable, yet an entry holds exactly that type and id: the author meant it, but
      // by the fullUrl rules a relative reference only resolves against a RESTful fullUrl. A
      // warning: the reference is well-formed, it only means nothing inside this Bundle (and the
      // official R4 examples Bundle-father and the message Bundle-3a0707d3... do this).
      auto it = by_type_id.find(std::string(rel->type) + "/" + std::string(rel->id));
      if (it != by_type_id.end()) {
        const Entry& t = es[it->second[0]];
        std::string_view from = br.entry < es.size() ? es[br.entry].full_url : std::string_view{};
        sink.add_at(Severity::warning, code::invariant,
                    "reference '" + shown +
                        "' does not resolve in the Bundle by the fullUrl rules: " + "entry " +
                        std::to_string(it->second[0]) + " is " + std::string(t.type) + "/" +
                        shorten(t.id) + " but its fullUrl is '" + shorten(t.full_url) +
                        "'; a relative reference resolves only against the RESTful fullUrl of "
                        "the entry that holds it (here '" +
                        shorten(from) + "'); use the target's fullUrl",
                    br.path);
      }
    }
  }
}

}  // namespace fe::fhir::rules
