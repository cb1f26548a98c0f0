#pragma once
// The journal's state machines: every state an export, a file and an upload part can be in, and
// the transitions between them. The journal refuses any transition not listed here, so a bug in a
// stage shows up as a clear error instead of a silently inconsistent journal.
//
// Export:   discovered → complete → spooling → spooled → uploading → uploaded → import_starting
//           → importing → imported | import_failed
//           uploaded → nothing_to_import (no file has a valid resource: no import object was
//           uploaded, so no job is started; DESIGN "an export with nothing valid to import starts
//           no job". Its report and rejects were uploaded before `uploaded`.)
//           any non-terminal state → parked (non-retryable error; resumed by unpark to the state it
//           was parked from) | failed (given up) | superseded (source changed after it was taken;
//           a new version of the export is taken instead).
//           imported, import_failed, nothing_to_import, failed and superseded are terminal: no
//           transition leaves them. The one way out is an operator's `fhir-edge retry`
//           (Journal::retry_export): import_failed (or imported, with --reimport) → uploaded with a
//           new import attempt, i.e. new ClientToken(s) and a new job; it is journaled as a "retry"
//           event. An import_failed export whose job(s) did import resources (COMPLETED_WITH_ERRORS
//           under import.min_imported_share, CANCEL_FAILED...) needs --reimport too; so does a job
//           that vanished or runs at another ValidationLevel (parked from importing, or from
//           import_starting once every job is known: --reimport starts a new attempt). Crash
//           recovery re-enters the same state (a stage is idempotent given the journal), so "redo"
//           is never a transition; spooling → complete is allowed to restart spooling from scratch
//           after a partial spool file was found.
// File:     pending → spooling → spooled → uploading → uploaded; spooling → pending (redo after a
//           crash); pending|spooling → rejected (on_invalid: reject-file); any → failed.
// Part:     pending → uploading → uploaded; uploading → pending (retry); pending → uploaded (the
//           server already had it, found by ListParts).
#include <optional>
#include <string_view>

namespace fe::journal {

enum class ExportState {
  discovered,
  complete,
  spooling,
  spooled,
  uploading,
  uploaded,
  import_starting,
  importing,
  imported,
  import_failed,
  nothing_to_import,
  parked,
  failed,
  superseded,
};

enum class FileState { pending, spooling, spooled, uploading, uploaded, rejected, failed };

enum class PartState { pending, uploading, uploaded };

// Which object a part belongs to: the plain NDJSON import object (byte ranges of the uncompressed
// data) or the archive copy (byte ranges of the .zst spool file).
enum class PartKind { import, archive };

std::string_view to_string(ExportState s);
std::string_view to_string(FileState s);
std::string_view to_string(PartState s);
std::string_view to_string(PartKind k);
std::optional<ExportState> parse_export_state(std::string_view s);
std::optional<FileState> parse_file_state(std::string_view s);
std::optional<PartState> parse_part_state(std::string_view s);
std::optional<PartKind> parse_part_kind(std::string_view s);

// True when the journal accepts from → to. Parked → X is allowed for every non-terminal X here;
// Journal::unpark additionally restricts it to the state the export was parked from.
bool allowed(ExportState from, ExportState to);
bool allowed(FileState from, FileState to);
bool allowed(PartState from, PartState to);

// Terminal export states: imported, import_failed, nothing_to_import, failed, superseded. Nothing
// but an operator's retry moves them (Journal::retry_export); compaction may delete them after a
// while.
bool is_terminal(ExportState s);

}  // namespace fe::journal
