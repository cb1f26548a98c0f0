#include "fleet/batch_record.hpp"

#include <simdjson.h>

#include "common/json_writer.hpp"
#include "fleet/s3_cas.hpp"

namespace fe::fleet {

std::string fleet_dir(std::string_view prefix, std::string_view fleet) {
  std::string p(prefix);
  while (!p.empty() && p.back() == '/') p.pop_back();
  return (p.empty() ? "" : p + "/") + "fleet/" + std::string(fleet) + "/";
}

std::string batch_record_key(std::string_view prefix, std::string_view fleet,
                             std::string_view batch_id) {
  return fleet_dir(prefix, fleet) + "batches/" + std::string(batch_id) + ".json";
}

std::string batch_copy_prefix(std::string_view prefix, std::string_view fleet,
                              std::string_view batch_id) {
  return fleet_dir(prefix, fleet) + "batches/" + std::string(batch_id) + "/";
}

std::string member_pointer_key(std::string_view prefix, std::string_view fleet,
                               std::string_view gateway, std::string_view export_id) {
  return fleet_dir(prefix, fleet) + "members/" + std::string(gateway) + "/" +
         std::string(export_id) + ".json";
}

std::string new_batch_id() {
  return "fb-" + random_token();
}

std::string fleet_job_name(std::string_view fleet, std::string_view batch_id, std::size_t members) {
  std::string id(batch_id.substr(batch_id.starts_with("fb-") ? 3 : 0, 12));
  std::string tail = "-" + id + "-" + std::to_string(members);
  std::string head = "fleet-" + std::string(fleet);
  if (head.size() + tail.size() > 64) head.resize(64 - tail.size());
  return head + tail;
}

std::string BatchRecord::to_json() const {
  json::Writer w;
  w.begin_object()
      .field("batch_id", batch_id)
      .field("fleet", fleet)
      .field("holder", holder)
      .field("epoch", epoch)
      .field("client_token", client_token)
      .field("job_name", job_name)
      .field("input_uri", input_uri)
      .field("datastore_id", datastore_id)
      .field("validation_level", validation_level)
      .field("role_arn", role_arn)
      .field("output_s3_uri", output_s3_uri)
      .field("output_kms_key_id", output_kms_key_id)
      .key("members")
      .begin_array();
  for (const auto& m : members)
    w.begin_object()
        .field("gateway", m.gateway)
        .field("export_id", m.export_id)
        .field("s3_uri", m.s3_uri)
        .field("files", m.files)
        .field("bytes", m.bytes)
        .field("input_kms_key_id", m.input_kms_key_id)
        .end_object();
  w.end_array().field("job_id", job_id).field("job_status", job_status).key("outcome");
  if (outcome)
    w.begin_object()
        .field("job_status", outcome->job_status)
        .field("output_s3_uri", outcome->output_s3_uri)
        .field("validation_level", outcome->validation_level)
        .field("message", outcome->message)
        .end_object();
  else
    w.null();
  w.field("created_at_ms", created_at_ms).field("updated_at_ms", updated_at_ms).end_object();
  return std::move(w).str();
}

std::optional<BatchRecord> BatchRecord::parse(std::string_view json) {
  simdjson::dom::parser p;
  simdjson::dom::element root;
  if (p.parse(json.data(), json.size()).get(root)) return std::nullopt;
  BatchRecord r;
  auto str = [](simdjson::dom::element el, const char* k, std::string& out) {
    std::string_view sv;
    if (!el[k].get(sv)) out = sv;
  };
  str(root, "batch_id", r.batch_id);
  if (r.batch_id.empty()) return std::nullopt;
  str(root, "fleet", r.fleet);
  str(root, "holder", r.holder);
  if (root["epoch"].get(r.epoch)) r.epoch = 0;
  str(root, "client_token", r.client_token);
  str(root, "job_name", r.job_name);
  str(root, "input_uri", r.input_uri);
  str(root, "datastore_id", r.datastore_id);
  str(root, "validation_level", r.validation_level);
  str(root, "role_arn", r.role_arn);
  str(root, "output_s3_uri", r.output_s3_uri);
  str(root, "output_kms_key_id", r.output_kms_key_id);
  simdjson::dom::array arr;
  if (root["members"].get(arr)) return std::nullopt;
  for (simdjson::dom::element el : arr) {
    BatchMember m;
    str(el, "gateway", m.gateway);
    str(el, "export_id", m.export_id);
    str(el, "s3_uri", m.s3_uri);
    if (el["files"].get(m.files)) m.files = 0;
    if (el["bytes"].get(m.bytes)) m.bytes = 0;
    str(el, "input_kms_key_id", m.input_kms_key_id);
    r.members.push_back(std::move(m));
  }
  str(root, "job_id", r.job_id);
  str(root, "job_status", r.job_status);
  simdjson::dom::element oe;
  if (!root["outcome"].get(oe) && oe.is_object()) {
    BatchOutcome out;
    str(oe, "job_status", out.job_status);
    str(oe, "output_s3_uri", out.output_s3_uri);
    str(oe, "validation_level", out.validation_level);
    str(oe, "message", out.message);
    r.outcome = std::move(out);
  }
  if (root["created_at_ms"].get(r.created_at_ms)) r.created_at_ms = 0;
  if (root["updated_at_ms"].get(r.updated_at_ms)) r.updated_at_ms = 0;
  return r;
}

}  // namespace fe::fleet
