// Loading and checking the YAML configuration: the top of the walk (sections, then the checks
// across pipelines and sections), the file's permissions, and the public functions of
// config.hpp. The walker itself is checker.hpp; each section's reader is in readers.hpp. Every
// problem is recorded with its position, and a Config is handed out only when there are none, so
// an operator fixes a file in one round instead of one error per restart.
#include "config/config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <tuple>

#include "config/readers.hpp"

namespace fe::config {
namespace {

using namespace detail;

Config read(Checker& c, const YAML::Node& root) {
  Config cfg;
  Map top(c, root, "", YAML::Mark{},
          {"aws", "pipelines", "spool", "journal", "upload", "import", "watch", "metrics", "log",
           "fleet"});
  if (!top.ok()) {
    return cfg;
  }

  if (const Item* it = top.get("aws")) {
    read_aws(c, it->value, it->mark, cfg.aws);
  }

  std::vector<PipelineMarks> marks;
  if (const Item* it = top.get("pipelines")) {
    if (!it->value.IsSequence()) {
      c.error(it->mark, it->path,
              std::string("expected a list of pipelines, got ") + Checker::kind(it->value));
    } else if (it->value.size() == 0) {
      c.error(it->mark, it->path, "needs at least one pipeline");
    } else {
      for (size_t i = 0; i < it->value.size(); ++i) {
        const YAML::Node& pn = it->value[i];
        Item pit{YAML::Node(), pn, "pipelines[" + std::to_string(i) + "]",
                 Checker::mark_of(pn, it->mark)};
        Pipeline p;
        PipelineMarks pm;
        read_pipeline(c, pit, p, pm);
        cfg.pipelines.push_back(std::move(p));
        marks.push_back(pm);
      }
    }
  } else {
    c.missing(top, "pipelines", "at least one pipeline");
  }

  // Sections in the order of the file's reference (config/fhir-edge.yaml).
  if (const Item* it = top.get("spool")) {
    read_spool(c, *it, cfg.spool);
  }
  if (const Item* it = top.get("journal")) {
    read_journal(c, *it, cfg.journal);
  }
  if (const Item* it = top.get("upload")) {
    read_upload(c, *it, cfg.upload);
  }
  if (const Item* it = top.get("watch")) {
    read_watch(c, *it, cfg.watch);
  }
  if (const Item* it = top.get("import")) {
    read_import(c, *it, cfg.import_jobs);
  }
  if (const Item* it = top.get("metrics")) {
    read_metrics(c, *it, cfg.metrics);
  }
  if (const Item* it = top.get("log")) {
    read_log(c, *it, cfg.log);
  }
  if (const Item* it = top.get("fleet")) {
    read_fleet(c, *it, cfg.fleet);
    // Every gateway of a fleet must name the same bucket; by default the landing bucket.
    if (cfg.fleet.enabled() && cfg.fleet.bucket.empty() && !cfg.pipelines.empty())
      cfg.fleet.bucket = cfg.pipelines.front().s3.bucket;
  }

  // ---- checks across pipelines and sections ----
  for (size_t i = 0; i < cfg.pipelines.size(); ++i) {
    const auto& p = cfg.pipelines[i];
    std::string at = "pipelines[" + std::to_string(i) + "]";
    for (size_t j = 0; j < i; ++j) {
      const auto& q = cfg.pipelines[j];
      std::string other = "pipelines[" + std::to_string(j) + "]";
      if (!p.name.empty() && p.name == q.name) {
        c.error(marks[i].name, at + ".name",
                "duplicate pipeline name '" + p.name + "' (also " + other + ")");
      }
      if (marks[i].watch_ok && marks[j].watch_ok) {
        if (p.watch == q.watch) {
          c.error(marks[i].watch, at + ".watch",
                  "watches the same directory as " + other + " ('" + q.name + "')");
        } else if (inside_or_same(p.watch, q.watch) || inside_or_same(q.watch, p.watch)) {
          c.error(marks[i].watch, at + ".watch",
                  "'" + p.watch.string() + "' and " + other + ".watch '" + q.watch.string() +
                      "' are nested: one pipeline would ingest the other's exports");
        }
      }
    }
    if (marks[i].watch_ok) {
      if (inside_or_same(cfg.spool.dir, p.watch) || inside_or_same(p.watch, cfg.spool.dir)) {
        c.error(marks[i].watch, at + ".watch",
                "overlaps spool.dir '" + cfg.spool.dir.string() + "'");
      }
      if (inside_or_same(cfg.journal.path, p.watch)) {
        c.error(marks[i].watch, at + ".watch",
                "contains journal.path '" + cfg.journal.path.string() + "'");
      }
    }
    if (marks[i].after_ok) {
      for (size_t j = 0; j < cfg.pipelines.size(); ++j) {
        if (marks[j].watch_ok && inside_or_same(p.after_upload.move_to, cfg.pipelines[j].watch)) {
          c.error(marks[i].after_upload, at + ".after_upload",
                  "moving into '" + p.after_upload.move_to.string() +
                      "' would feed the files back into watched directory '" +
                      cfg.pipelines[j].watch.string() + "'");
        }
      }
    }
  }
  return cfg;
}

LoadResult load(std::string_view yaml, const std::string& name, const fs::path& source) {
  Checker c(name);
  LoadResult r;
  if (yaml.size() > kMaxConfigBytes) {
    c.error(YAML::Mark{}, "",
            "the file is larger than " + format_size(kMaxConfigBytes) +
                "; is this really the configuration?");
    r.errors = std::move(c.errors);
    return r;
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    c.error(e.mark, "", "YAML syntax error: " + e.msg);
    r.errors = std::move(c.errors);
    return r;
  }
  if (!root.IsDefined() || root.IsNull()) {
    c.error(YAML::Mark{}, "", "the configuration is empty (see config/fhir-edge.yaml)");
    // Mark{} is 0:0 -> 1:1; the file itself is the problem.
    r.errors = std::move(c.errors);
    return r;
  }
  Config cfg = read(c, root);
  // Report in file order (checks across pipelines run last but point into the middle).
  std::stable_sort(c.errors.begin(), c.errors.end(), [](const Error& a, const Error& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  if (c.errors.empty()) {
    cfg.source = source;
    r.config = std::move(cfg);
  }
  r.errors = std::move(c.errors);
  r.warnings = std::move(c.warnings);
  return r;
}

std::string octal_mode(mode_t m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

// What ssh does for its own files: a file others can change is refused (whoever edits it decides
// where patient data is uploaded, with which role and key); one everybody can read gets a warning.
std::pair<std::vector<Error>, std::vector<Error>> check_permissions(const fs::path& path) {
  std::vector<Error> errors, warnings;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return {errors, warnings};  // reading already failed or it is a pipe/device: nothing to judge
  }
  const std::string file = path.string();
  const std::string mode = octal_mode(st.st_mode);
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    errors.push_back(Error{file, 0, 0, "",
                           "refusing a configuration file writable by " +
                               std::string((st.st_mode & S_IWOTH) ? "all users" : "its group") +
                               " (mode " + mode +
                               "): whoever can change it decides where health "
                               "data is sent; run: chmod go-w " +
                               file});
  }
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    errors.push_back(Error{file, 0, 0, "",
                           "refusing a configuration file owned by uid " +
                               std::to_string(st.st_uid) +
                               ", neither root nor the user fhir-edge "
                               "runs as (uid " +
                               std::to_string(::geteuid()) + ")"});
  }
  if (st.st_mode & S_IROTH) {
    warnings.push_back(Error{file, 0, 0, "",
                             "readable by all users (mode " + mode +
                                 "); it names ARNs, KMS keys "
                                 "and ${VAR} references: consider chmod o-r " +
                                 file + " (the service reads it as root or through its group)"});
  }
  return {errors, warnings};
}

}  // namespace

std::string format(const Error& e) {
  std::string s = e.file;
  if (e.line > 0) {
    s += ":" + std::to_string(e.line) + ":" + std::to_string(e.column);
  }
  s += ": ";
  if (!e.path.empty()) {
    s += e.path + ": ";
  }
  s += e.message;
  return s;
}

std::string format(const std::vector<Error>& errors) {
  std::string out;
  for (const auto& e : errors) {
    out += format(e) + "\n";
  }
  return out;
}

LoadResult load_config(const fs::path& path) {
  if (std::error_code ec; fs::is_directory(path, ec)) {
    LoadResult r;
    r.errors.push_back(Error{path.string(), 0, 0, "", "is a directory, not a configuration file"});
    return r;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    LoadResult r;
    r.errors.push_back(
        Error{path.string(), 0, 0, "", std::string("cannot read: ") + std::strerror(err)});
    return r;
  }
  // Read at most one byte past the limit: a config is small, and memory stays bounded even if
  // the path names something huge or endless (a device, a FIFO).
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  auto [perm_errors, perm_warnings] = check_permissions(path);
  LoadResult r = load(text, path.string(), path);
  if (!perm_errors.empty()) {
    r.config.reset();
    r.errors.insert(r.errors.begin(), perm_errors.begin(), perm_errors.end());
  }
  r.warnings.insert(r.warnings.begin(), perm_warnings.begin(), perm_warnings.end());
  return r;
}

LoadResult load_config_text(std::string_view yaml, std::string_view name) {
  return load(yaml, std::string(name), fs::path(name));
}

std::string_view to_string(CredentialSource s) {
  switch (s) {
    case CredentialSource::automatic:
      return "auto";
    case CredentialSource::env:
      return "env";
    case CredentialSource::profile:
      return "profile";
    case CredentialSource::process:
      return "process";
    case CredentialSource::imds:
      return "imds";
    case CredentialSource::container:
      return "container";
    case CredentialSource::systemd:
      return "systemd";
  }
  return "auto";
}

std::string_view to_string(ValidationLevel v) {
  switch (v) {
    case ValidationLevel::strict:
      return "strict";
    case ValidationLevel::structure_only:
      return "structure-only";
    case ValidationLevel::minimal:
      return "minimal";
  }
  return "structure-only";
}

std::string_view to_string(OnChanged o) {
  return o == OnChanged::reimport ? "reimport" : "hold";
}

std::string_view to_string(OnInvalid o) {
  switch (o) {
    case OnInvalid::reject_resource:
      return "reject-resource";
    case OnInvalid::reject_file:
      return "reject-file";
    case OnInvalid::fail_export:
      return "fail-export";
  }
  return "reject-resource";
}

std::string to_string(const AfterUpload& a) {
  switch (a.kind) {
    case AfterUploadKind::keep:
      return "keep";
    case AfterUploadKind::remove:
      return "delete";
    case AfterUploadKind::move:
      return "move:" + a.move_to.string();
  }
  return "keep";
}

}  // namespace fe::config
