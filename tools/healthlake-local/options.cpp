#include "options.hpp"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <stdexcept>

namespace fe::hll {

std::string usage() {
  return R"(usage: healthlake-local --data DIR --access-key AK --secret-key SK [options]

A strict local S3 + AWS HealthLake import endpoint (loopback only).

  --data DIR             where buckets, objects, uploads and imported resources live (required)
  --listen HOST:PORT     loopback address to listen on (default 127.0.0.1:0 = any free port)
  --port-file F          write the bound port to F (atomically) once listening
  --access-key AK        the one access key id requests must be signed with (required)
  --secret-key SK        its secret (required; or env HEALTHLAKE_LOCAL_SECRET_KEY)
  --session-token T      require this x-amz-security-token (temporary credentials)
  --region R             signing region for s3 and healthlake (default us-east-1)
  --datastore ID         a HealthLake data store id (repeatable; 1-32 chars)
  --bucket NAME          create this bucket at start (repeatable)
  --faults SPEC          fault injection, e.g. 'UploadPart:500=0.1,*:slow=0.05:2s,seed=42'
  --request-log F        JSON-lines request log (default DIR/requests.jsonl)
  --job-timing SPEC      minimum phase times, e.g. 'submitted=0.2s,queued=0.5s,run=1s'; per_mb=D
                         adds D per MB of input to IN_PROGRESS (AWS-like: run=80s,per_mb=0.5s)
  --import-slots S       account (default: one running import per account and Region, the AWS
                         quota) or datastore (one per data store)
  --min-part-size BYTES  minimum size of non-last multipart parts (default 5242880, as S3)
  --etag md5|opaque      ETags: the MD5 of the bytes (default), or opaque random values as S3
                         gives for SSE-KMS objects (no MD5 pass over every body; benchmarks)
  --fhir-package PATH    FHIR NPM package added at ValidationLevel strict (repeatable); strict
                         always checks the built-in US Core 3.1.x, HealthLake's default guide
  --require-sse-kms      import inputs must be stored with SSE-KMS (as HealthLake requires)
  --client-token-ttl DUR forget a StartFHIRImportJob ClientToken DUR after its Start (e.g. 1s,
                         500ms, 2m; default: remembered forever); a later Start with it makes a
                         new job
  --list-page-size N     ListFHIRImportJobs pages hold at most N jobs whatever MaxResults says
  --final-status S       every job ends S once its import ran (e.g. CANCEL_FAILED: the cancel
                         failed and the job ran on; manifest.json and outputs are written)
  --report-validation-level L
                         DescribeFHIRImportJob / ListFHIRImportJobs answer ValidationLevel L
                         (strict, structure-only, minimal; none = no field) for every job,
                         whatever it was started with; the import still runs at the level asked
  --datastore-status ID=STATUS
                         DescribeFHIRDatastore reports STATUS (CREATING, DELETING, DELETED,
                         CREATE_FAILED) for data store ID, and StartFHIRImportJob into it is
                         refused (ValidationException) unless STATUS is ACTIVE
  --refuse-role ARN      StartFHIRImportJob with this DataAccessRoleArn is refused with
                         AccessDeniedException (the caller lacks iam:PassRole) (repeatable)
  --account ID           12-digit account id used in ARNs (default 123456789012)
  --role ARN             STS AssumeRole may assume this role (repeatable); any other RoleArn is
                         AccessDenied. Its temporary credentials work for S3 and HealthLake
  --role-external-id X   AssumeRole must carry ExternalId X (else AccessDenied)
  --session-lifetime DUR AssumeRole's credentials last DUR (e.g. 3s, 500ms, 2m) whatever
                         DurationSeconds asks (tests of expiry and refresh)
  --no-auth              accept unsigned requests (debugging only; never for tests)
  --help                 this text

Prints the bound port on stdout, runs in the foreground, stops on SIGTERM/SIGINT.
)";
}

ParseResult parse_options(int argc, char** argv, ServerOptions& o, std::string& error) {
  bool has_secret = false;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (auto eq = a.find('='); eq != std::string::npos && a.starts_with("--")) {
          return a.substr(eq + 1);
        }
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      std::string name = a.substr(0, a.find('='));
      if (name == "--help" || name == "-h")
        return ParseResult::help;
      else if (name == "--data")
        o.data = value();
      else if (name == "--listen")
        o.listen = value();
      else if (name == "--port-file")
        o.port_file = value();
      else if (name == "--access-key")
        o.access_key = value();
      else if (name == "--secret-key")
        o.secret_key = value(), has_secret = true;
      else if (name == "--session-token")
        o.session_token = value();
      else if (name == "--region")
        o.region = value();
      else if (name == "--datastore")
        o.datastores.push_back(value());
      else if (name == "--bucket")
        o.buckets.push_back(value());
      else if (name == "--faults")
        o.faults = value();
      else if (name == "--request-log")
        o.request_log = value();
      else if (name == "--job-timing")
        o.healthlake.timing = JobTiming::parse(value());
      else if (name == "--import-slots") {
        std::string v = value();
        if (v == "account")
          o.healthlake.import_slots = ImportSlots::account;
        else if (v == "datastore")
          o.healthlake.import_slots = ImportSlots::datastore;
        else
          throw std::invalid_argument("--import-slots: expected account or datastore, got " + v);
      } else if (name == "--min-part-size") {
        std::string v = value();
        size_t used = 0;
        o.min_part_size = std::stoull(v, &used);
        if (used != v.size()) throw std::invalid_argument("--min-part-size: not a number: " + v);
      } else if (name == "--etag") {
        std::string v = value();
        if (v == "md5")
          o.md5_etags = true;
        else if (v == "opaque")
          o.md5_etags = false;
        else
          throw std::invalid_argument("--etag: expected md5 or opaque, got " + v);
      } else if (name == "--fhir-package")
        o.healthlake.fhir_packages.push_back(value());
      else if (name == "--client-token-ttl") {
        std::string v = value();
        size_t used = 0;
        double n = std::stod(v, &used);
        std::string unit = v.substr(used);
        double scale = unit == "ms"                  ? 0.001
                       : unit == "s" || unit.empty() ? 1
                       : unit == "m"                 ? 60
                                                     : -1;
        if (scale < 0 || n <= 0)
          throw std::invalid_argument(
              "--client-token-ttl: expected a positive duration such as "
              "1s, 500ms or 2m, got " +
              v);
        o.healthlake.client_token_ttl = n * scale;
      } else if (name == "--role")
        o.sts.roles.push_back(value());
      else if (name == "--role-external-id")
        o.sts.external_id = value();
      else if (name == "--session-lifetime") {
        std::string v = value();
        size_t used = 0;
        double n = std::stod(v, &used);
        std::string unit = v.substr(used);
        double scale = unit == "ms"                  ? 0.001
                       : unit == "s" || unit.empty() ? 1
                       : unit == "m"                 ? 60
                                                     : -1;
        if (scale < 0 || n <= 0)
          throw std::invalid_argument(
              "--session-lifetime: expected a positive duration such as 3s, 500ms or 2m, got " + v);
        o.sts.session_lifetime = n * scale;
      } else if (name == "--require-sse-kms")
        o.healthlake.require_sse_kms = true;
      else if (name == "--list-page-size") {
        std::string v = value();
        size_t used = 0;
        o.healthlake.list_page_size = std::stoll(v, &used);
        if (used != v.size() || o.healthlake.list_page_size < 1)
          throw std::invalid_argument("--list-page-size: not a positive number: " + v);
      } else if (name == "--final-status") {
        o.healthlake.final_status_override = value();
        static const char* ok[] = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED",
                                   "CANCEL_COMPLETED", "CANCEL_FAILED"};
        if (std::find(std::begin(ok), std::end(ok), o.healthlake.final_status_override) ==
            std::end(ok))
          throw std::invalid_argument("--final-status: not a terminal job status: " +
                                      o.healthlake.final_status_override);
      } else if (name == "--report-validation-level") {
        o.healthlake.report_validation_level = value();
        static const char* ok[] = {"strict", "structure-only", "minimal", "none"};
        if (std::find(std::begin(ok), std::end(ok), o.healthlake.report_validation_level) ==
            std::end(ok))
          throw std::invalid_argument(
              "--report-validation-level: expected strict, structure-only, minimal or none, got " +
              o.healthlake.report_validation_level);
      } else if (name == "--datastore-status") {
        std::string v = value();
        auto eq = v.find('=');
        static const char* states[] = {"CREATING", "ACTIVE", "DELETING", "DELETED",
                                       "CREATE_FAILED"};
        if (eq == std::string::npos ||
            std::find(std::begin(states), std::end(states), v.substr(eq + 1)) == std::end(states))
          throw std::invalid_argument(
              "--datastore-status: expected ID=CREATING|ACTIVE|DELETING|DELETED|CREATE_FAILED, "
              "got " +
              v);
        o.healthlake.datastore_status[v.substr(0, eq)] = v.substr(eq + 1);
      } else if (name == "--refuse-role")
        o.healthlake.refused_roles.push_back(value());
      else if (name == "--account") {
        o.healthlake.account = value();
        if (o.healthlake.account.size() != 12 ||
            o.healthlake.account.find_first_not_of("0123456789") != std::string::npos)
          throw std::invalid_argument("--account must be 12 digits");
      } else if (name == "--no-auth")
        o.verify_signatures = false;
      else
        throw std::invalid_argument("unknown option " + a);
    }
  } catch (const std::exception& e) {
    error = e.what();
    return ParseResult::error;
  }
  if (!has_secret)
    if (const char* env = std::getenv("HEALTHLAKE_LOCAL_SECRET_KEY")) o.secret_key = env;
  if (o.data.empty())
    error = "--data is required";
  else if (o.verify_signatures && (o.access_key.empty() || o.secret_key.empty()))
    error = "--access-key and --secret-key are required";
  if (!error.empty()) return ParseResult::error;
  return ParseResult::ok;
}

}  // namespace fe::hll
