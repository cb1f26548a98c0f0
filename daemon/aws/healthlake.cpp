#include "aws/healthlake.hpp"
#include "common/json_escape.hpp"
#include "common/json_writer.hpp"

#include <simdjson.h>

#include <cstdio>

namespace fe::aws {

namespace {

// "key":"value", skipped when value is empty: every optional field is a string here.
void field(json::Writer& w, std::string_view key, std::string_view value) {
  if (!value.empty()) w.field(key, value);
}

std::string number(double v) {
  char buf[64];
  // Epoch seconds with millisecond precision, no exponent.
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

using simdjson::dom::element;

std::string str(element e, std::string_view key) {
  std::string_view v;
  if (e[key].get_string().get(v) == simdjson::SUCCESS) return std::string(v);
  return {};
}

double num(element e, std::string_view key) {
  element v;
  if (e[key].get(v) != simdjson::SUCCESS) return 0;
  double d = 0;
  if (v.get_double().get(d) == simdjson::SUCCESS) return d;
  std::int64_t i = 0;
  if (v.get_int64().get(i) == simdjson::SUCCESS) return static_cast<double>(i);
  return 0;
}

std::int64_t integer(element e, std::string_view key) {
  element v;
  if (e[key].get(v) != simdjson::SUCCESS) return 0;
  std::int64_t i = 0;
  if (v.get_int64().get(i) == simdjson::SUCCESS) return i;
  double d = 0;
  // A count sent as a double: converting one outside int64's range (or NaN) is undefined
  // behaviour, so such a count reads as 0 like any other unusable value.
  if (v.get_double().get(d) == simdjson::SUCCESS) {
    return d > -9.2e18 && d < 9.2e18 ? static_cast<std::int64_t>(d) : 0;
  }
  return 0;
}

ImportJobProperties parse_job(element j) {
  ImportJobProperties p;
  p.job_id = str(j, "JobId");
  p.job_name = str(j, "JobName");
  p.job_status = str(j, "JobStatus");
  p.submit_time = num(j, "SubmitTime");
  p.end_time = num(j, "EndTime");
  p.datastore_id = str(j, "DatastoreId");
  p.data_access_role_arn = str(j, "DataAccessRoleArn");
  p.message = str(j, "Message");
  p.validation_level = str(j, "ValidationLevel");
  element in, out, s3, prog;
  if (j["InputDataConfig"].get(in) == simdjson::SUCCESS) p.input_s3_uri = str(in, "S3Uri");
  if (j["JobOutputDataConfig"].get(out) == simdjson::SUCCESS &&
      out["S3Configuration"].get(s3) == simdjson::SUCCESS) {
    p.output_s3_uri = str(s3, "S3Uri");
    p.output_kms_key_id = str(s3, "KmsKeyId");
  }
  if (j["JobProgressReport"].get(prog) == simdjson::SUCCESS) {
    JobProgressReport r;
    r.total_number_of_scanned_files = integer(prog, "TotalNumberOfScannedFiles");
    r.total_size_of_scanned_files_in_mb = num(prog, "TotalSizeOfScannedFilesInMB");
    r.total_number_of_imported_files = integer(prog, "TotalNumberOfImportedFiles");
    r.total_number_of_resources_scanned = integer(prog, "TotalNumberOfResourcesScanned");
    r.total_number_of_resources_imported = integer(prog, "TotalNumberOfResourcesImported");
    r.total_number_of_resources_with_customer_error =
        integer(prog, "TotalNumberOfResourcesWithCustomerError");
    r.total_number_of_files_read_with_customer_error =
        integer(prog, "TotalNumberOfFilesReadWithCustomerError");
    r.throughput = num(prog, "Throughput");
    p.progress = r;
  }
  return p;
}

template <class T>
HlResult<T> from_call(const CallResult& cr) {
  return HlResult<T>::from_call(cr);
}

template <class T>
HlResult<T> invalid(std::string context, std::string message) {
  return HlResult<T>::invalid(std::move(context), "ValidationException", std::move(message));
}

// Parses a success body; a body that is not a JSON object is reported (and retried) as a
// server fault.
template <class T, class F>
void parse_into(HlResult<T>& r, const CallResult& cr, F&& fill) {
  simdjson::dom::parser parser;
  element doc;
  if (parser.parse(cr.response.body).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
    AwsError e;
    e.http_status = static_cast<int>(cr.response.status);
    e.code = "InternalServerException";
    e.message = "response is not a JSON object";
    e.category = ErrorCategory::retryable;
    r.error = e;
    return;
  }
  r.value = fill(doc);
}

}  // namespace

std::string json_quote(std::string_view s) {
  return fe::json::quote(s);
}

bool is_terminal_job_status(std::string_view s) {
  return s == "COMPLETED" || s == "COMPLETED_WITH_ERRORS" || s == "FAILED" ||
         s == "CANCEL_COMPLETED" || s == "CANCEL_FAILED";
}

bool valid_client_token(std::string_view t) {
  if (t.empty() || t.size() > 64) return false;
  for (char c : t)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
      return false;
  return true;
}

HealthLakeClient::HealthLakeClient(AwsCaller& caller) : caller_(caller) {}

std::string HealthLakeClient::start_import_body(const StartImportRequest& req) {
  json::Writer b;
  b.begin_object();
  field(b, "ClientToken", req.client_token);
  field(b, "DataAccessRoleArn", req.data_access_role_arn);
  field(b, "DatastoreId", req.datastore_id);
  b.key("InputDataConfig").begin_object().field("S3Uri", req.input_s3_uri).end_object();
  field(b, "JobName", req.job_name);
  b.key("JobOutputDataConfig").begin_object().key("S3Configuration").begin_object();
  field(b, "KmsKeyId", req.output_kms_key_id);
  field(b, "S3Uri", req.output_s3_uri);
  b.end_object().end_object();
  field(b, "ValidationLevel", req.validation_level);
  b.end_object();
  return std::move(b).str();
}

std::string HealthLakeClient::list_import_jobs_body(const ListImportJobsRequest& req) {
  json::Writer b;
  b.begin_object();
  field(b, "DatastoreId", req.datastore_id);
  field(b, "JobName", req.job_name);
  field(b, "JobStatus", req.job_status);
  if (req.max_results > 0) b.field("MaxResults", req.max_results);
  field(b, "NextToken", req.next_token);
  if (req.submitted_after) b.raw_field("SubmittedAfter", number(*req.submitted_after));
  if (req.submitted_before) b.raw_field("SubmittedBefore", number(*req.submitted_before));
  b.end_object();
  return std::move(b).str();
}

void HealthLakeClient::post(std::string op, std::string body,
                            std::function<void(CallResult)> done) {
  const auto& cfg = caller_.config();
  std::string endpoint = cfg.healthlake_endpoint
                             ? *cfg.healthlake_endpoint
                             : "https://healthlake." + cfg.region + ".amazonaws.com";
  auto ep = parse_endpoint(endpoint);
  AwsCall c;
  c.description = "HealthLake " + op;
  if (!ep) {
    CallResult r;
    r.description = c.description;
    AwsError e;
    e.message = "invalid HealthLake endpoint URL";
    e.category = ErrorCategory::validation;
    r.error = e;
    return done(std::move(r));
  }
  c.service = "healthlake";
  c.s3_rules = false;
  c.method = "POST";
  c.base_url = ep->base();
  c.host = ep->authority();
  c.path = "/";
  c.headers = {{"content-type", "application/x-amz-json-1.0"},
               {"x-amz-target", "HealthLake." + op}};
  c.body = std::move(body);
  c.check_success = [](const HttpResponse& resp) -> std::optional<AwsError> {
    simdjson::dom::parser parser;
    element doc;
    if (parser.parse(resp.body).get(doc) == simdjson::SUCCESS && doc.is_object())
      return std::nullopt;
    AwsError e;
    e.http_status = static_cast<int>(resp.status);
    e.code = "InternalServerException";
    e.message = "response is not a JSON object";
    e.category = ErrorCategory::retryable;
    return e;
  };
  caller_.call(std::move(c), std::move(done));
}

void HealthLakeClient::describe_datastore(std::string datastore_id,
                                          Done<DatastoreProperties> done) {
  std::string body =
      json::Writer().begin_object().field("DatastoreId", datastore_id).end_object().str();
  post("DescribeFHIRDatastore", std::move(body), [done = std::move(done)](CallResult cr) {
    auto r = from_call<DatastoreProperties>(cr);
    if (cr.ok())
      parse_into(r, cr, [](element doc) {
        DatastoreProperties p;
        element d, sse, kms;
        if (doc["DatastoreProperties"].get(d) != simdjson::SUCCESS) return p;
        p.datastore_id = str(d, "DatastoreId");
        p.datastore_arn = str(d, "DatastoreArn");
        p.datastore_name = str(d, "DatastoreName");
        p.datastore_status = str(d, "DatastoreStatus");
        p.datastore_type_version = str(d, "DatastoreTypeVersion");
        p.datastore_endpoint = str(d, "DatastoreEndpoint");
        p.created_at = num(d, "CreatedAt");
        if (d["SseConfiguration"].get(sse) == simdjson::SUCCESS &&
            sse["KmsEncryptionConfig"].get(kms) == simdjson::SUCCESS) {
          p.kms_key_id = str(kms, "KmsKeyId");
          p.cmk_type = str(kms, "CmkType");
        }
        return p;
      });
    done(std::move(r));
  });
}

void HealthLakeClient::start_import_job(StartImportRequest req, Done<StartImportResult> done) {
  const std::string ctx = "HealthLake StartFHIRImportJob";
  if (!req.client_token.empty() && !valid_client_token(req.client_token))
    return done(invalid<StartImportResult>(ctx, "ClientToken must be 1-64 of [a-zA-Z0-9-]"));
  if (req.datastore_id.empty() || req.input_s3_uri.empty() || req.output_s3_uri.empty() ||
      req.data_access_role_arn.empty())
    return done(invalid<StartImportResult>(
        ctx,
        "DatastoreId, InputDataConfig.S3Uri, JobOutputDataConfig S3Uri and "
        "DataAccessRoleArn are required"));
  post("StartFHIRImportJob", start_import_body(req), [done = std::move(done)](CallResult cr) {
    auto r = from_call<StartImportResult>(cr);
    if (cr.ok())
      parse_into(r, cr, [](element doc) {
        return StartImportResult{str(doc, "JobId"), str(doc, "JobStatus"), str(doc, "DatastoreId")};
      });
    done(std::move(r));
  });
}

void HealthLakeClient::describe_import_job(std::string datastore_id, std::string job_id,
                                           Done<ImportJobProperties> done) {
  std::string body = json::Writer()
                         .begin_object()
                         .field("DatastoreId", datastore_id)
                         .field("JobId", job_id)
                         .end_object()
                         .str();
  post("DescribeFHIRImportJob", std::move(body), [done = std::move(done)](CallResult cr) {
    auto r = from_call<ImportJobProperties>(cr);
    if (cr.ok())
      parse_into(r, cr, [](element doc) {
        element j;
        if (doc["ImportJobProperties"].get(j) != simdjson::SUCCESS) return ImportJobProperties{};
        return parse_job(j);
      });
    done(std::move(r));
  });
}

void HealthLakeClient::list_import_jobs(ListImportJobsRequest req,
                                        Done<ListImportJobsResult> done) {
  if (req.datastore_id.empty())
    return done(
        invalid<ListImportJobsResult>("HealthLake ListFHIRImportJobs", "DatastoreId is required"));
  post("ListFHIRImportJobs", list_import_jobs_body(req), [done = std::move(done)](CallResult cr) {
    auto r = from_call<ListImportJobsResult>(cr);
    if (cr.ok())
      parse_into(r, cr, [](element doc) {
        ListImportJobsResult out;
        out.next_token = str(doc, "NextToken");
        simdjson::dom::array arr;
        if (doc["ImportJobPropertiesList"].get_array().get(arr) == simdjson::SUCCESS)
          for (element j : arr) out.jobs.push_back(parse_job(j));
        return out;
      });
    done(std::move(r));
  });
}

}  // namespace fe::aws
