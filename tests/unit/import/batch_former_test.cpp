// The batch former on its own (issue 16 item 2): grouping keys, the caps (exports, files, bytes),
// the wait of the first export, FIFO order and batches of one.
#include "import/batch_former.hpp"

#include <gtest/gtest.h>

namespace fe::import {
namespace {

using Clock = BatchFormer::Clock;
using Ids = std::vector<std::int64_t>;
using namespace std::chrono_literals;

const Clock::time_point t0 = Clock::time_point{} + 1000h;
const std::string kA = batch_group_key("ds1", "strict", "arn:role/a", "s3://out/", "k");
const std::string kB = batch_group_key("ds1", "minimal", "arn:role/a", "s3://out/", "k");

BatchCandidate cand(std::int64_t id, std::string group = kA, std::int64_t files = 1,
                    std::int64_t bytes = 100, Clock::time_point at = t0) {
  BatchCandidate c;
  c.id = id;
  c.lane = "ds1";
  c.group = std::move(group);
  c.files = files;
  c.bytes = bytes;
  c.ready_at = at;
  return c;
}

BatchCaps caps(std::size_t exports, std::int64_t files = 10000, std::int64_t bytes = 0,
               std::chrono::milliseconds wait = 0ms) {
  return BatchCaps{exports, files, bytes, wait};
}

TEST(BatchFormer, GroupKeyDiffersInEveryField) {
  auto k = batch_group_key("d", "l", "r", "o", "k");
  EXPECT_EQ(k, batch_group_key("d", "l", "r", "o", "k"));
  EXPECT_NE(k, batch_group_key("x", "l", "r", "o", "k"));
  EXPECT_NE(k, batch_group_key("d", "x", "r", "o", "k"));
  EXPECT_NE(k, batch_group_key("d", "l", "x", "o", "k"));
  EXPECT_NE(k, batch_group_key("d", "l", "r", "x", "k"));
  EXPECT_NE(k, batch_group_key("d", "l", "r", "o", "x"));
  // No concatenation ambiguity between neighbouring fields.
  EXPECT_NE(batch_group_key("ab", "c", "r", "o", "k"), batch_group_key("a", "bc", "r", "o", "k"));
}

TEST(BatchFormer, BatchingOffGivesOneExportPerJobInOrder) {
  BatchFormer f(caps(1));
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(f.add(cand(i)));
  EXPECT_FALSE(f.add(cand(2)));  // already waiting
  EXPECT_EQ(f.take("ds1", t0), Ids{1});
  EXPECT_EQ(f.take("ds1", t0), Ids{2});
  EXPECT_EQ(f.take("ds1", t0), Ids{3});
  EXPECT_FALSE(f.take("ds1", t0));
  EXPECT_EQ(f.waiting(), 0u);
}

TEST(BatchFormer, WaitingExportsOfOneGroupGoIntoOneBatch) {
  BatchFormer f(caps(100));
  for (int i = 1; i <= 5; ++i) f.add(cand(i));
  EXPECT_EQ(f.take("ds1", t0), (Ids{1, 2, 3, 4, 5}));
  EXPECT_FALSE(f.take("ds1", t0));
  EXPECT_FALSE(f.take("other-lane", t0));
}

TEST(BatchFormer, OtherGroupsWaitForTheirOwnBatchAndKeepTheirPlace) {
  BatchFormer f(caps(100));
  f.add(cand(1, kA));
  f.add(cand(2, kB));
  f.add(cand(3, kA));
  f.add(cand(4, kB));
  EXPECT_EQ(f.take("ds1", t0), (Ids{1, 3}));
  EXPECT_EQ(f.take("ds1", t0), (Ids{2, 4}));
}

TEST(BatchFormer, MaxExportsCapsABatch) {
  BatchFormer f(caps(2));
  for (int i = 1; i <= 5; ++i) f.add(cand(i));
  EXPECT_EQ(f.take("ds1", t0), (Ids{1, 2}));
  EXPECT_EQ(f.take("ds1", t0), (Ids{3, 4}));
  EXPECT_EQ(f.take("ds1", t0), (Ids{5}));
}

TEST(BatchFormer, FileCapClosesTheBatchAtTheFirstExportThatDoesNotFit) {
  BatchFormer f(caps(100, /*files=*/10000));
  f.add(cand(1, kA, 6000));
  f.add(cand(2, kA, 3000));
  f.add(cand(3, kA, 2000));  // 11,000 with it: closes the batch
  f.add(cand(4, kA, 500));   // would fit, but may not overtake 3
  EXPECT_EQ(f.take("ds1", t0), (Ids{1, 2}));
  EXPECT_EQ(f.take("ds1", t0), (Ids{3, 4}));
}

TEST(BatchFormer, ByteCapClosesTheBatch) {
  BatchFormer f(caps(100, 10000, /*bytes=*/1000));
  f.add(cand(1, kA, 1, 400));
  f.add(cand(2, kA, 1, 500));
  f.add(cand(3, kA, 1, 200));
  EXPECT_EQ(f.take("ds1", t0), (Ids{1, 2}));
  EXPECT_EQ(f.take("ds1", t0), (Ids{3}));
}

TEST(BatchFormer, AnExportOverACapOrNotBatchableGoesAlone) {
  BatchFormer f(caps(100, 10000, 1000));
  f.add(cand(1, kA, 1, 5000));  // over the byte cap alone
  f.add(cand(2, kA, 12000));    // over the file cap alone (split into parts)
  auto c = cand(3);
  c.batchable = false;
  f.add(c);
  f.add(cand(4));
  f.add(cand(5));
  EXPECT_EQ(f.take("ds1", t0), Ids{1});
  EXPECT_EQ(f.take("ds1", t0), Ids{2});
  EXPECT_EQ(f.take("ds1", t0), Ids{3});
  EXPECT_EQ(f.take("ds1", t0), (Ids{4, 5}));
}

TEST(BatchFormer, FirstExportWaitsAtMostMaxWait) {
  BatchFormer f(caps(3, 10000, 0, 10min));
  f.add(cand(1, kA, 1, 1, t0));
  EXPECT_FALSE(f.take("ds1", t0 + 1min));  // not full, not waited long enough
  EXPECT_EQ(f.due_at("ds1"), t0 + 10min);
  f.add(cand(2, kA, 1, 1, t0 + 5min));
  EXPECT_FALSE(f.take("ds1", t0 + 9min));
  // The wait counts from the first export, not the last.
  EXPECT_EQ(f.take("ds1", t0 + 10min), (Ids{1, 2}));
  EXPECT_FALSE(f.due_at("ds1"));
}

TEST(BatchFormer, AFullBatchIsDueAtOnce) {
  BatchFormer f(caps(2, 10000, 0, 1h));
  f.add(cand(1));
  EXPECT_FALSE(f.take("ds1", t0));
  f.add(cand(2));
  EXPECT_LE(*f.due_at("ds1"), t0);
  EXPECT_EQ(f.take("ds1", t0), (Ids{1, 2}));
}

TEST(BatchFormer, RemovedExportsAreNotBatched) {
  BatchFormer f(caps(100));
  f.add(cand(1));
  f.add(cand(2));
  f.add(cand(3));
  EXPECT_TRUE(f.remove(2));
  EXPECT_FALSE(f.remove(2));
  EXPECT_FALSE(f.contains(2));
  EXPECT_EQ(f.take("ds1", t0), (Ids{1, 3}));
}

TEST(BatchFormer, LanesAreIndependent) {
  BatchFormer f(caps(100));
  auto a = cand(1);
  auto b = cand(2);
  b.lane = "ds2";
  f.add(a);
  f.add(b);
  EXPECT_EQ(f.lanes(), (std::vector<std::string>{"ds1", "ds2"}));
  EXPECT_EQ(f.waiting("ds2"), 1u);
  EXPECT_EQ(f.take("ds2", t0), Ids{2});
  EXPECT_EQ(f.take("ds1", t0), Ids{1});
}

}  // namespace
}  // namespace fe::import
