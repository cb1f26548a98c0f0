// Fuzz target: the JSON fhir-edge writes by hand (common/json_escape.hpp and its users): the
// escaper itself, `fhir-edge status --json` rows (format_status_json), `status --export NAME
// --json` (format_export_detail, through a real journal: names, reasons, events) and the
// OperationOutcome / report issue text (fhir::to_operation_outcome). The input's bytes are used as
// file names, export names, HealthLake messages, issue paths and messages: none of them is
// guaranteed to be UTF-8 (a Latin-1 file name, a proxy's error page).
// Checked beyond "does not crash": every document parses with simdjson (which validates UTF-8
// strictly); an escaped string parses back to the input when the input is valid UTF-8, and to the
// input with U+FFFD in place of each stray byte otherwise.
#include <simdjson.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_escape.hpp"
#include "fhir/validator.hpp"
#include "journal/journal.hpp"
#include "journal/status.hpp"
#include "temp_dir.hpp"

namespace {

void check(bool ok, const char* what, std::string_view doc = {}) {
  if (!ok) {
    std::fprintf(stderr, "json_out fuzz: property violated: %s\n%.*s\n", what,
                 static_cast<int>(std::min<size_t>(doc.size(), 2000)), doc.data());
    std::abort();
  }
}

simdjson::dom::parser& parser() {
  static simdjson::dom::parser p;
  return p;
}

simdjson::dom::element parse_or_abort(const std::string& doc, const char* what) {
  simdjson::dom::element e;
  auto err = parser().parse(doc).get(e);
  check(!err, what, doc);
  return e;
}

// What the escaper must produce for `s`, decoded: s with each byte outside a well-formed UTF-8
// sequence replaced by U+FFFD (computed with simdjson's validator, independent of the escaper).
std::string expected_text(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += s[i++];
      continue;
    }
    size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len && i + len <= s.size() && simdjson::validate_utf8(s.data() + i, len)) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

// One journal per process, in a directory removed at exit (libFuzzer exits through exit()).
struct World {
  fe::test::TempDir dir{"fe-fuzz-json-out"};
  fe::journal::Journal journal = fe::journal::Journal::open(dir / "journal.db");
  int n = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  // 1. The escaper: a string literal that parses back to the expected text.
  {
    std::string doc = "[" + fe::json::quote(in) + "]";
    auto e = parse_or_abort(doc, "quote() output is not valid JSON");
    std::string_view got;
    check(!e.at(0).get(got), "quote() output is not a string", doc);
    check(got == expected_text(in), "quote() does not round-trip", doc);
  }

  // Pieces of the input for the different fields (split at NUL bytes).
  std::vector<std::string> parts;
  {
    size_t start = 0;
    for (size_t i = 0; i <= in.size(); ++i)
      if (i == in.size() || in[i] == '\0') {
        parts.emplace_back(in.substr(start, i - start));
        start = i + 1;
      }
    while (parts.size() < 6) parts.emplace_back(in);
  }

  // 2. `status --json` rows with every text field from the input.
  {
    fe::journal::StatusRow r;
    r.row.name = parts[0];
    r.row.pipeline = parts[1];
    r.row.source_path = parts[2];
    r.row.digest = parts[3];
    r.row.parked_reason = parts[4];
    r.row.last_error = parts[5];
    fe::journal::ImportJobRow job;
    job.job_name = parts[0];
    job.job_id = parts[1];
    job.status = parts[5];
    job.input_uri = parts[2];
    r.job = job;
    r.jobs = {job};
    std::string doc = fe::journal::format_status_json({r}, 1);
    parse_or_abort(doc, "format_status_json is not valid JSON");
  }

  // 3. `status --export NAME --json` through a real journal: file names, skipped-file events
  //    (reason TAB name), error text.
  {
    static World w;
    std::string name = "e" + std::to_string(w.n++);
    auto t = w.journal.take_export("p", "/in/" + name, "d" + name, name,
                                   {{"f.ndjson", fe::journal::SourceIdentity{1, 1, 1, 1}}});
    w.journal.add_event(t.row.id, std::nullopt, "skipped", parts[4] + "\t" + parts[0]);
    w.journal.add_event(t.row.id, std::nullopt, "error", parts[5]);
    std::string doc =
        fe::journal::format_export_detail(w.journal, w.journal.get_export(t.row.id), true);
    parse_or_abort(doc, "format_export_detail is not valid JSON");
  }

  // 4. An OperationOutcome (validate --format json, reports) with fuzzed file, path and message.
  {
    fe::fhir::Result r;
    r.line = 3;
    r.resource_type = parts[1];
    r.id = parts[2];
    r.issues.push_back(fe::fhir::Issue{fe::fhir::Severity::error, "value", 3, parts[3], parts[4]});
    std::string doc = fe::fhir::to_operation_outcome(r, parts[0]);
    parse_or_abort(doc, "to_operation_outcome is not valid JSON");
  }
  return 0;
}
