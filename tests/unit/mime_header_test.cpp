// RFC 5322 header sections, address lists and the streaming completer
// (mime/header.hpp).
#include "mime/header.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace danemta::mime {
namespace {

std::vector<std::string> addresses(std::string_view value) {
  auto list = address_list(value);
  EXPECT_TRUE(list) << value << ": " << (list ? "" : list.error().message);
  std::vector<std::string> out;
  if (list)
    for (const Mailbox& m : *list) out.push_back(m.address());
  return out;
}

std::string list_error(std::string_view value) {
  auto list = address_list(value);
  EXPECT_FALSE(list) << value << " was read as " << (list ? list->size() : 0) << " address(es)";
  return list ? "" : list.error().message;
}

using V = std::vector<std::string>;

TEST(MimeHeader, ClassifiesLineStarts) {
  EXPECT_EQ(classify_line("Subject: x\r\n"), LineStart::field);
  EXPECT_EQ(classify_line("Subject : x\r\n"), LineStart::field) << "obsolete WSP before colon";
  EXPECT_EQ(classify_line("X-Y:"), LineStart::field);
  EXPECT_EQ(classify_line(" folded\r\n"), LineStart::continuation);
  EXPECT_EQ(classify_line("\tfolded"), LineStart::continuation);
  EXPECT_EQ(classify_line("\r\n"), LineStart::blank);
  EXPECT_EQ(classify_line("\n"), LineStart::blank);
  EXPECT_EQ(classify_line("From someone Tue\r\n"), LineStart::other) << "mbox From_ line";
  EXPECT_EQ(classify_line("hello world\r\n"), LineStart::other);
  EXPECT_EQ(classify_line(":x\r\n"), LineStart::other);
  EXPECT_EQ(classify_line("Subj"), LineStart::undecided);
  EXPECT_EQ(classify_line("Subj  "), LineStart::undecided);
  EXPECT_EQ(classify_line("\r"), LineStart::undecided);
  EXPECT_EQ(classify_line("\rx"), LineStart::other);
  EXPECT_EQ(classify_line(""), LineStart::undecided);
  EXPECT_EQ(classify_line("Caf\xc3\xa9: x\r\n"), LineStart::other) << "8-bit field name";
  EXPECT_EQ(classify_line(std::string(kMaxFieldName, 'a') + ":"), LineStart::field);
  EXPECT_EQ(classify_line(std::string(kMaxFieldName + 1, 'a')), LineStart::other);
}

TEST(MimeHeader, ParsesFoldedFieldsAndFindsTheBody) {
  const std::string m =
      "To: a@x.example,\r\n b@y.example\r\nSubject: hi\r\n\tthere\r\nbcc: c@z.example\r\n\r\nbody "
      "line\r\nTo: not a field\r\n";
  HeaderSection h = parse_header(m);
  ASSERT_EQ(h.fields.size(), 3u);
  EXPECT_EQ(h.fields[0].name, "To");
  EXPECT_EQ(h.fields[0].value, " a@x.example, b@y.example");
  EXPECT_EQ(h.fields[0].raw, "To: a@x.example,\r\n b@y.example\r\n");
  EXPECT_EQ(h.fields[1].value, " hi\tthere");
  EXPECT_EQ(h.fields[2].name, "bcc");
  EXPECT_EQ(h.fields[2].offset, m.find("bcc:"));
  EXPECT_TRUE(h.blank_line);
  EXPECT_EQ(m.substr(h.end, 2), "\r\n");
  EXPECT_EQ(m.substr(h.body, 9), "body line");
  EXPECT_TRUE(has_field(h, "BCC"));
  EXPECT_FALSE(has_field(h, "Cc"));
}

TEST(MimeHeader, HeaderSectionWithoutEmptyLine) {
  // No body at all.
  HeaderSection h = parse_header("Subject: only\r\nTo: a@x\r\n");
  EXPECT_EQ(h.fields.size(), 2u);
  EXPECT_FALSE(h.blank_line);
  EXPECT_EQ(h.end, h.body);
  EXPECT_EQ(h.end, std::string("Subject: only\r\nTo: a@x\r\n").size());
  // A body line right after the fields.
  const std::string m = "Subject: x\nhello there\n";
  h = parse_header(m);
  EXPECT_EQ(h.fields.size(), 1u);
  EXPECT_FALSE(h.blank_line);
  EXPECT_EQ(m.substr(h.body), "hello there\n");
  // No header at all; a first line with leading white space is body too.
  EXPECT_TRUE(parse_header("just text\r\n").fields.empty());
  EXPECT_TRUE(parse_header(" indented\r\n").fields.empty());
  EXPECT_EQ(parse_header(" indented\r\n").body, 0u);
  // The last line without a line end.
  h = parse_header("Subject: x\r\nTo: y");
  ASSERT_EQ(h.fields.size(), 2u);
  EXPECT_EQ(h.fields[1].value, " y");
}

TEST(MimeHeader, AddressListsSimpleAndDisplayNames) {
  EXPECT_EQ(addresses("a@x.example"), V{"a@x.example"});
  EXPECT_EQ(addresses(" a@x.example , b@y.example "), (V{"a@x.example", "b@y.example"}));
  EXPECT_EQ(addresses("Alice Example <alice@x.example>, \"Bob, Jr.\" <bob@y.example>"),
            (V{"alice@x.example", "bob@y.example"}));
  EXPECT_EQ(addresses("John Q. Public <jqp@x.example>"), V{"jqp@x.example"});
  EXPECT_EQ(addresses("<only@angle.example>"), V{"only@angle.example"});
  EXPECT_EQ(addresses("\"x@y\" <real@z.example>"), V{"real@z.example"});
  EXPECT_EQ(addresses("a@b.example <real@z.example>"), V{"real@z.example"})
      << "an unquoted address as display name";
}

TEST(MimeHeader, AddressListsCommentsAndQuotedLocalParts) {
  EXPECT_EQ(addresses("a@x.example (Alice (the first)), b@y.example (Bob)"),
            (V{"a@x.example", "b@y.example"}));
  EXPECT_EQ(addresses("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>"),
            V{"pete@silly.test"})
      << "RFC 5322 appendix A.5";
  EXPECT_EQ(addresses("\"john doe\"@x.example"), V{"\"john doe\"@x.example"});
  EXPECT_EQ(addresses("\"a\\\"b\"@x.example"), V{"\"a\\\"b\"@x.example"});
  EXPECT_EQ(addresses("first . last @ x . example"), V{"first.last@x.example"})
      << "obsolete CFWS around dots";
  EXPECT_EQ(addresses("user@[192.0.2.1]"), V{"user@[192.0.2.1]"});
  EXPECT_EQ(addresses("<@relay.example,@other.example:user@x.example>"), V{"user@x.example"})
      << "obsolete source route dropped";
}

TEST(MimeHeader, AddressListsGroups) {
  EXPECT_EQ(addresses("undisclosed-recipients:;"), V{});
  EXPECT_EQ(addresses("undisclosed-recipients: ;"), V{});
  EXPECT_EQ(addresses("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;"),
            (V{"c@a.test", "joe@where.test", "jdoe@one.test"}))
      << "RFC 5322 appendix A.1.3";
  EXPECT_EQ(addresses("friends: a@x.example, b@y.example;, c@z.example"),
            (V{"a@x.example", "b@y.example", "c@z.example"}));
  EXPECT_EQ(addresses("Dr. Who: tardis@x.example;"), V{"tardis@x.example"});
  EXPECT_EQ(addresses("open: a@x.example"), V{"a@x.example"}) << "a group left open at the end";
}

TEST(MimeHeader, AddressListsObsoleteAndUnqualified) {
  EXPECT_EQ(addresses(""), V{});
  EXPECT_EQ(addresses("  "), V{});
  EXPECT_EQ(addresses(",, a@x.example ,, ,b@y.example,"), (V{"a@x.example", "b@y.example"}));
  EXPECT_EQ(addresses("root"), V{"root"});
  EXPECT_EQ(addresses("Root User <root>, www-data"), (V{"root", "www-data"}));
  auto list = address_list("root, a@x.example");
  ASSERT_TRUE(list);
  EXPECT_EQ((*list)[0].domain, "");
  EXPECT_EQ((*list)[1].local_part, "a");
  EXPECT_EQ((*list)[1].domain, "x.example");
}

TEST(MimeHeader, AddressListsLeaveEncodedWordsAlone) {
  EXPECT_EQ(addresses("=?UTF-8?B?SsO2cmc=?= <joerg@x.example>"), V{"joerg@x.example"});
  EXPECT_EQ(addresses("=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>"),
            V{"PIRARD@vm1.ulg.ac.be"})
      << "RFC 2047 section 8";
  EXPECT_EQ(addresses("Jos\xc3\xa9 <jose@x.example>"), V{"jose@x.example"}) << "RFC 6532 UTF-8";
}

TEST(MimeHeader, AddressListErrorsSayWhatWasExpected) {
  EXPECT_NE(list_error("John Doe").find("expected \",\""), std::string::npos);
  EXPECT_NE(list_error("a@x.example b@y.example").find("expected \",\""), std::string::npos);
  EXPECT_NE(list_error("Name <a@x.example").find("\">\""), std::string::npos);
  EXPECT_NE(list_error("\"unclosed@x.example").find("quoted string"), std::string::npos);
  EXPECT_NE(list_error("a@x.example (unclosed").find("comment"), std::string::npos);
  EXPECT_NE(list_error("a@").find("domain"), std::string::npos);
  EXPECT_NE(list_error("<>").find("empty"), std::string::npos);
  EXPECT_NE(list_error("a@x..example").find("label"), std::string::npos);
  EXPECT_NE(list_error("a\x01@x.example").find("0x01"), std::string::npos);
  EXPECT_FALSE(address_list("g: a@x.example b@y.example;"));
}

TEST(MimeHeader, DisplayNames) {
  EXPECT_EQ(display_name("Alice Example"), "Alice Example");
  EXPECT_EQ(display_name("  Alice  "), "Alice");
  EXPECT_EQ(display_name("Example, Alice"), "\"Example, Alice\"");
  EXPECT_EQ(display_name("A. Person"), "\"A. Person\"");
  EXPECT_EQ(display_name("Say \"hi\""), "\"Say \\\"hi\\\"\"");
  EXPECT_EQ(display_name("J\xc3\xb6rg"), "=?UTF-8?B?SsO2cmc=?=");
  EXPECT_EQ(display_name("a\r\nBcc: x"), "\"a  Bcc: x\"") << "no header injection";
  EXPECT_EQ(display_name(""), "");
  // Long non-ASCII names become several encoded words of at most 75
  // characters, none splitting a UTF-8 sequence.
  std::string long_name;
  for (int i = 0; i < 40; ++i) long_name += "\xc3\xa9";
  const std::string words = display_name(long_name);
  std::size_t start = 0;
  int count = 0;
  while (start < words.size()) {
    std::size_t end = words.find(' ', start);
    if (end == std::string::npos) end = words.size();
    EXPECT_LE(end - start, 75u);
    EXPECT_EQ(words.substr(start, 10), "=?UTF-8?B?");
    start = end + 1;
    ++count;
  }
  EXPECT_EQ(count, 2);
}

TEST(MimeHeader, MessageIdIsUniquePerRandomAndNamesTheHost) {
  const std::string a = message_id(1764590400, 1, "relay.example");
  EXPECT_EQ(a, "<20251201T120000.0000000000000001@relay.example>");
  EXPECT_NE(a, message_id(1764590400, 2, "relay.example"));
}

// Feeds `in` in pieces of `step` octets (0: at once).
std::string complete(const std::string& in, std::size_t step) {
  HeaderCompleter c({{"Date", "Date: D\r\n"}, {"Message-ID", "Message-ID: <M@h>\r\n"}});
  std::string out;
  if (step == 0) {
    c.feed(in, out);
  } else {
    for (std::size_t at = 0; at < in.size(); at += step)
      c.feed(std::string_view(in).substr(at, step), out);
  }
  c.finish(out);
  return out;
}

void expect_completion(const std::string& in, const std::string& want) {
  for (std::size_t step : {0u, 1u, 2u, 3u, 5u, 7u, 64u})
    EXPECT_EQ(complete(in, step), want) << "pieces of " << step << " octets: " << in;
}

TEST(MimeHeader, CompleterAddsMissingFieldsBeforeTheEmptyLine) {
  expect_completion("Subject: x\r\n\r\nbody\r\n",
                    "Subject: x\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\nbody\r\n");
  expect_completion("Subject: x\r\nDATE: Mon, 1 Dec 2025 12:00:00 +0000\r\n\r\nb\r\n",
                    "Subject: x\r\nDATE: Mon, 1 Dec 2025 12:00:00 +0000\r\nMessage-ID: "
                    "<M@h>\r\n\r\nb\r\n");
  const std::string both =
      "message-id:\r\n <x@y>\r\nDate: Mon, 1 Dec 2025 12:00:00 +0000\r\n\r\nDate: in body\r\n";
  expect_completion(both, both);
}

TEST(MimeHeader, CompleterOnlyLooksAtTheHeaderSection) {
  // "Date:" in the body is not a Date: field.
  expect_completion("Subject: x\r\n\r\nDate: not a field\r\nMessage-ID: nor this\r\n",
                    "Subject: x\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\nDate: not a "
                    "field\r\nMessage-ID: nor this\r\n");
  // A folded field whose continuation says "Date:" is still one field.
  expect_completion("Subject: x\r\n Date: y\r\n\r\nb\r\n",
                    "Subject: x\r\n Date: y\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\nb\r\n");
}

TEST(MimeHeader, CompleterWithoutEmptyLineOrBody) {
  // No body: the fields go after the last one.
  expect_completion("Subject: x\r\n", "Subject: x\r\nDate: D\r\nMessage-ID: <M@h>\r\n");
  // The body starts without an empty line: one is added after the fields.
  expect_completion("Subject: x\r\nhello\r\n",
                    "Subject: x\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\nhello\r\n");
  // No header section at all.
  expect_completion("hello\r\n", "Date: D\r\nMessage-ID: <M@h>\r\n\r\nhello\r\n");
  expect_completion(" indented\r\n", "Date: D\r\nMessage-ID: <M@h>\r\n\r\n indented\r\n");
  expect_completion("\r\nbody\r\n", "Date: D\r\nMessage-ID: <M@h>\r\n\r\nbody\r\n");
  expect_completion("", "Date: D\r\nMessage-ID: <M@h>\r\n");
  // The text ends inside the last field or inside an undecided line.
  expect_completion("Subject: x", "Subject: x\r\nDate: D\r\nMessage-ID: <M@h>\r\n");
  expect_completion("Subject: x\r\nSubj", "Subject: x\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\nSubj");
  // Nothing missing: the text passes unchanged, even when its body starts
  // right after the fields.
  expect_completion("Date: x\r\nMessage-ID: <a@b>\r\nbody\r\n",
                    "Date: x\r\nMessage-ID: <a@b>\r\nbody\r\n");
  // Bare LF line ends are kept as they are.
  expect_completion("Subject: x\n\nbody\n", "Subject: x\nDate: D\r\nMessage-ID: <M@h>\r\n\nbody\n");
}

TEST(MimeHeader, CompleterHoldsBackOnlyALineStart) {
  HeaderCompleter c(std::vector<HeaderCompleter::Field>{{"Date", "Date: D\r\n"}});
  std::string out;
  c.feed("Subject: ", out);
  EXPECT_EQ(out, "Subject: ") << "a field line passes through once classified";
  c.feed(std::string(100000, 'x'), out);
  EXPECT_EQ(out.size(), 9u + 100000u);
  c.feed("\r\nX-Long", out);
  EXPECT_EQ(out.size(), 9u + 100000u + 2u) << "\"X-Long\" is held: it may be a field name";
  c.feed(std::string(2000, 'y'), out);
  EXPECT_TRUE(c.in_body()) << "no colon within 998 octets: not a field";
  EXPECT_NE(out.find("Date: D\r\n\r\nX-Long"), std::string::npos);
  const std::size_t before = out.size();
  c.feed("more body", out);
  EXPECT_EQ(out.size(), before + 9);
}

}  // namespace
}  // namespace danemta::mime
