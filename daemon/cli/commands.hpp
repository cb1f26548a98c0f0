#pragma once
// CLI contract. Exit codes for every command: 0 ok, 1 a checked thing failed (invalid resources,
// a doctor check, job failed), 2 usage or config error (including a watch root that is missing
// or unreadable, in check-config).
#include <span>
#include <string_view>

namespace fe::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// args[0] is the subcommand name itself (e.g. "validate"); the rest are its arguments.
using Args = std::span<char* const>;

int main(int argc, char** argv);  // dispatch: --help, --version, subcommands
int cmd_run(Args args);           // cmd_run.cpp          (the daemon)
int cmd_check_config(Args args);  // cmd_check_config.cpp
int cmd_doctor(Args args);        // cmd_doctor.cpp       (config, roots, state, AWS access)
int cmd_validate(Args args);      // cmd_validate.cpp     (FHIR validator)
int cmd_status(Args args);        // cmd_status.cpp       (journal)
int cmd_retry(Args args);         // cmd_retry.cpp        (re-drive a parked / failed export)
int cmd_journal(Args args);       // cmd_retry.cpp        (journal compact)

}  // namespace fe::cli
