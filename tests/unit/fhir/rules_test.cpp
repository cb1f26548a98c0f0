// The strict rule families that need nothing from outside the resource (issue 12 item 2,
// docs/validation.md "strict: rules on the resource alone"): Bundle fullUrl and reference
// resolution, UUIDs, absolute code systems, Attachment size/hash, narrative XHTML, and the
// "not checked" count of codes that need an external terminology server. structure-only is
// unchanged by all of them.
#include <gtest/gtest.h>

#include <string>

#include "fhir/validator.hpp"

namespace fe::fhir {
namespace {

std::shared_ptr<const Validator> make(Level level) {
  Options o;
  o.level = level;
  LoadReport rep;
  auto v = Validator::create(o, rep);
  EXPECT_TRUE(v) << (rep.errors.empty() ? "" : rep.errors[0]);
  return v;
}

const Validator& strict() {
  static auto v = make(Level::strict);
  return *v;
}
const Validator& structure_only() {
  static auto v = make(Level::structure_only);
  return *v;
}

std::string dump(const Result& r) {
  return to_text(r, "t.ndjson");
}

// At strict: exactly one error, at `path`, whose message contains `part`; at structure-only the
// same line is valid (these rules belong to strict only).
void expect_strict_error(const std::string& line, std::string_view path, std::string_view part) {
  Result r = strict().validate_line(line, 3);
  ASSERT_EQ(r.errors(), 1u) << line << "\n" << dump(r);
  const Issue* e = nullptr;
  for (const auto& i : r.issues)
    if (i.severity == Severity::error) e = &i;
  EXPECT_EQ(e->path, path) << dump(r);
  EXPECT_NE(e->message.find(part), std::string::npos) << dump(r);
  EXPECT_EQ(e->line, 3u);
  Result so = structure_only().validate_line(line, 3);
  EXPECT_TRUE(so.valid()) << "structure-only must not change:\n" << dump(so);
}

void expect_strict_valid(const std::string& line) {
  Result r = strict().validate_line(line, 3);
  EXPECT_EQ(r.errors(), 0u) << line << "\n" << dump(r);
}

std::string bundle(const std::string& entries, const std::string& type = "collection") {
  return R"({"resourceType":"Bundle","type":")" + type + R"(","entry":[)" + entries + "]}";
}
std::string entry(const std::string& full_url, const std::string& resource) {
  return R"({"fullUrl":")" + full_url + R"(","resource":)" + resource + "}";
}
const std::string kPat1 = R"({"resourceType":"Patient","id":"1"})";
std::string obs(const std::string& id, const std::string& subject) {
  return R"({"resourceType":"Observation","id":")" + id +
         R"(","status":"final","code":{"text":"x"},"subject":{"reference":")" + subject + R"("}})";
}

// ---- Bundle.entry.fullUrl ----------------------------------------------------------------------

TEST(StrictRules, BundleFullUrlMustBeAbsolute) {
  expect_strict_error(bundle(entry("Patient/1", kPat1)), "Bundle.entry[0].fullUrl",
                      "must be an absolute URL");
  expect_strict_valid(bundle(entry("http://example.org/fhir/Patient/1", kPat1)));
  expect_strict_valid(bundle(entry("urn:uuid:04121321-4af5-424c-a0e1-ed3aab1c349d", kPat1)));
}

// Exactly one warning at `path` containing `part`, and no error (strict).
void expect_strict_warning(const std::string& line, std::string_view path, std::string_view part) {
  Result r = strict().validate_line(line, 3);
  EXPECT_EQ(r.errors(), 0u) << dump(r);
  ASSERT_EQ(r.warnings(), 1u) << line << "\n" << dump(r);
  for (const auto& i : r.issues)
    if (i.severity == Severity::warning) {
      EXPECT_EQ(i.path, path) << dump(r);
      EXPECT_NE(i.message.find(part), std::string::npos) << dump(r);
    }
}

// A SHALL that official R4 examples break (Bundle-lri-example): a warning, not an error.
TEST(StrictRules, RestfulFullUrlAgreesWithTheResourceId) {
  expect_strict_warning(bundle(entry("http://example.org/fhir/Patient/2", kPat1)),
                        "Bundle.entry[0].fullUrl", "Patient/1");
}

// ---- references inside a Bundle (https://hl7.org/fhir/R4/bundle.html#references) --------------

TEST(StrictRules, RelativeReferenceResolvesAgainstTheRestfulBase) {
  // Observation http://example.org/fhir/Observation/o1 -> Patient/1 = .../fhir/Patient/1.
  expect_strict_valid(
      bundle(entry("http://example.org/fhir/Patient/1", kPat1) + "," +
             entry("http://example.org/fhir/Observation/o1", obs("o1", "Patient/1"))));
  // An absolute reference matches the fullUrl directly, from any entry.
  expect_strict_valid(bundle(entry("urn:uuid:98549f1a-e0d5-4454-849c-f5b97d3ed299", kPat1) + "," +
                             entry("urn:uuid:da138a5d-633f-493f-9485-e5af1320db5b",
                                   obs("o1", "urn:uuid:98549f1a-e0d5-4454-849c-f5b97d3ed299"))));
  // A reference to something outside the Bundle is not an error.
  expect_strict_valid(
      bundle(entry("http://example.org/fhir/Observation/o1", obs("o1", "Patient/9"))));
}

TEST(StrictRules, RelativeReferenceFromAUuidEntryDoesNotResolveToTheSameTypeAndId) {
  // The Patient is Patient/1, but the Observation's fullUrl is a urn:uuid, so 'Patient/1' has no
  // base to resolve against: the author meant the entry, the fullUrl rules do not reach it. In a
  // document (or message), which should carry what it references, that is said (a warning: the
  // official R4 document example Bundle-father does it); in a collection it may name a server.
  const std::string entries =
      entry("urn:uuid:98549f1a-e0d5-4454-849c-f5b97d3ed299", kPat1) + "," +
      entry("urn:uuid:da138a5d-633f-493f-9485-e5af1320db5b", obs("o1", "Patient/1"));
  const std::string composition = entry(
      "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0",
      R"({"resourceType":"Composition","status":"final","type":{"text":"x"},"date":"2020-01-01",)"
      R"("author":[{"display":"a"}],"title":"t"})");
  const std::string document =
      R"({"resourceType":"Bundle","type":"document","identifier":{"system":"urn:x","value":"1"},)"
      R"("timestamp":"2020-01-01T00:00:00Z","entry":[)" +
      composition + "," + entries + "]}";
  expect_strict_warning(document, "Bundle.entry[2].resource.subject.reference", "fullUrl");
  EXPECT_TRUE(strict().validate_line(bundle(entries, "collection"), 1).issues.empty());
}

TEST(StrictRules, AmbiguousAndVersionedReferences) {
  auto pv = [](const std::string& v) {
    return R"({"resourceType":"Patient","id":"1","meta":{"versionId":")" + v + R"("}})";
  };
  const std::string two = entry("http://example.org/fhir/Patient/1", pv("1")) + "," +
                          entry("http://example.org/fhir/Patient/1", pv("2")) + ",";
  expect_strict_valid(bundle(
      two + entry("http://example.org/fhir/Observation/o1", obs("o1", "Patient/1/_history/2"))));
  expect_strict_error(
      bundle(two + entry("http://example.org/fhir/Observation/o1", obs("o1", "Patient/1"))),
      "Bundle.entry[2].resource.subject.reference", "2 entries");
  expect_strict_error(bundle(two + entry("http://example.org/fhir/Observation/o1",
                                         obs("o1", "Patient/1/_history/3"))),
                      "Bundle.entry[2].resource.subject.reference", "version");
}

// ---- UUIDs and code systems ---------------------------------------------------------------------

TEST(StrictRules, UuidsAreValidAndLowercase) {
  const std::string p = R"({"resourceType":"Patient","identifier":[{"system":")";
  expect_strict_error(p + R"(urn:uuid:C757873D-EC9A-4326-A141-556F43239520"}]})",
                      "Patient.identifier[0].system", "UUID");
  expect_strict_error(p + R"(urn:uuid:c757873d-ec9a-4326-a141-556f43239520asdf"}]})",
                      "Patient.identifier[0].system", "UUID");
  expect_strict_valid(p + R"(urn:uuid:c757873d-ec9a-4326-a141-556f43239520"}]})");
}

TEST(StrictRules, CodingSystemIsAnAbsoluteCodeSystemUri) {
  auto o = [](const std::string& sys) {
    return R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":")" + sys +
           R"(","code":"x"}]}})";
  };
  expect_strict_error(o("loinc"), "Observation.code.coding[0].system", "absolute");
  expect_strict_error(o("http://hl7.org/fhir/ValueSet/measure-type"),
                      "Observation.code.coding[0].system", "value set");
  expect_strict_valid(o("urn:oid:1.2.3.4"));
  expect_strict_valid(o("https://example.org/cs"));
}

TEST(StrictRules, ValueSetIncludeSystemIsAbsolute) {
  auto vs = [](const std::string& sys) {
    return R"({"resourceType":"ValueSet","status":"draft","compose":{"include":[{"system":")" +
           sys + R"("}]}})";
  };
  expect_strict_error(vs("cs1"), "ValueSet.compose.include[0].system", "absolute");
  expect_strict_error(vs("#cs1"), "ValueSet.compose.include[0].system", "absolute");
  expect_strict_valid(vs("http://example.org/cs1"));
}

// ---- Attachment ---------------------------------------------------------------------------------

TEST(StrictRules, AttachmentSizeAndHashMatchTheData) {
  // "hello" = aGVsbG8= (5 bytes); SHA-1 base64 qvTGHdzF6KLavt4PO0gs2a6pQ00=.
  auto p = [](const std::string& extra) {
    return R"({"resourceType":"Patient","photo":[{"contentType":"text/plain","data":"aGVsbG8=")" +
           extra + "}]}";
  };
  expect_strict_valid(p(R"(,"size":5,"hash":"qvTGHdzF6KLavt4PO0gs2a6pQ00=")"));
  expect_strict_error(p(R"(,"size":100)"), "Patient.photo[0].size", "5");
  expect_strict_error(p(R"(,"hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAA=")"), "Patient.photo[0].hash",
                      "SHA-1");
  // Not a SHA-1 at all (hex text, 30 bytes as base64): nothing to compare, a warning.
  expect_strict_warning(p(R"(,"hash":"571ef9c5655840f324e679072ed62b1b95eef8a0")"),
                        "Patient.photo[0].hash", "not a base64 SHA-1");
}

// ---- Narrative ----------------------------------------------------------------------------------

TEST(StrictRules, NarrativeNamesTheElementOrAttributeThatIsNotAllowed) {
  auto p = [](const std::string& div) {
    return R"({"resourceType":"Patient","text":{"status":"generated","div":")" + div + R"("}})";
  };
  expect_strict_valid(p(R"(<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>ok</p></div>)"));
  Result r = strict().validate_line(
      p(R"(<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>x</p><script>alert(1)</script></div>)"),
      1);
  bool named = false;
  for (const auto& i : r.issues)
    if (i.severity == Severity::error && i.path == "Patient.text.div" &&
        i.message.find("'script'") != std::string::npos)
      named = true;
  EXPECT_TRUE(named) << dump(r);
  r = strict().validate_line(
      p(R"(<div xmlns=\"http://www.w3.org/1999/xhtml\"><p onclick=\"x()\">x</p></div>)"), 1);
  named = false;
  for (const auto& i : r.issues)
    if (i.severity == Severity::error && i.message.find("'onclick'") != std::string::npos)
      named = true;
  EXPECT_TRUE(named) << dump(r);
}

// ---- dom-3 on many contained resources (cached %resource.descendants(), hashed `in`) -----------

TEST(StrictRules, Dom3WithManyContainedResources) {
  auto list = [](int n, bool last_referenced) {
    std::string c, e;
    for (int i = 0; i < n; i++) {
      if (i) c += ",";
      c += R"({"resourceType":"Practitioner","id":"p)" + std::to_string(i) + R"("})";
      if (i == n - 1 && !last_referenced) continue;
      if (!e.empty()) e += ",";
      e += R"({"item":{"reference":"#p)" + std::to_string(i) + R"("}})";
    }
    return R"({"resourceType":"List","status":"current","mode":"working","contained":[)" + c +
           R"(],"entry":[)" + e + "]}";
  };
  expect_strict_valid(list(400, true));
  Result r = strict().validate_line(list(400, false), 3);
  ASSERT_EQ(r.errors(), 1u) << dump(r);
  EXPECT_NE(r.issues[0].message.find("dom-3"), std::string::npos) << dump(r);
  EXPECT_EQ(structure_only().validate_line(list(400, false), 3).errors(), 0u);
}

// ---- terminology that needs a server ------------------------------------------------------------

TEST(StrictRules, CodesOfExternalTerminologyAreCountedNotCheckedBySystem) {
  Scratch sc;
  const std::string line =
      R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8310-5"},{"system":"http://snomed.info/sct","code":"276885007"}]}})";
  for (int i = 0; i < 3; i++) {
    Result r = strict().validate_line(line, static_cast<uint64_t>(i + 1), sc);
    EXPECT_TRUE(r.issues.empty()) << "no warning per resource:\n" << dump(r);
  }
  auto n = Validator::terminology_not_checked(sc);
  ASSERT_EQ(n.size(), 2u);
  EXPECT_EQ(n[0].first, "http://loinc.org");
  EXPECT_EQ(n[0].second, 3u);
  EXPECT_EQ(n[1].first, "http://snomed.info/sct");
  EXPECT_EQ(n[1].second, 3u);
}

}  // namespace
}  // namespace fe::fhir
