// One passing and one failing minimal resource per structure rule (docs/validation.md).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <thread>
#include <vector>

#include "fhir/schema.hpp"
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

Result check(const std::string& line, Level level = Level::structure_only) {
  static auto so = make(Level::structure_only);
  static auto mi = make(Level::minimal);
  static auto st = make(Level::strict);
  const Validator& v = level == Level::minimal ? *mi : level == Level::strict ? *st : *so;
  return v.validate_line(line, 7);
}

std::string dump(const Result& r) {
  return to_text(r, "t.ndjson");
}

// Exactly one error, with this code and path.
void expect_error(const std::string& line, std::string_view code, std::string_view path,
                  Level level = Level::structure_only) {
  Result r = check(line, level);
  ASSERT_EQ(r.errors(), 1u) << line << "\n" << dump(r);
  const Issue& i = r.issues[0];
  EXPECT_EQ(i.severity, Severity::error);
  EXPECT_EQ(i.code, code) << dump(r);
  EXPECT_EQ(i.path, path) << dump(r);
  EXPECT_EQ(i.line, 7u);
  EXPECT_FALSE(i.message.empty());
}

void expect_valid(const std::string& line, Level level = Level::structure_only) {
  Result r = check(line, level);
  EXPECT_TRUE(r.valid()) << line << "\n" << dump(r);
  EXPECT_EQ(r.errors(), 0u);
}

const std::string P = R"({"resourceType":"Patient",)";  // prefix for Patient one-liners

TEST(Level, ParsesHealthLakeSpellings) {
  EXPECT_EQ(parse_level("minimal"), Level::minimal);
  EXPECT_EQ(parse_level("structure-only"), Level::structure_only);
  EXPECT_EQ(parse_level("strict"), Level::strict);
  EXPECT_FALSE(parse_level("STRICT"));
  EXPECT_FALSE(parse_level("structure_only"));
  EXPECT_EQ(to_string(Level::structure_only), "structure-only");
}

TEST(Result, CarriesTypeAndId) {
  Result r = check(P + R"("id":"p1","gender":"female"})");
  EXPECT_EQ(r.resource_type, "Patient");
  EXPECT_EQ(r.id, "p1");
  EXPECT_EQ(r.line, 7u);
  EXPECT_TRUE(r.valid()) << dump(r);
}

TEST(Json, DuplicateKeysAreRejected) {
  expect_valid(P + R"("gender":"male","active":true})");
  expect_error(P + R"("gender":"male","gender":"female"})", code::structure, "Patient.gender");
  expect_error(R"({"resourceType":"Patient","resourceType":"Patient"})", code::structure,
               "Patient");
}

TEST(Json, SyntaxAndUtf8) {
  expect_error(P + R"("gender":"male")", code::invalid, "");
  expect_error(P + "\"gender\":\"m\xff\"}", code::invalid, "");
  expect_error("[1,2]", code::structure, "");
  expect_valid(P + "\"name\":[{\"text\":\"J\xc3\xb6rg\"}]}");
}

TEST(ResourceType, RequiredKnownAndDispatched) {
  expect_error(R"({"id":"x"})", code::required, "");
  expect_error(R"({"resourceType":"Patient2"})", code::not_supported, "");
  expect_error(R"({"resourceType":"DomainResource"})", code::not_supported, "");
  expect_error(R"({"resourceType":7})", code::required, "");
  // contained, Bundle.entry.resource, Parameters.parameter.resource: dispatch on resourceType
  expect_valid(P + R"("contained":[{"resourceType":"Organization","id":"o","name":"X"}]})");
  expect_error(P + R"("contained":[{"id":"o","name":"X"}]})", code::required,
               "Patient.contained[0]");
  expect_error(P + R"("contained":[{"resourceType":"Organization","gender":"male"}]})",
               code::structure, "Patient.contained[0].gender");
  expect_valid(
      R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"male"}}]})");
  expect_error(
      R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"boy"}}]})",
      code::code_invalid, "Bundle.entry[0].resource.gender");
  expect_valid(
      R"({"resourceType":"Parameters","parameter":[{"name":"p","resource":{"resourceType":"Basic","code":{"text":"x"}}}]})");
  expect_error(
      R"({"resourceType":"Parameters","parameter":[{"name":"p","resource":{"resourceType":"Basic"}}]})",
      code::required, "Parameters.parameter[0].resource.code");
  // an element typed by one resource
  expect_error(
      R"({"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"200","outcome":{"resourceType":"Patient"}}}]})",
      code::structure, "Bundle.entry[0].response.outcome");
  expect_error(P + R"("name":[{"resourceType":"HumanName","text":"x"}]})", code::structure,
               "Patient.name[0]");
}

TEST(Schema, EvidenceVariableIsR4NotMedplumsLaterShape) {
  const std::string ev =
      R"({"resourceType":"EvidenceVariable","status":"draft","characteristic":[)";
  expect_valid(ev + R"({"definitionDataRequirement":{"type":"Patient"},"groupMeasure":"mean"}]})");
  expect_error(ev + R"({"definitionCodeableConcept":{"text":"x"},"groupMeasure":"average"}]})",
               code::code_invalid, "EvidenceVariable.characteristic[0].groupMeasure");
  expect_error(ev + R"({"definitionCodeableConcept":{"text":"x"},"linkId":"a"}]})", code::structure,
               "EvidenceVariable.characteristic[0].linkId");
  expect_error(ev + R"({"description":"no definition"}]})", code::required,
               "EvidenceVariable.characteristic[0].definition[x]");
  expect_error(R"({"resourceType":"EvidenceVariable","status":"draft"})", code::required,
               "EvidenceVariable.characteristic");
}

// Schema::find holds up to 24 bytes of each name in its slot and compares the tail of a longer
// one with the element's name: every element is found under its own type, and a name that
// differs in one byte anywhere (first, middle, last, past the 24th), is one byte longer or
// shorter, or belongs to another type is not that element.
TEST(Schema, FindLooksUpEveryElementAndNoNearMiss) {
  const schema::Schema& s = schema::core();
  size_t checked = 0, long_names = 0;
  for (uint32_t t = 0; t < s.types.size(); t++) {
    const schema::Type& ty = s.types[t];
    for (uint32_t e = ty.first; e < ty.first + ty.count; e++) {
      const std::string name(s.elements[e].name);
      ASSERT_EQ(s.find(t, name), static_cast<int32_t>(e)) << ty.name << "." << name;
      long_names += name.size() > 24;
      std::vector<std::string> near;
      for (size_t i : {size_t{0}, name.size() / 2, name.size() - 1, size_t{24}, size_t{30}}) {
        if (i >= name.size()) continue;
        std::string m = name;
        m[i] = m[i] == '~' ? '}' : '~';  // no FHIR element name has these
        near.push_back(m);
      }
      near.push_back(name + "x");
      near.push_back(name.substr(0, name.size() - 1));
      for (const auto& m : near) {
        int32_t got = s.find(t, m);
        EXPECT_TRUE(got < 0 || s.elements[static_cast<size_t>(got)].name == m)
            << ty.name << "." << name << " found for '" << m << "'";
      }
      // The same name under another type: found only as that type's own element of that name.
      const uint32_t other = s.extension_type == t ? s.coding_type : s.extension_type;
      int32_t got = s.find(other, name);
      EXPECT_TRUE(got < 0 ||
                  (s.elements[static_cast<size_t>(got)].name == name &&
                   static_cast<uint32_t>(got) >= s.types[other].first &&
                   static_cast<uint32_t>(got) < s.types[other].first + s.types[other].count))
          << name << " of " << ty.name << " found in " << s.types[other].name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, s.elements.size());
  EXPECT_GT(long_names, 0u);  // the tail comparison was exercised
  EXPECT_EQ(s.find(s.extension_type, std::string(300, 'u')), -1);
  EXPECT_EQ(s.find(s.extension_type, ""), -1);
}

TEST(Properties, UnknownAreRejected) {
  expect_valid(P + R"("birthDate":"1970-01-01"})");
  expect_error(P + R"("birthdate":"1970-01-01"})", code::structure, "Patient.birthdate");
  expect_error(P + R"("name":[{"given":["A"],"middle":"B"}]})", code::structure,
               "Patient.name[0].middle");
  expect_error(P + R"("":1})", code::structure, "Patient");
}

TEST(Arrays, ExactlyWhereMaxIsStarAndNeverEmpty) {
  expect_valid(P + R"("name":[{"given":["A","B"]}]})");
  expect_error(P + R"("name":{"given":["A"]}})", code::structure, "Patient.name");
  expect_error(P + R"("gender":["male"]})", code::structure, "Patient.gender");
  expect_error(P + R"("name":[]})", code::structure, "Patient.name");
  expect_error(P + R"("name":[{"given":"A"}]})", code::structure, "Patient.name[0].given");
}

TEST(Empty, ObjectsAndStringsAreRejected) {
  expect_error(P + R"("maritalStatus":{}})", code::structure, "Patient.maritalStatus");
  expect_error(P + R"("name":[{"family":""}]})", code::structure, "Patient.name[0].family");
  expect_error(P + R"("name":[{"given":["A",""]}]})", code::structure, "Patient.name[0].given[1]");
  expect_error(P + R"("name":[{"family":"  "}]})", code::value, "Patient.name[0].family");
}

TEST(Underscore, SiblingsCarryOnlyIdAndExtension) {
  const std::string ext = R"({"extension":[{"url":"http://e.org/x","valueString":"v"}]})";
  expect_valid(P + R"("birthDate":"1970","_birthDate":)" + ext + "}");
  expect_valid(P + R"("_birthDate":)" + ext + "}");  // extension only, no value
  expect_error(P + R"("_birthDate":{"value":"1970"}})", code::structure,
               "Patient._birthDate.value");
  expect_error(P + R"("_birthDate":"x"})", code::structure, "Patient._birthDate");
  expect_error(P + R"("_name":{"id":"a"}})", code::structure, "Patient._name");
  // arrays: same length, no index null in both
  expect_valid(P + R"("name":[{"given":["A",null],"_given":[null,)" + ext + "]}]}");
  expect_error(P + R"("name":[{"given":["A","B"],"_given":[null]}]})", code::structure,
               "Patient.name[0].given");
  expect_error(P + R"("name":[{"given":["A",null],"_given":[null,null]}]})", code::structure,
               "Patient.name[0].given[1]");
  expect_error(P + R"("name":[{"given":[null]}]})", code::structure, "Patient.name[0].given");
}

TEST(Choice, OneVariantOfAnAllowedType) {
  expect_valid(P + R"("deceasedBoolean":false})");
  expect_valid(P + R"("deceasedDateTime":"2020-01-02T10:00:00Z"})");
  expect_error(P + R"("deceasedBoolean":false,"deceasedDateTime":"2020"})", code::structure,
               "Patient.deceasedDateTime");
  expect_error(P + R"("deceasedString":"yes"})", code::structure, "Patient.deceasedString");
  expect_error(P + R"("deceased":true})", code::structure, "Patient.deceased");
}

TEST(Cardinality, MinIncludingRequiredPrimitives) {
  const std::string obs = R"({"resourceType":"Observation","code":{"text":"x"})";
  expect_valid(obs + R"(,"status":"final"})");
  expect_error(obs + "}", code::required, "Observation.status");
  // a required primitive present only through its extension counts as present
  Result r = check(
      obs +
      R"(,"_status":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}})");
  ASSERT_EQ(r.errors(), 1u) << dump(r);
  EXPECT_EQ(r.issues[0].code, code::code_invalid);  // ...but a required binding needs a code
  // required choice: Extension.value[x] is optional, Observation.component.value[x] optional,
  // Questionnaire.item.enableWhen.answer[x] required
  const std::string q =
      R"({"resourceType":"Questionnaire","status":"draft","item":[{"linkId":"1","type":"string","enableWhen":[{"question":"q","operator":"exists")";
  expect_valid(q + R"(,"answerBoolean":true}]}]})");
  expect_error(q + R"(}]}]})", code::required, "Questionnaire.item[0].enableWhen[0].answer[x]");
}

TEST(Kinds, JsonKindPerElementType) {
  expect_error(P + R"("active":"true"})", code::structure, "Patient.active");
  expect_error(P + R"("gender":1})", code::structure, "Patient.gender");
  expect_error(P + R"("name":["Smith"]})", code::structure, "Patient.name[0]");
  expect_error(P + R"("multipleBirthInteger":"2"})", code::structure,
               "Patient.multipleBirthInteger");
  expect_error(P + R"("active":null})", code::structure, "Patient.active");
}

struct Lex {
  const char* element_json;  // "key":value inside an Observation or Patient
  bool ok;
};

TEST(Primitives, LexicalRules) {
  const std::string obs = R"({"resourceType":"Observation","status":"final","code":{"text":"x"},)";
  const Lex cases[] = {
      {R"("effectiveDateTime":"2020")", true},
      {R"("effectiveDateTime":"2020-02-29")", true},
      {R"("effectiveDateTime":"2021-02-29")", false},
      {R"("effectiveDateTime":"2020-13")", false},
      {R"("effectiveDateTime":"2020-01-02T10:00:00+01:00")", true},
      {R"("effectiveDateTime":"2020-01-02T10:00:00.123Z")", true},
      {R"("effectiveDateTime":"2020-01-02T10:00:00")", false},  // time needs a zone
      {R"("effectiveDateTime":"2020-01-02T10:00Z")", false},    // and seconds
      {R"("effectiveInstant":"2020-01-02T10:00:00Z")", true},
      {R"("effectiveInstant":"2020-01-02")", false},
      {R"("valueTime":"23:59:60")", true},
      {R"("valueTime":"24:00:00")", false},
      {R"("valueInteger":2147483647)", true},
      {R"("valueInteger":2147483648)", false},
      {R"("valueInteger":-2147483648)", true},
      {R"("valueInteger":1.5)", false},
      {R"("valueQuantity":{"value":1.50})", true},
      {R"("valueQuantity":{"value":"1.5"})", false},
      {R"("valueSampledData":{"origin":{"value":1},"period":1,"dimensions":1})", true},
      {R"("valueSampledData":{"origin":{"value":1},"period":1,"dimensions":0})",
       false},  // positiveInt
      {R"("valueRange":{"low":{"value":1}})", true},
      {R"x("extension":[{"url":"http://e.org","valueAttachment":{"data":"aGVsbG8="}}])x", true},
      {R"x("extension":[{"url":"http://e.org","valueAttachment":{"data":"aGVsbG8"}}])x", false},
      {R"x("extension":[{"url":"http://e.org","valueAttachment":{"data":"%%%2@()()"}}])x", false},
      {R"x("extension":[{"url":"http://e.org","valueAttachment":{"size":-1}}])x",
       false},  // unsignedInt
      {R"x("extension":[{"url":"http://e.org","valueAttachment":{"url":"http://x.org/a b"}}])x",
       false},
      {R"x("extension":[{"url":"http://e.org","valueAttachment":{"contentType":"text/plain; charset=utf-8"}}])x",
       true},
      {R"x("extension":[{"url":"http://e.org","valueAttachment":{"contentType":"plain text"}}])x",
       false},  // mime grammar
      {R"("identifier":[{"system":"urn:oid:2.16.840.1.113883"}])", true},
      {R"("identifier":[{"system":"urn:uuid:a5a2c4b6-9d0e-4c8f-8a62-3c3c7d9e0f11"}])", true},
      {R"("valueCodeableConcept":{"coding":[{"code":"a  b"}]})", false},  // code whitespace
      {R"("valueCodeableConcept":{"coding":[{"code":" a"}]})", false},
      {R"("valueCodeableConcept":{"coding":[{"code":"a b"}]})", true},
  };
  for (const auto& c : cases) {
    std::string line = obs + c.element_json + "}";
    Result r = check(line);
    EXPECT_EQ(r.valid(), c.ok) << c.element_json << "\n" << dump(r);
    if (!c.ok && !r.issues.empty()) {
      EXPECT_TRUE(r.issues[0].code == code::value || r.issues[0].code == code::structure ||
                  r.issues[0].code == code::code_invalid)
          << dump(r);
    }
  }
  expect_error(R"({"resourceType":"Device","id":"a_b"})", code::value, "Device.id");
  expect_error(R"({"resourceType":"Device","id":")" + std::string(65, 'a') + "\"}", code::value,
               "Device.id");
  expect_valid(R"({"resourceType":"Device","id":")" + std::string(64, 'a') + "\"}");
  expect_error(
      R"({"resourceType":"Device","_id":{"extension":[{"url":"http://e","valueCode":"x"}]}})",
      code::structure, "Device._id");
  expect_error(
      R"({"resourceType":"NamingSystem","name":"n","status":"draft","kind":"root","date":"2020","uniqueId":[{"type":"oid","value":"o"}],"url":"urn:oid:1.02"})",
      code::structure, "NamingSystem.url");  // NamingSystem has no url in R4
}

TEST(Primitives, OidAndUuidTypes) {
  // ImagingStudy.series.uid is an id; SubstanceNucleicAcid? oid/uuid appear in ValueSet expansions
  // via Identifier? Use Extension valueOid / valueUuid.
  auto ext = [](const std::string& v) {
    return R"({"resourceType":"Basic","code":{"text":"x"},"extension":[{"url":"http://e.org",)" +
           v + "}]}";
  };
  expect_valid(ext(R"("valueOid":"urn:oid:1.2.840.10008")"));
  expect_error(ext(R"("valueOid":"1.2.840")"), code::value, "Basic.extension[0].valueOid");
  expect_error(ext(R"("valueOid":"urn:oid:1.02")"), code::value, "Basic.extension[0].valueOid");
  expect_valid(ext(R"("valueUuid":"urn:uuid:a5a2c4b6-9d0e-4c8f-8a62-3c3c7d9e0f11")"));
  expect_error(ext(R"("valueUuid":"urn:uuid:A5A2C4B6-9D0E-4C8F-8A62-3C3C7D9E0F11")"), code::value,
               "Basic.extension[0].valueUuid");
  expect_valid(ext(R"("valueUnsignedInt":0)"));
  expect_error(ext(R"("valuePositiveInt":0)"), code::value, "Basic.extension[0].valuePositiveInt");
  expect_valid(ext(R"("valueDecimal":-1.5e3)"));
  expect_error(ext(R"("valueDecimal":"1")"), code::structure, "Basic.extension[0].valueDecimal");
  expect_error(ext(R"("valueUri":"a b")"), code::value, "Basic.extension[0].valueUri");
}

TEST(Primitives, StringSizeLimit) {
  std::string big(1u << 20, 'a');
  expect_valid(P + R"("name":[{"text":")" + big + "\"}]}");
  expect_error(P + R"("name":[{"text":")" + big + "a\"}]}", code::value, "Patient.name[0].text");
}

TEST(Extensions, UrlAndValueXorNested) {
  expect_valid(P + R"("extension":[{"url":"http://e.org/a","valueString":"v"}]})");
  expect_valid(
      P + R"("extension":[{"url":"http://e.org/a","extension":[{"url":"b","valueCode":"c"}]}]})");
  expect_error(P + R"("extension":[{"valueString":"v"}]})", code::required,
               "Patient.extension[0].url");
  expect_error(
      P + R"("extension":[{"url":"http://e.org/a","valueString":"v","extension":[{"url":"b","valueCode":"c"}]}]})",
      code::invariant, "Patient.extension[0]");
  expect_error(P + R"("extension":[{"url":"http://e.org/a"}]})", code::invariant,
               "Patient.extension[0]");
  expect_error(
      P + R"("modifierExtension":[{"url":"http://e.org/a","valueString":"v","valueFoo":"v"}]})",
      code::structure, "Patient.modifierExtension[0].valueFoo");
}

TEST(Contained, NotNested) {
  expect_valid(P + R"("contained":[{"resourceType":"Patient","id":"c"}]})");
  expect_error(
      P + R"("contained":[{"resourceType":"Patient","id":"c","contained":[{"resourceType":"Patient"}]}]})",
      code::invariant, "Patient.contained[0].contained[0]");
}

TEST(CodeSystem, PropertyCodesUniqueAndValuesOfTheDeclaredType) {
  const std::string cs =
      R"({"resourceType":"CodeSystem","status":"active","content":"complete","property":[)";
  const std::string decl =
      R"({"code":"syn","type":"decimal"},{"code":"sel","type":"boolean"}],"concept":[)";
  // Values of the declared type, nested concepts, and properties the CodeSystem does not
  // declare (R4 lets concepts use the standard concept-properties) are all fine.
  expect_valid(
      cs + decl +
      R"({"code":"a","property":[{"code":"syn","valueDecimal":1.5},{"code":"sel","valueBoolean":true},{"code":"parent","valueCode":"b"}],"concept":[{"code":"a1","property":[{"code":"syn","valueDecimal":2}]}]}]})");
  // A property code declared twice makes concept references ambiguous.
  expect_error(cs + R"({"code":"sel","type":"boolean"},{"code":"sel","type":"dateTime"}]})",
               code::invariant, "CodeSystem.property[1].code");
  // A value of another type than the declaration, at the top and in a nested concept.
  expect_error(cs + decl + R"({"code":"a","property":[{"code":"syn","valueInteger":12}]}]})",
               code::invariant, "CodeSystem.concept[0].property[0].valueInteger");
  expect_error(
      cs + decl +
          R"({"code":"a","concept":[{"code":"a1","property":[{"code":"sel","valueString":"y"}]}]}]})",
      code::invariant, "CodeSystem.concept[0].concept[0].property[0].valueString");
  // The first declaration decides the type (as the HL7 validator reads it).
  Result r = check(
      cs +
      R"({"code":"sel","type":"dateTime"},{"code":"sel","type":"boolean"}],"concept":[{"code":"a","property":[{"code":"sel","valueBoolean":false}]}]})");
  ASSERT_EQ(r.errors(), 2u) << dump(r);
  EXPECT_EQ(r.issues[1].path, "CodeSystem.concept[0].property[0].valueBoolean") << dump(r);
}

TEST(Bindings, RequiredValueSets) {
  expect_valid(P + R"("gender":"unknown"})");
  expect_error(P + R"("gender":"mal"})", code::code_invalid, "Patient.gender");
  const std::string obs = R"({"resourceType":"Observation","code":{"text":"x"},"status":)";
  expect_valid(obs + R"("corrected"})");  // nested under 'amended' in the code system
  expect_error(obs + R"("done"})", code::code_invalid, "Observation.status");
  // CodeableConcept with a required binding: a coding from the value set is needed
  const std::string ai =
      R"({"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/1"},"clinicalStatus":)";
  expect_valid(
      ai +
      R"({"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]}})");
  expect_error(
      ai +
          R"({"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"dormant"}]}})",
      code::code_invalid, "AllergyIntolerance.clinicalStatus");
  expect_error(ai + R"({"text":"active"}})", code::code_invalid,
               "AllergyIntolerance.clinicalStatus");
  // Currency (not enumerable): ISO 4217 shape
  const std::string acct =
      R"({"resourceType":"Invoice","status":"draft","totalNet":{"value":1,"currency":)";
  expect_valid(acct + R"("EUR"}})");
  expect_error(acct + R"("euro"}})", code::code_invalid, "Invoice.totalNet.currency");
}

TEST(Lines, BlankIsAWarning) {
  Result r = check("   \r");
  EXPECT_TRUE(r.blank);
  EXPECT_EQ(r.errors(), 0u);
  ASSERT_EQ(r.warnings(), 1u);
  EXPECT_EQ(r.issues[0].severity, Severity::warning);
  Result crlf = check(P + R"("gender":"male"})" + "\r");
  EXPECT_TRUE(crlf.valid()) << dump(crlf);
  EXPECT_FALSE(crlf.blank);
}

TEST(Limits, LineDepthAndString) {
  Options o;
  o.max_line_bytes = 100;
  o.max_depth = 8;
  o.max_string_bytes = 20;
  LoadReport rep;
  auto v = Validator::create(o, rep);
  ASSERT_TRUE(v);
  Result big = v->validate_line(P + R"("name":[{"text":")" + std::string(200, 'a') + "\"}]}", 1);
  ASSERT_EQ(big.errors(), 1u);
  EXPECT_EQ(big.issues[0].code, code::too_long);
  Result deep = v->validate_line(P + R"("a":[[[[[[[[[[1]]]]]]]]]]})", 2);
  ASSERT_EQ(deep.errors(), 1u) << to_text(deep, "x");
  EXPECT_EQ(deep.issues[0].code, code::too_costly);
  Result str = v->validate_line(P + R"("name":[{"text":")" + std::string(30, 'a') + "\"}]}", 3);
  ASSERT_EQ(str.errors(), 1u);
  EXPECT_EQ(str.issues[0].code, code::too_long);
  EXPECT_EQ(str.issues[0].path, "Patient.name[0].text");
  Result ok = v->validate_line(P + R"("gender":"male"})", 4);
  EXPECT_TRUE(ok.valid()) << to_text(ok, "x");
}

TEST(Minimal, ObjectKnownTypeAndId) {
  expect_valid(P + R"("whatever":{}})", Level::minimal);  // structure is not checked
  expect_error(R"({"resourceType":"Foo"})", code::not_supported, "", Level::minimal);
  expect_error(P + R"("id":"a b"})", code::value, "Patient.id", Level::minimal);
  expect_error(P + R"("id":"a")", code::invalid, "", Level::minimal);
  expect_error("\"x\"", code::structure, "", Level::minimal);
}

TEST(Strict, UnloadedProfileIsAWarningNeverSilent) {
  Result r =
      check(P + R"("meta":{"profile":["http://example.org/p"]},"gender":"male"})", Level::strict);
  EXPECT_TRUE(r.valid()) << dump(r);
  ASSERT_EQ(r.warnings(), 1u);
  EXPECT_NE(r.issues[0].message.find("http://example.org/p"), std::string::npos);
  EXPECT_EQ(r.issues[0].code, code::not_supported);
  // strict still applies the R4 rules
  expect_error(P + R"("meta":{"profile":["http://example.org/p"]},"gender":"boy"})",
               code::code_invalid, "Patient.gender", Level::strict);
}

TEST(Output, OperationOutcomeIsOneJsonLine) {
  Result r = check(P + R"("id":"p1","gender":"boy","birthDate":"1970-02-30"})");
  ASSERT_EQ(r.errors(), 2u);
  std::string oo = to_operation_outcome(r, "dir/Patient.ndjson");
  EXPECT_EQ(oo.find('\n'), std::string::npos);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(oo).get(doc), simdjson::SUCCESS) << oo;
  EXPECT_EQ(std::string_view(doc["resourceType"]), "OperationOutcome");
  simdjson::dom::array issues = doc["issue"];
  ASSERT_EQ(issues.size(), 2u);
  std::string_view sev = issues.at(0)["severity"], c = issues.at(0)["code"],
                   expr = issues.at(0)["expression"].at(0), loc = issues.at(0)["location"].at(0),
                   diag = issues.at(0)["diagnostics"];
  EXPECT_EQ(sev, "error");
  EXPECT_EQ(c, "code-invalid");
  EXPECT_EQ(expr, "Patient.gender");
  EXPECT_EQ(loc, "Line 7");
  EXPECT_NE(diag.find("dir/Patient.ndjson:7"), std::string::npos);
  EXPECT_NE(diag.find("Patient/p1"), std::string::npos);
  int64_t line = issues.at(0)["extension"].at(0)["valueInteger"];
  EXPECT_EQ(line, 7);
  std::string text = to_text(r, "dir/Patient.ndjson");
  EXPECT_EQ(text.substr(0, text.find('\n')).substr(0, 48),
            "dir/Patient.ndjson:7: error Patient.gender: code");
  EXPECT_NE(
      text.find("dir/Patient.ndjson:7: error Patient.birthDate: '1970-02-30' is not a valid date"),
      std::string::npos)
      << text;
}

TEST(Output, QuotesControlCharacters) {
  Result r;
  r.line = 1;
  r.issues.push_back(Issue{Severity::error, "value", 1, "X.y", "bad \"q\" \n\\ \x01"});
  std::string oo = to_operation_outcome(r, "");
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(oo).get(doc), simdjson::SUCCESS) << oo;
  std::string_view d = doc["issue"].at(0)["diagnostics"];
  EXPECT_EQ(d, "bad \"q\" \n\\ \x01");
}

TEST(Threads, OneValidatorManyThreads) {
  auto v = make(Level::structure_only);
  const std::string good = P + R"("gender":"male","name":[{"given":["A"]}]})";
  const std::string bad = P + R"("gender":"boy","name":[{"given":[""]}]})";
  std::vector<std::thread> ts;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; t++)
    ts.emplace_back([&] {
      Scratch s;
      for (int i = 0; i < 300; i++) {
        if (!v->validate_line(good, 1, s).valid()) mismatches++;
        if (v->validate_line(bad, 2, s).errors() != 2) mismatches++;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Issues, CappedPerResource) {
  Options o;
  o.max_issues = 3;
  LoadReport rep;
  auto v = Validator::create(o, rep);
  std::string line = P + R"("a":1,"b":2,"c":3,"d":4,"e":5})";
  Result r = v->validate_line(line, 1);
  EXPECT_EQ(r.issues.size(), 3u);
  EXPECT_TRUE(r.truncated);
  EXPECT_NE(to_text(r, "f").find("more issues"), std::string::npos);
}

}  // namespace
}  // namespace fe::fhir
