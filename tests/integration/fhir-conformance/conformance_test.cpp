// Conformance suites over ../shared/fhir: the official R4 examples, a Synthea bulk export and the
// HL7 validator's own test cases (see ../shared/fhir/README.md), plus strict with US Core 3.1.0.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "fhir/validator.hpp"

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
  fs::path dir = fs::temp_directory_path() / ("fe-uscore-long-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
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
