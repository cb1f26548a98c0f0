#include "journal/states.hpp"

#include <array>
#include <utility>

namespace fe::journal {
namespace {

constexpr std::array<std::pair<ExportState, std::string_view>, 14> kExportNames{{
    {ExportState::discovered, "discovered"},
    {ExportState::complete, "complete"},
    {ExportState::spooling, "spooling"},
    {ExportState::spooled, "spooled"},
    {ExportState::uploading, "uploading"},
    {ExportState::uploaded, "uploaded"},
    {ExportState::import_starting, "import_starting"},
    {ExportState::importing, "importing"},
    {ExportState::imported, "imported"},
    {ExportState::import_failed, "import_failed"},
    {ExportState::nothing_to_import, "nothing_to_import"},
    {ExportState::parked, "parked"},
    {ExportState::failed, "failed"},
    {ExportState::superseded, "superseded"},
}};
constexpr std::array<std::pair<FileState, std::string_view>, 7> kFileNames{{
    {FileState::pending, "pending"},
    {FileState::spooling, "spooling"},
    {FileState::spooled, "spooled"},
    {FileState::uploading, "uploading"},
    {FileState::uploaded, "uploaded"},
    {FileState::rejected, "rejected"},
    {FileState::failed, "failed"},
}};
constexpr std::array<std::pair<PartState, std::string_view>, 3> kPartNames{{
    {PartState::pending, "pending"},
    {PartState::uploading, "uploading"},
    {PartState::uploaded, "uploaded"},
}};

template <typename E, size_t N>
std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& table, E e) {
  for (const auto& [k, v] : table)
    if (k == e) return v;
  return "unknown";
}
template <typename E, size_t N>
std::optional<E> parse(const std::array<std::pair<E, std::string_view>, N>& table,
                       std::string_view s) {
  for (const auto& [k, v] : table)
    if (v == s) return k;
  return std::nullopt;
}

}  // namespace

std::string_view to_string(ExportState s) {
  return name_of(kExportNames, s);
}
std::string_view to_string(FileState s) {
  return name_of(kFileNames, s);
}
std::string_view to_string(PartState s) {
  return name_of(kPartNames, s);
}
std::string_view to_string(PartKind k) {
  return k == PartKind::import ? "import" : "archive";
}
std::optional<ExportState> parse_export_state(std::string_view s) {
  return parse(kExportNames, s);
}
std::optional<FileState> parse_file_state(std::string_view s) {
  return parse(kFileNames, s);
}
std::optional<PartState> parse_part_state(std::string_view s) {
  return parse(kPartNames, s);
}
std::optional<PartKind> parse_part_kind(std::string_view s) {
  if (s == "import") return PartKind::import;
  if (s == "archive") return PartKind::archive;
  return std::nullopt;
}

bool is_terminal(ExportState s) {
  return s == ExportState::imported || s == ExportState::import_failed ||
         s == ExportState::nothing_to_import || s == ExportState::failed ||
         s == ExportState::superseded;
}

bool allowed(ExportState from, ExportState to) {
  using S = ExportState;
  if (is_terminal(from)) return false;
  // Every live export can be parked, failed or superseded (parked → parked is not a transition).
  if (to == S::failed || to == S::superseded) return true;
  if (to == S::parked) return from != S::parked;
  if (from == S::parked) return !is_terminal(to) && to != S::discovered;
  switch (from) {
    case S::discovered:
      return to == S::complete;
    case S::complete:
      return to == S::spooling;
    case S::spooling:
      return to == S::spooled || to == S::complete;
    case S::spooled:
      return to == S::uploading;
    case S::uploading:
      return to == S::uploaded;
    case S::uploaded:
      return to == S::import_starting || to == S::nothing_to_import;
    case S::import_starting:
      return to == S::importing || to == S::import_failed;
    case S::importing:
      return to == S::imported || to == S::import_failed;
    default:
      return false;
  }
}

bool allowed(FileState from, FileState to) {
  using S = FileState;
  if (from == S::uploaded || from == S::rejected || from == S::failed) return false;
  if (to == S::failed) return true;
  switch (from) {
    case S::pending:
      return to == S::spooling || to == S::rejected;
    case S::spooling:
      return to == S::spooled || to == S::pending || to == S::rejected;
    case S::spooled:
      return to == S::uploading;
    case S::uploading:
      return to == S::uploaded;
    default:
      return false;
  }
}

bool allowed(PartState from, PartState to) {
  using S = PartState;
  switch (from) {
    case S::pending:
      return to == S::uploading || to == S::uploaded;
    case S::uploading:
      return to == S::uploaded || to == S::pending;
    case S::uploaded:
      return false;
  }
  return false;
}

}  // namespace fe::journal
