// fhir-validate-bench --level L [--package P]... [--no-builtin-profiles] FILE...
// Validates the files single-threaded with fe::fhir::validate_file (what `fhir-edge validate` and
// the pipeline use) and prints one JSON line: bytes, resources, invalid, seconds (validator
// construction and package loading excluded), peak RSS of the process.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "fhir/validator.hpp"

int main(int argc, char** argv) {
  fe::fhir::Options opt;
  std::vector<std::string> files;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--level" && i + 1 < argc) {
      auto l = fe::fhir::parse_level(argv[++i]);
      if (!l) {
        std::fprintf(stderr, "unknown level %s\n", argv[i]);
        return 2;
      }
      opt.level = *l;
    } else if (a == "--no-builtin-profiles") {  // strict without the built-in US Core
      opt.builtin_profiles = false;
    } else if (a == "--package" && i + 1 < argc) {
      opt.packages.emplace_back(argv[++i]);
    } else {
      files.push_back(a);
    }
  }
  fe::fhir::LoadReport rep;
  auto v = fe::fhir::Validator::create(opt, rep);
  if (!v) {
    for (auto& e : rep.errors) std::fprintf(stderr, "%s\n", e.c_str());
    return 2;
  }
  fe::fhir::Scratch scratch;
  // Warm the core schema (parsed once per process) outside the timed region.
  (void)v->validate_line(R"({"resourceType":"Basic","code":{"text":"x"}})", 1, scratch);
  uint64_t bytes = 0, resources = 0, invalid = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (const auto& f : files) {
    auto s = fe::fhir::validate_file(*v, f, scratch, nullptr);
    if (!s.fatal.empty()) {
      std::fprintf(stderr, "%s\n", s.fatal.c_str());
      return 1;
    }
    bytes += s.bytes;
    resources += s.resources;
    invalid += s.invalid;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "{\"level\":\"%s\",\"bytes\":%llu,\"resources\":%llu,\"invalid\":%llu,\"seconds\":%.4f,"
      "\"peak_rss_kb\":%ld}\n",
      std::string(fe::fhir::to_string(opt.level)).c_str(), static_cast<unsigned long long>(bytes),
      static_cast<unsigned long long>(resources), static_cast<unsigned long long>(invalid), secs,
      ru.ru_maxrss);
  return 0;
}
