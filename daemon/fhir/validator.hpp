#pragma once
// FHIR R4 (4.0.1) resource validation at the three AWS HealthLake ValidationLevels.
//
// Contract for every user (pipeline thread pool, healthlake-local emulator, `fhir-edge validate`):
// - Build ONE Validator per (level, packages) with Validator::create(). It is immutable afterwards
//   and validate_line() may be called from any number of threads at once, each passing its own
//   Scratch (the simdjson parser and buffers; not thread-safe, cheap to keep per thread).
// - One call validates ONE NDJSON line (one resource). The R4 core definitions are compiled into
//   the binary (tools/fhir-schema-gen); nothing is parsed from StructureDefinitions per resource.
// - Memory is bounded by the limits in Options, never by file size; LineReader/validate_file
//   stream a file line by line.
//
// Levels (see docs/validation.md for the full rule checklist):
//   minimal         JSON object, UTF-8, limits, known R4 resourceType, id matches the id pattern.
//   structure_only  + the base R4 structure rules and required bindings to core value sets.
//   strict          + every profile in meta.profile defined by the built-in US Core 3.1.x set
//                   (HealthLake's default guide, compiled in: uscore_data.cpp) or the loaded FHIR
//                   packages, with the profiles' own error invariants; `|version` selects the
//                   version; a profile or version that is not loaded is a warning naming it (the
//                   resource is still checked against R4) + the error-severity FHIRPath
//                   invariants of the R4 definitions (fhirpath.hpp): a failure is an `invariant`
//                   error naming the key, one the engine cannot evaluate a `not-supported`
//                   warning naming it.
//                 + the rule families on the resource alone (rules.cpp): Bundle fullUrl and
//                   references by the fullUrl rules, urn:uuid, absolute Coding.system and
//                   ValueSet include.system, Attachment size/hash, narrative XHTML; codes that
//                   need a terminology server are counted per code system
//                   (terminology_not_checked), never reported per resource nor passed in silence.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fe::fhir {

enum class Level { minimal, structure_only, strict };

// HealthLake's spelling: "minimal" | "structure-only" | "strict" (also sent in StartFHIRImportJob).
std::optional<Level> parse_level(std::string_view text);
std::string_view to_string(Level level);

enum class Severity { error, warning, information };
std::string_view to_string(Severity severity);  // "error" | "warning" | "information"

// FHIR issue-type codes (http://hl7.org/fhir/issue-type) used by the validator.
namespace code {
inline constexpr std::string_view structure = "structure";        // shape: JSON kinds, unknown keys
inline constexpr std::string_view required = "required";          // missing required element
inline constexpr std::string_view value = "value";                // lexical form of a primitive
inline constexpr std::string_view invariant = "invariant";        // rule between elements
inline constexpr std::string_view code_invalid = "code-invalid";  // code not in required set
inline constexpr std::string_view not_supported = "not-supported";  // unknown resourceType/profile
inline constexpr std::string_view too_long = "too-long";            // line/string size limits
inline constexpr std::string_view too_costly = "too-costly";        // nesting depth limit
inline constexpr std::string_view invalid = "invalid";              // not JSON / not UTF-8
inline constexpr std::string_view informational = "informational";
}  // namespace code

struct Issue {
  Severity severity = Severity::error;
  std::string code;  // one of fe::fhir::code
  uint64_t line = 0;
  std::string path;  // e.g. "Patient.name[0].given[1]"; the resource type alone for the root
  std::string message;
};

struct Result {
  uint64_t line = 0;
  bool blank = false;         // blank/whitespace-only line: one warning, not a resource
  std::string resource_type;  // empty when the line is not a JSON object with a resourceType
  std::string id;             // empty when absent
  std::vector<Issue> issues;
  bool truncated = false;  // more issues than Options::max_issues; the rest were dropped

  bool valid() const { return errors() == 0; }  // a blank line is "valid" but not a resource
  size_t errors() const;
  size_t warnings() const;
};

struct Options {
  Level level = Level::structure_only;
  // FHIR NPM packages (a directory holding package/package.json or package.json, or a .tgz);
  // only used at Level::strict.
  std::vector<std::filesystem::path> packages;
  // The built-in US Core 3.1.x profiles (HealthLake's default guide) and R4 core profiles
  // (vitalsigns, bp...) at Level::strict, under the packages. Off only for tests and comparisons.
  bool builtin_profiles = true;
  size_t max_line_bytes = 64u << 20;    // longer lines: one too-long error, line skipped
  size_t max_depth = 64;                // JSON nesting depth
  size_t max_string_bytes = 16u << 20;  // any single JSON string (base64 attachments are big)
  size_t max_issues = 100;              // per resource
};

struct LoadReport {
  std::vector<std::string> errors;    // create() returned nullptr when non-empty
  std::vector<std::string> warnings;  // e.g. a StructureDefinition without a snapshot, skipped
  size_t profiles = 0;                // StructureDefinitions compiled (built-in + packages)
  size_t builtin_profiles = 0;        // of which built in (US Core + R4 core)
  size_t value_sets = 0;              // ValueSets loaded from packages
};

struct InvariantCounts {
  uint64_t evaluated = 0, failed = 0, not_evaluated = 0;
};

// Per-thread scratch state (simdjson parser, padded copy of the line, path buffer).
class Scratch {
 public:
  Scratch();
  ~Scratch();
  Scratch(Scratch&&) noexcept;
  Scratch& operator=(Scratch&&) noexcept;
  struct Impl;
  Impl& impl() { return *impl_; }
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

class Validator {
 public:
  // Builds the validator; loads and compiles the packages for strict. Returns nullptr (and fills
  // report.errors) when a package cannot be read or parsed.
  static std::shared_ptr<const Validator> create(const Options& options, LoadReport& report);

  ~Validator();
  const Options& options() const;
  Level level() const;

  // Validates one NDJSON line (without its '\n'; a trailing '\r' is accepted). line_no is 1-based
  // and copied into the result and every issue.
  Result validate_line(std::string_view line, uint64_t line_no, Scratch& scratch) const;
  // Convenience for one-off calls (allocates a Scratch each time; prefer the overload above).
  Result validate_line(std::string_view line, uint64_t line_no) const;

  // FHIRPath invariants (the error-severity R4 constraints) at strict, accumulated in Scratch over
  // the lines it validated: evaluated (passed or failed), failed, and not evaluated (an expression
  // outside the engine's subset, or memberOf a value set that is not loaded; never "passed").
  static InvariantCounts invariant_counts(const Scratch& scratch);

  // Codes (Coding.system + code) at strict that need an external terminology server (SNOMED CT,
  // LOINC, RxNorm... any code system neither in the R4 core nor defined by a loaded package),
  // accumulated in Scratch: one count per code system, sorted by system, not one warning per
  // resource. These codes are reported as "not checked", never as valid.
  static std::vector<std::pair<std::string, uint64_t>> terminology_not_checked(
      const Scratch& scratch);

  struct Impl;

 private:
  explicit Validator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- Output forms -------------------------------------------------------------------------------

// One OperationOutcome resource on one line (no trailing newline), for NDJSON reports:
// {"resourceType":"OperationOutcome","issue":[{"severity","code","diagnostics","location":["Line
// N"],
//  "expression":["Patient.birthDate"], "extension":[operationoutcome-issue-line/col]}...]}
// `file` (may be empty) is named in the diagnostics of each issue.
std::string to_operation_outcome(const Result& result, std::string_view file);

// One line per issue: "file:line: error Patient.birthDate: message\n".
std::string to_text(const Result& result, std::string_view file);

// ---- Streaming files ----------------------------------------------------------------------------

// Reads a file line by line with memory bounded by max_line_bytes (plus a fixed read buffer).
// CRLF and LF endings; the last line may lack a newline. A line longer than the limit is
// reported via next() returning a too_long result (the line is skipped, reading continues).
class LineReader {
 public:
  explicit LineReader(const std::filesystem::path& path, size_t max_line_bytes = 64u << 20);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  bool ok() const;                   // false when the file could not be opened or read
  const std::string& error() const;  // why, naming the file

  enum class Status { line, too_long, eof, error };
  // On Status::line, `line` (without '\n' / "\r\n") stays valid until the next call.
  Status next(std::string_view& line, uint64_t& line_no);
  uint64_t bytes_read() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct FileSummary {
  uint64_t bytes = 0;
  uint64_t lines = 0;
  uint64_t resources = 0;  // non-blank lines
  uint64_t valid = 0;
  uint64_t invalid = 0;
  uint64_t blank = 0;
  uint64_t errors = 0;                                    // issues with severity error
  uint64_t warnings = 0;                                  // issues with severity warning
  std::vector<std::pair<std::string, uint64_t>> by_code;  // issue code -> count (errors+warnings)
  std::string fatal;  // non-empty when the file could not be read (nothing else is meaningful)
};

// Validates every line of an NDJSON file (or, for a name ending in ".json", the whole file as
// one resource, bounded by max_line_bytes). Calls `sink` for every result that has issues (and,
// when all_results is true, for every result); a false return stops early. `bytes_read`, when
// given, is kept at the bytes read from the file so far (compressed bytes for .gz/.zst), for a
// progress display.
using ResultSink = std::function<bool(const Result&)>;
FileSummary validate_file(const Validator& validator, const std::filesystem::path& path,
                          Scratch& scratch, const ResultSink& sink, bool all_results = false,
                          uint64_t* bytes_read = nullptr);

}  // namespace fe::fhir
