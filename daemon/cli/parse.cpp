// The shared CLI11 setup of every subcommand; the contract is in parse.hpp.
#include "cli/parse.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "config/config.hpp"
#include "service/log.hpp"

namespace fe::cli {
namespace {

// CLI11 prints the description first; a reader (and every man page) expects the usage line
// first, then what the command does, then the options.
class Formatter : public CLI::Formatter {
 public:
  std::string make_help(const CLI::App* app, std::string name,
                        CLI::AppFormatMode mode) const override {
    if (mode == CLI::AppFormatMode::Sub) return make_expanded(app);
    std::string out = make_usage(app, name);
    out += make_description(app);
    out += make_positionals(app);
    out += make_groups(app, mode);
    out += make_subcommands(app, mode);
    std::string footer = make_footer(app);
    if (!footer.empty()) out += "\n" + footer;
    return out;
  }
  // " TYPE" only: CLI11 would add the validators' names and "Excludes: ...", which the
  // descriptions say in words.
  std::string make_option_opts(const CLI::Option* opt) const override {
    if (opt->get_type_size() == 0) return "";
    if (opt->get_positional()) return opt->get_expected_max() > 1 ? " ..." : "";
    std::string t = opt->get_type_name();
    if (auto colon = t.find(':'); colon != std::string::npos) t.resize(colon);
    return t.empty() ? "" : " " + t;
  }
  // Wrapped to fit 100 columns, with the default appended.
  std::string make_option_desc(const CLI::Option* opt) const override {
    std::string d = opt->get_description();
    if (!opt->get_default_str().empty()) d += " (default " + opt->get_default_str() + ")";
    constexpr size_t kWidth = 70;
    std::string out, line;
    size_t pos = 0;
    while (pos < d.size()) {
      size_t sp = d.find(' ', pos);
      std::string word = d.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos);
      pos = sp == std::string::npos ? d.size() : sp + 1;
      if (!line.empty() && line.size() + 1 + word.size() > kWidth) {
        out += line + "\n";
        line.clear();
      }
      line += (line.empty() ? "" : " ") + word;
    }
    return out + line;
  }
};

std::string chomp(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The closest long option of `app` (and its subcommands) to a misspelt one, or "".
std::string closest_option(const CLI::App& app, std::string_view given) {
  auto eq = given.find('=');
  if (eq != std::string_view::npos) given = given.substr(0, eq);
  std::string best;
  size_t best_d = 3;  // at most two edits away
  auto scan = [&](const CLI::App& a) {
    for (const CLI::Option* o : a.get_options()) {
      for (const std::string& l : o->get_lnames()) {
        std::string cand = "--" + l;
        size_t d = edit_distance(given, cand);
        if (d < best_d) best_d = d, best = cand;
      }
    }
  };
  scan(app);
  for (const CLI::App* sub : app.get_subcommands({})) scan(*sub);
  return best;
}

}  // namespace

std::unique_ptr<CLI::App> make_app(std::string_view command, std::string description,
                                   std::string footer, Verbosity& verbosity) {
  auto app = std::make_unique<CLI::App>(chomp(std::move(description)),
                                        "fhir-edge " + std::string(command));
  app->formatter(std::make_shared<Formatter>());
  app->get_formatter()->column_width(28);
  app->set_help_flag("-h,--help", "show this help and exit");
  app->footer(std::move(footer));
  app->add_flag("-q,--quiet", verbosity.quiet, "errors only: no success line, no warnings");
  app->add_flag("-v,--verbose", verbosity.verbose,
                "more detail: the libraries' log lines (-v info, -vv debug)");
  return app;
}

std::optional<int> parse(CLI::App& app, Args args, const Verbosity& verbosity) {
  const std::string& name = app.get_name();
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::CallForHelp&) {
    // The help of the subcommand that was asked (e.g. `journal compact --help`).
    const CLI::App* shown = &app;
    std::string prefix;
    for (;;) {
      auto subs = shown->get_subcommands();
      if (subs.empty()) break;
      prefix += (prefix.empty() ? "" : " ") + shown->get_name();
      shown = subs.front();
    }
    std::string text = shown->help(prefix);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::string text = app.help("", CLI::AppFormatMode::All);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return kExitOk;
  } catch (const CLI::ExtrasError&) {
    // The first argument nothing took: an unknown option (with the closest known one), or one
    // positional too many.
    std::vector<std::string> rest = app.remaining();
    for (const CLI::App* sub : app.get_subcommands()) {
      auto r = sub->remaining();
      rest.insert(rest.end(), r.begin(), r.end());
    }
    std::string first = rest.empty() ? std::string("?") : rest.front();
    if (first.size() > 1 && first[0] == '-') {
      std::string hint = closest_option(app, first);
      std::fprintf(stderr, "%s: unknown option '%s'%s\n", name.c_str(), first.c_str(),
                   hint.empty() ? "" : (" (did you mean " + hint + "?)").c_str());
    } else {
      std::fprintf(stderr, "%s: unexpected argument '%s'\n", name.c_str(), first.c_str());
    }
    std::fprintf(stderr, "Run '%s --help' for the options.\n", name.c_str());
    return kExitUsage;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s\nRun '%s --help' for the options.\n", name.c_str(), e.what(),
                 name.c_str());
    return kExitUsage;
  }
  if (verbosity.verbose >= 2)
    fe::log::set_level(fe::log::Level::debug);
  else if (verbosity.verbose == 1)
    fe::log::set_level(fe::log::Level::info);
  else if (verbosity.quiet)
    fe::log::set_level(fe::log::Level::error);
  return std::nullopt;
}

CLI::Option* add_config_option(CLI::App& app, std::string& path) {
  return app.add_option("-c,--config", path, "the configuration file")
      ->type_name("FILE")
      ->default_str(std::string(fe::config::kDefaultConfigPath));
}

void add_journal_options(CLI::App& app, std::string& journal_path, std::string& config_path) {
  auto* j = app.add_option("--journal", journal_path,
                           "the journal database (default: journal.path of the configuration, "
                           "else /var/lib/fhir-edge/journal.db)")
                ->type_name("PATH");
  auto* c = app.add_option("-c,--config", config_path, "read journal.path from this configuration")
                ->type_name("FILE");
  j->excludes(c);
  c->excludes(j);
}

std::string resolve_journal_path(const std::string& journal_path, const std::string& config_path) {
  if (!journal_path.empty()) return journal_path;
  if (!config_path.empty()) {
    auto loaded = fe::config::load_config(config_path);
    if (!loaded.ok()) {
      if (std::string why = read_access_problem(config_path, "configuration"); !why.empty()) {
        std::fprintf(stderr, "%s\n", why.c_str());
        return "";
      }
      std::fputs(fe::config::format(loaded.errors).c_str(), stderr);
      return "";
    }
    return loaded.config->journal.path.string();
  }
  return fe::config::Journal{}.path.string();
}

namespace {

std::string owner_text(const struct stat& st) {
  const passwd* pw = ::getpwuid(st.st_uid);
  const group* gr = ::getgrgid(st.st_gid);
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return std::string(mode) + " " + (pw ? pw->pw_name : std::to_string(st.st_uid)) + ":" +
         (gr ? gr->gr_name : std::to_string(st.st_gid));
}

std::string group_name(gid_t gid) {
  const group* gr = ::getgrgid(gid);
  return gr ? gr->gr_name : std::to_string(gid);
}

}  // namespace

std::string read_access_problem(const std::string& path, std::string_view what) {
  namespace fs = std::filesystem;
  // The directories from the top down: the first one this user may not search is the culprit.
  fs::path p = fs::absolute(fs::path(path)).lexically_normal();
  fs::path dir;
  for (const auto& part : p.parent_path()) {
    dir /= part;
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return "";  // missing: the caller says so
    if (::access(dir.c_str(), X_OK) != 0 && errno == EACCES) {
      return "cannot read the " + std::string(what) + " " + path + ": permission denied on its " +
             "directory " + dir.string() + " (" + owner_text(st) +
             "); it needs 0750 with the group's x bit, and you need to be in group " +
             group_name(st.st_gid) + " (sudo usermod -aG " + group_name(st.st_gid) +
             " $USER, then log in again) or run as root";
    }
  }
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return "";
  if (::access(p.c_str(), R_OK) == 0 || errno != EACCES) return "";
  // Readable by its group? Then joining that group is the fix; otherwise the mode is.
  const bool group_readable = (st.st_mode & S_IRGRP) != 0;
  const std::string g = group_readable ? group_name(st.st_gid) : "fhir-edge";
  return "cannot read the " + std::string(what) + " " + path + ": permission denied (it is " +
         owner_text(st) + "); members of group " + g + " may read it when it is 0640 with group " +
         g + (group_readable ? "" : " (the package sets that; see docs/service.md)") +
         ": join it (sudo usermod -aG " + g + " $USER, then log in again) or run as root";
}

}  // namespace fe::cli
