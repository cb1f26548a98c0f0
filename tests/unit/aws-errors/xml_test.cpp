#include "aws/xml.hpp"

#include <gtest/gtest.h>

using namespace fe::aws;

TEST(Xml, ListPartsResult) {
  const char* doc = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><Key>exports/a&amp;b.ndjson</Key><UploadId>u1</UploadId>
  <IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker>
  <Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag><Size>5242880</Size>
    <ChecksumCRC32C>4waSgw==</ChecksumCRC32C></Part>
  <!-- a comment -->
  <Part><PartNumber>2</PartNumber><ETag>"e2"</ETag><Size>10</Size></Part>
</ListPartsResult>)";
  auto r = xml::parse(doc);
  ASSERT_TRUE(r.root) << r.error;
  EXPECT_EQ(r.root->name, "ListPartsResult");
  EXPECT_EQ(r.root->text, "");
  EXPECT_EQ(r.root->child_text("Key"), "exports/a&b.ndjson");
  auto parts = r.root->children_named("Part");
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0]->child_text("ETag"), "\"e1\"");
  EXPECT_EQ(parts[0]->child_text("ChecksumCRC32C"), "4waSgw==");
  EXPECT_EQ(parts[1]->child_text("Size"), "10");
  EXPECT_EQ(parts[1]->child("ChecksumCRC32C"), nullptr);
  ASSERT_EQ(r.root->attributes.size(), 1u);
}

TEST(Xml, EntitiesCdataAndPrefixes) {
  auto r = xml::parse("<s3:R><s3:K>&#65;&#x42;&#xE9;<![CDATA[<raw>]]></s3:K><E/></s3:R>");
  ASSERT_TRUE(r.root) << r.error;
  EXPECT_EQ(r.root->name, "R");
  EXPECT_EQ(r.root->child_text("K"), "AB\xC3\xA9<raw>");
  ASSERT_NE(r.root->child("E"), nullptr);
}

TEST(Xml, RejectsBrokenAndHostileInput) {
  EXPECT_FALSE(xml::parse("").root);
  EXPECT_FALSE(xml::parse("<a><b></a>").root);
  EXPECT_FALSE(xml::parse("<a>&bogus;</a>").root);
  EXPECT_FALSE(xml::parse("<a>").root);
  EXPECT_FALSE(xml::parse("<a></a><b></b>").root);
  auto dtd = xml::parse("<!DOCTYPE lolz [<!ENTITY lol \"lol\">]><a>&lol;</a>");
  EXPECT_FALSE(dtd.root);
  EXPECT_NE(dtd.error.find("DOCTYPE"), std::string::npos);
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "<a>";
  auto d = xml::parse(deep);
  EXPECT_FALSE(d.root);
  EXPECT_NE(d.error.find("deeper"), std::string::npos);
  auto l = xml::parse("<a>\n<b>\n</c>");
  EXPECT_NE(l.error.find("line 3"), std::string::npos) << l.error;
}
