// fhir-edge validate [--level L] [--package P]... [--format text|json] [--max-errors N] PATH...
// Validates NDJSON (.ndjson: one resource per line; also gzip or zstd compressed, .ndjson.gz /
// .ndjson.zst) and JSON (.json: one resource per file) files, or directories of them, with the same
// engine the pipeline uses (daemon/fhir/validator.hpp).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "fhir/validator.hpp"

namespace fe::cli {
namespace {

constexpr const char* kHelp =
    "Usage: fhir-edge validate [options] PATH...\n"
    "\n"
    "Validates FHIR R4 resources in .ndjson files (one resource per line; .ndjson.gz and\n"
    ".ndjson.zst are decompressed while read) and .json files (one resource per file), or\n"
    "directories of them (searched recursively); - reads NDJSON from standard input.\n"
    "\n"
    "Options:\n"
    "  --level L          minimal | structure-only | strict (default structure-only);\n"
    "                     the AWS HealthLake ValidationLevel values\n"
    "  --package P        FHIR package (directory or .tgz) with profiles for strict; repeatable\n"
    "  --format F         text (default): file:line: severity path: message; identical\n"
    "                     warnings once, after the resources, with their count (x N)\n"
    "                     json: one OperationOutcome per invalid resource (NDJSON) on stdout\n"
    "  --max-errors N     stop reporting after N invalid resources (counting continues)\n"
    "  --max-line-bytes N line size limit (default 67108864)\n"
    "  -q, --quiet        only the summary\n"
    "\n"
    "Exit codes: 0 all resources valid, 1 some invalid (or a file unreadable), 2 usage error\n"
    "or nothing to validate (no .ndjson, .ndjson.gz, .ndjson.zst or .json file found).\n";

namespace fs = std::filesystem;

bool wanted(const fs::path& p) {
  const std::string n = p.filename().string();
  for (std::string_view e : {".ndjson", ".json", ".ndjson.gz", ".ndjson.zst", ".ndjson.zstd"})
    if (n.size() > e.size() && n.ends_with(e)) return true;
  return false;
}

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  else if (b >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.0f KB", b / 1e3);
  return buf;
}

}  // namespace

int cmd_validate(Args args) {
  fhir::Options opt;
  std::vector<fs::path> inputs;
  bool json = false, quiet = false;
  long long max_errors = -1;
  for (size_t i = 1; i < args.size(); i++) {
    std::string_view a = args[i];
    auto need = [&](std::string_view flag) -> const char* {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "fhir-edge validate: %.*s needs a value\n",
                     static_cast<int>(flag.size()), flag.data());
        return nullptr;
      }
      return args[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kHelp, stdout);
      return kExitOk;
    } else if (a == "--level") {
      const char* v = need(a);
      if (!v) return kExitUsage;
      auto l = fhir::parse_level(v);
      if (!l) {
        std::fprintf(stderr,
                     "fhir-edge validate: unknown level '%s' (minimal | structure-only | strict)\n",
                     v);
        return kExitUsage;
      }
      opt.level = *l;
    } else if (a == "--package") {
      const char* v = need(a);
      if (!v) return kExitUsage;
      opt.packages.emplace_back(v);
    } else if (a == "--format") {
      const char* v = need(a);
      if (!v) return kExitUsage;
      std::string_view f = v;
      if (f != "text" && f != "json") {
        std::fprintf(stderr, "fhir-edge validate: unknown format '%s' (text | json)\n", v);
        return kExitUsage;
      }
      json = f == "json";
    } else if (a == "--max-errors" || a == "--max-line-bytes") {
      const char* v = need(a);
      if (!v) return kExitUsage;
      char* end = nullptr;
      long long n = std::strtoll(v, &end, 10);
      if (!*v || *end || n < (a == "--max-errors" ? 0 : 2)) {
        std::fprintf(stderr, "fhir-edge validate: %s needs a non-negative number, got '%s'\n",
                     args[i - 1], v);
        return kExitUsage;
      }
      if (a == "--max-errors")
        max_errors = n;
      else
        opt.max_line_bytes = static_cast<size_t>(n);
    } else if (a == "-q" || a == "--quiet") {
      quiet = true;
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "fhir-edge validate: unknown option '%s'\n\n%s", args[i], kHelp);
      return kExitUsage;
    } else {
      inputs.emplace_back(a);
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "fhir-edge validate: no PATH given\n\n%s", kHelp);
    return kExitUsage;
  }
  // Expand directories (sorted, so output is reproducible).
  std::vector<fs::path> files;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(in, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file() && wanted(it->path())) found.push_back(it->path());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (in == "-") {
      files.emplace_back("/dev/stdin");  // NDJSON on standard input
    } else if (fs::exists(in, ec)) {
      files.push_back(in);
    } else {
      std::fprintf(stderr, "fhir-edge validate: %s: no such file or directory\n", in.c_str());
      return kExitUsage;
    }
  }

  if (files.empty()) {
    // A folder of files this command does not read is not "all valid": say so, and fail.
    std::fprintf(stderr,
                 "fhir-edge validate: nothing to validate (no .ndjson, .ndjson.gz, .ndjson.zst or "
                 ".json file under the given path(s))\n");
    return kExitUsage;
  }

  fhir::LoadReport report;
  auto validator = fhir::Validator::create(opt, report);
  for (const auto& w : report.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  if (!validator) {
    for (const auto& e : report.errors) std::fprintf(stderr, "fhir-edge validate: %s\n", e.c_str());
    return kExitUsage;
  }
  if (opt.level == fhir::Level::strict && !opt.packages.empty())
    std::fprintf(stderr, "loaded %zu profiles, %zu value sets from %zu package(s)\n",
                 report.profiles, report.value_sets, opt.packages.size());

  const bool tty = ::isatty(STDERR_FILENO) != 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto last = t0;
  fhir::Scratch scratch;
  uint64_t resources = 0, valid = 0, invalid = 0, blank = 0, bytes = 0, reported = 0;
  int unreadable = 0;
  std::map<std::string, uint64_t> by_code;
  // Text output: identical warnings (same code and message, e.g. a profile that is not loaded,
  // on every resource declaring it) are held and printed once after the resources, at their
  // first location, with "(x N)" when repeated, so they do not drown the errors. Bounded by
  // kMaxHeldWarnings distinct ones (further distinct warnings are printed as they come). The
  // JSON output and the counts keep every issue.
  constexpr size_t kMaxHeldWarnings = 1000;
  struct HeldWarning {
    std::string first;  // formatted line of the first occurrence, with its '\n'
    uint64_t count = 0;
  };
  std::map<std::pair<std::string, std::string>, size_t> held_ix;
  std::vector<HeldWarning> held;
  size_t file_ix = 0;
  for (const auto& f : files) {
    file_ix++;
    const std::string name = f.string();
    uint64_t done_in_file = 0;
    auto sink = [&](const fhir::Result& r) {
      if (!r.valid() && !r.blank) {
        if (max_errors >= 0 && reported >= static_cast<uint64_t>(max_errors)) return true;
        reported++;
      }
      if (!quiet) {
        if (json) {
          if (!r.valid()) std::printf("%s\n", fhir::to_operation_outcome(r, name).c_str());
        } else {
          fhir::Result rest = r;
          rest.issues.clear();
          for (const fhir::Issue& i : r.issues) {
            if (i.severity == fhir::Severity::warning) {
              auto key = std::make_pair(i.code, i.message);
              if (auto it = held_ix.find(key); it != held_ix.end()) {
                held[it->second].count++;
                continue;
              }
              if (held.size() < kMaxHeldWarnings) {
                fhir::Result one;
                one.issues.push_back(i);
                held_ix.emplace(std::move(key), held.size());
                held.push_back(HeldWarning{fhir::to_text(one, name), 1});
                continue;
              }
            }
            rest.issues.push_back(i);
          }
          if (!rest.issues.empty() || rest.truncated)
            std::fputs(fhir::to_text(rest, name).c_str(), stdout);
        }
      }
      return true;
    };
    auto progress_sink = [&](const fhir::Result& r) {
      done_in_file++;
      if (tty && (done_in_file & 1023) == 0) {
        auto now = std::chrono::steady_clock::now();
        if (now - last > std::chrono::milliseconds(250)) {
          last = now;
          double secs = std::chrono::duration<double>(now - t0).count();
          std::fprintf(stderr, "\r[%zu/%zu] %s  %s  %.0f resources/s   ", file_ix, files.size(),
                       f.filename().c_str(), human_bytes(static_cast<double>(bytes)).c_str(),
                       static_cast<double>(resources + done_in_file) / std::max(secs, 1e-3));
        }
      }
      if (!r.issues.empty()) return sink(r);
      return true;
    };
    fhir::FileSummary s = tty ? fhir::validate_file(*validator, f, scratch, progress_sink, true)
                              : fhir::validate_file(*validator, f, scratch, sink, false);
    if (!s.fatal.empty()) {
      std::fprintf(stderr, "%s%s\n", tty ? "\r" : "", s.fatal.c_str());
      unreadable++;
      continue;
    }
    resources += s.resources;
    valid += s.valid;
    invalid += s.invalid;
    blank += s.blank;
    bytes += s.bytes;
    for (auto& [c, n] : s.by_code) by_code[c] += n;
  }
  for (HeldWarning& w : held) {
    if (w.count > 1) {
      w.first.pop_back();  // the '\n'
      w.first += " (x " + std::to_string(w.count) + ")\n";
    }
    std::fputs(w.first.c_str(), stdout);
  }
  std::fflush(stdout);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (tty) std::fputs("\r\033[K", stderr);
  std::fprintf(stderr,
               "%zu file(s), %s, %llu resources: %llu valid, %llu invalid (level %s, %.2f s, %.0f "
               "resources/s)\n",
               files.size(), human_bytes(static_cast<double>(bytes)).c_str(),
               static_cast<unsigned long long>(resources), static_cast<unsigned long long>(valid),
               static_cast<unsigned long long>(invalid),
               std::string(fhir::to_string(opt.level)).c_str(), secs,
               static_cast<double>(resources) / std::max(secs, 1e-6));
  if (blank)
    std::fprintf(stderr, "%llu blank line(s) skipped\n", static_cast<unsigned long long>(blank));
  if (!by_code.empty()) {
    std::fputs("issues by code:", stderr);
    for (auto& [c, n] : by_code)
      std::fprintf(stderr, " %s=%llu", c.c_str(), static_cast<unsigned long long>(n));
    std::fputs("\n", stderr);
  }
  if (opt.level == fhir::Level::strict) {
    fhir::InvariantCounts ic = fhir::Validator::invariant_counts(scratch);
    std::fprintf(stderr, "FHIRPath invariants: %llu evaluated, %llu failed, %llu not evaluated\n",
                 static_cast<unsigned long long>(ic.evaluated),
                 static_cast<unsigned long long>(ic.failed),
                 static_cast<unsigned long long>(ic.not_evaluated));
    // Counted per code system, not reported per resource (a Synthea export has one per code).
    auto tx = fhir::Validator::terminology_not_checked(scratch);
    if (!tx.empty()) {
      std::fputs("codes not checked (need a terminology server):", stderr);
      size_t shown = 0;
      for (auto& [sys, n] : tx) {
        if (++shown > 20) break;
        std::fprintf(stderr, " %s=%llu", sys.c_str(), static_cast<unsigned long long>(n));
      }
      if (tx.size() > 20) std::fprintf(stderr, " (and %zu more code systems)", tx.size() - 20);
      std::fputs("\n", stderr);
    }
  } else if (opt.level == fhir::Level::structure_only) {
    std::fputs("FHIRPath invariants: not evaluated at structure-only (see --level strict)\n",
               stderr);
  }
  if (max_errors >= 0 && invalid > reported)
    std::fprintf(stderr, "(%llu invalid resource(s) not shown: --max-errors %lld)\n",
                 static_cast<unsigned long long>(invalid - reported), max_errors);
  if (unreadable) {
    std::fprintf(stderr, "%d file(s) could not be read\n", unreadable);
    return kExitFailed;
  }
  return invalid ? kExitFailed : kExitOk;
}

}  // namespace fe::cli
