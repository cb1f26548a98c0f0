// Fuzz target: the NDJSON validator (fhir/validator.hpp) at structure-only and minimal.
// The input is an NDJSON fragment; every line is validated at both levels and rendered in both
// report forms. Checked beyond "does not crash":
//  - structure-only is minimal plus more rules, so a line valid at structure-only is valid at
//    minimal;
//  - the OperationOutcome line is valid JSON whatever the input bytes were (it quotes them);
//  - every issue carries the line number it was given.
#include <simdjson.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "fhir/validator.hpp"

namespace {

std::shared_ptr<const fe::fhir::Validator> make(fe::fhir::Level level) {
  fe::fhir::Options o;
  o.level = level;
  // Small limits so the fuzzer reaches the too-long / too-deep paths with short inputs.
  o.max_line_bytes = 16u << 10;
  o.max_string_bytes = 1u << 10;
  o.max_depth = 32;
  o.max_issues = 20;
  fe::fhir::LoadReport report;
  auto v = fe::fhir::Validator::create(o, report);
  if (!v) {
    std::fprintf(stderr, "validator fuzz: cannot create the validator\n");
    std::abort();
  }
  return v;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "validator fuzz: property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto structure = make(fe::fhir::Level::structure_only);
  static const auto minimal = make(fe::fhir::Level::minimal);
  static fe::fhir::Scratch scratch;
  static simdjson::dom::parser json;

  std::string_view input(reinterpret_cast<const char*>(data), size);
  uint64_t line_no = 0;
  while (!input.empty()) {
    auto nl = input.find('\n');
    std::string_view line = input.substr(0, nl);
    input = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
    ++line_no;
    auto s = structure->validate_line(line, line_no, scratch);
    auto m = minimal->validate_line(line, line_no, scratch);
    check(!s.valid() || m.valid(), "valid at structure-only but not at minimal");
    check(s.blank == m.blank, "levels disagree about a blank line");
    for (const auto* r : {&s, &m}) {
      check(r->line == line_no, "result line number");
      for (const auto& issue : r->issues) check(issue.line == line_no, "issue line number");
      std::string oo = fe::fhir::to_operation_outcome(*r, "fuzz.ndjson");
      simdjson::padded_string padded(oo);
      simdjson::dom::element doc;
      check(json.parse(padded).get(doc) == simdjson::SUCCESS,
            "to_operation_outcome did not produce valid JSON");
      (void)fe::fhir::to_text(*r, "fuzz.ndjson");
    }
  }
  return 0;
}
