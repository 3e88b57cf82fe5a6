// RFC 6152 section 3 through the relay: an 8-bit message for a next hop that
// does not offer 8BITMIME arrives as 7-bit MIME whose decoded body is the
// original; one with 8-bit header fields (RFC 6532) is bounced with 5.6.7.
// The submitter's BODY=8BITMIME and SMTPUTF8 travel with the message.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

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

TEST(EightBit, ConvertedToSevenBitForAHopWithout8BitMime) {
  Receivers rx(127);
  auto chain = lab::self_signed({"mx.old127.example"});
  lab::Behaviour b = Receivers::with_chain(chain, "mx.old127.example");
  b.advertise = {"PIPELINING", "SIZE 10240000"};  // no 8BITMIME, no SMTPUTF8
  lab::Receiver& mx = rx.add(10, b);
  lab::World world(lab::spec({{{"name", "old127.example"},
                               {"records",
                                {"@ MX 10 mx", "mx A " + rx.ip(10),
                                 rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  RelaySetup setup(world, rx.port(), "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n");
  auto relay = setup.start();

  const std::string body =
      "Gr\xc3\xbc\xc3\x9f"
      "e aus Z\xc3\xbcrich = 100 \xe2\x82\xac";
  lab::CommandResult sent = lab::run_command(
      "swaks --server 127.0.0.1:" + std::to_string(setup.listen_port) +
      " --from a@sender.example --to b@old127.example --header 'Subject: eight bit' --body '" +
      body + "'");
  ASSERT_EQ(sent.exit_code, 0) << sent.out;
  ASSERT_TRUE(lab::wait_messages(mx, 1)) << relay->log();
  const std::vector<lab::Session> sessions = mx.sessions();
  const std::string data = sessions[0].messages[0].data;
  for (const char c : data)
    ASSERT_LT(static_cast<unsigned char>(c), 0x80) << "7-bit on the wire: " << data;
  EXPECT_NE(data.find("Content-Transfer-Encoding: quoted-printable"), std::string::npos) << data;
  EXPECT_NE(data.find("MIME-Version: 1.0"), std::string::npos) << data;

  // An independent decoder: Python's email module.
  const std::string file = world.dir() + "/got.eml";
  std::ofstream(file, std::ios::binary) << data;
  lab::CommandResult decoded = lab::run_command(
      "python3 -c \"import email,sys; m=email.message_from_binary_file(open(sys.argv[1],'rb')); "
      "sys.stdout.buffer.write(m.get_payload(decode=True))\" " +
      file);
  ASSERT_EQ(decoded.exit_code, 0) << decoded.out;
  // Python's decoder turns the line ends into "\n"; swaks adds empty lines.
  EXPECT_EQ(decoded.out.substr(0, body.size()), body) << decoded.out;
  EXPECT_EQ(decoded.out.find_first_not_of("\r\n", body.size()), std::string::npos) << decoded.out;
  EXPECT_NE(relay->log().find("status=sent"), std::string::npos) << relay->log();
  relay->stop(SIGTERM);
}

TEST(EightBit, EightBitHeaderToAHopWithoutSmtpUtf8Bounces) {
  Receivers rx(128);
  auto chain = lab::self_signed({"mx.old128.example"});
  lab::Behaviour b = Receivers::with_chain(chain, "mx.old128.example");
  b.advertise = {"PIPELINING", "SIZE 10240000"};
  lab::Receiver& mx = rx.add(10, b);
  lab::World world(lab::spec({{{"name", "old128.example"},
                               {"records",
                                {"@ MX 10 mx", "mx A " + rx.ip(10),
                                 rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  RelaySetup setup(world, rx.port(), "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n");
  auto relay = setup.start();
  lab::CommandResult sent = lab::run_command(
      "swaks --server 127.0.0.1:" + std::to_string(setup.listen_port) +
      " --from a@sender.example --to b@old128.example --header 'Subject: Gr\xc3\xbc\xc3\x9f"
      "e'");
  ASSERT_EQ(sent.exit_code, 0) << sent.out;
  ASSERT_TRUE(relay->wait_for_log("dsn=5.6.7, status=bounced")) << relay->log();
  EXPECT_EQ(lab::messages(mx), 0u);
  relay->stop(SIGTERM);
}

// Submits one message with Python's smtplib (swaks cannot send MAIL
// parameters): `options` are MAIL parameters ("SMTPUTF8", "BODY=8BITMIME").
lab::CommandResult submit(const RelaySetup& setup, const std::string& dir, const std::string& to,
                          const std::string& subject, const std::string& options) {
  const std::string script = dir + "/submit.py";
  std::ofstream(script) << "import smtplib, sys\n"
                           "to, subject, options = sys.argv[1], sys.argv[2], sys.argv[3].split()\n"
                           "msg = ('From: a@sender.example\\r\\nTo: ' + to + '\\r\\nSubject: ' + "
                           "subject + '\\r\\n\\r\\nplain ASCII body\\r\\n').encode('utf-8')\n"
                           "s = smtplib.SMTP('127.0.0.1', "
                        << setup.listen_port
                        << ")\n"
                           "s.ehlo('client.lab.example')\n"
                           "s.sendmail('a@sender.example', [to], msg, mail_options=options)\n"
                           "s.quit()\n";
  return lab::run_command("python3 " + script + " '" + to + "' '" + subject + "' '" + options +
                          "'");
}

std::string mail_command(const lab::Receiver& mx) {
  for (const lab::Session& s : mx.sessions())
    for (const lab::Command& c : s.commands)
      if (c.line.rfind("MAIL FROM:", 0) == 0) return c.line;
  return "";
}

TEST(EightBit, SubmittersMailParametersGoToTheNextHop) {
  Receivers rx(157);
  auto chain = lab::self_signed({"mx.utf157.example", "mx.ascii157.example"});
  lab::Receiver& modern = rx.add(10, Receivers::with_chain(chain, "mx.utf157.example"));
  lab::Behaviour b = Receivers::with_chain(chain, "mx.ascii157.example");
  b.advertise = {"PIPELINING", "SIZE 10240000", "8BITMIME"};  // no SMTPUTF8
  lab::Receiver& old = rx.add(11, b);
  const std::string tlsa = lab::tlsa_rdata(chain.leaf, 3, 1, 1);
  lab::World world(
      lab::spec({{{"name", "utf157.example"},
                  {"records", {"@ MX 10 mx", "mx A " + rx.ip(10), rx.tlsa_line("mx", tlsa)}}},
                 {{"name", "ascii157.example"},
                  {"records", {"@ MX 10 mx", "mx A " + rx.ip(11), rx.tlsa_line("mx", tlsa)}}}}));
  RelaySetup setup(world, rx.port(), "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n");
  auto relay = setup.start();
  const std::string dir = world.dir();
  const std::string utf8_subject =
      "Gr\xc3\xbc\xc3\x9f"
      "e";

  // BODY=8BITMIME declared for an ASCII text is passed on as declared.
  ASSERT_EQ(submit(setup, dir, "a@utf157.example", "ascii", "BODY=8BITMIME").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(modern, 1)) << relay->log();
  EXPECT_NE(mail_command(modern).find(" BODY=8BITMIME"), std::string::npos) << mail_command(modern);
  EXPECT_EQ(mail_command(modern).find("SMTPUTF8"), std::string::npos) << mail_command(modern);

  // SMTPUTF8 with a UTF-8 Subject: passed on, header intact.
  ASSERT_EQ(submit(setup, dir, "b@utf157.example", utf8_subject, "SMTPUTF8").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(modern, 2)) << relay->log();
  {
    const std::vector<lab::Session> sessions = modern.sessions();
    const lab::Session& last = sessions.back();
    bool with_utf8 = false;
    for (const lab::Command& c : last.commands)
      if (c.line.rfind("MAIL FROM:", 0) == 0 && c.line.find(" SMTPUTF8") != std::string::npos)
        with_utf8 = true;
    EXPECT_TRUE(with_utf8) << "SMTPUTF8 passed on";
    EXPECT_NE(last.messages.back().data.find("Subject: " + utf8_subject), std::string::npos);
  }

  // The same message to a hop without SMTPUTF8 (but with 8BITMIME): RFC 6532
  // header fields cannot go there, 5.6.7, and nothing is sent.
  ASSERT_EQ(submit(setup, dir, "c@ascii157.example", utf8_subject, "SMTPUTF8").exit_code, 0);
  ASSERT_TRUE(relay->wait_for_log("to=<c@ascii157.example>")) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("dsn=5.6.7, status=bounced")) << relay->log();
  EXPECT_NE(relay->log().find("does not offer SMTPUTF8"), std::string::npos) << relay->log();
  EXPECT_EQ(lab::messages(old), 0u);

  // An SMTPUTF8 message that is all ASCII needs nothing of the hop.
  ASSERT_EQ(submit(setup, dir, "d@ascii157.example", "ascii", "SMTPUTF8").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(old, 1)) << relay->log();
  EXPECT_EQ(mail_command(old).find("SMTPUTF8"), std::string::npos) << mail_command(old);
  relay->stop(SIGTERM);
}

// RFC 6531 and RFC 5891: an SMTPUTF8 recipient in a Unicode domain is
// delivered to the MX of the domain's A-label form (the only form the lab's
// DNS has), DANE-verified, with the address passed on as it was given.
TEST(EightBit, InternationalizedDomainGoesToItsALabelMx) {
  Receivers rx(196);
  auto chain = lab::self_signed({"mx.xn--bcher196-65a.example"});
  lab::Receiver& mx = rx.add(10, Receivers::with_chain(chain, "mx.xn--bcher196-65a.example"));
  lab::World world(lab::spec({{{"name", "xn--bcher196-65a.example"},
                               {"records",
                                {"@ MX 10 mx", "mx A " + rx.ip(10),
                                 rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  RelaySetup setup(world, rx.port(), "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n");
  auto relay = setup.start();
  const std::string to =
      "u@B\xc3\x9c"
      "cher196.example";
  ASSERT_EQ(submit(setup, world.dir(), to, "idn", "SMTPUTF8").exit_code, 0) << relay->log();
  ASSERT_TRUE(lab::wait_messages(mx, 1)) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("status=sent")) << relay->log();
  EXPECT_NE(relay->log().find("tls=dane-verified"), std::string::npos) << relay->log();
  bool rcpt_as_given = false;
  for (const lab::Session& s : mx.sessions())
    for (const lab::Command& c : s.commands)
      if (c.line == "RCPT TO:<" + to + ">") rcpt_as_given = true;
  EXPECT_TRUE(rcpt_as_given) << "the address goes on in the form the sender gave";
  relay->stop(SIGTERM);
}

}  // namespace
