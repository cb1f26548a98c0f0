#pragma once
// Parsers for the two completion documents a bulk-data client leaves in an export directory.
// Both read with a size cap, open with O_NOFOLLOW, and use simdjson.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace fe::watch {

// FHIR Bulk Data manifest: {"transactionTime","request","output":[{"type","url"}...], ...}.
struct BulkManifest {
  std::string transaction_time;
  std::string request;
  std::vector<std::string> files;  // last path segment of each output[].url (query stripped)
};

struct ManifestResult {
  std::optional<BulkManifest> manifest;
  std::string error;  // "FILE: $.output[2].url: expected a string" when manifest is empty
};

ManifestResult parse_bulk_manifest(const std::filesystem::path& file);
ManifestResult parse_bulk_manifest_text(std::string_view json, std::string_view name);

// True when the last non-empty line of a bulk-data client log (e.g. log.ndjson written by the
// SMART bulk-data client) is an event with "eventId":"export_complete". Reads only the tail.
// `error` is set (and false returned) when the last line is not valid JSON.
bool client_log_complete(const std::filesystem::path& file, std::string* error = nullptr);

}  // namespace fe::watch
