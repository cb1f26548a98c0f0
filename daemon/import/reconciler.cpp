// Streams one job's outputs into an ImportOutcome (contract in reconciler.hpp).
#include "import/reconciler.hpp"

#include <simdjson.h>

#include <algorithm>

#include "common/json_number.hpp"
#include "import/failure_line.hpp"

namespace fe::import {

namespace {

std::string cut(std::string_view s, std::size_t n) {
  if (s.size() <= n) return std::string(s);
  return std::string(s.substr(0, n)) + "...";
}

Manifest parse_manifest(simdjson::dom::element m) {
  auto i64 = [&](const char* k) { return json::number_i64(m, k); };
  auto dbl = [&](const char* k) { return json::number_f64(m, k); };
  Manifest out;
  out.present = true;
  out.scanned_files = i64("numberOfScannedFiles");
  out.files_imported = i64("numberOfFilesImported");
  out.resources_scanned = i64("numberOfResourcesScanned");
  out.resources_imported = i64("numberOfResourcesImportedSuccessfully");
  out.customer_errors = i64("numberOfResourcesWithCustomerError");
  out.server_errors = i64("numberOfResourcesWithServerError");
  out.scanned_mb = dbl("sizeOfScannedFilesInMB");
  out.imported_mb = dbl("sizeOfDataImportedSuccessfullyInMB");
  return out;
}

// One run: the input, the outcome so far, and the steps manifest → FAILURE/ → SUCCESS/ → done.
struct Run : std::enable_shared_from_this<Run> {
  OutputReader& reader;
  ReconcileInput in;
  ReconcileLimits lim;
  std::function<bool()> live;
  Reconciler::Done done;
  ImportOutcome out;

  Run(OutputReader& r, ReconcileInput i, ReconcileLimits l, std::function<bool()> lv,
      Reconciler::Done d)
      : reader(r), in(std::move(i)), lim(l), live(std::move(lv)), done(std::move(d)) {}

  bool alive() const { return !live || live(); }

  void add_error(const std::string& e) {
    out.output_error += (out.output_error.empty() ? "" : "; ") + e;
  }

  void read_manifest() {
    auto body = std::make_shared<std::string>();
    aws::GetObjectRequest g;
    g.bucket = in.bucket;
    g.key = in.dir + "manifest.json";
    std::size_t cap = 1 << 20;  // a manifest is a few hundred bytes; never hold more than 1 MiB
    g.sink = [body, cap](std::string_view chunk) {
      if (body->size() + chunk.size() > cap) return false;
      body->append(chunk);
      return true;
    };
    auto self = shared_from_this();
    reader.get_object(std::move(g), [self, body](aws::S3Result<aws::GetObjectResult> r) {
      if (!self->alive()) return;
      self->on_manifest(*body, std::move(r));
    });
  }

  void on_manifest(const std::string& body, aws::S3Result<aws::GetObjectResult> r) {
    if (!r.ok()) {
      if (r.error->retryable()) {
        out.retry_later = r.describe();
        return done(std::move(out));
      }
      // A FAILED job may have written no manifest; everything else is still reconciled.
      out.output_error = "manifest.json: " + r.describe();
    } else {
      simdjson::dom::parser p;
      simdjson::dom::element m;
      if (p.parse(body).get(m))
        out.output_error = "manifest.json is not valid JSON";
      else
        out.manifest = parse_manifest(m);
    }
    list("FAILURE/", "");
  }

  // Lists one page of <dir><kind> and reads its objects one at a time.
  void list(std::string kind, std::string continuation) {
    aws::ListObjectsRequest q;
    q.bucket = in.bucket;
    q.prefix = in.dir + kind + in.only;
    q.continuation_token = std::move(continuation);
    auto self = shared_from_this();
    reader.list_objects_v2(q, [self, kind](aws::S3Result<aws::ListObjectsResult> r) {
      if (!self->alive()) return;
      if (!r.ok()) {
        self->add_error(r.describe());
        return self->next_kind(kind);
      }
      self->read_object(kind, std::make_shared<aws::ListObjectsResult>(std::move(*r.value)), 0);
    });
  }

  void next_kind(const std::string& kind) {
    if (kind == "FAILURE/" && in.read_success) return list("SUCCESS/", "");
    finish();
  }

  void finish() {
    out.read_success = in.read_success;
    out.batch_member = !in.only.empty();
    if (!in.read_success)
      for (const auto& [rel, src] : in.sources) {
        auto& fc = out.files[rel];
        fc.imported = std::max<std::int64_t>(0, src.resources_valid - fc.failed);
        if (out.batch_member) out.success_lines += fc.imported;  // counted, not read
      }
    done(std::move(out));
  }

  void on_line(const std::string& rel, bool failure, std::string_view line, bool whole) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos && whole) return;
    auto& fc = out.files[rel];
    if (!failure) {
      ++fc.imported;
      ++out.success_lines;
      return;
    }
    ++fc.failed;
    ++out.failure_lines;
    if (out.reasons.size() >= lim.max_reasons) return;
    out.reasons.push_back(Reconciler::failure_reason(rel, line, whole, in, lim.max_reason_chars));
  }

  void read_object(std::string kind, std::shared_ptr<aws::ListObjectsResult> page, std::size_t i) {
    if (i >= page->objects.size()) {
      if (page->is_truncated && !page->next_continuation_token.empty())
        return list(kind, page->next_continuation_token);
      return next_kind(kind);
    }
    const auto& obj = page->objects[i];
    std::string rel = obj.key.substr(std::min(obj.key.size(), in.dir.size() + kind.size()));
    bool failure = kind == "FAILURE/";
    // Streamed line by line: only the current partial line is held (cut at max_line_bytes).
    struct LineState {
      std::string partial;
      bool overlong = false;
    };
    auto ls = std::make_shared<LineState>();
    auto self = shared_from_this();
    std::size_t max_line = lim.max_line_bytes;
    aws::GetObjectRequest g;
    g.bucket = in.bucket;
    g.key = obj.key;
    g.sink = [self, ls, rel, failure, max_line](std::string_view chunk) {
      while (!chunk.empty()) {
        auto nl = chunk.find('\n');
        std::string_view piece = chunk.substr(0, nl);
        if (!ls->overlong) {
          if (ls->partial.size() + piece.size() > max_line) {
            ls->overlong = true;
            ls->partial.clear();
          } else {
            ls->partial.append(piece);
          }
        }
        if (nl == std::string_view::npos) break;
        self->on_line(rel, failure, ls->partial, !ls->overlong);
        ls->partial.clear();
        ls->overlong = false;
        chunk.remove_prefix(nl + 1);
      }
      return true;
    };
    reader.get_object(std::move(g), [self, kind, page, i, ls, rel,
                                     failure](aws::S3Result<aws::GetObjectResult> r) {
      if (!self->alive()) return;
      if (!r.ok())
        self->add_error(r.describe());
      else if (!ls->partial.empty() || ls->overlong)
        self->on_line(rel, failure, ls->partial, !ls->overlong);  // no final newline
      self->read_object(kind, page, i + 1);
    });
  }
};

}  // namespace

void Reconciler::start(OutputReader& reader, ReconcileInput input, ReconcileLimits limits,
                       std::function<bool()> live, Done done) {
  auto run =
      std::make_shared<Run>(reader, std::move(input), limits, std::move(live), std::move(done));
  run->read_manifest();
}

std::string Reconciler::failure_reason(const std::string& rel, std::string_view line, bool whole,
                                       const ReconcileInput& input, std::size_t max_reason_chars) {
  std::string reason = rel + ": ";
  simdjson::dom::parser p;
  simdjson::dom::element oo;
  if (!whole) {
    reason += "failure record longer than the line limit (not parsed; see the FAILURE output)";
  } else if (p.parse(line).get(oo)) {
    reason += cut(line, max_reason_chars);
  } else {
    simdjson::dom::array issues;
    simdjson::dom::element issue;
    std::string_view diag, expr;
    if (!oo["issue"].get_array().get(issues))
      for (auto is : issues) {
        if (is["diagnostics"].get_string().get(diag)) continue;
        issue = is;
        simdjson::dom::array ex;
        if (!is["expression"].get_array().get(ex))
          for (auto x : ex) {
            if (x.get_string().get(expr)) expr = {};
            break;
          }
        break;
      }
    reason += diag.empty() ? std::string(line) : std::string(diag);
    if (!expr.empty()) reason += " (at " + std::string(expr) + ")";
    // HealthLake numbers the line in the import object (valid lines only); the operator needs the
    // source file's line.
    auto src = input.sources.find(rel);
    std::int64_t at = diag.empty() ? 0 : failure_import_line(issue, diag);
    if (at > 0 && src != input.sources.end() && input.source_line) {
      std::string msg(strip_object_position(diag, at));
      if (!expr.empty()) msg += " (at " + std::string(expr) + ")";
      reason =
          source_position_reason(src->second.name, input.source_line(src->second.id, at), at, msg);
    }
  }
  return cut(reason, max_reason_chars);
}

}  // namespace fe::import
