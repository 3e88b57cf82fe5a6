// `danemta deliver`: the binary delivering one message through the lab and
// logging Postfix-style lines.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/receivers.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;
using lab::Receivers;
using nlohmann::json;

TEST(DeliverCli, LogsOneLinePerRecipientAndAttempt) {
  Receivers rx(61);
  auto good = lab::self_signed({"mx.ok61.example"});
  auto old_key = lab::self_signed({"mx.stale61.example"});
  lab::Receiver& ok_mx = rx.add(10, Receivers::with_chain(good, "mx.ok61.example"));
  rx.add(11, Receivers::with_chain(good, "mx.stale61.example"));
  lab::World world(json{{"zones",
                         {{{"name", "ok61.example"},
                           {"records",
                            {"@ MX 10 mx", "mx A " + rx.ip(10),
                             rx.tlsa_line("mx", lab::tlsa_rdata(good.leaf, 3, 1, 1))}}},
                          {{"name", "stale61.example"},
                           {"records",
                            {"@ MX 10 mx", "mx A " + rx.ip(11),
                             rx.tlsa_line("mx", lab::tlsa_rdata(old_key.leaf, 3, 1, 1))}}}}}}
                       .dump());
  std::string msg_path = world.dir() + "/message.eml";
  std::ofstream(msg_path) << "Subject: test\n\nhello\n";
  std::string base = std::string(DANEMTA_BINARY) + " deliver --resolver " + world.resolver() +
                     " --trust-anchor " + world.trust_anchor_file() + " --port " +
                     std::to_string(rx.port()) + " --from a@sender.example ";

  lab::CommandResult ok =
      lab::run_command(base + "--to x@ok61.example --to y@ok61.example " + msg_path);
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_NE(ok.out.find("direct: to=<x@ok61.example>, relay=mx.ok61.example[" + rx.ip(10) +
                        "]:" + std::to_string(rx.port())),
            std::string::npos)
      << ok.out;
  EXPECT_NE(ok.out.find("status=sent"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("tls=dane-verified"), std::string::npos) << ok.out;
  ASSERT_EQ(ok_mx.sessions().size(), 1u);
  ASSERT_EQ(ok_mx.sessions()[0].messages.size(), 1u);
  EXPECT_EQ(ok_mx.sessions()[0].messages[0].data, "Subject: test\r\n\r\nhello\r\n");

  lab::CommandResult stale = lab::run_command(base + "--to z@stale61.example " + msg_path);
  EXPECT_EQ(stale.exit_code, 1) << stale.out;
  EXPECT_NE(stale.out.find("tlsa-invalid: DANE verification failed"), std::string::npos)
      << stale.out;
  EXPECT_NE(stale.out.find("dsn=4.7.323, status=deferred (tlsa-invalid"), std::string::npos)
      << stale.out;

  lab::CommandResult mixed =
      lab::run_command(base + "--to a@ok61.example --to b@other.example " + msg_path);
  EXPECT_EQ(mixed.exit_code, 2);
  EXPECT_NE(mixed.out.find("one domain"), std::string::npos) << mixed.out;
}

}  // namespace
