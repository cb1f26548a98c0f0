// strict with the built-in US Core 3.1.x (daemon/fhir/uscore_data.cpp, issue 12 item 3): a
// resource that declares a US Core profile is checked against it with no FHIR package
// configured, `|version` selects the version, a version that is not loaded is reported naming
// it, the profiles' own error invariants are evaluated (and one the engine cannot evaluate is
// reported by key), and healthlake-local at strict rejects what HealthLake would.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <string>

#include "fhir/validator.hpp"
#include "healthlake.hpp"
#include "s3_store.hpp"
#include "temp_dir.hpp"
#include "util.hpp"

namespace fe::fhir {
namespace {

namespace fs = std::filesystem;

const std::string kPatient = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient";

std::shared_ptr<const Validator> make(Level level, bool builtin = true) {
  Options o;
  o.level = level;
  o.builtin_profiles = builtin;
  LoadReport rep;
  auto v = Validator::create(o, rep);
  EXPECT_TRUE(v) << (rep.errors.empty() ? "" : rep.errors[0]);
  return v;
}

const Validator& strict() {
  static auto v = make(Level::strict);
  return *v;
}

std::string dump(const Result& r) {
  return to_text(r, "t.ndjson");
}

// The issue with this severity, code and path whose message contains `part`, or nullptr.
const Issue* find(const Result& r, Severity s, std::string_view code, std::string_view path,
                  std::string_view part) {
  for (const auto& i : r.issues)
    if (i.severity == s && i.code == code && i.path == path &&
        i.message.find(part) != std::string::npos)
      return &i;
  return nullptr;
}

std::string patient(const std::string& profile, const std::string& body) {
  return R"({"resourceType":"Patient","meta":{"profile":[")" + profile + "\"]}" +
         (body.empty() ? "" : "," + body) + "}";
}

const std::string kConformant =
    R"("identifier":[{"system":"urn:x","value":"1"}],"name":[{"family":"X"}],"gender":"male")";

TEST(BuiltinUsCore, LoadedAtStrictWithNoPackages) {
  Options o;
  o.level = Level::strict;
  LoadReport rep;
  ASSERT_TRUE(Validator::create(o, rep));
  EXPECT_EQ(rep.builtin_profiles, 72u);  // hl7.fhir.us.core#3.1.0 (29) + R4 core profiles (43)
  EXPECT_EQ(rep.profiles, rep.builtin_profiles);
  EXPECT_TRUE(rep.warnings.empty()) << rep.warnings[0];
}

// A Patient that declares us-core-patient and lacks identifier, gender and a name with family or
// given fails at strict with no fhir_packages (it used to pass with a "not loaded" warning).
TEST(BuiltinUsCore, PatientViolationFailsAtStrictWithNoPackages) {
  Result r = strict().validate_line(patient(kPatient, R"("name":[{"text":"X"}])"), 1);
  EXPECT_FALSE(r.valid());
  EXPECT_TRUE(find(r, Severity::error, "required", "Patient.identifier", "requires at least 1"))
      << dump(r);
  EXPECT_TRUE(find(r, Severity::error, "required", "Patient.gender", "requires at least 1"))
      << dump(r);
  EXPECT_TRUE(find(r, Severity::error, "invariant", "Patient.name[0]", "us-core-8")) << dump(r);
  EXPECT_EQ(r.warnings(), 0u) << dump(r);
  // No name at all: name is 1..* in us-core-patient.
  Result n = strict().validate_line(patient(kPatient, ""), 1);
  EXPECT_TRUE(find(n, Severity::error, "required", "Patient.name", "requires at least 1"))
      << dump(n);
}

TEST(BuiltinUsCore, SameResourcePassesAtStructureOnly) {
  auto so = make(Level::structure_only);
  Result r = so->validate_line(patient(kPatient, R"("name":[{"text":"X"}])"), 1);
  EXPECT_TRUE(r.valid()) << dump(r);
  EXPECT_TRUE(r.issues.empty()) << dump(r);
}

// A conformant US Core Patient: no error and no "profile not loaded" warning any more.
TEST(BuiltinUsCore, ConformantResourceGetsNoProfileWarning) {
  Result r = strict().validate_line(patient(kPatient, kConformant), 1);
  EXPECT_TRUE(r.valid()) << dump(r);
  EXPECT_TRUE(r.issues.empty()) << dump(r);
}

// `|3.1.0` and `|3.1.1` (HealthLake's default, an errata release of 3.1.0 with the same
// profiles) select the built-in set; a version that is not loaded is a warning naming the
// profile and the version, and the resource is validated against R4 only (never an error:
// HealthLake supports US Core versions that may not be loaded here).
TEST(BuiltinUsCore, VersionSelectsTheProfileAndAnUnknownVersionIsReported) {
  for (const char* v : {"|3.1.0", "|3.1.1"}) {
    SCOPED_TRACE(v);
    Result bad = strict().validate_line(patient(kPatient + v, R"("name":[{"family":"X"}])"), 1);
    EXPECT_TRUE(find(bad, Severity::error, "required", "Patient.identifier", kPatient + "|3.1.0"))
        << dump(bad);
    Result ok = strict().validate_line(patient(kPatient + v, kConformant), 1);
    EXPECT_TRUE(ok.issues.empty()) << dump(ok);
  }
  Result r = strict().validate_line(patient(kPatient + "|6.1.0", R"("name":[{"family":"X"}])"), 1);
  EXPECT_TRUE(r.valid()) << dump(r);
  ASSERT_EQ(r.issues.size(), 1u) << dump(r);
  const Issue& w = r.issues[0];
  EXPECT_EQ(w.severity, Severity::warning);
  EXPECT_EQ(w.code, "not-supported");
  EXPECT_EQ(w.path, "Patient.meta.profile");
  EXPECT_NE(w.message.find(kPatient), std::string::npos) << w.message;
  EXPECT_NE(w.message.find("version 6.1.0 is not loaded"), std::string::npos) << w.message;
  EXPECT_NE(w.message.find("R4 only"), std::string::npos) << w.message;
  // R4 itself is still checked under an unknown version.
  Result r4 = strict().validate_line(patient(kPatient + "|6.1.0", R"("gender":"boy")"), 1);
  EXPECT_TRUE(find(r4, Severity::error, "code-invalid", "Patient.gender", "boy")) << dump(r4);
}

// A US Core profile URL that 3.1.x does not define (Synthea's us-core-condition-encounter-
// diagnosis, from US Core 5) is a warning saying where it comes from, not an error.
TEST(BuiltinUsCore, ProfileOfAnotherUsCoreVersionIsAWarningNamingIt) {
  Result r = strict().validate_line(
      R"({"resourceType":"Condition","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition-encounter-diagnosis"]},"subject":{"reference":"Patient/1"}})",
      1);
  EXPECT_TRUE(r.valid()) << dump(r);
  ASSERT_EQ(r.issues.size(), 1u) << dump(r);
  EXPECT_NE(r.issues[0].message.find("us-core-condition-encounter-diagnosis is not in the "
                                     "built-in US Core 3.1.0"),
            std::string::npos)
      << r.issues[0].message;
}

// The profiles' own error invariants (us-core-*, and vs-* of the R4 vital-signs profile they
// inherit) are evaluated at strict, counted with the core ones.
TEST(BuiltinUsCore, ProfileInvariantsAreEvaluated) {
  Scratch sc;
  // us-core-12 and us-core-9: an implantable device with UDI information needs carrierAIDC or
  // carrierHRF and a production identifier.
  const std::string device =
      R"({"resourceType":"Device","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-implantable-device"]},"type":{"text":"x"},"patient":{"reference":"Patient/1"},"udiCarrier":[{"deviceIdentifier":"1")";
  Result d = strict().validate_line(device + "}]}", 1, sc);
  EXPECT_TRUE(find(d, Severity::error, "invariant", "Device", "us-core-12")) << dump(d);
  EXPECT_TRUE(find(d, Severity::error, "invariant", "Device", "us-core-9")) << dump(d);
  Result dok = strict().validate_line(device + R"(,"carrierHRF":"x"}],"lotNumber":"L1"})", 1, sc);
  EXPECT_TRUE(dok.valid()) << dump(dok);
  // us-core-1: a lab result's effectiveDateTime is at least a day.
  const std::string lab =
      R"({"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"]},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2345-7"}]},"subject":{"reference":"Patient/1"},"valueString":"x","effectiveDateTime":)";
  Result l = strict().validate_line(lab + R"("2020-03"})", 1, sc);
  EXPECT_TRUE(find(l, Severity::error, "invariant", "Observation.effectiveDateTime", "us-core-1"))
      << dump(l);
  Result lok = strict().validate_line(lab + R"("2020-03-04"})", 1, sc);
  EXPECT_TRUE(lok.valid()) << dump(lok);
  // vs-3 (R4 vitalsigns, inherited by us-core-pulse-oximetry): a component needs a value or a
  // dataAbsentReason; reported once even where a slice repeats it.
  Result p = strict().validate_line(
      R"({"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-pulse-oximetry"]},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2708-6"},{"system":"http://loinc.org","code":"59408-5"}]},"subject":{"reference":"Patient/1"},"effectiveDateTime":"2020-01-01","valueQuantity":{"value":98,"unit":"%","system":"http://unitsofmeasure.org","code":"%"},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"3151-8"}]}}]})",
      1, sc);
  size_t vs3 = 0;
  for (const auto& i : p.issues) vs3 += i.message.starts_with("vs-3:");
  EXPECT_EQ(vs3, 1u) << dump(p);
  EXPECT_TRUE(find(p, Severity::error, "invariant", "Observation.component[0]", "vs-3")) << dump(p);
  InvariantCounts c = Validator::invariant_counts(sc);
  EXPECT_GE(c.failed, 4u);
  EXPECT_EQ(c.not_evaluated, 0u);
}

// pd-1 is written `telecom or endpoint`: with two telecoms that is a collection of two used as a
// boolean, which FHIRPath cannot evaluate. Reported by key as not evaluated, never passed.
TEST(BuiltinUsCore, AnInvariantTheEngineCannotEvaluateIsReportedByKey) {
  const std::string role =
      R"({"resourceType":"PractitionerRole","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-practitionerrole"]},"practitioner":{"reference":"Practitioner/1"},"organization":{"reference":"Organization/1"})";
  Scratch sc;
  Result two = strict().validate_line(
      role + R"(,"telecom":[{"system":"phone","value":"1"},{"system":"email","value":"a@b"}]})", 1,
      sc);
  EXPECT_TRUE(two.valid()) << dump(two);
  const Issue* w = find(two, Severity::warning, "not-supported", "PractitionerRole", "pd-1");
  ASSERT_TRUE(w) << dump(two);
  EXPECT_NE(w->message.find("not evaluated"), std::string::npos);
  EXPECT_EQ(Validator::invariant_counts(sc).not_evaluated, 1u);
  Result one = strict().validate_line(role + R"(,"telecom":[{"system":"phone","value":"1"}]})", 1);
  EXPECT_TRUE(one.issues.empty()) << dump(one);
  // With neither telecom nor endpoint, `{} or {}` is empty, which the engine passes like every
  // empty invariant (docs/validation.md: the HL7 Java validator reads empty as false here).
}

// Where US Core 3.1.1 (HealthLake's default) corrected 3.1.0, the built-in set follows 3.1.1: the
// pulse-oximetry inhaled oxygen flow rate is in UCUM L/min (3.1.0 fixed it as 'l/min').
TEST(BuiltinUsCore, FollowsTheUsCore311Correction) {
  auto pulse_ox = [](const std::string& unit) {
    return R"({"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-pulse-oximetry"]},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2708-6"},{"system":"http://loinc.org","code":"59408-5"}]},"subject":{"reference":"Patient/1"},"effectiveDateTime":"2020-01-01","valueQuantity":{"value":98,"unit":"%","system":"http://unitsofmeasure.org","code":"%"},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"3151-8"}]},"valueQuantity":{"value":6,"unit":"L/min","system":"http://unitsofmeasure.org","code":")" +
           unit + R"("}}]})";
  };
  for (const char* v : {"", "|3.1.1", "|3.1.0"}) {
    SCOPED_TRACE(v);
    std::string ok = pulse_ox("L/min");
    std::string bad = pulse_ox("l/min");
    if (*v) {
      const std::string url = "us-core-pulse-oximetry";
      ok.insert(ok.find(url) + url.size(), v);
      bad.insert(bad.find(url) + url.size(), v);
    }
    Result r = strict().validate_line(ok, 1);
    EXPECT_TRUE(r.issues.empty()) << dump(r);
    Result b = strict().validate_line(bad, 1);
    EXPECT_TRUE(
        find(b, Severity::error, "value", "Observation.component[0].valueQuantity.code", "L/min"))
        << dump(b);
  }
}

// Without the built-in set (Options::builtin_profiles = false), the old behaviour: a warning.
TEST(BuiltinUsCore, CanBeTurnedOffForComparisons) {
  auto v = make(Level::strict, false);
  Result r = v->validate_line(patient(kPatient, R"("name":[{"text":"X"}])"), 1);
  EXPECT_TRUE(r.valid()) << dump(r);
  ASSERT_EQ(r.issues.size(), 1u) << dump(r);
  EXPECT_EQ(r.issues[0].code, "not-supported");
}

}  // namespace
}  // namespace fe::fhir

// healthlake-local at strict, started without --fhir-package, rejects the US Core violation (as
// HealthLake does with its default US Core 3.1.1) and imports the conformant resource.
namespace fe::hll {
namespace {

namespace fs = std::filesystem;

TEST(HealthLakeLocalStrict, RejectsAUsCoreViolationWithoutAPackage) {
  const fs::path dir = fe::test::make_temp_dir("hll-uscore");
  {
    S3Store s3(dir / "s3");
    s3.create_bucket("landing");
    s3.create_bucket("results");
    HealthLakeOptions o;  // no fhir_packages
    o.timing = {1.0, 1.0, 1.0};
    HealthLake hl(s3, dir / "hl", o);
    const std::string ds = "0123456789abcdef0123456789abcdef";
    hl.add_datastore(ds);
    const std::string prof = fe::fhir::kPatient;
    const std::string bad = R"({"resourceType":"Patient","id":"bad","meta":{"profile":[")" + prof +
                            R"("]},"name":[{"family":"X"}]})";
    const std::string good = R"({"resourceType":"Patient","id":"good","meta":{"profile":[")" +
                             prof + R"("]},)" + fe::fhir::kConformant + "}";
    s3.put_bytes("landing", "in/Patient.ndjson", bad + "\n" + good + "\n", "");
    const std::string start =
        R"({"JobName":"j","DatastoreId":")" + ds +
        R"(","DataAccessRoleArn":"arn:aws:iam::123456789012:role/HealthLakeImport","InputDataConfig":{"S3Uri":"s3://landing/in/"},"JobOutputDataConfig":{"S3Configuration":{"S3Uri":"s3://results/out","KmsKeyId":"arn:aws:kms:us-east-1:123456789012:key/abcd-1234"}},"ValidationLevel":"strict","ClientToken":"t1"})";
    simdjson::dom::parser p;
    std::string started = hl.call("StartFHIRImportJob", start, 0);
    std::string id(std::string_view(p.parse(started)["JobId"]));
    hl.tick(1);
    hl.tick(2);
    hl.tick(3);
    simdjson::dom::parser p2;
    std::string d = hl.call("DescribeFHIRImportJob",
                            R"({"DatastoreId":")" + ds + R"(","JobId":")" + id + R"("})", 4);
    simdjson::dom::element props = p2.parse(d)["ImportJobProperties"];
    EXPECT_EQ(std::string_view(props["JobStatus"]), "COMPLETED_WITH_ERRORS") << d;
    EXPECT_EQ(hl.imports_of(ds, "Patient/bad"), 0u);
    EXPECT_EQ(hl.imports_of(ds, "Patient/good"), 1u);
    const ObjectInfo* fail =
        s3.find_object("results", "out/" + ds + "-FHIR_IMPORT-" + id + "/FAILURE/Patient.ndjson");
    ASSERT_NE(fail, nullptr);
    std::string outcome = read_file(fail->data);
    EXPECT_NE(outcome.find("us-core-patient"), std::string::npos) << outcome;
    EXPECT_NE(outcome.find("identifier"), std::string::npos) << outcome;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fe::hll
