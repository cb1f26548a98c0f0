// Every S3 key and job name (contract and the differences from DESIGN in s3_layout.hpp).
#include "import/s3_layout.hpp"

#include <algorithm>
#include <cstdio>

#include "common/hashing.hpp"
#include "watch/watcher.hpp"

namespace fe::import {

namespace {
std::string trim_slashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') s.remove_prefix(1);
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return std::string(s);
}
}  // namespace

std::string join_key(std::string_view prefix, std::string_view export_name, std::string_view mid,
                     std::string_view leaf) {
  std::string k;
  if (!prefix.empty()) {
    k += prefix;
    k += '/';
  }
  k += export_name;
  k += '/';
  k += mid;
  if (!leaf.empty()) {
    k += '/';
    k += leaf;
  }
  return k;
}

std::string ndjson_name(std::string_view file_name) {
  // A compressed source (.ndjson.gz, .ndjson.zst) is read decompressed: its import object is the
  // plain NDJSON, named as HealthLake documents its input (.ndjson).
  std::string n = watch::Watcher::plain_name(file_name);
  if (!n.ends_with(".ndjson")) n += ".ndjson";
  return n;
}

std::string import_key(std::string_view prefix, std::string_view export_name,
                       std::string_view file_name) {
  return join_key(prefix, export_name, "import", ndjson_name(file_name));
}
std::string archive_key(std::string_view prefix, std::string_view export_name,
                        std::string_view file_name) {
  return join_key(prefix, export_name, "archive", ndjson_name(file_name) + ".zst");
}
std::string rejected_key(std::string_view prefix, std::string_view export_name,
                         std::string_view file_name) {
  return join_key(prefix, export_name, "rejected", ndjson_name(file_name) + ".zst");
}
std::string report_key(std::string_view prefix, std::string_view export_name) {
  return join_key(prefix, export_name, "report.json", "");
}

std::string export_of_upload_key(std::string_view prefix, std::string_view key) {
  std::string_view rest = key;
  if (!prefix.empty()) {
    if (!rest.starts_with(prefix) || rest.size() <= prefix.size() || rest[prefix.size()] != '/')
      return {};
    rest.remove_prefix(prefix.size() + 1);
  }
  auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return {};
  auto mid = rest.substr(slash + 1);
  if (!mid.starts_with("import/") && !mid.starts_with("archive/")) return {};
  return std::string(rest.substr(0, slash));
}

std::string import_part_dir(std::int64_t file_index, std::int64_t files,
                            std::int64_t max_files_per_job) {
  if (max_files_per_job <= 0 || files <= max_files_per_job) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "part-%04lld/",
                static_cast<long long>(file_index / max_files_per_job + 1));
  return buf;
}

std::string import_input_uri(std::string_view bucket, std::string_view prefix,
                             std::string_view export_name) {
  std::string p = trim_slashes(prefix);
  return "s3://" + std::string(bucket) + "/" + (p.empty() ? "" : p + "/") +
         std::string(export_name) + "/import/";
}

std::string job_output_uri(std::string_view output_s3_uri, std::string_view datastore_id,
                           std::string_view job_id) {
  std::string base(output_s3_uri);
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/" + std::string(datastore_id) + "-FHIR_IMPORT-" + std::string(job_id) + "/";
}

std::pair<std::string, std::string> split_s3_uri(std::string_view uri) {
  if (!(uri.starts_with("s3://") || uri.starts_with("S3://"))) return {};
  uri.remove_prefix(5);
  auto slash = uri.find('/');
  if (slash == std::string_view::npos) return {std::string(uri), ""};
  return {std::string(uri.substr(0, slash)), trim_slashes(uri.substr(slash + 1))};
}

std::string job_name_for(std::string_view export_name) {
  std::string out;
  for (char c : export_name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              std::string_view("_.:/=+%@-").find(c) != std::string_view::npos;
    out += ok ? c : '_';
    if (out.size() == 64) break;
  }
  return out.empty() ? "export" : out;
}

std::string import_job_name(std::string_view export_name, int attempt, int part, int parts) {
  std::string suffix;
  if (parts > 1) suffix += ".part" + std::to_string(part);
  if (attempt > 1) suffix += ".retry" + std::to_string(attempt);
  // The suffix keeps jobs of one export apart (recovery matches by JobName): the base is cut,
  // never the suffix.
  std::string base = job_name_for(export_name);
  if (base.size() + suffix.size() > 64) base.resize(64 - suffix.size());
  return base + suffix;
}

std::string batch_client_token(const std::vector<std::string>& member_tokens) {
  std::string input = "import batch";
  for (const auto& t : member_tokens) {
    input += '\0';
    input += t;
  }
  const auto md = fe::sha256(input);
  return "fe-b" + fe::to_hex(md.data(), 24);
}

std::string batch_job_name(std::string_view batch_token, std::size_t members) {
  std::string_view hex = batch_token.substr(std::min<std::size_t>(4, batch_token.size()), 16);
  return "batch-" + std::string(hex) + "-" + std::to_string(members);
}

std::string batch_input_uri(std::string_view bucket, std::string_view prefix,
                            std::string_view batch_token) {
  std::string p = trim_slashes(prefix);
  return "s3://" + std::string(bucket) + "/" + (p.empty() ? "" : p + "/") + "batches/" +
         std::string(batch_token) + "/";
}

std::string batch_object_key(std::string_view prefix, std::string_view batch_token,
                             std::string_view export_name, std::string_view rel) {
  std::string p = trim_slashes(prefix);
  return (p.empty() ? "" : p + "/") + "batches/" + std::string(batch_token) + "/" +
         std::string(export_name) + "/" + std::string(rel);
}

}  // namespace fe::import
