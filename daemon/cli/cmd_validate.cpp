// fhir-edge validate [--level L] [--package P]... [--json | --format text|json] [--max-errors N]
// PATH... Validates NDJSON (.ndjson: one resource per line; also gzip or zstd compressed,
// .ndjson.gz / .ndjson.zst) and JSON (.json: one resource per file) files, or directories of them,
// with the same engine the pipeline uses (daemon/fhir/validator.hpp).
//
// On a terminal (stderr is a TTY and TERM is not "dumb") a progress line shows the bytes read of
// the total, resources per second and the time left; it is erased before every issue line and
// before the summary, so the two never mix. Its bar is coloured unless NO_COLOR is set
// (https://no-color.org). Piped or redirected output never has it. In a directory, the bulk-data
// client's log.ndjson and manifest.json (the watcher's completion signals, not resources) are
// skipped with a note.
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.hpp"
#include "cli/parse.hpp"
#include "fhir/validator.hpp"

namespace fe::cli {
namespace {

constexpr const char* kDescription =
    "Validates FHIR R4 resources in .ndjson files (one resource per line; .ndjson.gz and\n"
    ".ndjson.zst are decompressed while read) and .json files (one resource per file), or\n"
    "directories of them (searched recursively); - reads NDJSON from standard input.\n"
    "Text output: file:line: severity path: message; identical warnings once, after the\n"
    "resources, with their count (x N).\n";

constexpr const char* kFooter =
    "Exit codes: 0 all resources valid, 1 some invalid (or a file unreadable), 2 usage error\n"
    "or nothing to validate (no .ndjson, .ndjson.gz, .ndjson.zst or .json file found).";

namespace fs = std::filesystem;

bool wanted(const fs::path& p) {
  const std::string n = p.filename().string();
  for (std::string_view e : {".ndjson", ".json", ".ndjson.gz", ".ndjson.zst", ".ndjson.zstd"})
    if (n.size() > e.size() && n.ends_with(e)) return true;
  return false;
}

// Files a bulk-data client writes next to the resources (watch::CompletionRules' default
// manifest_name and client_log_name): not resources, so not validated in a directory.
const char* client_file_note(const fs::path& p) {
  const std::string n = p.filename().string();
  if (n == "log.ndjson") return "the bulk-data client's log, not FHIR resources";
  if (n == "manifest.json") return "the bulk-data export manifest, not a FHIR resource";
  return nullptr;
}

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  else if (b >= 1e6)
    std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  else if (b >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1f KB", b / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

// The progress line on stderr. Drawn at the first resource and then at most 10 times a second;
// clear() erases it (before an issue line, a file error, the summary).
class Progress {
 public:
  Progress(bool enabled, bool color, uint64_t total_bytes, size_t files)
      : enabled_(enabled), color_(color), total_(total_bytes), files_(files) {
    winsize ws{};
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) width_ = ws.ws_col;
  }
  bool enabled() const { return enabled_; }
  void start_file(size_t ix, std::string name, uint64_t done_before) {
    file_ix_ = ix, name_ = std::move(name), done_before_ = done_before;
  }
  void tick(uint64_t bytes_in_file, uint64_t resources) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (shown_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    draw(done_before_ + bytes_in_file, resources, now);
  }
  void clear() {
    if (!enabled_ || !shown_) return;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    shown_ = false;
  }

 private:
  void draw(uint64_t done, uint64_t resources, std::chrono::steady_clock::time_point now) {
    double secs = std::chrono::duration<double>(now - t0_).count();
    const bool known = total_ > 0;  // standard input has no size
    double share =
        known ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total_)) : 0.0;
    constexpr int kBar = 20;
    int filled = static_cast<int>(share * kBar);
    std::string bar = "[";
    if (color_) bar += "\033[32m";
    bar += std::string(static_cast<size_t>(filled), '#');
    if (color_) bar += "\033[0m";
    bar += std::string(static_cast<size_t>(kBar - filled), '.') + "]";
    char eta[32] = "ETA --:--";
    if (known && secs >= 0.5 && done > 0 && done < total_) {
      auto left = static_cast<long long>(static_cast<double>(total_ - done) * secs /
                                         static_cast<double>(done));
      std::snprintf(eta, sizeof eta, "ETA %lld:%02lld", left / 60, left % 60);
    } else if (known && done >= total_) {
      std::snprintf(eta, sizeof eta, "ETA 0:00");
    }
    char text[512];
    std::snprintf(text, sizeof text, " %3.0f%%  %s / %s  %.0f resources/s  %s  (%zu/%zu) %s",
                  share * 100, human_bytes(static_cast<double>(done)).c_str(),
                  known ? human_bytes(static_cast<double>(total_)).c_str() : "?",
                  static_cast<double>(resources) / std::max(secs, 1e-3), eta, file_ix_, files_,
                  name_.c_str());
    std::string tail = text;
    // One terminal line: a wrapped line could not be erased with \r.
    size_t room = width_ - 1 - (kBar + 2);
    if (tail.size() > room) tail.resize(room);
    std::fprintf(stderr, "\r%s%s\033[K", bar.c_str(), tail.c_str());
    std::fflush(stderr);
    shown_ = true;
  }
  bool enabled_, color_;
  uint64_t total_;
  size_t files_;
  size_t width_ = 80;
  size_t file_ix_ = 0;
  std::string name_;
  uint64_t done_before_ = 0;
  bool shown_ = false;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now(), last_{};
};

}  // namespace

// one piece: the command from top to bottom (options, the inputs a directory expands to, the
// per-file loop that feeds Progress and the issue printer, the summary and exit status); the
// terminal progress and the output formats are the classes above.
int cmd_validate(Args args) {
  fhir::Options opt;
  std::vector<fs::path> inputs;
  bool json = false, quiet = false;
  long long max_errors = -1;
  std::string level = "structure-only", format = "text";
  size_t max_line_bytes = opt.max_line_bytes;
  Verbosity verbosity;
  auto app = make_app("validate", kDescription, kFooter, verbosity);
  app->add_option("PATH", inputs, "files or directories; - is standard input")->type_name("PATH");
  app->add_option("--level", level,
                  "minimal | structure-only | strict (the AWS HealthLake ValidationLevel values)")
      ->type_name("L")
      ->check(CLI::IsMember({"minimal", "structure-only", "strict"}))
      ->capture_default_str();
  app->add_option("--package", opt.packages,
                  "FHIR package (directory or .tgz) with profiles for strict; repeatable")
      ->type_name("P")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  app->add_flag("--json", json, "one OperationOutcome per invalid resource (NDJSON) on stdout");
  app->add_option("--format", format, "text | json (json: the same as --json)")
      ->type_name("F")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app->add_option("--max-errors", max_errors,
                  "stop reporting after N invalid resources (counting continues)")
      ->type_name("N")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--max-line-bytes", max_line_bytes, "line size limit")
      ->type_name("N")
      ->check(CLI::Range(size_t{2}, std::numeric_limits<size_t>::max()))
      ->capture_default_str();
  if (auto rc = parse(*app, args, verbosity)) return *rc;
  opt.level = *fhir::parse_level(level);
  opt.max_line_bytes = max_line_bytes;
  json = json || format == "json";
  quiet = verbosity.quiet;
  if (inputs.empty()) {
    std::fputs(
        "fhir-edge validate: no PATH given\nRun 'fhir-edge validate --help' for the options.\n",
        stderr);
    return kExitUsage;
  }
  // Expand directories (sorted, so output is reproducible).
  std::vector<fs::path> files;
  std::vector<std::pair<fs::path, const char*>> skipped;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(in, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file() && wanted(it->path())) {
          if (const char* why = client_file_note(it->path())) {
            skipped.emplace_back(it->path(), why);
            continue;
          }
          found.push_back(it->path());
        }
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

  std::sort(skipped.begin(), skipped.end());
  if (!quiet)
    for (const auto& [p, why] : skipped)
      std::fprintf(stderr, "note: skipped %s (%s)\n", p.c_str(), why);
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

  const char* term = std::getenv("TERM");
  const bool tty = ::isatty(STDERR_FILENO) != 0 && !(term && std::string_view(term) == "dumb");
  const char* no_color = std::getenv("NO_COLOR");
  uint64_t total_bytes = 0;
  for (const auto& f : files) {
    std::error_code ec;
    auto n = f == "/dev/stdin" ? 0 : fs::file_size(f, ec);
    if (ec || n == 0) {
      total_bytes = 0;  // unknown: no share, no ETA
      break;
    }
    total_bytes += n;
  }
  Progress progress(tty, !(no_color && *no_color), total_bytes, files.size());
  const auto t0 = std::chrono::steady_clock::now();
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
          if (!r.valid()) {
            progress.clear();
            std::printf("%s\n", fhir::to_operation_outcome(r, name).c_str());
            if (progress.enabled()) std::fflush(stdout);
          }
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
          if (!rest.issues.empty() || rest.truncated) {
            progress.clear();
            std::fputs(fhir::to_text(rest, name).c_str(), stdout);
            if (progress.enabled()) std::fflush(stdout);
          }
        }
      }
      return true;
    };
    uint64_t file_bytes = 0;
    progress.start_file(file_ix, f.filename().string(), bytes);
    auto progress_sink = [&](const fhir::Result& r) {
      done_in_file++;
      progress.tick(file_bytes, resources + done_in_file);
      if (!r.issues.empty()) return sink(r);
      return true;
    };
    fhir::FileSummary s =
        tty ? fhir::validate_file(*validator, f, scratch, progress_sink, true, &file_bytes)
            : fhir::validate_file(*validator, f, scratch, sink, false);
    if (!s.fatal.empty()) {
      progress.clear();
      std::fprintf(stderr, "%s\n", s.fatal.c_str());
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
  progress.clear();
  for (HeldWarning& w : held) {
    if (w.count > 1) {
      w.first.pop_back();  // the '\n'
      w.first += " (x " + std::to_string(w.count) + ")\n";
    }
    std::fputs(w.first.c_str(), stdout);
  }
  std::fflush(stdout);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
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
