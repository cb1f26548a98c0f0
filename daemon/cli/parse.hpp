#pragma once
// The one argument parser of every `fhir-edge` subcommand (issue 17: five hand-written parsers
// disagreed, e.g. --config=X worked and --level=X did not). Each command builds a CLI11 app with
// make_app(), adds its own options, and calls parse(); so every command accepts `--opt=value` and
// `--opt value`, `-h/--help` (generated from the options), `-q/--quiet` and `-v/--verbose`, and
// reports a usage error the same way: "fhir-edge CMD: message" on stderr, exit 2 (kExitUsage).
// packaging/fhir-edge.bash-completion lists the same options; tests/unit/cli checks that every
// option in each command's --help is in it.
#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cli/commands.hpp"

namespace fe::cli {

struct Verbosity {
  bool quiet = false;  // -q: errors only; no success line (e.g. check-config's "ok")
  int verbose = 0;     // -v: the libraries' log lines down to debug (-v, -vv)
};

// An app named "fhir-edge <command>" with -h/--help, -q/--quiet and -v/--verbose. `description`
// is printed under the usage line; `footer` (exit codes, examples) after the options.
std::unique_ptr<CLI::App> make_app(std::string_view command, std::string description,
                                   std::string footer, Verbosity& verbosity);

// Parses args (args[0] is the command's name). Returns nothing to go on, or the exit code to
// return at once: 0 after --help (printed on stdout), 2 after a usage error (printed on stderr
// with the command's name, the offending argument and, for a misspelt option, the closest one).
// Then applies -q/-v to the log level (error | info | debug).
std::optional<int> parse(CLI::App& app, Args args, const Verbosity& verbosity);

// -c/--config FILE (default /etc/fhir-edge/fhir-edge.yaml).
CLI::Option* add_config_option(CLI::App& app, std::string& path);

// --journal PATH and -c/--config FILE (excluding each other), for the journal readers.
void add_journal_options(CLI::App& app, std::string& journal_path, std::string& config_path);

// The journal path from --journal, else journal.path of --config, else the default. Empty (after
// printing the configuration errors) when --config names an invalid configuration.
std::string resolve_journal_path(const std::string& journal_path, const std::string& config_path);

// Issue 17, item 4: members of group fhir-edge read the config (0640 root:fhir-edge) and the
// journal (the unit's UMask=0027: 0640 fhir-edge:fhir-edge in a 0750 directory). When this user
// cannot read `path` (or search a directory above it), the message to print instead of a raw
// "Permission denied" / "unable to open database file": the file (or directory) that refuses,
// its mode and owner, the mode it needs, and the group to join. Empty when readable, or when it
// does not exist (the caller's own error says so). `what` names it ("configuration", "journal").
std::string read_access_problem(const std::string& path, std::string_view what);

}  // namespace fe::cli
