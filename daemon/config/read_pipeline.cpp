// One entry of `pipelines` (pipeline/settings.hpp and the stage pieces it composes).
#include <algorithm>

#include "common/s3_names.hpp"
#include "config/readers.hpp"

namespace fe::config::detail {
namespace {

// pipelines[].complete_when (watch/settings.hpp).
void read_complete_when(Checker& c, const Item& item, Pipeline& p) {
  const Item* ci = &item;
  Map cm(c, ci->value, ci->path, ci->mark,
         {"marker", "bulk_manifest", "client_log", "settle_seconds"});
  if (cm.ok()) {
    std::optional<std::string> marker = p.complete_when.marker;
    c.opt_string(cm, "marker", marker, [](const std::string& s) -> std::string {
      if (s.find('/') != std::string::npos || s == "." || s == "..") {
        return "the marker is a file name, not a path";
      }
      return "";
    });
    p.complete_when.marker = marker.value_or("");
    c.boolean(cm, "bulk_manifest", p.complete_when.bulk_manifest);
    c.boolean(cm, "client_log", p.complete_when.client_log);
    c.duration(cm, "settle_seconds", p.complete_when.settle, std::chrono::hours(24));
    const auto& w = p.complete_when;
    if (w.marker.empty() && !w.bulk_manifest && !w.client_log && w.settle.count() == 0) {
      c.error(cm.mark(), ci->path,
              "no completion rule is enabled: an export would never be picked up (set "
              "marker, bulk_manifest, client_log or settle_seconds)");
    }
  }
}

// pipelines[].s3 (upload/settings.hpp).
void read_s3(Checker& c, const Item& item, Pipeline& p) {
  const Item* si = &item;
  Map sm(c, si->value, si->path, si->mark,
         {"bucket", "prefix", "kms_key_id", "archive", "upload_rejects"});
  if (sm.ok()) {
    c.string(sm, "bucket", p.s3.bucket, true, s3::bucket_name_error);
    if (c.string(sm, "prefix", p.s3.prefix, false,
                 [](const std::string& s) { return check_key_part(s, true); })) {
      while (!p.s3.prefix.empty() && p.s3.prefix.back() == '/') {
        p.s3.prefix.pop_back();
      }
      if (!p.s3.prefix.empty() && p.s3.prefix.front() == '/') {
        c.error(sm.get("prefix")->mark, sm.get("prefix")->path,
                "an S3 key prefix does not start with '/'");
      }
    }
    c.opt_string(sm, "kms_key_id", p.s3.kms_key_id, check_kms);
    c.boolean(sm, "archive", p.s3.archive);
    c.boolean(sm, "upload_rejects", p.s3.upload_rejects);
  }
}

// pipelines[].healthlake (import/settings.hpp).
void read_healthlake(Checker& c, const Item& item, Pipeline& p) {
  const Item* hi = &item;
  Map hm(c, hi->value, hi->path, hi->mark,
         {"datastore_id", "data_access_role_arn", "output_s3_uri", "output_kms_key_id",
          "max_outstanding_starts", "accept_statuses"});
  if (hm.ok()) {
    auto& h = p.healthlake;
    c.string(hm, "datastore_id", h.datastore_id, true, [](const std::string& s) -> std::string {
      if (matches(s, "[A-Za-z0-9]{32}")) {
        return "";
      }
      return "a HealthLake data store id is 32 letters and digits, got '" + s + "' (" +
             std::to_string(s.size()) + " characters)";
    });
    c.string(hm, "data_access_role_arn", h.data_access_role_arn, true,
             [](const std::string& s) -> std::string {
               if (matches(s, "arn:aws(-[^:]+)?:iam::[0-9]{12}:role/.+")) {
                 return "";
               }
               return "expected an IAM role ARN such as arn:aws:iam::123456789012:role/Name";
             });
    c.string(hm, "output_s3_uri", h.output_s3_uri, true, check_s3_uri);
    if (!hm.get("output_kms_key_id")) {
      c.missing(hm, "output_kms_key_id", "StartFHIRImportJob requires a KMS key for its output");
    } else {
      c.string(hm, "output_kms_key_id", h.output_kms_key_id, true, check_kms);
    }
    c.integer(hm, "max_outstanding_starts", h.max_outstanding_starts, 1, 10);
    if (const Item* ai = hm.get("accept_statuses")) {
      std::vector<Item> storage;
      auto st = c.list(*ai, storage);
      std::vector<std::string> out;
      bool bad = false;
      for (auto& [s, at] : st) {
        if (s != "COMPLETED" && s != "COMPLETED_WITH_ERRORS") {
          std::string msg = "must be COMPLETED or COMPLETED_WITH_ERRORS, got '" + s + "'";
          if (auto sg = suggest(s, {"COMPLETED", "COMPLETED_WITH_ERRORS"}); !sg.empty()) {
            msg += "; did you mean '" + sg + "'?";
          }
          c.error(at->mark, at->path, msg);
          bad = true;
        } else if (std::find(out.begin(), out.end(), s) == out.end()) {
          out.push_back(s);
        }
      }
      if (!bad && std::find(out.begin(), out.end(), "COMPLETED") == out.end()) {
        c.error(ai->mark, ai->path, "must include COMPLETED");
      } else if (!bad) {
        h.accept_statuses = out;
      }
    }
  }
}

// pipelines[].after_upload: keep, delete or move:/dir (import/settings.hpp).
void read_after_upload(Checker& c, const Item& item, Pipeline& p, PipelineMarks& marks) {
  const Item* ai = &item;
  if (auto v = c.text(*ai)) {
    if (*v == "keep") {
      p.after_upload.kind = AfterUploadKind::keep;
    } else if (*v == "delete") {
      p.after_upload.kind = AfterUploadKind::remove;
    } else if (v->starts_with("move:")) {
      std::string dir = v->substr(5);
      if (dir.empty() || dir[0] != '/') {
        c.error(ai->mark, ai->path, "move: needs an absolute directory, e.g. move:/var/archive");
      } else {
        p.after_upload.kind = AfterUploadKind::move;
        p.after_upload.move_to = normal(dir);
        marks.after_upload = ai->mark;
        marks.after_ok = true;
      }
    } else {
      std::string msg = "must be keep, delete or move:/absolute/dir, got '" + *v + "'";
      if (auto s = suggest(*v, {"keep", "delete"}); !s.empty()) {
        msg += "; did you mean '" + s + "'?";
      }
      c.error(ai->mark, ai->path, msg);
    }
  }
}

}  // namespace

void read_pipeline(Checker& c, const Item& it, Pipeline& p, PipelineMarks& marks) {
  Map m(c, it.value, it.path, it.mark,
        {"name", "watch", "patterns", "complete_when", "validation_level", "on_invalid",
         "on_changed", "fhir_packages", "s3", "healthlake", "after_upload", "max_line_bytes"});
  if (!m.ok()) {
    return;
  }
  if (c.string(m, "name", p.name, true, [](const std::string& n) -> std::string {
        if (matches(n, "[A-Za-z0-9][A-Za-z0-9._-]{0,63}")) {
          return "";
        }
        return "a pipeline name is 1-64 of [A-Za-z0-9._-], starting with a letter or digit";
      })) {
    marks.name = m.get("name")->mark;
  }
  if (c.path(m, "watch", p.watch, true)) {
    marks.watch = m.get("watch")->mark;
    marks.watch_ok = true;
  }
  if (const Item* pi = m.get("patterns")) {
    std::vector<Item> storage;
    auto pats = c.list(*pi, storage);
    std::vector<std::string> out;
    bool bad = false;
    for (auto& [s, at] : pats) {
      if (s.empty() || s.find('/') != std::string::npos) {
        c.error(at->mark, at->path, "a pattern is a non-empty file-name glob without '/'");
        bad = true;
      }
      out.push_back(s);
    }
    if (out.empty() && !bad) {
      c.error(pi->mark, pi->path, "needs at least one pattern");
    }
    if (!bad && !out.empty()) {
      p.patterns = out;
    }
  }
  if (const Item* ci = m.get("complete_when")) {
    read_complete_when(c, *ci, p);
  }
  c.enumeration<ValidationLevel>(m, "validation_level", p.validation_level,
                                 {{"strict", ValidationLevel::strict},
                                  {"structure-only", ValidationLevel::structure_only},
                                  {"minimal", ValidationLevel::minimal}});
  c.enumeration<OnInvalid>(m, "on_invalid", p.on_invalid,
                           {{"reject-resource", OnInvalid::reject_resource},
                            {"reject-file", OnInvalid::reject_file},
                            {"fail-export", OnInvalid::fail_export}});
  // Peak memory grows with it (docs/configuration.md: per worker thread about 16 x this while
  // such a line is validated): 64 KiB .. 1 GiB (the reader reserves one line's worth).
  c.size(m, "max_line_bytes", p.max_line_bytes, Bytes{64} << 10, Bytes{1} << 30);
  c.enumeration<OnChanged>(m, "on_changed", p.on_changed,
                           {{"hold", OnChanged::hold}, {"reimport", OnChanged::reimport}});
  if (const Item* fi = m.get("fhir_packages")) {
    std::vector<Item> storage;
    auto pk = c.list(*fi, storage);
    for (auto& [s, at] : pk) {
      fs::path path;
      if (c.abs_path(*at, path)) {
        p.fhir_packages.push_back(path);
      }
    }
  }
  // strict with no package can only check the built-in US Core 3.1.x (HealthLake's default
  // guide); HealthLake also validates other guides and US Core versions it knows, which would
  // then be rejected only after the upload (issue 12).
  if (p.validation_level == ValidationLevel::strict && p.fhir_packages.empty()) {
    const Item* li = m.get("validation_level");
    c.warning(li ? li->mark : it.mark, it.path + ".validation_level",
              "strict with no fhir_packages checks meta.profile only against the built-in US "
              "Core 3.1.0 (also answering |3.1.1, HealthLake's default) and R4 core profiles "
              "(vitalsigns...); profiles of other guides "
              "or US Core versions (4.0.0, 5.0.1, 6.1.0, 7.0.0) are reported as not checked: add "
              "their packages to fhir_packages");
  }
  if (const Item* si = m.get("s3")) {
    read_s3(c, *si, p);
  } else {
    c.missing(m, "s3", "the bucket HealthLake imports from");
  }
  if (const Item* hi = m.get("healthlake")) {
    read_healthlake(c, *hi, p);
  } else {
    c.missing(m, "healthlake", "the data store to import into");
  }
  if (const Item* ai = m.get("after_upload")) {
    read_after_upload(c, *ai, p, marks);
  }
}

}  // namespace fe::config::detail
