// The CLI request mailbox (import/mailbox.hpp) with a real journal: a `retry` request is applied
// and finished, and the retried export continues through the right door (the importer's kick for
// states from `uploaded` on, ExportEvent::resumed before that); a `compact` request is finished;
// the timer picks requests up without a call.
#include "import/mailbox.hpp"

#include <gtest/gtest.h>

#include "temp_dir.hpp"

using namespace fe;
using journal::ExportState;

namespace {

struct Env {
  test::TempDir tmp{"fe-mailbox"};
  boost::asio::io_context io;
  std::optional<journal::Journal> jr;
  ExportEvents events;
  std::vector<std::int64_t> kicked, resumed;
  int changes = 0;
  std::shared_ptr<import::RequestMailbox> mb;

  explicit Env(std::chrono::milliseconds interval = std::chrono::milliseconds(0)) {
    jr.emplace(journal::Journal::open(tmp / "journal.db"));
    events.on(ExportEvent::resumed, [this](std::int64_t id) { resumed.push_back(id); });
    mb = std::make_shared<import::RequestMailbox>(import::RequestMailbox::Deps{
        io, *jr, &events, [this](std::int64_t id) { kicked.push_back(id); }, [this] { ++changes; },
        interval});
  }

  // An export parked from state `at`.
  std::pair<std::int64_t, std::string> parked_at(const std::string& name, ExportState at) {
    auto taken = jr->take_export("ehr", "/in/" + name, "sha256:" + name, name,
                                 {{"Patient.ndjson", journal::SourceIdentity{1, 1, 1, 1}}});
    for (auto st : {ExportState::complete, ExportState::spooling, ExportState::spooled,
                    ExportState::uploading, ExportState::uploaded}) {
      jr->set_export_state(taken.row.id, st);
      if (st == at) break;
    }
    jr->park_export(taken.row.id, "test");
    return {taken.row.id, taken.row.name};
  }

  journal::RequestRow request(std::int64_t id) {
    auto r = jr->request(id);
    if (!r) ADD_FAILURE() << "no request " << id;
    return r.value_or(journal::RequestRow{});
  }
};

}  // namespace

TEST(RequestMailbox, RetryOfAnUploadedExportKicksTheImporter) {
  Env env;
  auto [id, name] = env.parked_at("e1", ExportState::uploaded);
  auto req = env.jr->add_request("retry", name, "");
  EXPECT_EQ(env.mb->check(), 1u);
  EXPECT_EQ(env.jr->get_export(id).state, ExportState::uploaded);
  EXPECT_EQ(env.kicked, std::vector<std::int64_t>{id});
  EXPECT_TRUE(env.resumed.empty());
  EXPECT_EQ(env.changes, 1);
  EXPECT_TRUE(env.jr->pending_requests().empty());
  EXPECT_EQ(env.request(req).state, "done");
}

TEST(RequestMailbox, RetryBeforeUploadedEmitsResumed) {
  Env env;
  auto [id, name] = env.parked_at("e1", ExportState::uploading);
  env.jr->add_request("retry", name, "");
  EXPECT_EQ(env.mb->check(), 1u);
  EXPECT_EQ(env.resumed, std::vector<std::int64_t>{id});
  EXPECT_TRUE(env.kicked.empty());
}

TEST(RequestMailbox, RefusedRequestIsFinishedAsFailedAndNothingContinues) {
  Env env;
  auto req = env.jr->add_request("retry", "no-such-export", "");
  EXPECT_EQ(env.mb->check(), 1u);
  EXPECT_TRUE(env.kicked.empty());
  EXPECT_TRUE(env.resumed.empty());
  EXPECT_EQ(env.request(req).state, "refused");
  EXPECT_EQ(env.mb->check(), 0u);  // finished: not applied twice
}

TEST(RequestMailbox, TimerPicksUpRequests) {
  Env env(std::chrono::milliseconds(10));
  auto [id, name] = env.parked_at("e1", ExportState::uploaded);
  env.mb->arm();
  env.jr->add_request("retry", name, "");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (env.kicked.empty() && std::chrono::steady_clock::now() < deadline)
    env.io.run_one_for(std::chrono::milliseconds(50));
  EXPECT_EQ(env.kicked, std::vector<std::int64_t>{id});
  env.mb->stop();
}
