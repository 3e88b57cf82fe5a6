// The sendmail command line and what sendmail does to a message
// (sendmail/command_line.hpp, sendmail/message.hpp).
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "sendmail/command_line.hpp"
#include "sendmail/message.hpp"

namespace danemta::sendmail {
namespace {

using V = std::vector<std::string>;

Options parse_ok(const V& args) {
  auto o = parse_command_line(args);
  EXPECT_TRUE(o) << (o ? "" : o.error().message);
  return o ? *o : Options{};
}

std::string parse_error(const V& args) {
  auto o = parse_command_line(args);
  EXPECT_FALSE(o);
  return o ? "" : o.error().message;
}

TEST(SendmailCommandLine, FlagsApplicationsUse) {
  Options o = parse_ok({"-t", "-i"});
  EXPECT_TRUE(o.extract);
  EXPECT_FALSE(o.dot_ends);
  EXPECT_EQ(o.mode, Mode::deliver);
  EXPECT_TRUE(o.recipients.empty());

  o = parse_ok({"-ti"});
  EXPECT_TRUE(o.extract);
  EXPECT_FALSE(o.dot_ends) << "clustered flags";

  o = parse_ok({"-oi", "-f", "me@x.example", "--", "a@y.example", "b@z.example"});
  EXPECT_FALSE(o.dot_ends);
  EXPECT_EQ(o.sender, "me@x.example");
  EXPECT_EQ(o.recipients, (V{"a@y.example", "b@z.example"}));

  o = parse_ok({"-fme@x.example", "-FAlice Example", "a@y.example"});
  EXPECT_EQ(o.sender, "me@x.example") << "joined argument";
  EXPECT_EQ(o.full_name, "Alice Example");
  EXPECT_TRUE(o.dot_ends) << "without -i a lone dot ends the message";

  o = parse_ok({"a@y.example", "-r", "<bounce@x.example>", "-F", "Bob"});
  EXPECT_EQ(o.sender, "bounce@x.example") << "-r, brackets removed, flags after operands";
  EXPECT_EQ(o.full_name, "Bob");
  EXPECT_EQ(o.recipients, V{"a@y.example"});

  EXPECT_EQ(parse_ok({"-f", "<>", "a@y.example"}).sender, "") << "the null sender on request";
  EXPECT_EQ(parse_ok({"-f", "", "a@y.example"}).sender, "");
  EXPECT_FALSE(parse_ok({"a@y.example"}).sender.has_value());
  EXPECT_EQ(parse_ok({"-C", "/etc/x.toml", "a@y.example"}).config_path, "/etc/x.toml");
  EXPECT_TRUE(parse_ok({"-v", "a@y.example"}).verbose);
  EXPECT_EQ(parse_ok({"-bm", "a@y.example"}).mode, Mode::deliver);
  EXPECT_EQ(parse_ok({"-O", "IgnoreDots=true", "a@y.example"}).dot_ends, false);
  EXPECT_EQ(parse_ok({"-o", "i", "a@y.example"}).dot_ends, false) << "-o with a separate argument";
  EXPECT_EQ(parse_ok({"--", "-notaflag@x.example"}).recipients, V{"-notaflag@x.example"});
}

TEST(SendmailCommandLine, HarmlessLegacyFlagsAreIgnored) {
  Options o = parse_ok({"-oem",       "-odi",
                        "-odb",       "-oQ/var/spool/mqueue",
                        "-N",         "success,failure",
                        "-R",         "hdrs",
                        "-V",         "envid1",
                        "-B",         "8BITMIME",
                        "-h",         "17",
                        "-L",         "app",
                        "-X",         "/tmp/log",
                        "-p",         "local",
                        "-Am",        "-G",
                        "-U",         "-n",
                        "-m",         "-oi",
                        "a@y.example"});
  EXPECT_EQ(o.recipients, V{"a@y.example"});
  EXPECT_FALSE(o.dot_ends) << "-oi among the ignored ones still counts";
  EXPECT_EQ(o.ignored, (V{"-oem", "-odi", "-odb", "-oQ/var/spool/mqueue", "-Nsuccess,failure",
                          "-Rhdrs", "-Venvid1", "-B8BITMIME", "-h17", "-Lapp", "-X/tmp/log",
                          "-plocal", "-Am", "-G", "-U", "-n", "-m"}));
}

TEST(SendmailCommandLine, QueueModes) {
  EXPECT_EQ(parse_ok({"-bp"}).mode, Mode::queue_list);
  EXPECT_EQ(parse_ok({"-q"}).mode, Mode::flush);
  EXPECT_NE(parse_error({"-q30m"}).find("danemta queue flush"), std::string::npos);
}

TEST(SendmailCommandLine, RefusedModesSayWhatToUse) {
  EXPECT_NE(parse_error({"-bs"}).find("SMTP"), std::string::npos);
  EXPECT_NE(parse_error({"-bd"}).find("danemta relay"), std::string::npos);
  EXPECT_NE(parse_error({"-bi"}).find("aliases"), std::string::npos);
  EXPECT_NE(parse_error({"-bv", "a@x.example"}).find("-bv is not offered"), std::string::npos);
  EXPECT_NE(parse_error({"-bz"}).find("unknown mode"), std::string::npos);
  EXPECT_NE(parse_error({"-k"}).find("unknown flag -k"), std::string::npos);
  EXPECT_NE(parse_error({"a@x.example", "-f"}).find("-f needs an argument"), std::string::npos);
  EXPECT_NE(parse_error({"-C"}).find("-C needs an argument"), std::string::npos);
}

std::string read(const std::string& in, bool dot_ends) {
  std::istringstream s(in);
  std::string out;
  EXPECT_TRUE(read_message(s, dot_ends, out));
  return out;
}

TEST(SendmailMessage, ALoneDotEndsTheMessageWithoutDashI) {
  EXPECT_EQ(read("Subject: x\n\nline 1\n.\nafter\n", true), "Subject: x\r\n\r\nline 1\r\n");
  EXPECT_EQ(read("Subject: x\r\n\r\nline 1\r\n.\r\nafter\r\n", true),
            "Subject: x\r\n\r\nline 1\r\n");
  EXPECT_EQ(read("a\n.\n", false), "a\r\n.\r\n") << "-i: the dot is text";
  EXPECT_EQ(read("a\n..\n.x\n", true), "a\r\n..\r\n.x\r\n") << "no dot-unstuffing";
  EXPECT_EQ(read("a\n.", true), "a\r\n") << "a last lone dot without line end";
  EXPECT_EQ(read("no final newline", true), "no final newline\r\n");
  EXPECT_EQ(read("", true), "");
}

mime::HeaderSection header(const std::string& m) {
  return mime::parse_header(m);
}

std::vector<std::string> recipients(const std::string& m) {
  auto r = header_recipients(header(m));
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  std::vector<std::string> out;
  if (r)
    for (const mime::Mailbox& b : *r) out.push_back(b.address());
  return out;
}

TEST(SendmailMessage, RecipientsFromToCcBcc) {
  EXPECT_EQ(recipients("To: Alice <a@x.example>,\r\n \"Bob, B.\" <b@y.example>\r\n"
                       "cc: undisclosed-recipients:;, c@z.example (Carol)\r\n"
                       "BCC: hidden@w.example, root\r\n"
                       "Reply-To: not@this.example\r\nFrom: me@x.example\r\n\r\n"
                       "To: body@x.example\r\n"),
            (V{"a@x.example", "b@y.example", "c@z.example", "hidden@w.example", "root"}));
  EXPECT_EQ(recipients("Subject: none\r\n\r\n"), V{});
  EXPECT_EQ(recipients("To: a@x.example\r\nTo: b@x.example\r\n"), (V{"a@x.example", "b@x.example"}))
      << "every To: field";
}

TEST(SendmailMessage, ResentFieldsWinWhenPresent) {
  EXPECT_EQ(recipients("To: old@x.example\r\nResent-To: new@y.example\r\n"
                       "Resent-Bcc: blind@z.example\r\nCc: old2@x.example\r\n\r\n"),
            (V{"new@y.example", "blind@z.example"}));
}

TEST(SendmailMessage, UnreadableRecipientFieldIsAnError) {
  auto r = header_recipients(header("To: John Doe\r\n\r\n"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.rfind("To: header: expected", 0), 0u) << r.error().message;
}

TEST(SendmailMessage, Qualify) {
  EXPECT_EQ(qualify("root", "host.example"), "root@host.example");
  EXPECT_EQ(qualify("a@x.example", "host.example"), "a@x.example");
  EXPECT_EQ(qualify("\"a@b\"", "host.example"), "\"a@b\"@host.example");
  EXPECT_EQ(qualify("\"a\\\"@b\"@x.example", "host.example"), "\"a\\\"@b\"@x.example");
}

std::string completed(const std::string& m) {
  Completion add;
  add.trace = "Received: by h (danemta sendmail, from userid 1000);\r\n\tD\r\n";
  add.from = "Alice <alice@h.example>";
  add.date = "D";
  add.message_id = "<M@h>";
  return complete_message(m, header(m), add);
}

TEST(SendmailMessage, CompletionRemovesBccAndAddsWhatIsMissing) {
  EXPECT_EQ(completed("To: a@x.example\r\nBcc: secret@y.example,\r\n more@z.example\r\n"
                      "Subject: s\r\nresent-bcc: r@y.example\r\n\r\nBcc: body text stays\r\n"),
            "Received: by h (danemta sendmail, from userid 1000);\r\n\tD\r\n"
            "To: a@x.example\r\nSubject: s\r\nFrom: Alice <alice@h.example>\r\nDate: "
            "D\r\nMessage-ID: <M@h>\r\n\r\nBcc: body text stays\r\n");
  const std::string full =
      "From: x@y.example\r\nDate: Mon, 1 Dec 2025 12:00:00 +0000\r\nMessage-ID: <a@b>\r\n\r\nb\r\n";
  EXPECT_EQ(completed(full),
            "Received: by h (danemta sendmail, from userid 1000);\r\n\tD\r\n" + full);
}

TEST(SendmailMessage, CompletionOfAMessageWithoutHeader) {
  EXPECT_EQ(completed("just a body\r\n"),
            "Received: by h (danemta sendmail, from userid 1000);\r\n\tD\r\n"
            "From: Alice <alice@h.example>\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\njust a body\r\n");
  EXPECT_EQ(completed(" starts with a space\r\n"),
            "Received: by h (danemta sendmail, from userid 1000);\r\n\tD\r\n"
            "From: Alice <alice@h.example>\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\n starts with a "
            "space\r\n")
      << "the body's first line is no continuation of the trace field";
  EXPECT_EQ(completed(""),
            "Received: by h (danemta sendmail, from userid 1000);\r\n\tD\r\n"
            "From: Alice <alice@h.example>\r\nDate: D\r\nMessage-ID: <M@h>\r\n");
}

}  // namespace
}  // namespace danemta::sendmail
