#pragma once
// The hand-off between stages (issue 14). Stages are peers on the control thread: a stage that
// has finished its part of an export emits an event, and the composition root (daemon/app)
// subscribes the stage that goes on. No stage holds or calls another, so control never runs back
// up the house (the importer used to call the pipeline on `imported` and on `resumed`).
//
//   uploaded   upload → import           every import object of the export is in S3 (journal
//                                        `uploaded`; archive copies, rejects and report.json
//                                        may still be uploading: pipeline/upload_stage.hpp)
//   imported   import → housekeeping     the export reached `imported`: after_upload is applied
//                                        to its source and spool retention runs
//   resumed    import (the CLI request   `fhir-edge retry` unparked an export to a state before
//              mailbox) → ingest         `uploaded`: ingest continues it now, not at next start
//
// The event carries only the export's journal id: the journal is the record of what happened,
// and a handler reads what it needs from it. An event is a wake-up, not a promise: a crash
// between a journal write and its event loses nothing, because every stage resumes from the
// journal at start.
//
// Threading: emit() and every handler run on the control thread. Handlers run synchronously,
// in subscription order, inside emit(); a handler may emit further events. A handler subscribed
// while an event is being delivered first runs at the next emit.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace fe {

enum class ExportEvent { uploaded, imported, resumed };

class ExportEvents {
 public:
  using Handler = std::function<void(std::int64_t export_id)>;

  void on(ExportEvent event, Handler handler) {
    handlers_[index(event)].push_back(std::move(handler));
  }

  void emit(ExportEvent event, std::int64_t export_id) const {
    // A copy: a handler may subscribe (grow the vector) while it runs.
    const std::vector<Handler> handlers = handlers_[index(event)];
    for (const auto& h : handlers) h(export_id);
  }

  std::size_t subscribers(ExportEvent event) const { return handlers_[index(event)].size(); }

 private:
  static constexpr std::size_t index(ExportEvent e) { return static_cast<std::size_t>(e); }
  std::array<std::vector<Handler>, 3> handlers_;
};

}  // namespace fe
