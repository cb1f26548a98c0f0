#include "healthlake.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <regex>
#include <stdexcept>

#include "common/json_writer.hpp"
#include "fhir/validator.hpp"
#include "service/log.hpp"

namespace fe::hll {
namespace fs = std::filesystem;

namespace {

const char* kIdPattern = "^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-%@]*)$";

// The API's \p{L}\p{Z}\p{N} classes, with any non-ASCII UTF-8 byte accepted as a letter.
bool matches_id_pattern(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80 || isalnum(c) || c == ' ') continue;
    if (std::string_view("_.:/=+-%@").find(static_cast<char>(c)) != std::string_view::npos)
      continue;
    return false;
  }
  return true;
}

[[noreturn]] void validation(std::string_view value, std::string_view member,
                             std::string_view constraint) {
  throw HlError(400, "ValidationException",
                "1 validation error detected: Value '" + std::string(value) + "' at '" +
                    std::string(member) +
                    "' failed to satisfy constraint: " + std::string(constraint));
}

void check_length(std::string_view v, std::string_view member, size_t lo, size_t hi) {
  if (v.size() < lo || v.size() > hi)
    validation(v, member,
               "Member must have length " + (v.size() < lo
                                                 ? "greater than or equal to " + std::to_string(lo)
                                                 : "less than or equal to " + std::to_string(hi)));
}

void check_regex(std::string_view v, std::string_view member, const char* pattern) {
  if (!std::regex_match(std::string(v), std::regex(pattern)))
    validation(v, member,
               std::string("Member must satisfy regular expression pattern: ") + pattern);
}

[[noreturn]] void missing(std::string_view member) {
  throw HlError(400, "ValidationException",
                "1 validation error detected: Value null at '" + std::string(member) +
                    "' failed to satisfy constraint: Member must not be null");
}

simdjson::dom::element parse_body(simdjson::dom::parser& p, std::string_view body) {
  simdjson::dom::element e;
  if (body.empty()) body = "{}";
  if (p.parse(body.data(), body.size()).get(e) || !e.is_object())
    throw HlError(400, "SerializationException", "Request body is not a JSON object");
  return e;
}

std::optional<std::string> opt_string(simdjson::dom::element e, const char* field,
                                      const char* member) {
  simdjson::dom::element v;
  if (e[field].get(v)) return std::nullopt;
  if (v.is_null()) return std::nullopt;
  std::string_view s;
  if (v.get(s))
    throw HlError(400, "SerializationException", std::string("Expected a string for ") + member);
  return std::string(s);
}

std::string req_string(simdjson::dom::element e, const char* field, const char* member) {
  auto v = opt_string(e, field, member);
  if (!v) missing(member);
  return *v;
}

std::optional<double> opt_number(simdjson::dom::element e, const char* field, const char* member) {
  simdjson::dom::element v;
  if (e[field].get(v) || v.is_null()) return std::nullopt;
  double d;
  if (v.get(d))
    throw HlError(400, "SerializationException", std::string("Expected a number for ") + member);
  return d;
}

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

// StartFHIRImportJob's response.
std::string start_response(std::string_view id, std::string_view status,
                           std::string_view datastore) {
  return json::Writer()
      .begin_object()
      .field("JobId", id)
      .field("JobStatus", status)
      .field("DatastoreId", datastore)
      .end_object()
      .str();
}

// "s3://bucket/prefix" -> (bucket, prefix)
std::pair<std::string, std::string> split_s3_uri(const std::string& uri) {
  std::string rest = uri.substr(5);
  auto slash = rest.find('/');
  if (slash == std::string::npos) return {rest, ""};
  return {rest.substr(0, slash), rest.substr(slash + 1)};
}

const char* kS3UriPattern = "((s3|S3)://[a-z0-9][\\.\\-a-z0-9]{1,61}[a-z0-9](/.*)?)";
const char* kRolePattern = "arn:aws(-[^:]+)?:iam::[0-9]{12}:role/.+";
const char* kKmsPattern =
    "(arn:aws((-us-gov)|(-iso)|(-iso-b)|(-cn))?:kms:)?([a-z]{2}-[a-z]+(-[a-z]+)?-\\d:)?(\\d{12}:)?"
    "(((key/)?[a-zA-Z0-9-_]+)|(alias/[a-zA-Z0-9:/_-]+))";
const char* kTokenPattern = "^[a-zA-Z0-9-]+$";

bool terminal(const std::string& s) {
  return s == "COMPLETED" || s == "COMPLETED_WITH_ERRORS" || s == "FAILED" ||
         s == "CANCEL_COMPLETED" || s == "CANCEL_FAILED";
}

}  // namespace

JobTiming JobTiming::parse(std::string_view spec) {
  JobTiming t;
  size_t start = 0;
  while (start < spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string_view::npos) end = spec.size();
    std::string item(spec.substr(start, end - start));
    start = end + 1;
    auto eq = item.find('=');
    if (eq == std::string::npos)
      throw std::invalid_argument("--job-timing item '" + item + "': expected phase=duration");
    std::string phase = item.substr(0, eq), value = item.substr(eq + 1);
    // Accept a bare number as seconds, or a duration with unit (ms, s, m).
    double secs;
    try {
      size_t used = 0;
      double scale = 1;
      std::string n = value;
      if (n.ends_with("ms"))
        scale = 0.001, n.resize(n.size() - 2);
      else if (n.ends_with("s"))
        n.resize(n.size() - 1);
      else if (n.ends_with("m"))
        scale = 60, n.resize(n.size() - 1);
      secs = std::stod(n, &used) * scale;
      if (used != n.size() || secs < 0) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw std::invalid_argument("--job-timing item '" + item + "': bad duration '" + value + "'");
    }
    if (phase == "submitted")
      t.submitted = secs;
    else if (phase == "queued")
      t.queued = secs;
    else if (phase == "run" || phase == "in_progress")
      t.run = secs;
    else if (phase == "per_mb")
      t.per_mb = secs;
    else
      throw std::invalid_argument("--job-timing item '" + item +
                                  "': phase must be submitted, queued, run or per_mb");
  }
  return t;
}

HealthLake::HealthLake(S3Store& s3, fs::path dir, HealthLakeOptions options)
    : s3_(s3),
      dir_(std::move(dir)),
      opt_(std::move(options)),
      created_(std::chrono::system_clock::now()) {
  fs::create_directories(dir_);
}

HealthLake::~HealthLake() = default;

const std::vector<std::string>& HealthLake::operations() {
  static const std::vector<std::string> ops = {"DescribeFHIRDatastore", "StartFHIRImportJob",
                                               "DescribeFHIRImportJob", "ListFHIRImportJobs"};
  return ops;
}

bool HealthLake::valid_datastore_id(std::string_view id) {
  return !id.empty() && id.size() <= 32 && matches_id_pattern(id);
}

void HealthLake::add_datastore(const std::string& id) {
  if (!valid_datastore_id(id))
    throw std::invalid_argument("data store id '" + id + "' must be 1-32 characters of " +
                                kIdPattern);
  auto& counts = resources_[id];
  fs::create_directories(dir_ / id);
  // Reload what earlier runs imported, so duplicates stay visible across emulator restarts.
  std::ifstream in(dir_ / id / "resources.jsonl");
  simdjson::dom::parser p;
  std::string line;
  while (std::getline(in, line)) {
    simdjson::dom::element e;
    if (p.parse(line).get(e)) continue;
    std::string_view t, i;
    if (e["resourceType"].get(t) || e["id"].get(i)) continue;
    ++counts[std::string(t) + "/" + std::string(i)];
  }
}

std::string HealthLake::call(std::string_view op, std::string_view body, double now) {
  tick(now);
  if (op == "StartFHIRImportJob") return start(body, now);
  if (op == "DescribeFHIRImportJob") return describe_job(body);
  if (op == "ListFHIRImportJobs") return list_jobs(body);
  if (op == "DescribeFHIRDatastore") return describe_datastore(body);
  throw HlError(400, "UnknownOperationException",
                "healthlake-local does not implement HealthLake." + std::string(op));
}

std::string HealthLake::datastore_status(const std::string& id) const {
  auto it = opt_.datastore_status.find(id);
  return it == opt_.datastore_status.end() ? "ACTIVE" : it->second;
}

std::string HealthLake::describe_datastore(std::string_view body) {
  simdjson::dom::parser p;
  auto e = parse_body(p, body);
  std::string id = req_string(e, "DatastoreId", "datastoreId");
  check_length(id, "datastoreId", 1, 32);
  if (!matches_id_pattern(id)) check_regex(id, "datastoreId", "$^");
  if (!resources_.count(id))
    throw HlError(400, "ResourceNotFoundException", "Datastore " + id + " does not exist");
  std::string arn =
      "arn:aws:healthlake:" + opt_.region + ":" + opt_.account + ":datastore/fhir/" + id;
  json::Writer w;
  w.begin_object().key("DatastoreProperties").begin_object();
  w.field("DatastoreId", id)
      .field("DatastoreArn", arn)
      .field("DatastoreName", "healthlake-local-" + id)
      .field("DatastoreStatus", datastore_status(id))
      .raw_field("CreatedAt", num(epoch_seconds(created_)))
      .field("DatastoreTypeVersion", "R4")
      .field("DatastoreEndpoint",
             "https://healthlake." + opt_.region + ".amazonaws.com/datastore/" + id + "/r4/");
  w.key("SseConfiguration").begin_object().key("KmsEncryptionConfig").begin_object();
  w.field("CmkType", "AWS_OWNED_KMS_KEY").end_object().end_object();
  w.key("IdentityProviderConfiguration").begin_object();
  w.field("AuthorizationStrategy", "AWS_AUTH").field("FineGrainedAuthorizationEnabled", false);
  w.end_object().end_object().end_object();
  return std::move(w).str();
}

std::string HealthLake::start(std::string_view body, double now) {
  simdjson::dom::parser p;
  auto e = parse_body(p, body);
  Job j;
  if (auto name = opt_string(e, "JobName", "jobName")) {
    check_length(*name, "jobName", 1, 64);
    if (!matches_id_pattern(*name))
      validation(*name, "jobName",
                 std::string("Member must satisfy regular expression pattern: ") + kIdPattern);
    j.name = *name;
  }
  simdjson::dom::element in, out, s3c;
  if (e["InputDataConfig"].get(in) || in.is_null()) missing("inputDataConfig");
  j.input_uri = req_string(in, "S3Uri", "inputDataConfig.s3Uri");
  check_length(j.input_uri, "inputDataConfig.s3Uri", 0, 1024);
  check_regex(j.input_uri, "inputDataConfig.s3Uri", kS3UriPattern);
  if (e["JobOutputDataConfig"].get(out) || out.is_null()) missing("jobOutputDataConfig");
  if (out["S3Configuration"].get(s3c) || s3c.is_null())
    missing("jobOutputDataConfig.s3Configuration");
  j.output_uri = req_string(s3c, "S3Uri", "jobOutputDataConfig.s3Configuration.s3Uri");
  check_length(j.output_uri, "jobOutputDataConfig.s3Configuration.s3Uri", 0, 1024);
  check_regex(j.output_uri, "jobOutputDataConfig.s3Configuration.s3Uri", kS3UriPattern);
  j.kms_key = req_string(s3c, "KmsKeyId", "jobOutputDataConfig.s3Configuration.kmsKeyId");
  check_length(j.kms_key, "jobOutputDataConfig.s3Configuration.kmsKeyId", 1, 400);
  check_regex(j.kms_key, "jobOutputDataConfig.s3Configuration.kmsKeyId", kKmsPattern);
  j.datastore = req_string(e, "DatastoreId", "datastoreId");
  check_length(j.datastore, "datastoreId", 1, 32);
  if (!matches_id_pattern(j.datastore))
    validation(j.datastore, "datastoreId",
               std::string("Member must satisfy regular expression pattern: ") + kIdPattern);
  j.role_arn = req_string(e, "DataAccessRoleArn", "dataAccessRoleArn");
  check_length(j.role_arn, "dataAccessRoleArn", 20, 2048);
  check_regex(j.role_arn, "dataAccessRoleArn", kRolePattern);
  if (auto t = opt_string(e, "ClientToken", "clientToken")) {
    check_length(*t, "clientToken", 1, 64);
    check_regex(*t, "clientToken", kTokenPattern);
    j.client_token = *t;
  }
  j.validation_level = "strict";  // HealthLake's default when the field is absent
  if (auto v = opt_string(e, "ValidationLevel", "validationLevel")) {
    if (!fe::fhir::parse_level(*v))
      validation(*v, "validationLevel",
                 "Member must satisfy enum value set: [strict, structure-only, minimal]");
    j.validation_level = *v;
  }
  if (!resources_.count(j.datastore))
    throw HlError(400, "ResourceNotFoundException", "Datastore " + j.datastore + " does not exist");
  if (std::find(opt_.refused_roles.begin(), opt_.refused_roles.end(), j.role_arn) !=
      opt_.refused_roles.end())
    throw HlError(400, "AccessDeniedException",
                  "User: arn:aws:iam::" + opt_.account +
                      ":user/healthlake-local is not authorized to perform: iam:PassRole on "
                      "resource: " +
                      j.role_arn);
  if (auto st = datastore_status(j.datastore); st != "ACTIVE")
    throw HlError(400, "ValidationException",
                  "Datastore " + j.datastore + " is " + st + "; imports need an ACTIVE data store");
  j.fingerprint = j.name + "\n" + j.input_uri + "\n" + j.output_uri + "\n" + j.kms_key + "\n" +
                  j.role_arn + "\n" + j.validation_level;
  if (!j.client_token.empty()) {
    const std::pair<std::string, std::string> key{j.datastore, j.client_token};
    if (opt_.client_token_ttl > 0 && token_time_.count(key) &&
        now - token_time_[key] >= opt_.client_token_ttl) {
      fe::log::info("healthlake-local: ClientToken forgotten (--client-token-ttl)",
                    {{"CLIENT_TOKEN", j.client_token}, {"JOB_ID", tokens_[key]}});
      tokens_.erase(key);
      token_time_.erase(key);
    }
    auto it = tokens_.find(key);
    if (it != tokens_.end()) {
      const Job& old = jobs_.at(it->second);
      if (old.fingerprint != j.fingerprint)
        throw HlError(400, "ConflictException",
                      "ClientToken " + j.client_token +
                          " was already used with different request parameters");
      return start_response(old.id, old.status, old.datastore);
    }
  }
  j.id = random_hex(16);
  j.status = "SUBMITTED";
  j.submit_time = std::chrono::system_clock::now();
  j.phase_since = now;
  j.seq = ++seq_;
  if (!j.client_token.empty()) {
    tokens_[{j.datastore, j.client_token}] = j.id;
    token_time_[{j.datastore, j.client_token}] = now;
  }
  fe::log::info("healthlake-local: import job submitted",
                {{"JOB_ID", j.id}, {"DATASTORE_ID", j.datastore}, {"S3_URI", j.input_uri}});
  std::string out_json = start_response(j.id, "SUBMITTED", j.datastore);
  jobs_[j.id] = std::move(j);
  return out_json;
}

const Job* HealthLake::job(const std::string& id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

std::string HealthLake::job_json(const Job& j) const {
  json::Writer w;
  w.begin_object().field("JobId", j.id);
  if (!j.name.empty()) w.field("JobName", j.name);
  w.field("JobStatus", j.status).raw_field("SubmitTime", num(epoch_seconds(j.submit_time)));
  if (j.end_time) w.raw_field("EndTime", num(epoch_seconds(*j.end_time)));
  w.field("DatastoreId", j.datastore);
  w.key("InputDataConfig").begin_object().field("S3Uri", j.input_uri).end_object();
  w.key("JobOutputDataConfig").begin_object().key("S3Configuration").begin_object();
  w.field("S3Uri", j.output_uri).field("KmsKeyId", j.kms_key).end_object().end_object();
  if (j.report && (j.status == "IN_PROGRESS" || terminal(j.status))) {
    const ImportReport& r = *j.report;
    double mb = static_cast<double>(r.scanned_bytes) / (1024.0 * 1024.0);
    w.key("JobProgressReport")
        .begin_object()
        .field("TotalNumberOfScannedFiles", r.scanned_files)
        .raw_field("TotalSizeOfScannedFilesInMB", num(mb))
        .field("TotalNumberOfImportedFiles", r.imported_files)
        .field("TotalNumberOfResourcesScanned", r.resources_scanned)
        .field("TotalNumberOfResourcesImported", r.resources_imported)
        .field("TotalNumberOfResourcesWithCustomerError", r.resources_customer_error)
        .field("TotalNumberOfFilesReadWithCustomerError", r.files_with_customer_error)
        .raw_field("Throughput", num(r.seconds > 0 ? mb / r.seconds : mb))
        .end_object();
  }
  w.field("DataAccessRoleArn", j.role_arn);
  if (!j.message.empty() && terminal(j.status)) w.field("Message", j.message);
  // --report-validation-level: another level than the job runs at (or none at all).
  const std::string& level =
      opt_.report_validation_level.empty() ? j.validation_level : opt_.report_validation_level;
  if (level != "none") w.field("ValidationLevel", level);
  w.end_object();
  return std::move(w).str();
}

std::string HealthLake::describe_job(std::string_view body) {
  simdjson::dom::parser p;
  auto e = parse_body(p, body);
  std::string ds = req_string(e, "DatastoreId", "datastoreId");
  std::string id = req_string(e, "JobId", "jobId");
  check_length(ds, "datastoreId", 1, 32);
  check_length(id, "jobId", 1, 32);
  if (!resources_.count(ds))
    throw HlError(400, "ResourceNotFoundException", "Datastore " + ds + " does not exist");
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.datastore != ds)
    throw HlError(400, "ResourceNotFoundException",
                  "Import job " + id + " does not exist in datastore " + ds);
  return json::Writer()
      .begin_object()
      .raw_field("ImportJobProperties", job_json(it->second))
      .end_object()
      .str();
}

std::string HealthLake::list_jobs(std::string_view body) {
  simdjson::dom::parser p;
  auto e = parse_body(p, body);
  std::string ds = req_string(e, "DatastoreId", "datastoreId");
  check_length(ds, "datastoreId", 1, 32);
  int64_t max = 500;
  if (auto m = opt_number(e, "MaxResults", "maxResults")) {
    if (*m < 1 || *m > 500 || std::floor(*m) != *m)
      validation(num(*m), "maxResults",
                 *m < 1 ? "Member must have value greater than or equal to 1"
                        : "Member must have value less than or equal to 500");
    max = static_cast<int64_t>(*m);
  }
  if (opt_.list_page_size > 0) max = std::min(max, opt_.list_page_size);
  auto name = opt_string(e, "JobName", "jobName");
  if (name) check_length(*name, "jobName", 1, 64);
  auto status = opt_string(e, "JobStatus", "jobStatus");
  static const std::vector<std::string> statuses = {
      "SUBMITTED",        "QUEUED",       "IN_PROGRESS",      "COMPLETED_WITH_ERRORS",
      "COMPLETED",        "FAILED",       "CANCEL_SUBMITTED", "CANCEL_IN_PROGRESS",
      "CANCEL_COMPLETED", "CANCEL_FAILED"};
  if (status && std::find(statuses.begin(), statuses.end(), *status) == statuses.end())
    validation(*status, "jobStatus", "Member must satisfy enum value set");
  auto before = opt_number(e, "SubmittedBefore", "submittedBefore");
  auto after = opt_number(e, "SubmittedAfter", "submittedAfter");
  uint64_t start_seq = UINT64_MAX;  // newest first; the token is the seq to continue below
  if (auto tok = opt_string(e, "NextToken", "nextToken")) {
    auto raw = base64_decode(*tok);
    try {
      if (!raw || !raw->starts_with("seq:")) throw std::invalid_argument("");
      start_seq = std::stoull(raw->substr(4));
    } catch (const std::exception&) {
      throw HlError(400, "ValidationException", "Invalid NextToken");
    }
  }
  if (!resources_.count(ds))
    throw HlError(400, "ResourceNotFoundException", "Datastore " + ds + " does not exist");
  std::vector<const Job*> matching;
  for (const auto& [id, j] : jobs_) {
    if (j.datastore != ds || j.seq >= start_seq) continue;
    if (name && j.name != *name) continue;
    if (status && j.status != *status) continue;
    double t = epoch_seconds(j.submit_time);
    if (before && !(t < *before)) continue;
    if (after && !(t > *after)) continue;
    matching.push_back(&j);
  }
  std::sort(matching.begin(), matching.end(),
            [](const Job* a, const Job* b) { return a->seq > b->seq; });
  json::Writer w;
  w.begin_object().key("ImportJobPropertiesList").begin_array();
  int64_t n = 0;
  for (const Job* j : matching) {
    if (n == max) break;
    w.raw(job_json(*j));
    ++n;
  }
  w.end_array();
  if (static_cast<int64_t>(matching.size()) > max)
    w.field("NextToken", base64("seq:" + std::to_string(matching[max - 1]->seq)));
  w.end_object();
  return std::move(w).str();
}

void HealthLake::tick(double now) {
  // Each transition happens at its scheduled time (not at the tick that notices it), so the
  // schedule is the same however often tick() runs.
  bool changed = true;
  while (changed) {
    changed = false;
    for (auto& [id, j] : jobs_) {
      if (j.status == "SUBMITTED" && now >= j.phase_since + opt_.timing.submitted) {
        j.status = "QUEUED";
        j.phase_since += opt_.timing.submitted;
        changed = true;
      } else if (j.status == "IN_PROGRESS" && now >= j.phase_since + j.run_seconds) {
        j.status = j.final_status;
        j.end_time = std::chrono::system_clock::now();
        free_at_[slot(j)] = j.phase_since + j.run_seconds;
        if (!j.manifest.empty() && s3_.has_bucket(j.manifest_bucket)) {
          s3_.put_bytes(j.manifest_bucket, j.manifest_key, j.manifest, "application/json");
          j.manifest.clear();
        }
        changed = true;
        fe::log::info("healthlake-local: import job finished",
                      {{"JOB_ID", j.id}, {"JOB_STATUS", j.status}});
      }
    }
    // One running job per slot (the account, or a data store with --import-slots datastore); the
    // oldest QUEUED job starts once its queue time has passed and the slot is free (FIFO: later
    // jobs never overtake the head).
    std::map<std::string, bool> busy;
    for (const auto& [id, j] : jobs_)
      if (j.status == "IN_PROGRESS") busy[slot(j)] = true;
    std::map<std::string, Job*> next;
    for (auto& [id, j] : jobs_) {
      if (j.status != "QUEUED" || busy[slot(j)]) continue;
      Job*& n = next[slot(j)];
      if (!n || j.seq < n->seq) n = &j;
    }
    for (auto& [key, j] : next) {
      double start_at = std::max(j->phase_since + opt_.timing.queued, free_at_[key]);
      if (now < start_at) continue;
      j->status = "IN_PROGRESS";
      j->phase_since = start_at;
      run_import(*j);
      // The import ran inline; its length on the clock is the overhead plus the per-MB rate over
      // what it read, so a later job queued behind it waits as long as on AWS.
      j->run_seconds =
          opt_.timing.run +
          opt_.timing.per_mb * static_cast<double>(j->report ? j->report->scanned_bytes : 0) / 1e6;
      changed = true;
    }
  }
}

std::string HealthLake::slot(const Job& j) const {
  return opt_.import_slots == ImportSlots::account ? std::string() : j.datastore;
}

const fe::fhir::Validator& HealthLake::validator(const std::string& level) {
  auto& v = validators_[level];
  if (!v) {
    fe::fhir::Options o;
    o.level = *fe::fhir::parse_level(level);
    if (o.level == fe::fhir::Level::strict) o.packages = opt_.fhir_packages;
    fe::fhir::LoadReport report;
    v = fe::fhir::Validator::create(o, report);
    if (!v) {
      std::string why = report.errors.empty() ? "unknown error" : report.errors.front();
      throw std::runtime_error("cannot build the " + level + " validator: " + why);
    }
  }
  return *v;
}

void HealthLake::run_import(Job& j) {
  auto t0 = std::chrono::steady_clock::now();
  ImportReport r;
  auto [in_bucket, in_prefix] = split_s3_uri(j.input_uri);
  auto [out_bucket, out_prefix] = split_s3_uri(j.output_uri);
  if (!out_prefix.empty() && !out_prefix.ends_with('/')) out_prefix += '/';
  std::string job_dir = out_prefix + j.datastore + "-FHIR_IMPORT-" + j.id + "/";
  auto fail = [&](std::string msg) {
    j.final_status = "FAILED";
    j.message = std::move(msg);
    j.report = r;
  };
  if (!s3_.has_bucket(in_bucket))
    return fail("Input S3 bucket " + in_bucket + " does not exist or cannot be accessed");
  if (!s3_.has_bucket(out_bucket))
    return fail("Output S3 bucket " + out_bucket + " does not exist or cannot be accessed");

  // Snapshot the input object list first (outputs may land under the same prefix).
  std::vector<ObjectInfo> inputs;
  ListV2Request lr;
  lr.prefix = in_prefix;
  lr.max_keys = 1000;
  while (true) {
    ListV2Result page = s3_.list_objects_v2(in_bucket, lr);
    for (const ObjectInfo* o : page.contents)
      if (!o->key.ends_with('/')) inputs.push_back(*o);
    if (!page.truncated) break;
    lr.continuation_token = page.next_token;
  }
  if (inputs.empty()) return fail("No input files found at " + j.input_uri);
  if (inputs.size() > 10000)
    return fail("The input location holds " + std::to_string(inputs.size()) +
                " files; an import job accepts at most 10,000");

  const fe::fhir::Validator* v;
  try {
    v = &validator(j.validation_level);
  } catch (const std::exception& ex) {
    r.resources_server_error = 0;
    return fail(ex.what());
  }
  fe::fhir::Scratch scratch;
  std::ofstream resources_log(dir_ / j.datastore / "resources.jsonl", std::ios::app);
  auto& counts = resources_[j.datastore];
  uint64_t generated = 0;
  for (const ObjectInfo& o : inputs) {
    ++r.scanned_files;
    r.scanned_bytes += o.size;
    std::string rel = o.key.substr(std::min(o.key.size(), in_prefix.size()));
    while (rel.starts_with('/')) rel.erase(0, 1);
    if (rel.empty()) rel = o.key;
    if (opt_.require_sse_kms) {
      auto sse = o.stored_headers.find("x-amz-server-side-encryption");
      if (sse == o.stored_headers.end() || sse->second != "aws:kms") {
        ++r.files_with_customer_error;
        json::Writer oo;
        oo.begin_object().field("resourceType", "OperationOutcome").key("issue").begin_array();
        oo.begin_object().field("severity", "error").field("code", "security");
        oo.field("diagnostics", "s3://" + in_bucket + "/" + o.key +
                                    ": input object is not encrypted with SSE-KMS");
        oo.end_object().end_array().end_object();
        s3_.put_bytes(out_bucket, job_dir + "FAILURE/" + rel, std::move(oo).str() + "\n",
                      "application/fhir+ndjson");
        continue;
      }
    }
    fe::fhir::LineReader reader(o.data, v->options().max_line_bytes);
    if (!reader.ok()) {
      ++r.files_with_customer_error;
      continue;
    }
    // Outputs are streamed to spool files, so memory stays flat whatever the input size.
    fs::path success_path = s3_.new_temp_path(), failure_path = s3_.new_temp_path();
    std::ofstream success(success_path, std::ios::binary), failure(failure_path, std::ios::binary);
    uint64_t file_ok = 0, file_failed = 0;
    std::string_view line;
    uint64_t line_no = 0;
    std::string file_name = "s3://" + in_bucket + "/" + o.key;
    for (;;) {
      auto st = reader.next(line, line_no);
      if (st == fe::fhir::LineReader::Status::eof || st == fe::fhir::LineReader::Status::error)
        break;
      fe::fhir::Result res;
      if (st == fe::fhir::LineReader::Status::too_long) {
        res.line = line_no;
        res.issues.push_back({fe::fhir::Severity::error, std::string(fe::fhir::code::too_long),
                              line_no, "", "line exceeds the maximum resource size"});
      } else {
        res = v->validate_line(line, line_no, scratch);
        if (res.blank) continue;
      }
      ++r.resources_scanned;
      if (res.valid()) {
        std::string id = res.id;
        if (id.empty()) id = j.id.substr(0, 8) + "-" + std::to_string(++generated);
        ++r.resources_imported;
        ++file_ok;
        r.imported_bytes += line.size();
        ++counts[res.resource_type + "/" + id];
        std::string rec = json::Writer()
                              .begin_object()
                              .field("resourceType", res.resource_type)
                              .field("id", id)
                              .field("jobId", j.id)
                              .field("file", file_name)
                              .field("line", line_no)
                              .end_object()
                              .str() +
                          "\n";
        resources_log << rec;
        success << rec;
      } else {
        ++r.resources_customer_error;
        ++file_failed;
        failure << fe::fhir::to_operation_outcome(res, file_name) << '\n';
      }
    }
    if (file_ok > 0) ++r.imported_files;
    success.close();
    failure.close();
    auto publish = [&](const fs::path& p, uint64_t n, const std::string& key, const char* type) {
      if (n == 0) {
        std::error_code ec;
        fs::remove(p, ec);
        return;
      }
      WriteRequest w;
      w.content_type = type;
      s3_.put_object(out_bucket, key, p, w);
    };
    publish(success_path, file_ok, job_dir + "SUCCESS/" + rel, "application/x-ndjson");
    publish(failure_path, file_failed, job_dir + "FAILURE/" + rel, "application/fhir+ndjson");
  }
  resources_log.flush();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  j.report = r;
  j.final_status = (r.resources_customer_error || r.files_with_customer_error)
                       ? "COMPLETED_WITH_ERRORS"
                       : "COMPLETED";
  // --final-status: the job ran (resources imported, manifest and outputs written) but reports
  // another terminal status, e.g. CANCEL_FAILED after a cancel that did not stop it.
  if (!opt_.final_status_override.empty()) j.final_status = opt_.final_status_override;
  std::string base = "s3://" + out_bucket + "/" + job_dir;
  double mb = 1024.0 * 1024.0;
  json::Writer m;
  m.begin_object();
  m.key("inputDataConfig").begin_object().field("s3Uri", j.input_uri).end_object();
  m.key("outputDataConfig").begin_object().field("s3Uri", base);
  m.field("encryptionKeyID", j.kms_key).end_object();
  m.key("successOutput").begin_object().field("successOutputS3Uri", base + "SUCCESS/").end_object();
  m.key("failureOutput").begin_object().field("failureOutputS3Uri", base + "FAILURE/").end_object();
  m.field("numberOfScannedFiles", r.scanned_files)
      .field("numberOfFilesImported", r.imported_files)
      .raw_field("sizeOfScannedFilesInMB", num(static_cast<double>(r.scanned_bytes) / mb))
      .raw_field("sizeOfDataImportedSuccessfullyInMB",
                 num(static_cast<double>(r.imported_bytes) / mb))
      .field("numberOfResourcesScanned", r.resources_scanned)
      .field("numberOfResourcesImportedSuccessfully", r.resources_imported)
      .field("numberOfResourcesWithCustomerError", r.resources_customer_error)
      .field("numberOfResourcesWithServerError", r.resources_server_error)
      .end_object();
  std::string manifest = std::move(m).str();
  j.manifest_bucket = out_bucket;
  j.manifest_key = job_dir + "manifest.json";
  j.manifest = std::move(manifest);
}

uint64_t HealthLake::imports_of(const std::string& ds, const std::string& key) const {
  auto d = resources_.find(ds);
  if (d == resources_.end()) return 0;
  auto it = d->second.find(key);
  return it == d->second.end() ? 0 : it->second;
}

std::string HealthLake::resources_json(const std::string& ds) const {
  json::Writer w;
  w.begin_object();
  auto d = resources_.find(ds);
  if (d != resources_.end())
    for (const auto& [k, n] : d->second) w.field(k, n);
  w.end_object();
  return std::move(w).str();
}

}  // namespace fe::hll
