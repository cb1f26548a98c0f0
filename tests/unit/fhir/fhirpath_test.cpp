// FHIRPath engine semantics (daemon/fhir/fhirpath.hpp): empty propagation, three-valued logic,
// partial-precision dates, quantity units, iif, implies, and the R4 invariants wired into strict.
#include "fhir/fhirpath.hpp"

#include <gtest/gtest.h>

#include "fhir/validator.hpp"

namespace fe::fhir::fhirpath {
namespace {

// Evaluates `expr` with the resource `json` as $this, %resource and %rootResource.
std::string eval(std::string_view json, std::string_view expr) {
  static simdjson::dom::parser parser;
  simdjson::padded_string p(json);
  simdjson::dom::element root;
  EXPECT_EQ(parser.parse(p).get(root), simdjson::SUCCESS);
  std::string_view rt;
  EXPECT_EQ(root["resourceType"].get(rt), simdjson::SUCCESS);
  auto t = static_cast<uint32_t>(schema::core().find_resource(rt));
  Focus f;
  f.node = root;
  f.type = t;
  f.resource = f.root = root;
  f.resource_type = f.root_type = t;
  return evaluate_to_string(Expression::compile(expr), f);
}

constexpr std::string_view kPatient =
    R"({"resourceType":"Patient","id":"p","active":true,"birthDate":"1970-03",)"
    R"("name":[{"family":"A","given":["x","y"],"_given":[null,{"id":"g"}]},{"family":"B"}],)"
    R"("gender":"female",)"
    R"("_gender":{"extension":[{"url":"u","valueString":"s"}]},)"
    R"("contact":[{"name":{"family":"C"}}],"deceasedBoolean":false})";

// memberOf against the value sets compiled in (the R4 core's required-bound ones).
TEST(FhirPath, MemberOfCoreValueSets) {
  const std::string gender = "'http://hl7.org/fhir/ValueSet/administrative-gender'";
  EXPECT_EQ(eval(kPatient, "gender.memberOf(" + gender + ")"), "[true]");
  EXPECT_EQ(eval(kPatient, "'boy'.memberOf(" + gender + ")"), "[false]");
  EXPECT_EQ(eval(kPatient, "gender.memberOf(" + gender.substr(0, gender.size() - 1) + "|4.0.1')"),
            "[true]");
  EXPECT_EQ(eval(kPatient, "nosuch.memberOf(" + gender + ")"), "[]");
  constexpr std::string_view obs =
      R"({"resourceType":"Observation","status":"final","code":{"text":"x"},)"
      R"("category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],)"
      R"("interpretation":[{"coding":[{"system":"http://example.org","code":"vital-signs"}]}]})";
  const std::string cat = "'http://hl7.org/fhir/ValueSet/observation-status'";
  EXPECT_EQ(eval(obs, "status.memberOf(" + cat + ")"), "[true]");
  EXPECT_EQ(eval(obs, "code.memberOf(" + cat + ")"), "[false]");  // CodeableConcept, no coding
}

TEST(FhirPath, PathsAndChoices) {
  EXPECT_EQ(eval(kPatient, "name.family"), "['A', 'B']");
  EXPECT_EQ(eval(kPatient, "Patient.name.given.count()"), "[2]");
  EXPECT_EQ(eval(kPatient, "name.given[1].id"), "['g']");  // given[i] pairs with _given[i]
  EXPECT_EQ(eval(kPatient, "deceased"), "[false]");        // deceased[x] by its base name
  EXPECT_EQ(eval(kPatient, "deceased is Boolean"), "[true]");
  EXPECT_EQ(eval(kPatient, "deceased is FHIR.boolean"), "[true]");
  EXPECT_EQ(eval(kPatient, "gender.extension.url"), "['u']");  // from _gender
  EXPECT_EQ(eval(kPatient, "name.where(family = 'B').exists()"), "[true]");
  EXPECT_EQ(eval(kPatient, "name.all(family.exists())"), "[true]");
  EXPECT_EQ(eval(kPatient, "name.select(given).isDistinct()"), "[true]");
  EXPECT_EQ(eval(kPatient, "nosuch.empty()"), "[true]");
}

TEST(FhirPath, EmptyPropagation) {
  EXPECT_EQ(eval(kPatient, "nosuch = 'a'"), "[]");
  EXPECT_EQ(eval(kPatient, "nosuch != 'a'"), "[]");
  EXPECT_EQ(eval(kPatient, "nosuch < 3"), "[]");
  EXPECT_EQ(eval(kPatient, "nosuch + 1"), "[]");
  EXPECT_EQ(eval(kPatient, "nosuch.not()"), "[]");
  EXPECT_EQ(eval(kPatient, "nosuch & 'a'"), "['a']");  // & treats empty as ''
  EXPECT_EQ(eval(kPatient, "nosuch in ('a' | 'b')"), "[]");
}

TEST(FhirPath, ThreeValuedLogic) {
  // and
  EXPECT_EQ(eval(kPatient, "true and {}"), "[]");
  EXPECT_EQ(eval(kPatient, "false and {}"), "[false]");
  EXPECT_EQ(eval(kPatient, "{} and false"), "[false]");
  // or
  EXPECT_EQ(eval(kPatient, "false or {}"), "[]");
  EXPECT_EQ(eval(kPatient, "{} or true"), "[true]");
  // xor
  EXPECT_EQ(eval(kPatient, "true xor {}"), "[]");
  EXPECT_EQ(eval(kPatient, "true xor false"), "[true]");
  EXPECT_EQ(eval(kPatient, "true xor true"), "[false]");
  // implies
  EXPECT_EQ(eval(kPatient, "false implies {}"), "[true]");
  EXPECT_EQ(eval(kPatient, "{} implies true"), "[true]");
  EXPECT_EQ(eval(kPatient, "{} implies false"), "[]");
  EXPECT_EQ(eval(kPatient, "true implies false"), "[false]");
  EXPECT_EQ(eval(kPatient, "true implies {}"), "[]");
}

TEST(FhirPath, Iif) {
  EXPECT_EQ(eval(kPatient, "iif(active, 'y', 'n')"), "['y']");
  EXPECT_EQ(eval(kPatient, "iif(nosuch, 'y', 'n')"), "['n']");
  EXPECT_EQ(eval(kPatient, "iif(false, 'y')"), "[]");
  EXPECT_EQ(eval(kPatient, "name.iif(empty(), true, false)"), "[false]");
}

TEST(FhirPath, PartialPrecisionDates) {
  EXPECT_EQ(eval(kPatient, "birthDate < @1971"), "[true]");
  EXPECT_EQ(eval(kPatient, "birthDate <= @1970-03-15"), "[]");  // month vs day: undecidable
  EXPECT_EQ(eval(kPatient, "birthDate = @1970-03"), "[true]");
  EXPECT_EQ(eval(kPatient, "@2020-01-01T10:00:00+02:00 = @2020-01-01T08:00:00Z"), "[true]");
  EXPECT_EQ(eval(kPatient, "@2020-01-01T10:00 < @2020-01-01T10:00:30"), "[]");
  EXPECT_EQ(eval(kPatient, "@2020-01-01T10:00:00.5 > @2020-01-01T10:00:00"), "[true]");
}

TEST(FhirPath, QuantityUnits) {
  EXPECT_EQ(eval(kPatient, "1 'g' = 1000 'mg'"), "[true]");
  EXPECT_EQ(eval(kPatient, "2 'h' > 90 'min'"), "[true]");
  EXPECT_EQ(eval(kPatient, "1 'g' < 1 'L'"), "[]");  // different dimensions: not comparable
  EXPECT_EQ(eval(kPatient, "3 days < 1 week"), "[true]");
}

TEST(FhirPath, StringsAndRegex) {
  EXPECT_EQ(eval(kPatient, "id.matches('^[a-z]+$')"), "[true]");
  EXPECT_EQ(eval(kPatient, "'abc'.substring(1)"), "['bc']");
  EXPECT_EQ(eval(kPatient, "'a.b'.replaceMatches('\\\\.', '-')"), "['a-b']");
  EXPECT_EQ(eval(kPatient, "'12'.toInteger() + 1"), "[13]");
  EXPECT_EQ(eval(kPatient, "1.5.toString()"), "['1.5']");
  EXPECT_EQ(eval(kPatient, "('a' | 'b' | 'a').count()"), "[2]");
  EXPECT_EQ(eval(kPatient, "('a' | 'b').combine('a').count()"), "[3]");
}

TEST(FhirPath, NotEvaluatedIsNamed) {
  EXPECT_EQ(eval(kPatient, "gender.memberOf('http://x')"),
            "error: memberOf('http://x'): the value set is not loaded");
  EXPECT_EQ(eval(kPatient, "name.frobnicate()"), "error: function frobnicate()");
  EXPECT_EQ(eval(kPatient, "%nosuchvar"), "error: %nosuchvar");
  // A huge string is not handed to the (recursive) regex engine.
  std::string big = R"({"resourceType":"Patient","id":"p","name":[{"family":")" +
                    std::string(100000, 'a') + R"("}]})";
  EXPECT_EQ(eval(big, "name.family.matches('^a+$')"),
            "error: matches() on a string longer than 4096 bytes");
}

TEST(FhirPath, ResolveWithinTheResource) {
  constexpr std::string_view kCareTeam =
      R"({"resourceType":"CareTeam","contained":[{"resourceType":"Practitioner","id":"pr"}],)"
      R"("participant":[{"member":{"reference":"#pr"}}]})";
  EXPECT_EQ(eval(kCareTeam, "participant.member.resolve().ofType(Practitioner).exists()"),
            "[true]");
  EXPECT_EQ(eval(kCareTeam, "participant.member.resolve() is Patient"), "[false]");
}

TEST(FhirPath, HtmlChecks) {
  EXPECT_TRUE(html_checks(R"(<div xmlns="http://www.w3.org/1999/xhtml"><p>Hi</p></div>)"));
  EXPECT_FALSE(html_checks(R"(<div xmlns="http://www.w3.org/1999/xhtml"><script/>x</div>)"));
  EXPECT_FALSE(html_checks(R"(<div xmlns="http://www.w3.org/1999/xhtml" onclick="x">a</div>)"));
  EXPECT_FALSE(html_checks(R"(<div xmlns="http://www.w3.org/1999/xhtml">  </div>)"));
  EXPECT_TRUE(html_checks_structure_only(R"(<div xmlns="http://www.w3.org/1999/xhtml"> </div>)"));
}

TEST(FhirPath, AllR4ErrorInvariantsCompile) {
  const InvariantTable& t = core_invariants();
  EXPECT_GT(t.all.size(), 700u);
  for (const Invariant& inv : t.all)
    EXPECT_TRUE(inv.expr.ok()) << inv.key << ": " << inv.expr.error() << " in " << inv.expression;
}

// Invariants at strict: each failure is an error with the key, the element path and the line.
TEST(FhirPath, StrictReportsInvariantFailures) {
  LoadReport rep;
  Options o;
  o.level = Level::strict;
  auto v = Validator::create(o, rep);
  ASSERT_TRUE(v);
  Result r =
      v->validate_line(R"({"resourceType":"Encounter","status":"finished","class":{"code":"x"},)"
                       R"("period":{"start":"2020-02-01","end":"2020-01-01"}})",
                       7);
  ASSERT_EQ(r.errors(), 1u);
  EXPECT_EQ(r.issues[0].path, "Encounter.period");
  EXPECT_EQ(r.issues[0].line, 7u);
  EXPECT_NE(r.issues[0].message.find("per-1"), std::string::npos) << r.issues[0].message;
  Result ok =
      v->validate_line(R"({"resourceType":"Encounter","status":"finished","class":{"code":"x"},)"
                       R"("period":{"start":"2020-01","end":"2020-01-01"}})",
                       8);
  EXPECT_EQ(ok.errors(), 0u);  // month vs day precision: undecidable, not a failure
  Result pat = v->validate_line(R"({"resourceType":"Patient","contact":[{"gender":"male"}]})", 9);
  ASSERT_EQ(pat.errors(), 1u);
  EXPECT_EQ(pat.issues[0].path, "Patient.contact[0]");
  EXPECT_NE(pat.issues[0].message.find("pat-1"), std::string::npos);
  // structure-only does not run them
  Options so;
  auto s = Validator::create(so, rep);
  EXPECT_EQ(
      s->validate_line(R"({"resourceType":"Patient","contact":[{"gender":"male"}]})", 1).errors(),
      0u);
}

}  // namespace
}  // namespace fe::fhir::fhirpath
