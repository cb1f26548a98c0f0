// Fault injection spec and its reproducibility.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "faults.hpp"

using namespace fe::hll;

namespace {

const std::vector<std::string> kOps = {"PutObject", "UploadPart", "StartFHIRImportJob",
                                       "GetObject"};

std::vector<std::string> run(Faults f, const std::vector<std::string>& calls) {
  std::vector<std::string> out;
  for (const auto& op : calls) {
    FaultDecision d = f.decide(op);
    std::string s;
    for (const auto& n : d.names) s += n + ";";
    out.push_back(s);
  }
  return out;
}

TEST(Faults, ParsesTheDocumentedSpec) {
  Faults f = Faults::parse(
      "UploadPart:500=0.1,UploadPart:SlowDown=0.05,StartFHIRImportJob:ThrottlingException=0.2,"
      "*:drop=0.02,*:slow=0.05:2s,*:skew=0.1:20m,seed=42",
      kOps);
  ASSERT_EQ(f.rules().size(), 6u);
  EXPECT_EQ(f.seed(), 42u);
  EXPECT_EQ(f.rules()[4].kind, FaultKind::slow);
  EXPECT_EQ(f.rules()[4].param, std::chrono::seconds(2));
  EXPECT_EQ(f.rules()[5].param, std::chrono::minutes(20));
}

TEST(Faults, RejectsBadRulesWithTheRuleNamed) {
  auto message = [](const std::string& spec) {
    try {
      Faults::parse(spec, kOps);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message("UplodPart:500=0.1").find("unknown operation 'UplodPart'"), std::string::npos);
  EXPECT_NE(message("UploadPart:404=0.1").find("unknown kind"), std::string::npos);
  EXPECT_NE(message("UploadPart:500=1.5").find("within [0,1]"), std::string::npos);
  EXPECT_NE(message("UploadPart:slow=0.1").find("needs a duration"), std::string::npos);
  EXPECT_NE(message("UploadPart:slow=0.1:2").find("unit"), std::string::npos);
  EXPECT_NE(message("UploadPart:500=@0").find("@N"), std::string::npos);
  EXPECT_NE(message("seed=x").find("seed"), std::string::npos);
  EXPECT_NE(message("UploadPart=0.1").find("expected"), std::string::npos);
}

TEST(Faults, SameSeedSameDecisionsWhateverTheInterleaving) {
  Faults f = Faults::parse("UploadPart:500=0.3,PutObject:drop=0.3,seed=7", kOps);
  std::vector<std::string> a_calls, b_calls;
  for (int i = 0; i < 50; ++i) a_calls.push_back("UploadPart");
  for (int i = 0; i < 50; ++i) b_calls.push_back(i % 2 ? "UploadPart" : "PutObject");
  std::vector<std::string> a = run(f, a_calls);
  std::vector<std::string> b = run(f, b_calls);
  // The n-th UploadPart gets the same decision in both runs.
  std::vector<std::string> a_up(a.begin(), a.begin() + 25), b_up;
  for (size_t i = 0; i < b.size(); ++i)
    if (b_calls[i] == "UploadPart") b_up.push_back(b[i]);
  EXPECT_EQ(a_up, b_up);
  EXPECT_EQ(run(f, a_calls), a) << "a fresh copy with the same seed replays the same faults";
  Faults g = Faults::parse("UploadPart:500=0.3,PutObject:drop=0.3,seed=8", kOps);
  EXPECT_NE(run(g, a_calls), a) << "another seed gives another sequence";
}

TEST(Faults, RateIsHonouredAndNthIsExact) {
  Faults f = Faults::parse("PutObject:500=0.1,GetObject:SlowDown=@3,seed=1", kOps);
  int hits = 0;
  for (int i = 0; i < 10000; ++i)
    if (f.decide("PutObject").error) ++hits;
  EXPECT_GT(hits, 800);
  EXPECT_LT(hits, 1200);
  std::vector<bool> fired;
  for (int i = 0; i < 5; ++i) fired.push_back(f.decide("GetObject").error);
  EXPECT_EQ(fired, (std::vector<bool>{false, false, true, false, false}));
}

TEST(Faults, OneOutcomePerRequestButDelaysCombine) {
  Faults f = Faults::parse("PutObject:500=1,PutObject:drop=1,*:slow=1:250ms,*:skew=1:20m", kOps);
  FaultDecision d = f.decide("PutObject");
  EXPECT_TRUE(d.error);
  EXPECT_EQ(d.kind, FaultKind::internal_error);
  EXPECT_FALSE(d.drop) << "the first matching outcome wins";
  EXPECT_EQ(d.delay, std::chrono::milliseconds(250));
  EXPECT_EQ(d.skew, std::chrono::minutes(20));
  FaultDecision g = f.decide("GetObject");
  EXPECT_FALSE(g.error);
  EXPECT_EQ(g.delay, std::chrono::milliseconds(250));
}

TEST(Faults, ConflictAndAccessDeniedKindsFireOnTheirCalls) {
  Faults f = Faults::parse(
      "StartFHIRImportJob:ConflictException=@1,StartFHIRImportJob:AccessDeniedException=@3,"
      "PutObject:403=@2,GetObject:409=1",
      kOps);
  ASSERT_EQ(f.rules().size(), 4u);
  EXPECT_EQ(f.rules()[0].kind, FaultKind::conflict);
  EXPECT_EQ(f.rules()[1].kind, FaultKind::access_denied);
  EXPECT_EQ(f.rules()[2].kind, FaultKind::access_denied);
  EXPECT_EQ(f.rules()[3].kind, FaultKind::conflict);
  EXPECT_EQ(run(f, {"StartFHIRImportJob", "StartFHIRImportJob", "StartFHIRImportJob",
                    "StartFHIRImportJob"}),
            (std::vector<std::string>{"ConflictException;", "", "AccessDenied;", ""}));
  auto d = f.decide("GetObject");
  EXPECT_TRUE(d.error);
  EXPECT_EQ(d.kind, FaultKind::conflict);
}

TEST(Faults, Durations) {
  EXPECT_EQ(parse_duration("250ms"), std::chrono::milliseconds(250));
  EXPECT_EQ(parse_duration("1.5s"), std::chrono::milliseconds(1500));
  EXPECT_EQ(parse_duration("2m"), std::chrono::minutes(2));
  EXPECT_EQ(parse_duration("1h"), std::chrono::hours(1));
  EXPECT_THROW(parse_duration("5"), std::invalid_argument);
  EXPECT_THROW(parse_duration("-1s"), std::invalid_argument);
}

}  // namespace
