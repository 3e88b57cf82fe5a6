#include "smtp/reply.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace danemta::smtp {
namespace {

std::vector<Reply> drain(ReplyParser& p) {
  std::vector<Reply> out;
  while (auto r = p.next()) out.push_back(std::move(*r));
  return out;
}

std::vector<Reply> parse_all(std::string_view bytes, ReplyLimits limits = {}) {
  ReplyParser p(limits);
  p.feed(bytes);
  EXPECT_FALSE(p.error().has_value());
  return drain(p);
}

std::optional<ReplyError> parse_error(std::string_view bytes, ReplyLimits limits = {}) {
  ReplyParser p(limits);
  p.feed(bytes);
  return p.error();
}

TEST(SmtpReply, SingleLine) {
  auto r = parse_all("220 mx.example.org ESMTP ready\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].code, 220);
  ASSERT_EQ(r[0].lines.size(), 1u);
  EXPECT_EQ(r[0].lines[0], "mx.example.org ESMTP ready");
  EXPECT_EQ(r[0].enhanced, "");
  EXPECT_TRUE(r[0].positive());
  EXPECT_FALSE(r[0].transient());
  EXPECT_FALSE(r[0].permanent());
  EXPECT_EQ(r[0].to_string(), "220 mx.example.org ESMTP ready");
}

TEST(SmtpReply, BareCodeIsALastLine) {
  auto r = parse_all("250\r\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].code, 250);
  ASSERT_EQ(r[0].lines.size(), 1u);
  EXPECT_EQ(r[0].lines[0], "");
}

TEST(SmtpReply, MultiLineByteAtATime) {
  const std::string wire =
      "250-mx.example.org hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 STARTTLS\r\n";
  ReplyParser p;
  for (std::size_t i = 0; i < wire.size(); ++i) {
    EXPECT_EQ(p.ready(), 0u) << i;
    p.feed(std::string_view(&wire[i], 1));
    EXPECT_TRUE(p.partial() || i + 1 == wire.size());
  }
  ASSERT_FALSE(p.error());
  auto r = drain(p);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].code, 250);
  EXPECT_EQ(r[0].lines, (std::vector<std::string>{"mx.example.org hello", "PIPELINING",
                                                  "SIZE 10240000", "STARTTLS"}));
  EXPECT_FALSE(p.partial());
  EXPECT_EQ(r[0].to_string(),
            "250-mx.example.org hello\n250-PIPELINING\n250-SIZE 10240000\n250 STARTTLS");
}

TEST(SmtpReply, PipelinedRepliesInOneBuffer) {
  auto r = parse_all(
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <b@example.org>: no such user\r\n354 go "
      "ahead\r\n");
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].code, 250);
  EXPECT_EQ(r[0].enhanced, "2.1.0");
  EXPECT_EQ(r[1].enhanced, "2.1.5");
  EXPECT_EQ(r[2].code, 550);
  EXPECT_EQ(r[2].enhanced, "5.1.1");
  EXPECT_TRUE(r[2].permanent());
  EXPECT_EQ(r[3].code, 354);
  EXPECT_TRUE(r[3].positive());
}

TEST(SmtpReply, SplitAcrossFeeds) {
  ReplyParser p;
  p.feed("250-first\r");
  EXPECT_EQ(p.ready(), 0u);
  p.feed("\n250 sec");
  EXPECT_EQ(p.ready(), 0u);
  p.feed("ond\r\n451 4.3.0 try");
  EXPECT_EQ(p.ready(), 1u);
  EXPECT_TRUE(p.partial());
  p.feed(" later\n");
  auto r = drain(p);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].lines, (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(r[1].code, 451);
  EXPECT_EQ(r[1].enhanced, "4.3.0");
  EXPECT_TRUE(r[1].transient());
}

TEST(SmtpReply, BareLfAndCrlfMixed) {
  auto r = parse_all("250-a\n250-b\r\n250 c\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].lines, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(SmtpReply, EnhancedCodeNeedsMatchingClassAndShape) {
  EXPECT_EQ(parse_all("550 4.1.1 x\r\n")[0].enhanced, "");  // class mismatch
  EXPECT_EQ(parse_all("550 5.1\r\n")[0].enhanced, "");
  EXPECT_EQ(parse_all("550 5.1.1234 x\r\n")[0].enhanced, "");
  EXPECT_EQ(parse_all("550 5.1.1x\r\n")[0].enhanced, "");
  EXPECT_EQ(parse_all("550 5.123.456\r\n")[0].enhanced, "5.123.456");
  EXPECT_EQ(parse_all("550 5.7.1\r\n")[0].enhanced, "5.7.1");
  EXPECT_EQ(parse_all("550-5.7.1 a\r\n550 5.7.1 b\r\n")[0].enhanced, "5.7.1");
}

TEST(SmtpReply, LineLimitIsInclusive) {
  ReplyLimits limits;
  limits.max_line_bytes = 10;
  EXPECT_EQ(parse_all("250 678901\r\n", limits).size(), 1u);  // exactly 10 bytes
  EXPECT_EQ(parse_error("250 6789012\r\n", limits), ReplyError::line_too_long);
  EXPECT_EQ(parse_error("250 67890123", limits), ReplyError::line_too_long);
}

TEST(SmtpReply, EndlessLineWithoutNewlineIsBounded) {
  ReplyParser p;
  const std::string chunk(1000, 'x');
  p.feed("220 ");
  for (int i = 0; i < 1000 && !p.error(); ++i) p.feed(chunk);
  EXPECT_EQ(p.error(), ReplyError::line_too_long);
  EXPECT_FALSE(p.partial());  // the buffer is released
  // Sticky: more input is ignored.
  p.feed("250 ok\r\n");
  EXPECT_EQ(p.ready(), 0u);
  EXPECT_EQ(p.error(), ReplyError::line_too_long);
}

TEST(SmtpReply, TooManyLines) {
  ReplyLimits limits;
  limits.max_lines = 3;
  EXPECT_EQ(parse_all("250-a\r\n250-b\r\n250 c\r\n", limits).size(), 1u);
  EXPECT_EQ(parse_error("250-a\r\n250-b\r\n250-c\r\n250 d\r\n", limits),
            ReplyError::too_many_lines);
  ReplyParser p;  // default limit 256
  for (int i = 0; i < 10000 && !p.error(); ++i) p.feed("250-more\r\n");
  EXPECT_EQ(p.error(), ReplyError::too_many_lines);
}

TEST(SmtpReply, ReplyByteLimit) {
  ReplyLimits limits;
  limits.max_reply_bytes = 8;
  EXPECT_EQ(parse_error("250-abcd\r\n250-efgh\r\n250 i\r\n", limits), ReplyError::reply_too_large);
}

TEST(SmtpReply, BadCodes) {
  EXPECT_EQ(parse_error("hello\r\n"), ReplyError::bad_code);
  EXPECT_EQ(parse_error("25\r\n"), ReplyError::bad_code);
  EXPECT_EQ(parse_error("\r\n"), ReplyError::bad_code);
  EXPECT_EQ(parse_error("2x0 ok\r\n"), ReplyError::bad_code);
  EXPECT_EQ(parse_error("199 ok\r\n"), ReplyError::code_out_of_range);
  EXPECT_EQ(parse_error("600 ok\r\n"), ReplyError::code_out_of_range);
  EXPECT_EQ(parse_error("000 ok\r\n"), ReplyError::code_out_of_range);
  EXPECT_EQ(parse_error("250_ok\r\n"), ReplyError::bad_separator);
  EXPECT_EQ(parse_error("2500 ok\r\n"), ReplyError::bad_separator);
}

TEST(SmtpReply, ContinuationMismatch) {
  EXPECT_EQ(parse_error("250-a\r\n251 b\r\n"), ReplyError::code_mismatch);
  EXPECT_EQ(parse_error("250-a\r\n550-b\r\n"), ReplyError::code_mismatch);
}

TEST(SmtpReply, ErrorAfterGoodRepliesKeepsThem) {
  ReplyParser p;
  p.feed("250 ok\r\ngarbage\r\n250 later\r\n");
  EXPECT_EQ(p.error(), ReplyError::bad_code);
  EXPECT_EQ(p.ready(), 1u);
  p.reset();
  EXPECT_FALSE(p.error());
  EXPECT_EQ(p.ready(), 0u);
  p.feed("220 again\r\n");
  EXPECT_EQ(p.ready(), 1u);
}

TEST(SmtpReply, ErrorNamesAreDistinct) {
  EXPECT_EQ(to_string(ReplyError::line_too_long), "reply line too long");
  EXPECT_NE(to_string(ReplyError::bad_code), to_string(ReplyError::code_mismatch));
}

TEST(SmtpEhlo, Capabilities) {
  Reply r;
  r.code = 250;
  r.lines = {"mx.example.org greets you",
             "pipelining",
             "SIZE 35882577",
             "8BITMIME",
             "StartTLS",
             "SMTPUTF8",
             "CHUNKING",
             "ENHANCEDSTATUSCODES",
             "DSN",
             "AUTH PLAIN LOGIN"};
  const Capabilities c = parse_ehlo(r);
  EXPECT_TRUE(c.pipelining);
  EXPECT_TRUE(c.size);
  EXPECT_EQ(c.size_limit, 35882577u);
  EXPECT_TRUE(c.eightbitmime);
  EXPECT_TRUE(c.starttls);
  EXPECT_TRUE(c.smtputf8);
  EXPECT_TRUE(c.chunking);
  EXPECT_TRUE(c.enhancedstatuscodes);
  EXPECT_TRUE(c.dsn);
}

TEST(SmtpEhlo, FirstLineIsNotAKeyword) {
  Reply r;
  r.code = 250;
  r.lines = {"STARTTLS"};
  EXPECT_FALSE(parse_ehlo(r).starttls);
}

TEST(SmtpEhlo, SizeParameterForms) {
  const auto size_of = [](std::string line) {
    Reply r;
    r.code = 250;
    r.lines = {"mx", std::move(line)};
    return parse_ehlo(r);
  };
  EXPECT_TRUE(size_of("SIZE").size);
  EXPECT_EQ(size_of("SIZE").size_limit, 0u);
  EXPECT_EQ(size_of("SIZE 0").size_limit, 0u);
  EXPECT_EQ(size_of("SIZE  1000").size_limit, 1000u);
  EXPECT_EQ(size_of("SIZE 12x").size_limit, 0u);
  EXPECT_EQ(size_of("SIZE 99999999999999999999999").size_limit, 0u);
  EXPECT_EQ(size_of("SIZE 18446744073709551600").size_limit, 18446744073709551600u);
  EXPECT_FALSE(size_of("SIZEX 10").size);
  EXPECT_FALSE(size_of("STARTTLSX").starttls);
}

}  // namespace
}  // namespace danemta::smtp
