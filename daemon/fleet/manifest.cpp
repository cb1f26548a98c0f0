#include "fleet/manifest.hpp"

#include <simdjson.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <random>

#include "common/json_writer.hpp"
#include "fleet/s3_cas.hpp"

namespace fe::fleet {

std::string manifest_key(std::string_view prefix, std::string_view fleet) {
  std::string p(prefix);
  while (!p.empty() && p.back() == '/') p.pop_back();
  return (p.empty() ? "" : p + "/") + "fleet/" + std::string(fleet) + "/ready.json";
}

std::string ManifestDoc::to_json() const {
  json::Writer w;
  w.begin_object().field("version", version).key("entries").begin_array();
  for (const ManifestEntry& e : entries) {
    w.begin_object()
        .field("gateway", e.gateway)
        .field("export_id", e.export_id)
        .field("s3_uri", e.s3_uri)
        .field("datastore_id", e.datastore_id)
        .field("files", e.files)
        .field("bytes", e.bytes)
        .field("ready_at_ms", e.ready_at_ms);
    // The optional fields only when set (older readers and lists stay as they were).
    auto opt = [&](std::string_view k, const std::string& v) {
      if (!v.empty()) w.field(k, v);
    };
    opt("validation_level", e.validation_level);
    opt("role_arn", e.role_arn);
    opt("output_s3_uri", e.output_s3_uri);
    opt("output_kms_key_id", e.output_kms_key_id);
    opt("input_kms_key_id", e.input_kms_key_id);
    opt("batch", e.batch);
    w.end_object();
  }
  w.end_array().end_object();
  return std::move(w).str();
}

std::optional<ManifestDoc> ManifestDoc::parse(std::string_view json) {
  simdjson::dom::parser p;
  simdjson::dom::element root;
  if (p.parse(json.data(), json.size()).get(root)) return std::nullopt;
  ManifestDoc d;
  simdjson::dom::array arr;
  if (root["version"].get(d.version) || root["entries"].get(arr)) return std::nullopt;
  for (simdjson::dom::element el : arr) {
    ManifestEntry e;
    std::string_view sv;
    if (el["gateway"].get(sv)) return std::nullopt;
    e.gateway = sv;
    if (el["export_id"].get(sv)) return std::nullopt;
    e.export_id = sv;
    if (!el["s3_uri"].get(sv)) e.s3_uri = sv;
    if (!el["datastore_id"].get(sv)) e.datastore_id = sv;
    if (!el["validation_level"].get(sv)) e.validation_level = sv;
    if (!el["role_arn"].get(sv)) e.role_arn = sv;
    if (!el["output_s3_uri"].get(sv)) e.output_s3_uri = sv;
    if (!el["output_kms_key_id"].get(sv)) e.output_kms_key_id = sv;
    if (!el["input_kms_key_id"].get(sv)) e.input_kms_key_id = sv;
    if (!el["batch"].get(sv)) e.batch = sv;
    // Optional numbers: a missing one stays 0.
    if (el["files"].get(e.files)) e.files = 0;
    if (el["bytes"].get(e.bytes)) e.bytes = 0;
    if (el["ready_at_ms"].get(e.ready_at_ms)) e.ready_at_ms = 0;
    d.entries.push_back(std::move(e));
  }
  return d;
}

Manifest::Manifest(aws::S3Client& s3, boost::asio::io_context& io, std::string bucket,
                   std::string key, int max_attempts)
    : s3_(s3),
      io_(io),
      bucket_(std::move(bucket)),
      key_(std::move(key)),
      max_attempts_(max_attempts) {}

void Manifest::read(Done done) {
  cas_read(s3_, bucket_, key_, [key = key_, done = std::move(done)](CasRead r) {
    ManifestResult out;
    if (r.error) {
      out.error = r.error;
    } else if (!r.absent) {
      auto d = ManifestDoc::parse(r.body);
      if (d) {
        out.doc = std::move(*d);
      } else {
        aws::AwsError e;
        e.code = "FleetManifestUnreadable";
        e.message = key + " is not a fleet manifest";
        out.error = e;
      }
    }
    done(std::move(out));
  });
}

void Manifest::update(std::function<bool(ManifestDoc&)> change, Done done) {
  attempt(std::move(change), 0, std::move(done));
}

void Manifest::attempt(std::function<bool(ManifestDoc&)> change, int n, Done done) {
  cas_read(
      s3_, bucket_, key_,
      [this, change = std::move(change), n, done = std::move(done)](CasRead r) mutable {
        ManifestResult out;
        out.attempts = n;
        if (r.error) {
          out.error = r.error;
          return done(std::move(out));
        }
        if (!r.absent) {
          auto d = ManifestDoc::parse(r.body);
          if (!d) {
            aws::AwsError e;
            e.code = "FleetManifestUnreadable";
            e.message = key_ + " is not a fleet manifest";
            out.error = e;
            return done(std::move(out));
          }
          out.doc = std::move(*d);
        }
        ManifestDoc next = out.doc;
        if (!change(next)) return done(std::move(out));
        next.version = out.doc.version + 1;
        std::string body = next.to_json();
        if (body.size() > kMaxCasObjectBytes) {
          aws::AwsError e;
          e.code = "FleetManifestFull";
          e.message = key_ + " would pass " + std::to_string(kMaxCasObjectBytes) + " bytes";
          out.error = e;
          return done(std::move(out));
        }
        out.attempts = n + 1;
        cas_write(
            s3_, bucket_, key_, std::move(body),
            r.absent ? Condition::create_only : Condition::if_match, r.etag,
            [this, change = std::move(change), n, next = std::move(next), out = std::move(out),
             done = std::move(done)](CasWrite w) mutable {
              if (w.written) {
                out.written = true;
                out.doc = std::move(next);
                return done(std::move(out));
              }
              if (w.error) {
                out.error = w.error;
                return done(std::move(out));
              }
              // Refused: someone wrote in between (or our own write landed and its retry
              // was refused). Re-read and re-apply; change() sees the fresh list either
              // way.
              if (n + 1 >= max_attempts_) {
                out.contended = true;
                return done(std::move(out));
              }
              static thread_local std::mt19937 rng{std::random_device{}()};
              std::int64_t cap = std::min<std::int64_t>(50LL << std::min(n, 10), 2000);
              std::int64_t wait = std::uniform_int_distribution<std::int64_t>(0, cap)(rng);
              auto timer =
                  std::make_shared<boost::asio::steady_timer>(io_, std::chrono::milliseconds(wait));
              timer->async_wait([this, timer, change = std::move(change), n,
                                 done = std::move(done)](const boost::system::error_code&) mutable {
                attempt(std::move(change), n + 1, std::move(done));
              });
            });
      });
}

void Manifest::append(ManifestEntry entry, Done done) {
  update(
      [entry = std::move(entry)](ManifestDoc& d) {
        for (const ManifestEntry& e : d.entries)
          if (e.same_export(entry)) return false;
        d.entries.push_back(entry);
        return true;
      },
      std::move(done));
}

void Manifest::remove(std::vector<std::pair<std::string, std::string>> ids, Done done) {
  update(
      [ids = std::move(ids)](ManifestDoc& d) {
        auto before = d.entries.size();
        std::erase_if(d.entries, [&](const ManifestEntry& e) {
          return std::find(ids.begin(), ids.end(), std::make_pair(e.gateway, e.export_id)) !=
                 ids.end();
        });
        return d.entries.size() != before;
      },
      std::move(done));
}

}  // namespace fe::fleet
