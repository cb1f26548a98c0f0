#pragma once
// FHIRPath (the subset the R4 error-severity invariants use) on the simdjson DOM the validator
// already parsed: no second parse, no copy of the resource.
//
// Contract:
// - compile() turns an expression into an AST once (the R4 invariants are compiled on first use,
//   from the generated data in schema_data.cpp; nothing is parsed per resource). An expression
//   that uses a function or a construct outside the subset compiles to an Expression whose
//   error() names it; evaluating it yields Outcome::not_evaluated with that reason, never a pass.
// - evaluate() is re-entrant and thread-safe on a compiled Expression (the AST is immutable).
// - Semantics follow FHIRPath N1 (http://hl7.org/fhirpath/N1): collections, empty propagation,
//   three-valued and/or/xor/implies, partial-precision dates (a comparison that the precision
//   cannot decide is empty), quantities compared after UCUM conversion within one dimension.
// - An invariant passes when it evaluates to true or to empty (undecidable, e.g. a date compared
//   with one of another precision), fails on false, and is not evaluated when the expression needs
//   something outside the engine (memberOf without the value set, an unknown function, a
//   run-time type error). See docs/validation.md.
#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/schema.hpp"

namespace fe::fhir::fhirpath {

struct Ast;  // fhirpath_internal.hpp

class Expression {
 public:
  static Expression compile(std::string_view text);
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }  // why it cannot be evaluated
  const std::string& text() const { return text_; }
  std::shared_ptr<const Ast> ast;

 private:
  std::string text_, error_;
};

enum class Outcome { pass, fail, not_evaluated };

// Where an expression is evaluated: the node ($this / %context) of schema type `type` (a schema
// type index), inside `resource` (%resource) inside `root` (%rootResource; a Bundle entry's
// resource is its own root, a contained resource's root is its container).
struct Focus {
  simdjson::dom::element node;
  simdjson::dom::element ext;  // the `_name` sibling of a primitive, or a default element
  bool has_node = true, has_ext = false;
  uint32_t type = 0;
  simdjson::dom::element resource, root;  // JSON objects
  uint32_t resource_type = 0, root_type = 0;
};

struct Evaluation {
  Outcome outcome = Outcome::pass;
  std::string reason;      // for not_evaluated
  bool undecided = false;  // passed because it evaluated to empty (e.g. mixed date precisions)
};
Evaluation evaluate_invariant(const Expression& expr, const Focus& focus);

// Evaluates `expr` on `focus` and renders the result collection for tests, e.g. "[true]",
// "['a', 2]", "[]", "[@2020-01]", "[5 'mg']", or "error: ..." when it cannot be evaluated.
std::string evaluate_to_string(const Expression& expr, const Focus& focus);

// The R4 error-severity invariants (generated data), compiled once per process.
struct Invariant {
  std::string_view key, type_name, element, expression, human;
  uint32_t type = 0;
  Expression expr;
};
struct InvariantTable {
  std::vector<Invariant> all;
  // by schema type index: invariants on every node of that type, and on elements of it
  std::vector<std::vector<uint32_t>> on_type;
  std::vector<std::vector<uint32_t>> on_element;  // indexed by type; filter by element name
};
const InvariantTable& core_invariants();

struct Counts {
  uint64_t evaluated = 0, failed = 0, not_evaluated = 0;
};

// Walks one resource (and its contained / Bundle-entry resources) and evaluates every invariant
// that applies to a node present. `report` gets each failure or not-evaluated result with the
// JSON path of the node ("Patient.contact[0]").
struct InvariantResult {
  const Invariant* inv;
  std::string path;
  Outcome outcome;
  std::string reason;
  std::string node_text;   // the string value of a primitive node (Narrative.div), else empty
  bool undecided = false;  // a pass because the expression evaluated to empty
};
void check_resource(simdjson::dom::element resource, uint32_t type, std::string_view type_name,
                    Counts& counts, std::vector<InvariantResult>& out, bool include_passes = false);

// htmlChecks() on a Narrative.div value (XHTML rules of the FHIR narrative).
bool html_checks(std::string_view xhtml, bool fragment = false);
// The same rules without the "some non-whitespace content" one (txt-1 alone).
bool html_checks_structure_only(std::string_view xhtml);
// Why html_checks() fails, for the message ("element 'script' is not allowed in a FHIR
// narrative"), or empty when it passes. One streaming pass; memory bounded by the nesting depth
// (at most 256 open elements).
std::string html_problem(std::string_view xhtml);

}  // namespace fe::fhir::fhirpath
