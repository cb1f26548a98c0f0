#pragma once
// FAILURE/ line numbers as the operator's source lines (issue 15, defect 7). HealthLake numbers a
// failed resource by its line in the *import object*, which holds only the valid lines of the
// source file: with rejected or blank lines in between, import line 2 may be source line 5. The
// spool records where each import line came from (journal::LineAnchor); the importer turns every
// failure reason it keeps into "<source file>:<source line>: ..." with this.
#include <cstdint>
#include <string>
#include <string_view>

#include <simdjson.h>

namespace fe::import {

// The import object line one FAILURE/ OperationOutcome issue names: the
// operationoutcome-issue-line extension's valueInteger, else a location "Line N", else the N of a
// leading "<object>:N: " in `diagnostics`. 0 when it names none.
std::int64_t failure_import_line(simdjson::dom::element issue, std::string_view diagnostics);

// `diagnostics` without a leading "<object name or URI>:<import_line>: " (the import object's
// position, replaced by the source position in the reason).
std::string_view strip_object_position(std::string_view diagnostics, std::int64_t import_line);

// "<source name>:<source line>: <message> (import object line <import line>)".
std::string source_position_reason(std::string_view source_name, std::int64_t source_line,
                                   std::int64_t import_line, std::string_view message);

}  // namespace fe::import
