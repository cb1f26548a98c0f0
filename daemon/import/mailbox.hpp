#pragma once
// The CLI request mailbox (docs/import.md "requests"): `fhir-edge retry` and `fhir-edge journal
// compact` run as separate processes while the daemon holds the journal's writer lock, so they
// queue a row in the journal's `requests` table and the daemon applies it. The mailbox looks for
// pending requests at check() (the importer calls it at resume()) and every `interval`, applies
// each one (Journal::apply_request), then records its result (finish_request) so the CLI, which
// polls the row, can report it. A request that throws is finished as failed with the message.
//
// A retried export continues at once:
//   uploaded, import_starting, importing  → `continue_import` (the importer's kick)
//   any earlier state (parked before the upload finished) → ExportEvent::resumed on the hub, which
//                                            the pipeline (ingest/upload) subscribes; with no
//                                            subscriber a warning says it continues at the next
//                                            start.
// Threading: control thread only; the timer runs on `io`. stop() (or destruction) cancels it.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/export_events.hpp"
#include "journal/journal.hpp"

namespace fe::import {

class RequestMailbox : public std::enable_shared_from_this<RequestMailbox> {
 public:
  struct Deps {
    boost::asio::io_context& io;
    journal::Journal& journal;
    ExportEvents* events = nullptr;  // resumed is emitted here (null: none)
    std::function<void(std::int64_t export_id)> continue_import;
    std::function<void()> on_change;  // a request was applied (status may have changed)
    // How often pending requests are looked for; 0 = only at check().
    std::chrono::milliseconds interval = std::chrono::seconds(2);
  };

  explicit RequestMailbox(Deps deps);
  ~RequestMailbox();
  RequestMailbox(const RequestMailbox&) = delete;
  RequestMailbox& operator=(const RequestMailbox&) = delete;

  // Applies every pending request now. Returns how many were handled.
  std::size_t check();
  // check() every `interval` from now on (nothing when the interval is 0).
  void arm();
  void stop();

 private:
  void after_retry(const journal::ExportRow& e);

  Deps d_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  bool stopped_ = false;
};

}  // namespace fe::import
