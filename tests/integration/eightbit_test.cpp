// RFC 6152 section 3 through the relay: an 8-bit message for a next hop that
// does not offer 8BITMIME arrives as 7-bit MIME whose decoded body is the
// original; one with 8-bit header fields (RFC 6532) is bounced with 5.6.7.
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

}  // namespace
