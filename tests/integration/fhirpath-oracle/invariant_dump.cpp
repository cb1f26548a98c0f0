// Prints the C++ engine's outcome for every (resource, invariant) pair of the given files, for the
// fhirpath.js comparison (oracle.js): "<file>#<line>\t<key>@<type>[/<element>]\t<pass|fail|ne>".
// A pair aggregates every node the invariant applies to: fail if any fails, else not-evaluated if
// any is, else pass. Files: NDJSON (one resource a line) or .json (one resource).
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "fhir/fhirpath.hpp"

namespace fp = fe::fhir::fhirpath;

int main(int argc, char** argv) {
  simdjson::dom::parser parser;
  const auto& s = fe::fhir::schema::core();
  for (int a = 1; a < argc; a++) {
    std::string file = argv[a];
    std::ifstream in(file, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    std::vector<std::string> lines;
    if (file.ends_with(".json")) {
      lines.push_back(text);
    } else {
      std::istringstream ls(text);
      for (std::string l; std::getline(ls, l);) lines.push_back(l);
    }
    for (size_t i = 0; i < lines.size(); i++) {
      if (lines[i].find_first_not_of(" \t\r") == std::string::npos) continue;
      simdjson::padded_string ps(lines[i]);
      simdjson::dom::element root;
      if (parser.parse(ps).get(root)) continue;
      std::string_view rt;
      if (root["resourceType"].get(rt)) continue;
      int32_t t = s.find_resource(rt);
      if (t < 0) continue;
      fp::Counts c;
      std::vector<fp::InvariantResult> res;
      fp::check_resource(root, static_cast<uint32_t>(t), s.types[static_cast<size_t>(t)].name, c,
                         res, true);
      std::map<std::string, int> agg;  // 0 pass, 1 ne, 2 fail
      for (auto& r : res) {
        std::string k = std::string(r.inv->key) + "@" + std::string(r.inv->type_name);
        if (!r.inv->element.empty()) k += "/" + std::string(r.inv->element);
        int v = r.outcome == fp::Outcome::fail            ? 2
                : r.outcome == fp::Outcome::not_evaluated ? 1
                                                          : 0;
        auto [it, fresh] = agg.emplace(k, v);
        if (!fresh && v > it->second) it->second = v;
      }
      for (auto& [k, v] : agg)
        std::printf("%s#%zu\t%s\t%s\n", file.c_str(), i + 1, k.c_str(),
                    v == 2   ? "fail"
                    : v == 1 ? "ne"
                             : "pass");
    }
  }
  return 0;
}
