// The validation engine: parses one NDJSON line with simdjson (DOM) and walks it against the
// compiled R4 schema (schema.hpp). Rules and their issue codes are listed in docs/validation.md.
// This file: the Validator (options, validate_line: parse, size limits, walk, invariants, profiles)
// and the output forms; the walker itself is validator_walker.cpp and validator_values.cpp.
#include "fhir/validator.hpp"
#include "common/json_writer.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "fhir/fhirpath.hpp"
#include "fhir/internal.hpp"
#include "fhir/validator_walker.hpp"

namespace fe::fhir {

using schema::Element;
using schema::Kind;
using schema::Prim;
using schema::Type;
namespace dom = simdjson::dom;

// ---- small helpers ------------------------------------------------------------------------------

std::optional<Level> parse_level(std::string_view t) {
  if (t == "minimal") return Level::minimal;
  if (t == "structure-only") return Level::structure_only;
  if (t == "strict") return Level::strict;
  return std::nullopt;
}

std::string_view to_string(Level l) {
  switch (l) {
    case Level::minimal:
      return "minimal";
    case Level::structure_only:
      return "structure-only";
    case Level::strict:
      return "strict";
  }
  return "?";
}

std::string_view to_string(Severity s) {
  switch (s) {
    case Severity::error:
      return "error";
    case Severity::warning:
      return "warning";
    case Severity::information:
      return "information";
  }
  return "?";
}

size_t Result::errors() const {
  return static_cast<size_t>(std::count_if(
      issues.begin(), issues.end(), [](const Issue& i) { return i.severity == Severity::error; }));
}
size_t Result::warnings() const {
  return static_cast<size_t>(std::count_if(issues.begin(), issues.end(), [](const Issue& i) {
    return i.severity == Severity::warning;
  }));
}

std::string shorten(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) cut--;  // UTF-8 boundary
  return std::string(s.substr(0, cut)) + "...";
}

std::string IssueSink::path_string(std::string_view child) const {
  std::string p;
  for (const auto& seg : path) {
    if (!p.empty()) p += '.';
    p += seg.name;
    if (seg.index >= 0) {
      p += '[';
      p += std::to_string(seg.index);
      p += ']';
    }
  }
  if (!child.empty()) {
    if (!p.empty()) p += '.';
    p += child;
  }
  return p;
}

void IssueSink::add(Severity s, std::string_view code, std::string message,
                    std::string_view child) {
  if (result.issues.size() >= max_issues) {
    result.truncated = true;
    return;
  }
  result.issues.push_back(
      Issue{s, std::string(code), result.line, path_string(child), std::move(message)});
}

void IssueSink::add_at(Severity s, std::string_view code, std::string message, std::string p) {
  if (result.issues.size() >= max_issues) {
    result.truncated = true;
    return;
  }
  result.issues.push_back(
      Issue{s, std::string(code), result.line, std::move(p), std::move(message)});
}

Scratch::Scratch() : impl_(std::make_unique<Impl>()) {}
Scratch::~Scratch() = default;
Scratch::Scratch(Scratch&&) noexcept = default;
Scratch& Scratch::operator=(Scratch&&) noexcept = default;

// ---- line checks --------------------------------------------------------------------------------

using detail::kind_name;
using detail::PathGuard;
using detail::Walker;

namespace {

const char* parse_error_message(simdjson::error_code err) {
  switch (err) {
    case simdjson::UTF8_ERROR:
      return "the line is not valid UTF-8";
    case simdjson::DEPTH_ERROR:
      return "JSON nesting is deeper than the limit";
    case simdjson::CAPACITY:
      return "the line is larger than the line size limit";
    case simdjson::STRING_ERROR:
      return "invalid JSON string (bad escape or control character)";
    case simdjson::UNCLOSED_STRING:
      return "invalid JSON: unclosed string";
    case simdjson::NUMBER_ERROR:
      return "invalid JSON number";
    case simdjson::T_ATOM_ERROR:
    case simdjson::F_ATOM_ERROR:
    case simdjson::N_ATOM_ERROR:
      return "invalid JSON literal (true/false/null expected)";
    case simdjson::TAPE_ERROR:
      return "invalid JSON (structure, e.g. a missing comma, brace or bracket)";
    case simdjson::EMPTY:
      return "empty document";
    default:
      return nullptr;
  }
}

// Generic scan for the string-length limit at minimal level (the schema walk does it otherwise).
bool long_string(dom::element el, size_t limit, int depth = 0) {
  if (depth > 1000) return false;
  switch (el.type()) {
    case dom::element_type::STRING:
      return el.get_string().value_unsafe().size() > limit;
    case dom::element_type::ARRAY:
      for (dom::element x : dom::array(el.get_array().value_unsafe()))
        if (long_string(x, limit, depth + 1)) return true;
      return false;
    case dom::element_type::OBJECT:
      for (auto [k, v] : dom::object(el.get_object().value_unsafe()))
        if (k.size() > limit || long_string(v, limit, depth + 1)) return true;
      return false;
    default:
      return false;
  }
}

}  // namespace

// ---- Validator ----------------------------------------------------------------------------------

Validator::Validator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Validator::~Validator() = default;
const Options& Validator::options() const {
  return impl_->options;
}
Level Validator::level() const {
  return impl_->options.level;
}

std::shared_ptr<const Validator> Validator::create(const Options& options, LoadReport& report) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->schema = &schema::core();
  if (options.level == Level::strict && (options.builtin_profiles || !options.packages.empty())) {
    impl->profiles =
        load_profiles(options.packages, *impl->schema, report, options.builtin_profiles);
  } else if (options.level != Level::strict && !options.packages.empty()) {
    report.warnings.push_back("FHIR packages are only used at level strict; ignored at " +
                              std::string(to_string(options.level)));
  }
  if (!report.errors.empty()) return nullptr;
  return std::shared_ptr<const Validator>(new Validator(std::move(impl)));
}

InvariantCounts Validator::invariant_counts(const Scratch& scratch) {
  const Scratch::Impl& sc = scratch.impl();
  return InvariantCounts{sc.inv_evaluated, sc.inv_failed, sc.inv_not_evaluated};
}

std::vector<std::pair<std::string, uint64_t>> Validator::terminology_not_checked(
    const Scratch& scratch) {
  const Scratch::Impl& sc = scratch.impl();
  std::vector<std::pair<std::string, uint64_t>> out(sc.tx_not_checked.begin(),
                                                    sc.tx_not_checked.end());
  std::sort(out.begin(), out.end());
  return out;
}

void check_invariants(dom::element obj, uint32_t type, std::string_view type_name,
                      Scratch::Impl& sc, IssueSink& sink);

Result Validator::validate_line(std::string_view line, uint64_t line_no) const {
  Scratch s;
  return validate_line(line, line_no, s);
}

Result Validator::validate_line(std::string_view line, uint64_t line_no, Scratch& scratch) const {
  const Options& opt = impl_->options;
  Scratch::Impl& sc = scratch.impl();
  Result r;
  r.line = line_no;
  sc.path.clear();
  IssueSink sink{r, sc.path, std::max<size_t>(opt.max_issues, 1)};
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (std::all_of(line.begin(), line.end(),
                  [](char c) { return c == ' ' || c == '\t' || c == '\r'; })) {
    r.blank = true;
    r.issues.push_back(Issue{Severity::warning, std::string(code::informational), line_no, "",
                             "blank line (no resource)"});
    return r;
  }
  if (line.size() > opt.max_line_bytes) {
    sink.add(Severity::error, code::too_long,
             "line of " + std::to_string(line.size()) + " bytes exceeds the line size limit of " +
                 std::to_string(opt.max_line_bytes) + " bytes");
    return r;
  }
  if (sc.max_capacity != opt.max_line_bytes || sc.max_depth != opt.max_depth) {
    sc.parser = dom::parser(opt.max_line_bytes + 1);
    if (sc.parser.allocate(std::min<size_t>(opt.max_line_bytes + 1, 1 << 16), opt.max_depth)) {
      sink.add(Severity::error, code::too_costly, "cannot allocate the JSON parser");
      return r;
    }
    sc.max_capacity = opt.max_line_bytes;
    sc.max_depth = opt.max_depth;
  }
  // simdjson reads up to SIMDJSON_PADDING bytes past the end: parse a padded copy.
  sc.buf.resize(line.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(sc.buf.data(), line.data(), line.size());
  dom::element root;
  auto err = sc.parser.parse(sc.buf.data(), line.size(), false).get(root);
  if (err) {
    const char* m = parse_error_message(err);
    std::string_view c = err == simdjson::UTF8_ERROR    ? code::invalid
                         : err == simdjson::DEPTH_ERROR ? code::too_costly
                         : err == simdjson::CAPACITY    ? code::too_long
                                                        : code::invalid;
    if (err == simdjson::DEPTH_ERROR)
      sink.add(Severity::error, c,
               "JSON nesting is deeper than the limit of " + std::to_string(opt.max_depth));
    else
      sink.add(Severity::error, c,
               m ? m : std::string("invalid JSON: ") + simdjson::error_message(err));
    // A line that is not valid JSON never becomes a resource. If the shrink-to-fit matters
    // after a huge line, the parser keeps its capacity (bounded by max_line_bytes).
    return r;
  }
  dom::object obj;
  if (root.get(obj)) {
    sink.add(Severity::error, code::structure,
             std::string("a line must be one JSON object (a resource), found ") +
                 kind_name(root.type()));
    return r;
  }
  std::string_view rt;
  auto rt_err = obj["resourceType"].get(rt);
  if (rt_err) {
    sink.add(Severity::error, code::required,
             rt_err == simdjson::NO_SUCH_FIELD ? "missing 'resourceType'"
                                               : "'resourceType' must be a string");
    return r;
  }
  std::string_view id;
  if (obj["id"].get(id) == simdjson::SUCCESS) r.id = std::string(id.substr(0, 256));
  r.resource_type = std::string(rt.substr(0, 128));
  const schema::Schema& s = *impl_->schema;
  int32_t t = s.find_resource(rt);
  if (t < 0) {
    sink.add(Severity::error, code::not_supported,
             "unknown resourceType '" + shorten(rt) + "' (not an R4 resource)");
    return r;
  }
  sc.path.push_back(PathSeg{s.types[static_cast<size_t>(t)].name, -1});
  if (opt.level == Level::minimal) {
    dom::element idv;
    if (obj["id"].get(idv) == simdjson::SUCCESS) {
      if (!idv.is_string())
        sink.add(Severity::error, code::structure, "'id' must be a JSON string", "id");
      else if (!schema::is_id(id))
        sink.add(Severity::error, code::value,
                 "'" + shorten(id) + "' is not a valid id (1-64 of A-Z a-z 0-9 - .)", "id");
    }
    if (line.size() > opt.max_string_bytes && long_string(root, opt.max_string_bytes))
      sink.add(Severity::error, code::too_long,
               "a string exceeds the limit of " + std::to_string(opt.max_string_bytes) + " bytes");
    sc.path.clear();
    return r;
  }
  sc.seen.clear();
  sc.choices.clear();
  sc.elem_ids.clear();
  Walker w(*impl_, sc, sink);
  w.resource(obj, static_cast<uint32_t>(t), false);
  if (opt.level == Level::strict) {
    check_invariants(root, static_cast<uint32_t>(t), s.types[static_cast<size_t>(t)].name, sc,
                     sink);
    dom::array profiles;
    if (obj["meta"]["profile"].get(profiles) == simdjson::SUCCESS) {
      if (impl_->profiles) {
        check_profiles(*impl_->profiles, s, root, obj, rt, sc, sink);
      } else {
        for (dom::element p : profiles) {
          std::string_view url;
          if (p.get(url)) continue;
          sink.add(Severity::warning, code::not_supported,
                   "profile " + shorten(url, 200) +
                       " is not loaded (no FHIR package given); validated against R4 only",
                   "meta.profile");
        }
      }
    }
  }
  sc.path.clear();
  return r;
}

// The R4 error-severity FHIRPath invariants (fhirpath.hpp) on the parsed resource: a failure is an
// error naming the invariant, a not-evaluated one a warning naming it and why (never a pass).
void check_invariants(dom::element obj, uint32_t type, std::string_view type_name,
                      Scratch::Impl& sc, IssueSink& sink) {
  fhirpath::Counts counts;
  std::vector<fhirpath::InvariantResult> results;
  fhirpath::check_resource(obj, type, type_name, counts, results);
  sc.inv_evaluated += counts.evaluated;
  sc.inv_failed += counts.failed;
  sc.inv_not_evaluated += counts.not_evaluated;
  for (const auto& r : results) {
    Issue is;
    is.line = sink.result.line;
    is.path = r.path;
    is.code = std::string(code::invariant);
    if (r.outcome == fhirpath::Outcome::fail && (r.inv->key == "txt-1" || r.inv->key == "txt-2") &&
        fhirpath::html_checks_structure_only(r.node_text)) {
      // Well-formed, allowed XHTML with only whitespace: R4 says SHALL have content, but the
      // official R4 examples ship such narratives and HealthLake accepts them (a warning).
      is.severity = Severity::warning;
      is.message = std::string(r.inv->key) + ": " + std::string(r.inv->human) +
                   " (the narrative is whitespace only; reported as a warning)";
    } else if (r.outcome == fhirpath::Outcome::fail &&
               (r.inv->key == "txt-1" || r.inv->key == "txt-2")) {
      // Name what is wrong in the XHTML, not the long invariant expression.
      is.severity = Severity::error;
      std::string why = fhirpath::html_problem(r.node_text);
      is.message = std::string(r.inv->key) + ": " + std::string(r.inv->human) +
                   (why.empty() ? std::string() : " (" + why + ")");
    } else if (r.outcome == fhirpath::Outcome::fail) {
      is.severity = Severity::error;
      is.message = std::string(r.inv->key) + ": " + std::string(r.inv->human) + " (invariant " +
                   std::string(r.inv->expression) + ")";
    } else {
      is.severity = Severity::warning;
      is.code = std::string(code::not_supported);
      is.message = "invariant " + std::string(r.inv->key) + " not evaluated (" + r.reason + ")";
    }
    if (sink.result.issues.size() >= sink.max_issues) {
      sink.result.truncated = true;
      break;
    }
    sink.result.issues.push_back(std::move(is));
  }
}

// ---- Output forms -------------------------------------------------------------------------------

std::string to_operation_outcome(const Result& result, std::string_view file) {
  json::Writer w;
  w.begin_object().field("resourceType", "OperationOutcome").key("issue").begin_array();
  for (const Issue& i : result.issues) {
    std::string diag;
    if (!file.empty()) {
      diag += file;
      diag += ':';
      diag += std::to_string(i.line);
      diag += ": ";
    }
    if (!result.resource_type.empty()) {
      diag += result.resource_type;
      if (!result.id.empty()) {
        diag += '/';
        diag += result.id;
      }
      diag += ": ";
    }
    diag += i.message;
    w.begin_object().key("extension").begin_array().begin_object();
    w.field("url", "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line");
    w.field("valueInteger", std::min<uint64_t>(i.line, INT32_MAX));
    w.end_object().end_array();
    w.field("severity", to_string(i.severity)).field("code", i.code).field("diagnostics", diag);
    w.key("location").begin_array().value("Line " + std::to_string(i.line)).end_array();
    if (!i.path.empty()) w.key("expression").begin_array().value(i.path).end_array();
    w.end_object();
  }
  w.end_array().end_object();
  return std::move(w).str();
}

std::string to_text(const Result& result, std::string_view file) {
  std::string out;
  for (const Issue& i : result.issues) {
    out += file;
    out += ':';
    out += std::to_string(i.line);
    out += ": ";
    out += to_string(i.severity);
    out += ' ';
    if (!i.path.empty()) {
      out += i.path;
      out += ": ";
    }
    out += i.message;
    out += '\n';
  }
  if (result.truncated) {
    out += file;
    out += ':';
    out += std::to_string(result.line);
    out += ": information: more issues in this resource were not reported\n";
  }
  return out;
}

}  // namespace fe::fhir
