// The logging module: plain lines on stderr unless JOURNAL_STREAM names stderr, then structured
// journald entries (checked on the wire, see journal_capture.hpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "journal_capture.hpp"
#include "log_capture.hpp"
#include "service/log.hpp"

namespace {

using ::testing::HasSubstr;

TEST(LogPlain, OneLinePerEntryWithFields) {
  unsetenv("JOURNAL_STREAM");
  fe::test::LogCapture err;
  fe::log::redetect_sink();
  fe::log::set_level(fe::log::Level::info);
  EXPECT_FALSE(fe::log::journal_active());
  fe::log::info("file accepted",
                {{"EXPORT_ID", "2026-11-26-epic"}, {"FHIR_FILE", "Patient 1.ndjson"}});
  fe::log::warning("odd value", {{"NOTE", "a\nb"}});
  fe::log::debug("not shown at info");
  EXPECT_EQ(err.text(),
            "info: file accepted EXPORT_ID=2026-11-26-epic FHIR_FILE=\"Patient 1.ndjson\"\n"
            "warning: odd value NOTE=\"a\\nb\"\n");
}

TEST(LogPlain, JournalStreamOfAnotherFileIsIgnored) {
  fe::test::LogCapture err;
  // systemd set JOURNAL_STREAM, but stderr was redirected since (e.g. a shell pipe): plain lines.
  setenv("JOURNAL_STREAM", "1:999999", 1);
  fe::log::redetect_sink();
  fe::log::notice("hello");
  EXPECT_FALSE(fe::log::journal_active());
  EXPECT_EQ(err.text(), "notice: hello\n");
  unsetenv("JOURNAL_STREAM");
}

TEST(LogJournal, StructuredEntriesOnTheNativeProtocol) {
  auto cap = fe::test::capture_journal([](int sock, std::vector<std::string>& got) {
    fe::test::LogCapture err;  // stderr is "the journal stream": its dev:ino goes in JOURNAL_STREAM
    setenv("JOURNAL_STREAM", fe::test::dev_ino(err.fd()).c_str(), 1);
    fe::log::redetect_sink();
    fe::log::set_level(fe::log::Level::info);
    if (!fe::log::journal_active()) return std::string("JOURNAL_STREAM was not recognised");
    fe::log::error("upload failed", {{"EXPORT_ID", "exp-1"},
                                     {"S3_KEY", "exports/exp-1/import/Patient.ndjson"},
                                     {"job_id", "abc"}});
    fe::log::debug("dropped below the level");
    fe::log::info("two\nlines", {{"FHIR_FILE", "Observation.ndjson"}});
    for (int i = 0; i < 2; ++i)
      if (auto d = fe::test::recv_datagram(sock, std::chrono::seconds(10))) got.push_back(*d);
    // Nothing went to the plain stderr path.
    if (!err.text().empty()) return "stderr got: " + err.text();
    return std::string();
  });
  if (!cap.skipped.empty()) GTEST_SKIP() << cap.skipped;
  ASSERT_EQ(cap.child_error, "");
  ASSERT_EQ(cap.raw.size(), 2u);

  auto first = fe::test::parse_native(cap.raw[0]);
  ASSERT_TRUE(first) << cap.raw[0];
  auto one = [](const fe::test::JournalEntry& e, const std::string& k) {
    EXPECT_EQ(e.count(k), 1u) << k;
    auto it = e.find(k);
    return it == e.end() ? std::string("<missing>") : it->second;
  };
  EXPECT_EQ(one(*first, "MESSAGE"), "upload failed");
  EXPECT_EQ(one(*first, "PRIORITY"), "3");
  EXPECT_EQ(one(*first, "SYSLOG_IDENTIFIER"), "fhir-edge");
  EXPECT_EQ(one(*first, "EXPORT_ID"), "exp-1");
  EXPECT_EQ(one(*first, "S3_KEY"), "exports/exp-1/import/Patient.ndjson");
  EXPECT_EQ(one(*first, "JOB_ID"), "abc");  // field names are upper-cased for journald
  EXPECT_EQ(first->count("CODE_FILE"), 0u);

  auto second = fe::test::parse_native(cap.raw[1]);
  ASSERT_TRUE(second) << cap.raw[1];
  EXPECT_EQ(one(*second, "MESSAGE"), "two\nlines");  // binary-safe field encoding
  EXPECT_EQ(one(*second, "PRIORITY"), "6");
  EXPECT_EQ(one(*second, "FHIR_FILE"), "Observation.ndjson");
}

}  // namespace

namespace {

struct FormatGuard {
  ~FormatGuard() { fe::log::set_format(fe::log::Format::plain); }
};

TEST(LogFormat, TextLinesStartWithAnRfc3339UtcTimeAndHideTheMessageId) {
  unsetenv("JOURNAL_STREAM");
  fe::test::LogCapture err;
  FormatGuard guard;
  fe::log::redetect_sink();
  fe::log::set_level(fe::log::Level::info);
  fe::log::set_format(fe::log::Format::text);
  fe::log::info("export taken", {{"MESSAGE_ID", std::string(fe::log::message_id::export_taken)},
                                 {"EXPORT_ID", "e1"}});
  const std::string t = err.text();
  // 2026-12-05T22:57:34.123Z info: export taken EXPORT_ID=e1
  EXPECT_THAT(t, ::testing::MatchesRegex(
                     "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                     "info: export taken EXPORT_ID=e1\n"))
      << t;
}

TEST(LogFormat, JsonIsOneValidObjectPerLineWhateverTheBytes) {
  unsetenv("JOURNAL_STREAM");
  fe::test::LogCapture err;
  FormatGuard guard;
  fe::log::redetect_sink();
  fe::log::set_level(fe::log::Level::info);
  fe::log::set_format(fe::log::Format::json);
  fe::log::warning("bad \"name\"\n\x01 \xff", {{"FHIR_FILE", "/in/a\tb.ndjson"},
                                               {"MESSAGE_ID", "a71bde25d6e543dc9f14a2defd7ae5e2"}});
  const std::string t = err.text();
  ASSERT_EQ(std::count(t.begin(), t.end(), '\n'), 1) << t;
  EXPECT_THAT(t,
              ::testing::MatchesRegex("\\{\"time\":\"[0-9T:.Z-]+\",\"level\":\"warning\","
                                      "\"message\":\".*\",\"FHIR_FILE\":\".*\","
                                      "\"MESSAGE_ID\":\"a71bde25d6e543dc9f14a2defd7ae5e2\"\\}\n"))
      << t;
  EXPECT_THAT(t, HasSubstr("\"message\":\"bad \\\"name\\\"\\n\\u0001 \xef\xbf\xbd\""));
  EXPECT_THAT(t, HasSubstr("\"FHIR_FILE\":\"/in/a\\tb.ndjson\""));
}

TEST(LogFormat, ParsesTheConfigNames) {
  fe::log::Format f = fe::log::Format::plain;
  EXPECT_TRUE(fe::log::parse_format("json", f));
  EXPECT_EQ(f, fe::log::Format::json);
  EXPECT_TRUE(fe::log::parse_format("text", f));
  EXPECT_EQ(f, fe::log::Format::text);
  EXPECT_FALSE(fe::log::parse_format("JSON", f));
  EXPECT_FALSE(fe::log::parse_format("plain", f));  // the CLI's own format, not a config value
}

}  // namespace
