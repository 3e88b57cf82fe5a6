// The sendmail command through the real binary: invoked through a symlink
// named sendmail (and mailq) and as `danemta sendmail`, fed by shell
// pipelines, submitting to a lab relay that delivers to lab receivers; and
// the relay's own Date:/Message-ID: completion of SMTP submissions.
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/receivers.hpp"
#include "lab/relay_setup.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;
using lab::Receivers;
using lab::RelaySetup;
using lab::spec;
using lab::wait_messages;

// The header section of a delivered message (up to the first empty line).
std::string header_of(const std::string& data) {
  const auto end = data.find("\r\n\r\n");
  return end == std::string::npos ? data : data.substr(0, end + 2);
}

// Fields named `name` (case-insensitive, at a line start) in `header`.
std::size_t fields_named(const std::string& header, std::string name) {
  std::string lower = "\n" + header;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lab::count(lower, "\n" + name + ":");
}

std::string login_name() {
  const passwd* pw = getpwuid(getuid());
  return pw ? pw->pw_name : "";
}

// The first message the receiver got.
lab::Message first_message(const lab::Receiver& r) {
  const std::vector<lab::Session> sessions = r.sessions();
  for (const lab::Session& s : sessions)
    if (!s.messages.empty()) return s.messages.front();
  return {};
}

// Two destinations with DANE: a153.example (To, Cc) and b153.example (Bcc).
struct SendmailLab {
  Receivers rx{153};
  lab::Chain chain_a = lab::self_signed({"mx.a153.example"});
  lab::Chain chain_b = lab::self_signed({"mx.b153.example"});
  lab::Receiver& a = rx.add(10, Receivers::with_chain(chain_a, "mx.a153.example"));
  lab::Receiver& b = rx.add(11, Receivers::with_chain(chain_b, "mx.b153.example"));
  lab::World world{spec({{{"name", "a153.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            rx.tlsa_line("mx", lab::tlsa_rdata(chain_a.leaf, 3, 1, 1))}}},
                         {{"name", "b153.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(11),
                            rx.tlsa_line("mx", lab::tlsa_rdata(chain_b.leaf, 3, 1, 1))}}}})};
  // Unqualified addresses and the default sender get a153.example.
  RelaySetup setup{world, rx.port(), "\n[sendmail]\ndomain = \"a153.example\"\n"};
  std::string bin = world.dir() + "/bin";

  SendmailLab() {
    std::filesystem::create_directories(bin);
    std::filesystem::create_symlink(DANEMTA_BINARY, bin + "/sendmail");
    std::filesystem::create_symlink(DANEMTA_BINARY, bin + "/mailq");
  }
  std::string file(const std::string& name, const std::string& text) const {
    const std::string path = world.dir() + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
};

TEST(Sendmail, DashTDashIFromAScriptDeliversToToCcAndBccWithoutTheBccField) {
  SendmailLab lab;
  auto relay = lab.setup.start();
  const std::string msg = lab.file("t.eml",
                                   "From: App <app@sender.example>\n"
                                   "To: Alice Example <alice@a153.example>,\n"
                                   "  \"Bob, B.\" <bob@a153.example>\n"
                                   "Cc: team: carol@a153.example (Carol);\n"
                                   "Bcc: Hidden <hidden@b153.example>\n"
                                   "Subject: sendmail -t\n"
                                   "\n"
                                   "first line\n"
                                   ".\n"
                                   "after the lone dot\n");
  // What a PHP or cron job does: a pipeline into /usr/sbin/sendmail.
  lab::CommandResult sent =
      lab::run_command("cat " + msg + " | " + lab.bin + "/sendmail -C " + lab.setup.config_path +
                       " -t -i -f app@sender.example");
  ASSERT_EQ(sent.exit_code, 0) << sent.out;
  EXPECT_EQ(sent.out, "") << "sendmail is silent on success";
  ASSERT_TRUE(wait_messages(lab.a, 1)) << relay->log();
  ASSERT_TRUE(wait_messages(lab.b, 1)) << relay->log();

  const lab::Message to_a = first_message(lab.a);
  const lab::Message to_b = first_message(lab.b);
  EXPECT_EQ(to_a.mail_from, "app@sender.example") << "-f sets MAIL FROM";
  EXPECT_EQ(to_a.rcpt_to, (std::vector<std::string>{"alice@a153.example", "bob@a153.example",
                                                    "carol@a153.example"}));
  EXPECT_EQ(to_b.rcpt_to, std::vector<std::string>{"hidden@b153.example"});
  for (const lab::Message* m : {&to_a, &to_b}) {
    const std::string header = header_of(m->data);
    EXPECT_EQ(fields_named(header, "Bcc"), 0u) << m->data;
    EXPECT_EQ(m->data.find("hidden@b153.example"), std::string::npos)
        << "the blind recipient is nowhere in the text: " << m->data;
    EXPECT_EQ(fields_named(header, "Date"), 1u) << header;
    EXPECT_EQ(fields_named(header, "Message-ID"), 1u) << header;
    EXPECT_EQ(fields_named(header, "From"), 1u) << "the message's own From: is kept";
    EXPECT_NE(header.find("From: App <app@sender.example>\r\n"), std::string::npos) << header;
    EXPECT_NE(header.find("(danemta sendmail, from userid " + std::to_string(getuid()) + ")"),
              std::string::npos)
        << header;
    EXPECT_NE(m->data.find("first line\r\n.\r\nafter the lone dot\r\n"), std::string::npos)
        << "-i: a lone dot is text: " << m->data;
  }

  // mailq lists the queue like `danemta queue list`: mail still to be
  // delivered; this message is delivered, so it is only counted.
  ASSERT_TRUE(relay->wait_for_log(": removed")) << relay->log();
  lab::CommandResult q = lab::run_command(lab.bin + "/mailq -C " + lab.setup.config_path);
  EXPECT_EQ(q.exit_code, 0) << q.out;
  EXPECT_EQ(q.out.find("<app@sender.example>"), std::string::npos) << q.out;
  EXPECT_NE(q.out.find("-- 0 message(s) with pending recipients"), std::string::npos) << q.out;
  relay->stop(SIGTERM);
}

TEST(Sendmail, DanemtaSendmailDefaultsAndTheLoneDot) {
  SendmailLab lab;
  auto relay = lab.setup.start();
  const std::string user = login_name();
  ASSERT_FALSE(user.empty()) << "the test runs as a user in the password database";
  // No -i: the lone dot ends the message. "dave" is unqualified; no -f:
  // the sender is the invoking user at [sendmail] domain; no From:, Date:
  // or Message-ID: in the message.
  lab::CommandResult sent = lab::run_command(
      "printf 'Subject: dot\\n\\nbefore the dot\\n.\\nnot part of the message\\n' | " +
      std::string(DANEMTA_BINARY) + " --config " + lab.setup.config_path +
      " sendmail -oem -odi -F 'Test Runner' dave erin@a153.example");
  ASSERT_EQ(sent.exit_code, 0) << sent.out;
  ASSERT_TRUE(wait_messages(lab.a, 1)) << relay->log();
  const lab::Message m = first_message(lab.a);
  EXPECT_EQ(m.mail_from, user + "@a153.example") << "never the null sender";
  EXPECT_EQ(m.rcpt_to, (std::vector<std::string>{"dave@a153.example", "erin@a153.example"}));
  const std::string header = header_of(m.data);
  EXPECT_NE(header.find("From: Test Runner <" + user + "@a153.example>\r\n"), std::string::npos)
      << header;
  EXPECT_EQ(fields_named(header, "Date"), 1u) << header;
  EXPECT_EQ(fields_named(header, "Message-ID"), 1u) << header;
  EXPECT_NE(m.data.find("before the dot\r\n"), std::string::npos) << m.data;
  EXPECT_EQ(m.data.find("not part of the message"), std::string::npos) << m.data;

  // -v prints the relay's answer; errors in the message header are EX_DATAERR.
  lab::CommandResult verbose =
      lab::run_command("printf 'To: frank@a153.example\\n\\nx\\n' | " + lab.bin + "/sendmail -C " +
                       lab.setup.config_path + " -v -t");
  EXPECT_EQ(verbose.exit_code, 0) << verbose.out;
  EXPECT_NE(verbose.out.find("queued as"), std::string::npos) << verbose.out;
  lab::CommandResult bad = lab::run_command("printf 'To: John Doe\\n\\nx\\n' | " + lab.bin +
                                            "/sendmail -C " + lab.setup.config_path + " -t");
  EXPECT_EQ(bad.exit_code, 65) << bad.out;
  EXPECT_NE(bad.out.find("To: header: expected"), std::string::npos) << bad.out;
  relay->stop(SIGTERM);
}

TEST(Sendmail, RelayDownIsTempfailWithOneLine) {
  lab::World world(
      spec({{{"name", "x153.example"}, {"records", {"@ MX 10 mx", "mx A 127.0.153.20"}}}}));
  RelaySetup setup(world, 25, "");  // never started: nothing listens on its port
  lab::CommandResult sent =
      lab::run_command("echo 'Subject: x' | " + std::string(DANEMTA_BINARY) + " --config " +
                       setup.config_path + " sendmail -f a@x153.example b@x153.example");
  EXPECT_EQ(sent.exit_code, 75) << sent.out;
  EXPECT_EQ(lab::count(sent.out, "\n"), 1u) << "one line: " << sent.out;
  EXPECT_EQ(sent.out.rfind("danemta sendmail: cannot submit to the relay at 127.0.0.1:", 0), 0u)
      << sent.out;
  EXPECT_NE(sent.out.find("try again later"), std::string::npos) << sent.out;

  // Usage errors are EX_USAGE, before any input is read.
  lab::CommandResult smtp_mode = lab::run_command(std::string(DANEMTA_BINARY) + " --config " +
                                                  setup.config_path + " sendmail -bs </dev/null");
  EXPECT_EQ(smtp_mode.exit_code, 64) << smtp_mode.out;
  EXPECT_NE(smtp_mode.out.find("-bs"), std::string::npos) << smtp_mode.out;
  lab::CommandResult none = lab::run_command(std::string(DANEMTA_BINARY) + " --config " +
                                             setup.config_path + " sendmail </dev/null");
  EXPECT_EQ(none.exit_code, 64) << none.out;
  EXPECT_NE(none.out.find("no recipients"), std::string::npos) << none.out;
}

TEST(Sendmail, RelayAddsDateAndMessageIdToSubmissionsThatLackThem) {
  Receivers rx(154);
  auto chain = lab::self_signed({"mx.c154.example"});
  lab::Receiver& mx = rx.add(10, Receivers::with_chain(chain, "mx.c154.example"));
  lab::World world(spec({{{"name", "c154.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  RelaySetup setup(world, rx.port(), "");
  auto relay = setup.start();
  // `danemta send` passes the text as it is: the relay does the completing.
  auto send = [&](const std::string& name, const std::string& text, const std::string& to) {
    const std::string path = world.dir() + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return lab::run_command(std::string(DANEMTA_BINARY) + " --config " + setup.config_path +
                            " send -f s@sender.example " + to + " < " + path);
  };
  ASSERT_EQ(send("bare.eml",
                 "Subject: bare\r\nX-Folded: a\r\n Date: not a field\r\n\r\n"
                 "Date: in the body\r\nMessage-ID: in the body\r\n",
                 "one@c154.example")
                .exit_code,
            0);
  ASSERT_EQ(send("complete.eml",
                 "date: Mon, 1 Dec 2025 12:00:00 +0000\r\nMESSAGE-ID: <own@sender.example>\r\n"
                 "Subject: complete\r\n\r\nbody\r\n",
                 "two@c154.example")
                .exit_code,
            0);
  ASSERT_EQ(send("headers-only.eml", "Subject: no body", "three@c154.example").exit_code, 0);
  ASSERT_TRUE(wait_messages(mx, 3)) << relay->log();

  std::map<std::string, std::string> by_rcpt;
  for (const lab::Session& s : mx.sessions())
    for (const lab::Message& m : s.messages) by_rcpt[m.rcpt_to.at(0)] = m.data;

  const std::string& bare = by_rcpt["one@c154.example"];
  const std::string bare_header = header_of(bare);
  EXPECT_EQ(fields_named(bare_header, "Date"), 1u) << bare;
  EXPECT_EQ(fields_named(bare_header, "Message-ID"), 1u) << bare;
  EXPECT_NE(bare_header.find("\r\nDate: "), std::string::npos);
  EXPECT_NE(bare_header.find("@relay.lab.example>\r\n"), std::string::npos)
      << "Message-ID names the relay: " << bare_header;
  EXPECT_NE(bare.find("\r\n\r\nDate: in the body\r\nMessage-ID: in the body\r\n"),
            std::string::npos)
      << "the body is untouched: " << bare;

  const std::string& complete = by_rcpt["two@c154.example"];
  EXPECT_EQ(fields_named(header_of(complete), "Date"), 1u) << complete;
  EXPECT_EQ(fields_named(header_of(complete), "Message-ID"), 1u) << complete;
  EXPECT_NE(complete.find("MESSAGE-ID: <own@sender.example>\r\n"), std::string::npos) << complete;

  const std::string& headers_only = by_rcpt["three@c154.example"];
  EXPECT_EQ(headers_only.find("\r\n\r\n"), std::string::npos)
      << "no body, so no empty line: " << headers_only;
  EXPECT_NE(headers_only.find("Subject: no body\r\nDate: "), std::string::npos) << headers_only;
  EXPECT_NE(headers_only.find("\r\nMessage-ID: <"), std::string::npos) << headers_only;
  relay->stop(SIGTERM);
}

}  // namespace
