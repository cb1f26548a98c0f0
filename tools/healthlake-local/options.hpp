#pragma once
// Command line of healthlake-local (kept exactly as scripts/demo uses it, plus extras):
//   healthlake-local --data DIR --listen 127.0.0.1:0 --port-file F --access-key AK --secret-key SK
//                    [--region R] [--datastore ID]... [--bucket NAME]... [--faults SPEC]
//                    [--request-log F] [--job-timing SPEC] [--session-token T]
//                    [--min-part-size BYTES] [--fhir-package PATH]... [--require-sse-kms]
//                    [--account ID] [--no-auth] [--client-token-ttl DUR]
//                    [--list-page-size N] [--final-status S] [--report-validation-level L]
//                    [--datastore-status ID=STATUS]... [--refuse-role ARN]...
//                    [--import-slots account|datastore]
//                    [--role ARN]... [--role-external-id X] [--session-lifetime DUR]
#include <string>

#include "server.hpp"

namespace fe::hll {

enum class ParseResult { ok, help, error };
ParseResult parse_options(int argc, char** argv, ServerOptions& out, std::string& error);
std::string usage();

}  // namespace fe::hll
