// common/json_writer: nesting, commas, escaping (always valid UTF-8), numbers, and every document
// parsed back with simdjson to the values written.
#include "common/json_writer.hpp"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

using fe::json::Writer;

namespace {
simdjson::dom::element parse(simdjson::dom::parser& p, const std::string& s) {
  simdjson::dom::element e;
  EXPECT_EQ(p.parse(s).get(e), simdjson::SUCCESS) << s;
  return e;
}
}  // namespace

TEST(JsonWriter, NestingAndCommas) {
  Writer w;
  w.begin_object()
      .field("a", 1)
      .key("b")
      .begin_array()
      .value(1)
      .begin_object()
      .end_object()
      .begin_array()
      .end_array()
      .value("x")
      .end_array()
      .key("c")
      .begin_object()
      .field("d", true)
      .field("e", nullptr)
      .end_object()
      .end_object();
  EXPECT_EQ(w.str(), R"({"a":1,"b":[1,{},[],"x"],"c":{"d":true,"e":null}})");
  simdjson::dom::parser p;
  auto doc = parse(p, w.str());
  EXPECT_EQ(int64_t(doc["a"]), 1);
  EXPECT_EQ(std::string_view(doc["b"].at(3)), "x");
  EXPECT_TRUE(bool(doc["c"]["d"]));
  EXPECT_TRUE(doc["c"]["e"].is_null());
}

TEST(JsonWriter, ScalarsAndRaw) {
  Writer w;
  w.begin_array()
      .value(std::int64_t{-9007199254740993})
      .value(std::uint64_t{18446744073709551615u})
      .value(0.1)
      .value(1e300)
      .value(std::numeric_limits<double>::quiet_NaN())
      .value(false)
      .raw("{\"pre\":[1,2]}")
      .value(std::string("s"))
      .end_array();
  EXPECT_EQ(w.str(),
            R"([-9007199254740993,18446744073709551615,0.1,1e+300,null,false,{"pre":[1,2]},"s"])");
  simdjson::dom::parser p;
  auto doc = parse(p, w.str());
  EXPECT_EQ(int64_t(doc.at(0)), -9007199254740993);
  EXPECT_EQ(uint64_t(doc.at(1)), 18446744073709551615u);
  EXPECT_EQ(double(doc.at(2)), 0.1);  // the shortest form reads back exactly
  EXPECT_EQ(double(doc.at(3)), 1e300);
  EXPECT_EQ(int64_t(doc.at(6)["pre"].at(1)), 2);
}

TEST(JsonWriter, EscapingKeepsUtf8Valid) {
  // Quotes, backslash, control characters, valid multi-byte UTF-8, and bytes that are not UTF-8
  // (Latin-1, a lone continuation byte, an overlong '/', a surrogate, a truncated sequence).
  const std::string nasty = std::string("q\"b\\n\n\t\x01\x1f") + "é€😀" + "\xe9" + "\x80" +
                            "\xc0\xaf" + "\xed\xa0\x80" + "\xe2\x82";
  Writer w;
  w.begin_object().field(nasty, nasty).end_object();
  const std::string& out = w.str();
  EXPECT_NE(out.find(R"(q\"b\\n\n\t\u0001\u001f)"), std::string::npos) << out;
  simdjson::dom::parser p;
  auto doc = parse(p, out);  // simdjson validates UTF-8: the parse is the proof
  simdjson::dom::object o = doc;
  for (auto [k, v] : o) {
    EXPECT_EQ(k, std::string_view(v));
    EXPECT_EQ(std::string(k).substr(0, 11), "q\"b\\n\n\t\x01\x1f\xc3\xa9");
    EXPECT_NE(std::string(k).find("\xef\xbf\xbd"), std::string::npos);  // U+FFFD stands in
    EXPECT_NE(std::string(k).find("😀"), std::string::npos);
  }
}

TEST(JsonWriter, MatchesConcatenation) {
  // What the concatenating writers produced, so swapping one for the other changes no byte.
  const std::string name = "Pat\"ient";
  std::string by_hand = "{\"file\":" + fe::json::quote(name) + ",\"lines\":3,\"rejected\":[]}";
  Writer w;
  w.begin_object().field("file", name).field("lines", 3).key("rejected").begin_array().end_array();
  w.end_object();
  EXPECT_EQ(w.str(), by_hand);
}

TEST(JsonWriter, SpaceGoesAfterTheComma) {
  // report.json's layout: one file per line, and an empty list still spans a line.
  Writer w;
  w.begin_object().field("export", "e").space("\n ").key("files").begin_array();
  w.space("\n  ").raw("{}").space("\n  ").raw("[]");
  w.end_array().key("none").begin_array().space("\n    ").end_array().end_object();
  EXPECT_EQ(w.str(), "{\"export\":\"e\",\n \"files\":[\n  {},\n  []],\"none\":[\n    ]}");
  simdjson::dom::parser p;
  parse(p, w.str());
  EXPECT_THROW(Writer().space("x"), std::logic_error);
}

TEST(JsonWriter, MisuseThrows) {
  {
    Writer w;
    w.begin_object();
    EXPECT_THROW(w.value(1), std::logic_error);  // no key
    EXPECT_THROW(w.end_array(), std::logic_error);
    EXPECT_THROW((void)w.str(), std::logic_error);  // unfinished
  }
  {
    Writer w;
    w.begin_array();
    EXPECT_THROW(w.key("k"), std::logic_error);
  }
  {
    Writer w;
    w.value(1);
    EXPECT_TRUE(w.complete());
    EXPECT_THROW(w.value(2), std::logic_error);
  }
}
