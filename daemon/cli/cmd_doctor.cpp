// fhir-edge doctor [--config FILE] [--import-probe] [--json]: checks that the daemon can work with
// this configuration on this host, one line per check, each "ok", "warn", "FAIL" or "skip", with
// the reason and a fix hint. For a person after installing or changing something, and for a timer
// (exit code); not for ExecStartPre (docs/service.md: it needs the network).
//
// Checks, in order (a check that depends on a failed one is "skip"ped, not failed again):
//   config          loads exactly as `run` loads it (errors: exit 2, nothing else checked)
//   watch root      per pipeline: exists, is a directory, readable; roots not nested (symlinks
//                   resolved)
//   spool, journal  writable by this user (or creatable); free space against spool.max_bytes
//   credentials     resolve with the configured source: which source, masked key id, expiry
//   landing bucket  per (bucket, prefix, KMS key): PutObject of a probe key under the prefix
//                   with the configured KMS key, HeadObject (SSE-KMS applied), DeleteObject,
//                   ListMultipartUploads under the prefix (the orphan sweep)
//   data store      DescribeFHIRDatastore: exists and ACTIVE; ListFHIRImportJobs (reconcile)
//   role            the data-access role is in the data store's account; with --import-probe a
//                   real StartFHIRImportJob of an empty probe prefix checks that HealthLake
//                   accepts it (iam:PassRole, trust) - it starts a job, so only on request
//   results bucket  ListObjectsV2 under output_s3_uri's prefix (reconcile reads manifest.json)
// Exit codes (cli/commands.hpp): 0 every check ok or warn, 1 a check failed, 2 usage or a
// configuration error. Never prints a secret: the key id is masked, secrets and tokens are not
// shown, AWS error messages are the server's (bounded, see aws/errors.hpp).
#include <pwd.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "aws/clients.hpp"
#include "aws/crc32c.hpp"
#include "aws/credentials.hpp"
#include "aws/healthlake.hpp"
#include "aws/http.hpp"
#include "aws/http_call.hpp"
#include "aws/s3.hpp"
#include "cli/commands.hpp"
#include "cli/parse.hpp"
#include "common/json_escape.hpp"
#include "config/config.hpp"
#include "fleet/lease.hpp"
#include "fleet/manifest.hpp"
#include "fleet/s3_cas.hpp"
#include "pipeline/aws_settings.hpp"
#include "service/log.hpp"
#include "spool/spool.hpp"
#include "watch/roots.hpp"

namespace {

namespace fs = std::filesystem;
using fe::aws::AwsError;
using fe::aws::ErrorCategory;

constexpr const char* kDescription =
    "Checks that fhir-edge can work with a configuration on this host: the config, the watch\n"
    "roots, the spool and journal, AWS credentials, the landing bucket (a real PutObject,\n"
    "HeadObject and DeleteObject of a probe key under the prefix, with the configured KMS key),\n"
    "the HealthLake data store (ACTIVE), the data-access role and the results bucket.\n"
    "One line per check: ok, warn, FAIL (with a fix hint) or skip.\n";

constexpr const char* kFooter =
    "Run it as the service user to check the service's own access:\n"
    "  sudo -u fhir-edge fhir-edge doctor\n"
    "Exit codes: 0 all ok (warnings allowed), 1 a check failed, 2 usage or configuration error.";

// The checks' lines as they come (a slow AWS check shows what came before it), or with --json
// one document at the end: {"ok","failed","warned","checks":[{"status","check","text","hint"}]}.
struct Report {
  int failed = 0;
  int warned = 0;
  bool json = false;
  bool quiet = false;  // -q: only warn and FAIL lines, and the summary
  void ok(const std::string& check, const std::string& text) { line("ok", check, text, ""); }
  void warn(const std::string& check, const std::string& text, const std::string& hint) {
    ++warned;
    line("warn", check, text, hint);
  }
  void fail(const std::string& check, const std::string& text, const std::string& hint) {
    ++failed;
    line("FAIL", check, text, hint);
  }
  void skip(const std::string& check, const std::string& why) { line("skip", check, why, ""); }
  // The summary line (or the JSON document); returns the exit code.
  int finish(int code) {
    if (json) {
      std::printf("{\"ok\":%s,\"failed\":%d,\"warned\":%d,\"checks\":[%s]}\n",
                  code == 0 ? "true" : "false", failed, warned, checks_.c_str());
      return code;
    }
    if (code == 2) return code;  // the config's errors are on stderr
    if (failed) {
      std::printf("%d check(s) failed%s\n", failed,
                  warned ? (", " + std::to_string(warned) + " warning(s)").c_str() : "");
    } else {
      std::printf("all checks passed%s\n",
                  warned ? (" (" + std::to_string(warned) + " warning(s))").c_str() : "");
    }
    return code;
  }

 private:
  std::string checks_;  // the JSON array's items
  void line(const char* status, const std::string& check, const std::string& text,
            const std::string& hint) {
    if (json) {
      checks_ += std::string(checks_.empty() ? "" : ",") +
                 "{\"status\":" + fe::json::quote(status) + ",\"check\":" + fe::json::quote(check) +
                 ",\"text\":" + fe::json::quote(text) + ",\"hint\":" + fe::json::quote(hint) + "}";
      return;
    }
    if (quiet && (status[0] == 'o' || status[0] == 's')) return;
    std::printf("%-4s %s: %s%s%s\n", status, check.c_str(), text.c_str(),
                hint.empty() ? "" : "; fix: ", hint.c_str());
    std::fflush(stdout);
  }
};

std::string human_bytes(std::uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

std::string utc(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The nearest existing directory at or above `p` (what a create_directories would write into).
fs::path existing_ancestor(fs::path p) {
  std::error_code ec;
  while (!p.empty() && !fs::exists(p, ec)) {
    if (p == p.parent_path()) break;
    p = p.parent_path();
  }
  return p;
}

// "" when this user can create/write files in directory `dir` (or create `dir`), else why not.
std::string dir_writable(const fs::path& dir) {
  fs::path at = existing_ancestor(dir);
  std::error_code ec;
  if (!fs::is_directory(at, ec)) return at.string() + " is not a directory";
  if (::access(at.c_str(), W_OK | X_OK) != 0)
    return (at == dir ? dir.string() : at.string() + " (to create " + dir.string() + ")") +
           " is not writable by this user: " + std::strerror(errno);
  return "";
}

std::string uid_name() {
  if (const passwd* p = ::getpwuid(::geteuid())) return p->pw_name;
  return "uid " + std::to_string(::geteuid());
}

// A fix hint for an AWS error on `what` (an IAM action and resource the daemon's policy grants).
std::string aws_hint(const AwsError& e, const std::string& action, const std::string& resource,
                     const std::string& missing) {
  const std::string& c = e.code;
  if (c == "SignatureDoesNotMatch" || c == "InvalidSignatureException")
    return "the secret access key does not belong to this access key id: correct the credentials "
           "(see the credentials line for their source)";
  if (c == "InvalidAccessKeyId" || c == "UnrecognizedClientException" ||
      c == "InvalidClientTokenId")
    return "AWS does not know this access key id: use an active key of the gateway's IAM "
           "identity";
  if (c == "ExpiredToken" || c == "ExpiredTokenException" || c == "TokenRefreshRequired")
    return "the session token has expired: refresh the credentials source";
  if (e.category == ErrorCategory::clock_skew)
    return "this host's clock is wrong: enable time sync (systemd-timesyncd, chrony)";
  if (c.starts_with("KMS.") || c == "KMSAccessDeniedException")
    return "allow kms:GenerateDataKey and kms:Decrypt on the KMS key (docs/iam-policy.json)";
  if (c == "NoSuchBucket") return missing;
  if (c == "ResourceNotFoundException") return missing;
  if (e.category == ErrorCategory::auth)
    return "allow " + action + " on " + resource + " (docs/iam-policy.json)";
  if (e.transport != fe::aws::TransportFailure::none)
    return "check the network path to the endpoint (aws.endpoints, aws.proxy / HTTPS_PROXY, "
           "aws.ca_bundle)";
  return "";
}

struct Ctx {
  boost::asio::io_context io;
  // Built as the daemon builds them (aws::Clients, pipeline::doctor_clients_settings).
  std::unique_ptr<fe::aws::Clients> clients;
  fe::aws::S3Client* s3 = nullptr;
  fe::aws::HealthLakeClient* hl = nullptr;

  // Runs one asynchronous client call to its end on this thread.
  template <class T>
  fe::aws::AwsResult<T> wait(
      const std::function<void(std::function<void(fe::aws::AwsResult<T>)>)>& start) {
    std::optional<fe::aws::AwsResult<T>> out;
    start([&out](fe::aws::AwsResult<T> r) { out = std::move(r); });
    io.restart();
    while (!out && io.run_one()) {
    }
    if (!out) {
      AwsError e;
      e.message = "the request never completed";
      return fe::aws::AwsResult<T>::from_call(fe::aws::CallResult{{}, e, 0, "request"});
    }
    return std::move(*out);
  }
};

std::string random_hex(int n) {
  std::random_device rd;
  std::string s;
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < n; ++i) s += hex[rd() % 16];
  return s;
}

std::string join_key(const std::string& prefix, const std::string& rest) {
  return prefix.empty() ? rest : prefix + "/" + rest;
}

// s3://bucket[/prefix] -> {bucket, prefix without slashes at the ends}
std::pair<std::string, std::string> split_s3_uri(std::string_view uri) {
  if (uri.starts_with("s3://")) uri.remove_prefix(5);
  auto slash = uri.find('/');
  std::string bucket(uri.substr(0, slash));
  std::string prefix = slash == std::string_view::npos ? "" : std::string(uri.substr(slash + 1));
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return {bucket, prefix};
}

std::string s3_arn(const std::string& bucket, const std::string& prefix) {
  return "arn:aws:s3:::" + bucket + (prefix.empty() ? "/*" : "/" + prefix + "/*");
}

// ---- local checks -------------------------------------------------------------------------

void check_roots(const fe::config::Config& cfg, Report& rep) {
  std::vector<fs::path> roots;
  for (const auto& p : cfg.pipelines) {
    roots.push_back(p.watch);
    const std::string check = "watch root " + p.watch.string() + " (pipeline " + p.name + ")";
    std::string why = fe::watch::root_problem(p.watch);
    if (why.empty()) {
      rep.ok(check, "readable directory");
    } else if (why == "does not exist") {
      rep.fail(check, why,
               "create it for the exporting system, e.g. install -d -m 2770 -o fhir-edge -g "
               "fhir-edge " +
                   p.watch.string() + " (the daemon waits for it and logs a warning)");
    } else {
      rep.fail(check, why,
               "let the service user read it: chgrp fhir-edge and chmod g+rx (or 2770 when "
               "after_upload deletes or moves)");
    }
  }
  auto nested = fe::watch::nested_roots(roots);
  for (const auto& n : nested)
    rep.fail("watch roots", n,
             "give each pipeline its own directory, none inside another (one would ingest the "
             "other's exports)");
}

void check_state(const fe::config::Config& cfg, Report& rep) {
  const fs::path& spool = cfg.spool.dir;
  std::string why = dir_writable(spool);
  if (!why.empty()) {
    rep.fail("spool " + spool.string(), why,
             "run doctor as the service user (sudo -u fhir-edge fhir-edge doctor); the unit's "
             "StateDirectory= makes /var/lib/fhir-edge writable for it");
  } else {
    struct statvfs sv {};
    fs::path at = existing_ancestor(spool);
    std::uint64_t used = 0;
    std::error_code ec;
    if (fs::is_directory(spool, ec)) used = fe::spool::disk_usage(spool);
    if (::statvfs(at.c_str(), &sv) != 0) {
      rep.warn("spool " + spool.string(), std::string("statvfs: ") + std::strerror(errno), "");
    } else {
      std::uint64_t avail = static_cast<std::uint64_t>(sv.f_bavail) * sv.f_frsize;
      std::uint64_t quota = cfg.spool.max_bytes;
      std::uint64_t needed = quota > used ? quota - used : 0;
      std::string text = "writable by " + uid_name() + ", " + human_bytes(avail) +
                         " free, spool.max_bytes " + human_bytes(quota) + " (" + human_bytes(used) +
                         " used)";
      if (avail < needed)
        rep.warn("spool " + spool.string(),
                 text + ": the disk fills before the quota pauses ingest",
                 "lower spool.max_bytes below the free space, or give the spool more room");
      else
        rep.ok("spool " + spool.string(), text);
    }
  }
  const fs::path& db = cfg.journal.path;
  std::error_code ec;
  std::string jwhy = dir_writable(db.parent_path());
  if (jwhy.empty() && fs::exists(db, ec) && ::access(db.c_str(), R_OK | W_OK) != 0)
    jwhy = db.string() + " is not writable by this user: " + std::strerror(errno);
  if (!jwhy.empty())
    rep.fail("journal " + db.string(), jwhy,
             "run doctor as the service user (sudo -u fhir-edge fhir-edge doctor), or fix the "
             "owner of the state directory");
  else
    rep.ok("journal " + db.string(), fs::exists(db, ec) ? "writable by " + uid_name()
                                                        : "will be created (directory writable)");
}

// ---- AWS checks ---------------------------------------------------------------------------

bool check_landing(Ctx& c, const fe::config::Pipeline& p, Report& rep) {
  const auto& s3 = p.s3;
  const std::string where = "s3://" + s3.bucket + (s3.prefix.empty() ? "" : "/" + s3.prefix) + "/" +
                            (s3.kms_key_id ? " (SSE-KMS " + *s3.kms_key_id + ")" : "");
  const std::string check = "landing bucket " + where;
  const std::string key = join_key(s3.prefix, ".fhir-edge-doctor/probe-" + random_hex(16) + ".txt");
  const std::string body = "fhir-edge doctor probe; safe to delete\n";
  const std::string missing = "create bucket " + s3.bucket + " in the configured region, or fix " +
                              "pipelines[" + p.name + "].s3.bucket";
  const std::string arn = s3_arn(s3.bucket, s3.prefix);

  fe::aws::PutObjectRequest put;
  put.bucket = s3.bucket;
  put.key = key;
  put.body = fe::aws::BodySource::from_view(body);
  put.crc32c = fe::aws::crc32c(body);
  put.content_type = "text/plain";
  if (s3.kms_key_id) put.sse.kms_key_id = *s3.kms_key_id;
  auto r = c.wait<fe::aws::PutObjectResult>(
      [&](auto done) { c.s3->put_object(std::move(put), std::move(done)); });
  if (!r.ok()) {
    rep.fail(check, "PutObject " + key + ": " + r.error->describe(),
             aws_hint(*r.error, "s3:PutObject", arn, missing));
    return false;
  }
  auto h = c.wait<fe::aws::HeadObjectResult>(
      [&](auto done) { c.s3->head_object(s3.bucket, key, std::move(done)); });
  std::string trouble;
  std::string hint;
  if (!h.ok()) {
    trouble = "HeadObject " + key + ": " + h.error->describe();
    hint = aws_hint(*h.error, "s3:GetObject", arn, missing);
  } else if (s3.kms_key_id && h.value->sse != "aws:kms") {
    trouble = "the probe was stored with server-side encryption '" + h.value->sse +
              "', not aws:kms (HealthLake imports only SSE-KMS inputs)";
    hint = "check pipelines[" + p.name + "].s3.kms_key_id and the bucket's encryption settings";
  }
  auto d = c.wait<fe::aws::Empty>(
      [&](auto done) { c.s3->delete_object(s3.bucket, key, std::move(done)); });
  if (!d.ok() && trouble.empty()) {
    trouble = "DeleteObject " + key + ": " + d.error->describe() + " (the probe object is left)";
    hint = aws_hint(*d.error, "s3:DeleteObject", arn, missing);
  }
  if (trouble.empty()) {
    fe::aws::ListUploadsRequest lr;
    lr.bucket = s3.bucket;
    lr.prefix = s3.prefix.empty() ? "" : s3.prefix + "/";
    lr.max_uploads = 1;
    auto l = c.wait<fe::aws::ListUploadsResult>(
        [&](auto done) { c.s3->list_multipart_uploads(std::move(lr), std::move(done)); });
    if (!l.ok()) {
      trouble = "ListMultipartUploads: " + l.error->describe();
      hint =
          aws_hint(*l.error, "s3:ListBucketMultipartUploads", "arn:aws:s3:::" + s3.bucket, missing);
    }
  }
  if (!trouble.empty()) {
    rep.fail(check, trouble, hint);
    return false;
  }
  rep.ok(check, "PutObject, HeadObject" + std::string(s3.kms_key_id ? " (aws:kms)" : "") +
                    ", DeleteObject and ListMultipartUploads of a probe key ok");
  return true;
}

// The fleet (docs/scale.md): its lease and ready list are readable with this gateway's
// credentials. Reads only: doctor never takes or changes the lease.
void check_fleet(Ctx& c, const fe::config::Fleet& f, Report& rep) {
  const std::string check = "fleet " + f.name + " (s3://" + f.bucket + "/" +
                            fe::fleet::lease_key(f.prefix, f.name) + ", as " + f.gateway_id + ")";
  auto read = [&](const std::string& key) {
    std::optional<fe::fleet::CasRead> out;
    fe::fleet::cas_read(*c.s3, f.bucket, key, [&out](fe::fleet::CasRead r) { out = std::move(r); });
    c.io.restart();
    while (!out && c.io.run_one()) {
    }
    return out;
  };
  auto lease = read(fe::fleet::lease_key(f.prefix, f.name));
  const std::string arn = "arn:aws:s3:::" + f.bucket + "/" + fe::fleet::lease_key(f.prefix, f.name);
  if (!lease || lease->error) {
    rep.fail(check, "GetObject lease.json: " + (lease ? lease->error->describe() : "no answer"),
             lease ? aws_hint(*lease->error, "s3:GetObject", arn,
                              "create bucket " + f.bucket + " or fix fleet.bucket")
                   : "check the S3 endpoint");
    return;
  }
  std::string text;
  if (lease->absent) {
    text = "reachable; no lease yet (the first gateway to run takes it)";
  } else if (auto rec = fe::fleet::LeaseRecord::parse(lease->body)) {
    auto left = std::chrono::duration_cast<std::chrono::seconds>(rec->expires_at -
                                                                 std::chrono::system_clock::now());
    text = "reachable; lease " +
           (rec->released || left.count() < 0
                ? std::string("free (last held by ") + rec->holder + ")"
                : "held by " + rec->holder + " for " + std::to_string(left.count()) + " s more") +
           ", epoch " + std::to_string(rec->epoch);
  } else {
    rep.fail(check, "lease.json is not a fleet lease",
             "fleet.prefix/fleet.name point at another object; pick another fleet.name");
    return;
  }
  auto ready = read(fe::fleet::manifest_key(f.prefix, f.name));
  if (ready && !ready->error && !ready->absent)
    if (auto d = fe::fleet::ManifestDoc::parse(ready->body))
      text += "; " + std::to_string(d->entries.size()) + " export(s) in ready.json";
  rep.ok(check, text);
}

// The data store's properties when it is usable, else nullopt (reported).
std::optional<fe::aws::DatastoreProperties> check_datastore(Ctx& c, const std::string& id,
                                                            Report& rep) {
  const std::string check = "data store " + id;
  auto r = c.wait<fe::aws::DatastoreProperties>(
      [&](auto done) { c.hl->describe_datastore(id, std::move(done)); });
  if (!r.ok()) {
    rep.fail(check, "DescribeFHIRDatastore: " + r.error->describe(),
             aws_hint(*r.error, "healthlake:DescribeFHIRDatastore",
                      "arn:aws:healthlake:<region>:<account>:datastore/fhir/" + id,
                      "check healthlake.datastore_id and aws.region (aws healthlake "
                      "list-fhir-datastores)"));
    return std::nullopt;
  }
  const auto& d = *r.value;
  if (d.datastore_status != "ACTIVE") {
    rep.fail(check, "status " + d.datastore_status + ", imports need ACTIVE",
             d.datastore_status == "CREATING"
                 ? "wait until it is ACTIVE (aws healthlake describe-fhir-datastore)"
                 : "point healthlake.datastore_id at an ACTIVE data store");
    return std::nullopt;
  }
  fe::aws::ListImportJobsRequest lr;
  lr.datastore_id = id;
  lr.max_results = 1;
  auto l = c.wait<fe::aws::ListImportJobsResult>(
      [&](auto done) { c.hl->list_import_jobs(std::move(lr), std::move(done)); });
  if (!l.ok()) {
    rep.fail(check, "ACTIVE, but ListFHIRImportJobs: " + l.error->describe(),
             aws_hint(*l.error, "healthlake:ListFHIRImportJobs", d.datastore_arn, ""));
    return std::nullopt;
  }
  rep.ok(check, "ACTIVE (" + d.datastore_type_version + (d.datastore_name.empty() ? "" : ", ") +
                    d.datastore_name + "); ListFHIRImportJobs ok");
  return d;
}

// "123456789012" from "arn:aws:iam::123456789012:role/x" or "arn:aws:healthlake:r:123...:..."
std::string arn_account(std::string_view arn) {
  for (int i = 0; i < 4; ++i) {
    auto c = arn.find(':');
    if (c == std::string_view::npos) return "";
    arn.remove_prefix(c + 1);
  }
  return std::string(arn.substr(0, arn.find(':')));
}

void check_role(Ctx& c, const fe::config::Pipeline& p,
                const std::optional<fe::aws::DatastoreProperties>& ds, bool import_probe,
                Report& rep) {
  const auto& h = p.healthlake;
  const std::string check = "data-access role " + h.data_access_role_arn;
  if (!ds) {
    rep.skip(check, "needs a usable data store (see its line)");
    return;
  }
  if (ds && !ds->datastore_arn.empty() &&
      arn_account(ds->datastore_arn) != arn_account(h.data_access_role_arn)) {
    rep.fail(check,
             "is in account " + arn_account(h.data_access_role_arn) + ", the data store in " +
                 arn_account(ds->datastore_arn),
             "use a role of the data store's account (docs/aws-credentials.md)");
    return;
  }
  if (!import_probe) {
    rep.ok(check,
           "in the data store's account; iam:PassRole and its trust policy are checked "
           "only by a real import: fhir-edge doctor --import-probe");
    return;
  }
  const std::string nonce = random_hex(12);
  fe::aws::StartImportRequest req;
  req.job_name = "fhir-edge-doctor-" + nonce;
  req.input_s3_uri = "s3://" + p.s3.bucket + "/" +
                     join_key(p.s3.prefix, ".fhir-edge-doctor/import-probe-" + nonce) + "/";
  req.output_s3_uri = h.output_s3_uri;
  req.output_kms_key_id = h.output_kms_key_id;
  req.datastore_id = h.datastore_id;
  req.data_access_role_arn = h.data_access_role_arn;
  req.client_token = "fhir-edge-doctor-" + nonce;
  req.validation_level = std::string(fe::config::to_string(p.validation_level));
  auto r = c.wait<fe::aws::StartImportResult>(
      [&](auto done) { c.hl->start_import_job(std::move(req), std::move(done)); });
  if (!r.ok()) {
    rep.fail(check, "StartFHIRImportJob refused it: " + r.error->describe(),
             "allow iam:PassRole on the role for the gateway's identity, and let "
             "healthlake.amazonaws.com assume it (docs/iam-data-access-role-trust.json)");
    return;
  }
  rep.ok(check, "HealthLake accepted it: probe import job " + r.value->job_id +
                    " of an empty prefix started (it imports nothing; HealthLake may end it FAILED "
                    "for having no input)");
}

void check_results(Ctx& c, const fe::config::Pipeline& p, Report& rep) {
  auto [bucket, prefix] = split_s3_uri(p.healthlake.output_s3_uri);
  const std::string check = "results bucket " + p.healthlake.output_s3_uri;
  fe::aws::ListObjectsRequest lr;
  lr.bucket = bucket;
  lr.prefix = prefix.empty() ? "" : prefix + "/";
  lr.max_keys = 1;
  auto r = c.wait<fe::aws::ListObjectsResult>(
      [&](auto done) { c.s3->list_objects_v2(std::move(lr), std::move(done)); });
  if (!r.ok()) {
    rep.fail(
        check, "ListObjectsV2: " + r.error->describe(),
        aws_hint(*r.error, "s3:ListBucket (and s3:GetObject on " + s3_arn(bucket, prefix) + ")",
                 "arn:aws:s3:::" + bucket,
                 "create bucket " + bucket + " or fix healthlake.output_s3_uri"));
    return;
  }
  rep.ok(check, "readable under its prefix (ListObjectsV2 ok)");
}

}  // namespace

int fe::cli::cmd_doctor(Args args) {
  std::string path(fe::config::kDefaultConfigPath);
  bool import_probe = false, json = false;
  Verbosity verbosity;
  auto app = make_app("doctor", kDescription, kFooter, verbosity);
  add_config_option(*app, path);
  app->add_flag("--import-probe", import_probe,
                "also start one HealthLake import job of an empty probe prefix, the only way to "
                "learn that HealthLake accepts the data-access role (iam:PassRole, its trust "
                "policy); the job imports nothing");
  app->add_flag("--json", json, "print the checks as one JSON document on stdout");
  if (auto rc = parse(*app, args, verbosity)) return *rc;

  // The report is the output; the library's info lines (credentials loaded...) would repeat it
  // (-v shows them).
  if (verbosity.verbose == 0) fe::log::set_level(fe::log::Level::warning);
  Report rep;
  rep.json = json;
  rep.quiet = verbosity.quiet;
  auto loaded = fe::config::load_config(path);
  for (const auto& w : loaded.warnings) rep.warn("config", fe::config::format(w), "");
  if (!loaded.ok()) {
    if (std::string why = read_access_problem(path, "configuration"); !why.empty()) {
      loaded.errors.clear();
      loaded.errors.push_back(fe::config::Error{path, 0, 0, "", why});
    }
    std::string text = fe::config::format(loaded.errors);
    std::fputs(text.c_str(), stderr);
    rep.fail("config " + path,
             std::to_string(loaded.errors.size()) + " error(s), listed above on stderr",
             "correct them; fhir-edge check-config shows the same list");
    return rep.finish(kExitUsage);
  }
  const fe::config::Config& cfg = *loaded.config;
  rep.ok("config " + path, std::to_string(cfg.pipelines.size()) + " pipeline(s)");

  check_roots(cfg, rep);
  check_state(cfg, rep);

  // Credentials, as the daemon resolves them.
  Ctx c;
  c.clients = std::make_unique<fe::aws::Clients>(c.io, fe::pipeline::doctor_clients_settings(cfg));
  c.s3 = &c.clients->s3();
  c.hl = &c.clients->healthlake();
  bool have_creds = false;
  try {
    c.clients->start_credentials();
    auto cur = c.clients->credentials().current();
    std::string text = "from " + cur.source + ", key " + fe::aws::mask_key_id(cur.access_key_id) +
                       (cur.session_token.empty() ? "" : " (temporary, with session token)");
    if (cur.expiration) {
      auto left = std::chrono::duration_cast<std::chrono::minutes>(
          *cur.expiration - std::chrono::system_clock::now());
      text += ", expires " + utc(*cur.expiration) + " (in " + std::to_string(left.count()) +
              " min; refreshed before)";
    } else {
      text += ", no expiry (long-term key)";
    }
    rep.ok("credentials", text);
    have_creds = true;
  } catch (const std::exception& e) {
    rep.fail("credentials", e.what(),
             "provide credentials for aws.credentials.source " +
                 std::string(fe::config::to_string(cfg.aws.credential_source)) +
                 " (docs/aws-credentials.md)");
  }

  if (!have_creds) {
    rep.skip("AWS checks", "no credentials");
  } else {
    std::set<std::string> seen_landing, seen_results;
    std::map<std::string, std::optional<fe::aws::DatastoreProperties>> stores;
    std::set<std::pair<std::string, std::string>> seen_roles;
    for (const auto& p : cfg.pipelines) {
      std::string lk = p.s3.bucket + "\n" + p.s3.prefix + "\n" + p.s3.kms_key_id.value_or("");
      if (seen_landing.insert(lk).second) check_landing(c, p, rep);
      const auto& id = p.healthlake.datastore_id;
      if (!stores.count(id)) stores[id] = check_datastore(c, id, rep);
      if (seen_roles.insert({p.healthlake.data_access_role_arn, id}).second)
        check_role(c, p, stores[id], import_probe, rep);
      if (seen_results.insert(p.healthlake.output_s3_uri).second) check_results(c, p, rep);
    }
    if (cfg.fleet.enabled()) check_fleet(c, cfg.fleet, rep);
  }
  c.clients->close();

  return rep.finish(rep.failed ? kExitFailed : kExitOk);
}
