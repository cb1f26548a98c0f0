// Conformance suites over ../shared/fhir: the official R4 examples, a Synthea bulk export and the
// HL7 validator's own test cases (see ../shared/fhir/README.md), plus strict with US Core 3.1.0.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "fhir/fhirpath.hpp"
#include "fhir/validator.hpp"
#include "temp_dir.hpp"

namespace fe::fhir {
namespace {

namespace fs = std::filesystem;
const fs::path kShared = fs::path(FE_SHARED_DIR) / "fhir";

#define REQUIRE_SHARED(sub)         \
  if (!fs::exists(kShared / (sub))) \
  GTEST_SKIP() << "../shared/fhir/" << (sub) << " not present; conformance suite skipped"

std::shared_ptr<const Validator> make(Level level, std::vector<fs::path> packages = {}) {
  Options o;
  o.level = level;
  o.packages = std::move(packages);
  LoadReport rep;
  auto v = Validator::create(o, rep);
  EXPECT_TRUE(v) << (rep.errors.empty() ? "" : rep.errors[0]);
  return v;
}

struct FileOutcome {
  FileSummary sum;
  std::vector<Result> results;  // with issues
};

FileOutcome run(const Validator& v, const fs::path& f) {
  FileOutcome o;
  Scratch s;
  o.sum = validate_file(v, f, s, [&](const Result& r) {
    o.results.push_back(r);
    return true;
  });
  return o;
}

std::string first_errors(const FileOutcome& o, const std::string& name, size_t max = 5) {
  std::string out;
  for (const auto& r : o.results) {
    for (const auto& i : r.issues) {
      if (i.severity != Severity::error) continue;
      if (max-- == 0) return out;
      out += name + ":" + std::to_string(i.line) + ": " + i.path + ": " + i.message + "\n";
    }
  }
  return out;
}

TEST(Examples, All702OfficialExamplesHaveNoStructureErrors) {
  REQUIRE_SHARED("examples-r4");
  auto v = make(Level::structure_only);
  size_t files = 0, clean = 0;
  for (const auto& e : fs::directory_iterator(kShared / "examples-r4")) {
    if (e.path().extension() != ".json") continue;
    files++;
    FileOutcome o = run(*v, e.path());
    ASSERT_TRUE(o.sum.fatal.empty()) << o.sum.fatal;
    ASSERT_EQ(o.sum.resources, 1u) << e.path();
    const std::string name = e.path().filename().string();
    if (name == "Questionnaire-qs1.json") {
      // Known defect of the published example: nested items lack the required linkId
      // (Questionnaire.item.linkId is 1..1 in R4 4.0.1). Exactly these errors, nothing else.
      ASSERT_EQ(o.results.size(), 1u);
      size_t linkid = 0;
      for (const auto& i : o.results[0].issues)
        if (i.code == "required" && i.path.ends_with(".linkId")) linkid++;
      EXPECT_EQ(linkid, o.results[0].errors()) << first_errors(o, name);
      EXPECT_GT(linkid, 0u);
      continue;
    }
    EXPECT_EQ(o.sum.errors, 0u) << first_errors(o, name);
    if (o.sum.errors == 0) clean++;
  }
  EXPECT_EQ(files, 702u);
  std::printf(
      "examples-r4: %zu files, %zu without errors (+ Questionnaire-qs1: known linkId defect)\n",
      files, clean);
}

TEST(Synthea, All7160ResourcesHaveNoStructureErrors) {
  REQUIRE_SHARED("synthea-10-patients");
  auto v = make(Level::structure_only);
  uint64_t resources = 0, errors = 0;
  for (const auto& e : fs::directory_iterator(kShared / "synthea-10-patients")) {
    if (e.path().extension() != ".ndjson" || e.path().filename() == "log.ndjson") continue;
    FileOutcome o = run(*v, e.path());
    ASSERT_TRUE(o.sum.fatal.empty()) << o.sum.fatal;
    resources += o.sum.resources;
    errors += o.sum.errors;
    EXPECT_EQ(o.sum.errors, 0u) << first_errors(o, e.path().filename().string());
  }
  EXPECT_EQ(resources, 7160u);
  EXPECT_EQ(errors, 0u);
}

// strict evaluates the R4 error-severity FHIRPath invariants (fhirpath.hpp): no false positive on
// the official examples (whitespace-only narratives are a txt-1/txt-2 warning, see
// docs/validation.md) nor on the Synthea export, and none is left "not evaluated".
TEST(Examples, StrictInvariantsNoFalsePositives) {
  REQUIRE_SHARED("examples-r4");
  auto v = make(Level::strict);
  Scratch sc;
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(kShared / "examples-r4")) {
    if (e.path().extension() != ".json") continue;
    files++;
    FileOutcome o;
    o.sum = validate_file(*v, e.path(), sc, [&](const Result& r) {
      o.results.push_back(r);
      return true;
    });
    const std::string name = e.path().filename().string();
    size_t expected = 0;
    if (name == "Questionnaire-qs1.json")  // the known linkId defect, see above
      for (const auto& r : o.results)
        for (const auto& i : r.issues)
          if (i.code == "required" && i.path.ends_with(".linkId")) expected++;
    EXPECT_EQ(o.sum.errors, expected) << first_errors(o, name);
  }
  EXPECT_EQ(files, 702u);
  InvariantCounts c = Validator::invariant_counts(sc);
  EXPECT_GT(c.evaluated, 15000u);
  EXPECT_EQ(c.failed, 8u);  // txt-1/txt-2 on the 4 whitespace-only narratives (warnings)
  EXPECT_EQ(c.not_evaluated, 0u);
  std::printf("examples-r4 strict: invariants %llu evaluated, %llu failed, %llu not evaluated\n",
              (unsigned long long)c.evaluated, (unsigned long long)c.failed,
              (unsigned long long)c.not_evaluated);
}

// strict now includes the built-in US Core 3.1.x (no package configured): Synthea declares US
// Core profiles, and still has 0 errors. The one invariant left not evaluated is US Core's pd-1
// (`telecom or endpoint`) on the 43 PractitionerRoles with two telecoms: a collection of two
// used as a boolean, which FHIRPath cannot evaluate (reported by key, never passed).
TEST(Synthea, StrictInvariantsNoFalsePositives) {
  REQUIRE_SHARED("synthea-10-patients");
  auto v = make(Level::strict);
  Scratch sc;
  uint64_t resources = 0;
  std::map<std::string, uint64_t> not_evaluated;
  for (const auto& e : fs::directory_iterator(kShared / "synthea-10-patients")) {
    if (e.path().extension() != ".ndjson" || e.path().filename() == "log.ndjson") continue;
    FileOutcome o;
    o.sum = validate_file(*v, e.path(), sc, [&](const Result& r) {
      o.results.push_back(r);
      return true;
    });
    resources += o.sum.resources;
    EXPECT_EQ(o.sum.errors, 0u) << first_errors(o, e.path().filename().string());
    for (const auto& r : o.results)
      for (const auto& i : r.issues)
        if (i.message.starts_with("invariant ") &&
            i.message.find("not evaluated") != std::string::npos)
          not_evaluated[i.message.substr(0, i.message.find(" not evaluated"))]++;
  }
  EXPECT_EQ(resources, 7160u);
  InvariantCounts c = Validator::invariant_counts(sc);
  EXPECT_GT(c.evaluated, 60000u);
  EXPECT_EQ(c.failed, 0u);
  EXPECT_EQ(c.not_evaluated, 43u);
  ASSERT_EQ(not_evaluated.size(), 1u);
  EXPECT_EQ(not_evaluated.begin()->first,
            "invariant pd-1 of profile "
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-practitionerrole|3.1.0");
  std::printf(
      "synthea strict (built-in US Core): invariants %llu evaluated, %llu failed, %llu not "
      "evaluated (pd-1)\n",
      (unsigned long long)c.evaluated, (unsigned long long)c.failed,
      (unsigned long long)c.not_evaluated);
}

// invalid-struct cases whose error needs knowledge beyond the R4 base definitions and the file
// itself, so no structure-only validator (ours or HL7's at that level) can see it. Each must stay
// undetected here; when the engine learns to catch one, the test says so and it leaves this list.
// Each reason names the outside content, and where the suite has a 'valid' twin that differs only
// in that reference, the twin proves no rule on the file alone can tell them apart.
const std::map<std::string, std::string> kBeyondStructure = {
    {"ai5",
     "Patient.identifier max 0 comes from http://example.org/patient-profile (meta.profile), "
     "which structure-only ignores by definition; the Patient is valid R4"},
    {"vs-filter-property-bad",
     "code-r-3 is not in CodeSystem cs-sub-prop; twin vs-filter-property (valid) differs only "
     "in code-r-1"},
    {"date-min-max-qr",
     "minValue/maxValue live in Questionnaire ValidateDateMinMax, not supplied; the answers are "
     "valid dates"},
    {"date-time-min-max-qr",
     "minValue/maxValue live in Questionnaire ValidateDateTimeMinMax, not supplied; the answers "
     "are valid dateTimes"},
    {"decimal-min-max-qr",
     "minValue/maxValue live in Questionnaire ValidateDecimalMinMax, not supplied; twin "
     "decimal-qr (valid) differs only in the questionnaire URL"},
    {"integer-min-max-qr",
     "minValue/maxValue live in Questionnaire ValidateIntegerMinMax, not supplied; twin "
     "integer-qr (valid) differs only in the questionnaire URL"},
};
// The suite lists the same file twice with opposite expectations (the Java validator run with
// and without an 'ignore bad id' switch); the default (invalid) one is checked.
const std::set<std::string> kContradictory = {"contained-resource-bad-id-ignore"};

TEST(HL7TestCases, ValidAndInvalidStructAgree) {
  REQUIRE_SHARED("fhir-test-cases-r4/manifest.json");
  auto v = make(Level::structure_only);
  simdjson::dom::parser parser;
  simdjson::dom::element manifest;
  ASSERT_EQ(parser.load((kShared / "fhir-test-cases-r4/manifest.json").string()).get(manifest),
            simdjson::SUCCESS);
  std::map<std::string, std::pair<int, int>> agreement;  // class -> (agree, total)
  int valid_ok = 0, valid_total = 0, struct_ok = 0, struct_total = 0;
  for (simdjson::dom::element t : manifest["tests"].get_array()) {
    auto str = [&](const char* k) { return std::string(std::string_view(t[k])); };
    const std::string name = str("name"), file = str("file"), cls = str("class"),
                      expect = str("expect");
    FileOutcome o = run(*v, kShared / "fhir-test-cases-r4" / file);
    ASSERT_TRUE(o.sum.fatal.empty()) << o.sum.fatal;
    const bool invalid = o.sum.errors > 0;
    const bool agree = invalid == (expect == "invalid");
    agreement[cls].first += agree;
    agreement[cls].second++;
    if (kContradictory.count(name)) continue;
    if (cls == "valid") {
      valid_total++;
      valid_ok += agree;
      EXPECT_FALSE(invalid) << "valid test case " << name << " (" << file << "):\n"
                            << first_errors(o, file);
    } else if (cls == "invalid-struct") {
      struct_total++;
      if (kBeyondStructure.count(name)) {
        EXPECT_FALSE(invalid) << name << " is now detected: remove it from kBeyondStructure";
        continue;
      }
      struct_ok += agree;
      EXPECT_TRUE(invalid) << "invalid-struct test case " << name << " (" << file
                           << ") gave no error";
    }
  }
  std::printf("fhir-test-cases-r4 at structure-only (agreement with the HL7 Java validator):\n");
  for (auto& [cls, a] : agreement)
    std::printf("  %-26s %3d / %3d agree\n", cls.c_str(), a.first, a.second);
  std::printf(
      "  valid: %d/%d with 0 errors; invalid-struct: %d/%zu detected (%zu more need knowledge "
      "beyond the base spec)\n",
      valid_ok, valid_total, struct_ok, struct_total - kBeyondStructure.size(),
      kBeyondStructure.size());
}

// strict (R4 invariants and the built-in US Core 3.1.x, no package): every 'valid' case of the
// HL7 suite still has 0 errors. obs-fio2 (us-core-pulse-oximetry, flow rate in L/min) is the one
// that needs the US Core 3.1.1 correction the built-in set carries (docs/validation.md).
TEST(HL7TestCases, ValidCasesHaveNoErrorsAtStrict) {
  REQUIRE_SHARED("fhir-test-cases-r4/manifest.json");
  auto v = make(Level::strict);
  simdjson::dom::parser parser;
  simdjson::dom::element manifest;
  ASSERT_EQ(parser.load((kShared / "fhir-test-cases-r4/manifest.json").string()).get(manifest),
            simdjson::SUCCESS);
  int valid = 0, us_core = 0;
  for (simdjson::dom::element t : manifest["tests"].get_array()) {
    auto str = [&](const char* k) { return std::string(std::string_view(t[k])); };
    if (str("class") != "valid" || kContradictory.count(str("name"))) continue;
    const std::string file = str("file");
    FileOutcome o = run(*v, kShared / "fhir-test-cases-r4" / file);
    ASSERT_TRUE(o.sum.fatal.empty()) << o.sum.fatal;
    valid++;
    for (const auto& r : o.results)
      for (const auto& i : r.issues) us_core += i.message.find("/us/core/") != std::string::npos;
    EXPECT_EQ(o.sum.errors, 0u) << "valid test case " << str("name") << " at strict:\n"
                                << first_errors(o, file);
  }
  EXPECT_EQ(valid, 140);
  std::printf(
      "fhir-test-cases-r4 valid at strict: %d cases, 0 errors expected; %d US Core issue(s) "
      "(warnings)\n",
      valid, us_core);
}

// ---- HL7 suite at strict ------------------------------------------------------------------------

// Why a Java error of the suite can or cannot be reproduced offline. The classification reads the
// Java validator's message only (its wording, from org.hl7.fhir.core's Messages.properties), never
// the case name: the first pattern that matches wins. `offline` reasons are rules on the resource
// alone (R4 invariants and the strict rule families of docs/validation.md) or profiles from the
// loaded packages; a case whose Java errors are all offline must be flagged at strict.
struct Reason {
  const char* name;
  bool offline;
  std::regex re;
};
const std::vector<Reason>& reasons() {
  static const std::vector<Reason> r = [] {
    auto rx = [](const char* s) { return std::regex(s, std::regex::ECMAScript); };
    return std::vector<Reason>{
        // A core invariant; one from an IG names where it is defined (that IG is not loaded).
        {"R4 invariant", true, rx(R"(^Constraint failed: [a-z0-9]+-[0-9]+: (?!.*\(defined in ))")},
        {"Bundle fullUrl", true,
         rx(R"(^The fullUrl must be an absolute URL|looks like a RESTful server URL, so it must end with the correct type and id)")},
        {"Bundle reference resolution", true,
         rx(R"(^Can't find '[^']*' in the bundle \(|^Found [0-9]+ matches for '|^Multiple matches in bundle for reference)")},
        {"UUID", true, rx(R"(^UUIDs must be valid and lowercase)")},
        {"code system URI", true,
         rx(R"(^Coding\.system must be an absolute reference|^The Coding references a value set, not a code system|^URI values in ValueSet\.compose\.include\.system must be absolute)")},
        {"Attachment size/hash", true, rx(R"(^Stated Attachment Size)")},
        {"narrative XHTML", true,
         rx(R"(^Invalid (element|attribute) name in the XHTML|^Invalid entity in the XHTML)")},
        {"profile from a loaded package (US Core 3.1.0)", true,
         rx(R"(\(from http://hl7\.org/fhir/us/core/)")},
        // Not offline: needs something the file and the loaded packages do not carry.
        {"terminology server (display names, codes of SNOMED/LOINC/..., ECL, value sets)", false,
         rx(R"(^Wrong Display Name|^Unknown code '|^The code '[^']*' is not valid in the system|^The code provided \(|^None of the codings provided are in the value set|is not valid in the value set|Invalid ECL|^The value for a filter based on property|^The operation '[^']*' is not allowed for property|^Cannot process resource .* vsacOpModifier)")},
        {"extension or profile not loaded", false,
         rx(R"(\(from https?://|could not be found so is not allowed here|is not allowed to be used at this point|\(defined in http|Unable to find a profile match|magic LOINC code|in the profile |a matching slice is required|definition allows for the types)")},
        {"snapshot generation / profile authoring", false,
         rx(R"(^Error generating Snapshot|discriminator path|Slicing is not allowed at the root|tries to redefine the slicing)")},
    };
  }();
  return r;
}
// QuestionnaireResponse answers are checked by the HL7 validator against the Questionnaire they
// answer; none of the suite's is supplied with the response, so an answer-level message of a
// QuestionnaireResponse that no pattern above explains needs that Questionnaire.
const char* kExternalQuestionnaire = "external Questionnaire (answers checked against it)";
const char* kOther = "other Java rule (not an R4 invariant nor a strict rule family)";

const char* kUndecided =
    "R4 invariant undecided in FHIRPath (empty: a pass here, a failure for the Java validator)";

struct Classified {
  const char* reason;
  bool offline;
};

// Keys of the R4 invariants that fhir-edge's engine evaluates to empty (undecided, e.g. per-1 on
// a date start and a dateTime end) somewhere in the resource of `file`: FHIRPath N1 leaves such a
// comparison empty and fhir-edge passes it (docs/validation.md), where the Java validator counts
// empty as a failure. Computed by the engine, not listed by case.
std::set<std::string> undecided_invariants(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.starts_with("\xEF\xBB\xBF")) text.erase(0, 3);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::set<std::string> keys;
  std::string_view rt;
  if (parser.parse(text).get(root) || root["resourceType"].get(rt)) return keys;
  int32_t t = schema::core().find_resource(rt);
  if (t < 0) return keys;
  fhirpath::Counts counts;
  std::vector<fhirpath::InvariantResult> results;
  fhirpath::check_resource(root, static_cast<uint32_t>(t), rt, counts, results, true);
  for (const auto& r : results)
    if (r.undecided) keys.insert(std::string(r.inv->key));
  return keys;
}
Classified classify_message(const std::string& msg, std::string_view resource_type) {
  for (const auto& r : reasons())
    if (std::regex_search(msg, r.re)) return {r.name, r.offline};
  if (resource_type == "QuestionnaireResponse") return {kExternalQuestionnaire, false};
  return {kOther, false};
}

TEST(HL7TestCases, StrictValidCasesCleanAndOfflineCheckableErrorsFlagged) {
  REQUIRE_SHARED("fhir-test-cases-r4/manifest.json");
  REQUIRE_SHARED("packages/hl7.fhir.us.core-3.1.0");
  auto v = make(Level::strict, {kShared / "packages/hl7.fhir.us.core-3.1.0"});
  auto v_core = make(Level::strict);  // no package: R4 invariants, rule families, built-in US Core
  ASSERT_TRUE(v && v_core);
  std::vector<std::string> valid_with_us_core_errors;
  simdjson::dom::parser parser;
  simdjson::dom::element manifest;
  ASSERT_EQ(parser.load((kShared / "fhir-test-cases-r4/manifest.json").string()).get(manifest),
            simdjson::SUCCESS);
  int valid_total = 0, valid_clean = 0, ens_total = 0, ens_flagged = 0;
  std::map<std::string, std::pair<int, int>> by_reason;  // reason -> (cases, flagged)
  int offline_total = 0, offline_flagged = 0;
  for (simdjson::dom::element t : manifest["tests"].get_array()) {
    auto str = [&](const char* k) { return std::string(std::string_view(t[k])); };
    const std::string name = str("name"), file = str("file"), cls = str("class");
    if (cls != "valid" && cls != "errors-nonstructural") continue;
    std::string_view rtype;
    if (t["resourceType"].get(rtype) != simdjson::SUCCESS) rtype = {};
    if (kContradictory.count(name)) continue;  // its default twin (invalid) is the one checked
    FileOutcome o = run(*v, kShared / "fhir-test-cases-r4" / file);
    ASSERT_TRUE(o.sum.fatal.empty()) << o.sum.fatal;
    const bool flagged = o.sum.errors > 0;
    if (cls == "valid") {
      // Every rule of this change and every R4 invariant: 0 errors on each valid case.
      FileOutcome oc = run(*v_core, kShared / "fhir-test-cases-r4" / file);
      valid_total++;
      valid_clean += oc.sum.errors == 0;
      EXPECT_EQ(oc.sum.errors, 0u) << "valid test case " << name << " (" << file << ") at strict:\n"
                                   << first_errors(oc, file);
      // US Core profile checking (profiles.cpp) is shown, not asserted here.
      if (flagged) valid_with_us_core_errors.push_back(name + ": " + first_errors(o, file, 1));
      continue;
    }
    ens_total++;
    ens_flagged += flagged;
    // The case's reason: offline when every Java error is; else the first error that is not.
    Classified c{nullptr, true};
    std::set<std::string> failed_keys;  // "Constraint failed: KEY:" messages
    for (simdjson::dom::element e : t["java_errors"].get_array()) {
      const std::string msg{std::string_view(e)};
      Classified m = classify_message(msg, rtype);
      if (!m.offline) {
        c = m;
        break;
      }
      static const std::regex key_re(R"(^Constraint failed: ([a-z0-9]+-[0-9]+):)");
      std::smatch km;
      if (std::regex_search(msg, km, key_re)) failed_keys.insert(km[1]);
    }
    if (c.offline && !failed_keys.empty()) {
      auto undecided = undecided_invariants(kShared / "fhir-test-cases-r4" / file);
      for (const auto& k : failed_keys)
        if (undecided.count(k)) c = {kUndecided, false};
    }
    const std::string reason = c.offline ? "all offline-checkable" : c.reason;
    by_reason[reason].first++;
    by_reason[reason].second += flagged;
    if (c.offline) {
      offline_total++;
      offline_flagged += flagged;
      EXPECT_TRUE(flagged) << "errors-nonstructural case " << name << " (" << file
                           << "): every Java error is offline-checkable, but strict gave none";
    }
  }
  std::printf("fhir-test-cases-r4 at strict (US Core 3.1.0 loaded):\n");
  std::printf(
      "  valid: %d/%d with 0 errors (R4 core); with US Core 3.1.0 loaded, %zu with errors\n",
      valid_clean, valid_total, valid_with_us_core_errors.size());
  for (const auto& e : valid_with_us_core_errors) std::printf("    %s", e.c_str());
  std::printf("  errors-nonstructural: %d/%d flagged; by reason (cases, flagged):\n", ens_flagged,
              ens_total);
  for (auto& [r, n] : by_reason) std::printf("    %-80s %3d %3d\n", r.c_str(), n.first, n.second);
  EXPECT_GT(offline_total, 0);
  EXPECT_EQ(offline_flagged, offline_total);
}

// ---- strict with US Core 3.1.0 ------------------------------------------------------------------

const char* kUsCore = "packages/hl7.fhir.us.core-3.1.0";

struct Crafted {
  const char* what;
  const char* line;
  const char* code;
  const char* path;
  const char* message_part;
};

const Crafted kCrafted[] = {
    {"missing required element",
     R"({"resourceType":"Patient","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},"name":[{"family":"X"}],"gender":"male"})",
     "required", "Patient.identifier", "requires at least 1"},
    {"wrong fixed/pattern value",
     R"({"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/pediatric-bmi-for-age"]},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"12345-6"}]},"subject":{"reference":"Patient/1"},"effectiveDateTime":"2020","valueQuantity":{"value":50,"unit":"%","system":"http://unitsofmeasure.org","code":"%"}})",
     "value", "Observation.code", "59576-9"},
    {"missing required slice",
     R"({"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-pulse-oximetry"]},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2708-6"}]},"subject":{"reference":"Patient/1"},"effectiveDateTime":"2020","valueQuantity":{"value":98,"unit":"%","system":"http://unitsofmeasure.org","code":"%"}})",
     "required", "Observation.code.coding", "slice 'PulseOx'"},
    {"bad required code (package value set, through the extension's own profile)",
     R"({"resourceType":"Patient","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|3.1.0"]},"identifier":[{"system":"urn:x","value":"1"}],"name":[{"family":"X"}],"gender":"male","extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"X"}]})",
     "code-invalid", "Patient.extension[0].valueCode", "birthsex"},
    {"too many for a slice (max 1)",
     R"({"resourceType":"Patient","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},"identifier":[{"system":"urn:x","value":"1"}],"name":[{"family":"X"}],"gender":"male","extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"F"},{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"M"}]})",
     "structure", "Patient.extension", "at most 1"},
    {"profile for another resource type",
     R"({"resourceType":"Organization","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},"name":"x"})",
     "structure", "Organization.meta.profile", "is for Patient"},
};

void check_crafted(const Validator& v) {
  for (const auto& c : kCrafted) {
    Result r = v.validate_line(c.line, 1);
    bool found = false;
    for (const auto& i : r.issues)
      if (i.severity == Severity::error && i.code == c.code && i.path == c.path &&
          i.message.find(c.message_part) != std::string::npos)
        found = true;
    EXPECT_TRUE(found) << c.what << ":\n" << to_text(r, "crafted");
  }
  // The conformant variant of each shape passes.
  Result ok = v.validate_line(
      R"({"resourceType":"Patient","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},"identifier":[{"system":"urn:x","value":"1"}],"name":[{"family":"X"}],"gender":"male","extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"F"},{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[{"url":"ombCategory","valueCoding":{"system":"urn:oid:2.16.840.1.113883.6.238","code":"2106-3"}},{"url":"text","valueString":"White"}]}]})",
      1);
  EXPECT_TRUE(ok.valid()) << to_text(ok, "ok");
}

TEST(StrictUsCore, CraftedViolationsAreEachReported) {
  REQUIRE_SHARED(kUsCore);
  auto v = make(Level::strict, {kShared / kUsCore});
  ASSERT_TRUE(v);
  check_crafted(*v);
}

// The built-in US Core (uscore_data.cpp, no package configured) reports the same.
TEST(StrictUsCore, BuiltInReportsTheSameWithoutThePackage) {
  auto v = make(Level::strict);
  ASSERT_TRUE(v);
  check_crafted(*v);
}

TEST(StrictUsCore, PackageAsTgz) {
  REQUIRE_SHARED(kUsCore);
  fs::path tmp = fs::temp_directory_path() / ("fe-uscore-" + std::to_string(::getpid()) + ".tgz");
  std::string cmd =
      "tar -czf '" + tmp.string() + "' -C '" + (kShared / kUsCore).string() + "' package";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  Options o;
  o.level = Level::strict;
  o.packages = {tmp};
  LoadReport rep;
  auto v = Validator::create(o, rep);
  fs::remove(tmp);
  ASSERT_TRUE(v) << (rep.errors.empty() ? "" : rep.errors[0]);
  EXPECT_GE(rep.profiles, 20u);
  check_crafted(*v);
}

// issue 15 defect 11: a package whose resource files have names over 100 characters, as GNU tar
// (long-name records) and pax (extended headers) write them. The hand-written ustar reader
// skipped such a file in silence, so us-core-patient was not loaded and its rules not checked.
TEST(StrictUsCore, PackageTgzWithLongNamesGnuAndPax) {
  REQUIRE_SHARED(kUsCore);
  fs::path dir = fe::test::make_temp_dir("fe-uscore-long");
  fs::copy(kShared / kUsCore / "package", dir / "package", fs::copy_options::recursive);
  const std::string long_name =
      "StructureDefinition-us-core-patient-" + std::string(120, 'x') + ".json";  // > 100 bytes
  fs::rename(dir / "package" / "StructureDefinition-us-core-patient.json",
             dir / "package" / long_name);
  for (const char* format : {"gnu", "pax"}) {
    SCOPED_TRACE(format);
    fs::path tgz = dir / (std::string(format) + ".tgz");
    std::string cmd = "tar --format=" + std::string(format) + " -czf '" + tgz.string() + "' -C '" +
                      dir.string() + "' package";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    Options o;
    o.level = Level::strict;
    o.packages = {tgz};
    LoadReport rep;
    auto v = Validator::create(o, rep);
    ASSERT_TRUE(v) << (rep.errors.empty() ? "" : rep.errors[0]);
    check_crafted(*v);  // needs us-core-patient, the long-named file
  }
  fs::remove_all(dir);
}

TEST(StrictUsCore, BadPackageIsALoadError) {
  Options o;
  o.level = Level::strict;
  o.packages = {"/nonexistent/package.tgz"};
  LoadReport rep;
  EXPECT_FALSE(Validator::create(o, rep));
  ASSERT_FALSE(rep.errors.empty());
  EXPECT_NE(rep.errors[0].find("/nonexistent/package.tgz"), std::string::npos);
}

// Synthea claims US Core profiles in meta.profile. Against US Core 3.1.0 its resources conform;
// the findings are warnings, never errors and never silent passes: the Condition profile
// us-core-condition-encounter-diagnosis, which only exists from US Core 5.0, and US Core's pd-1
// on PractitionerRoles with two telecoms (not evaluated, see Synthea.StrictInvariants...).
TEST(StrictUsCore, SyntheaReportedOnlyWhereUsCoreIsViolated) {
  REQUIRE_SHARED(kUsCore);
  REQUIRE_SHARED("synthea-10-patients");
  auto v = make(Level::strict, {kShared / kUsCore});
  ASSERT_TRUE(v);
  std::map<std::string, uint64_t> warnings;
  uint64_t resources = 0, errors = 0;
  for (const auto& e : fs::directory_iterator(kShared / "synthea-10-patients")) {
    if (e.path().extension() != ".ndjson" || e.path().filename() == "log.ndjson") continue;
    FileOutcome o = run(*v, e.path());
    resources += o.sum.resources;
    errors += o.sum.errors;
    EXPECT_EQ(o.sum.errors, 0u) << first_errors(o, e.path().filename().string());
    for (const auto& r : o.results)
      for (const auto& i : r.issues)
        if (i.severity == Severity::warning) warnings[r.resource_type + ": " + i.message]++;
  }
  EXPECT_EQ(resources, 7160u);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings.begin()->first.find("us-core-condition-encounter-diagnosis"),
            std::string::npos);
  EXPECT_NE(std::next(warnings.begin())->first.find("invariant pd-1"), std::string::npos);
  for (auto& [w, n] : warnings)
    std::printf("synthea strict/US Core 3.1.0: %llu x %s\n", (unsigned long long)n, w.c_str());
}

}  // namespace
}  // namespace fe::fhir
