// Signals through the real relay: SIGHUP reloads the configuration file under
// load without losing or repeating a message (and keeps the running one when
// the new file is wrong); SIGTERM drains for [relay] shutdown_grace_seconds
// and logs each attempt it cuts off, whose recipients stay queued.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <map>
#include <sstream>
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

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Rewrites the relay's config: the original text (which ends in [relay])
// plus `relay_keys`, which replace its `listen` line if they have one; then
// sends SIGHUP.
void reload(const RelaySetup& setup, const lab::Process& relay, std::string original,
            const std::string& relay_keys) {
  if (relay_keys.find("listen = ") != std::string::npos) {
    const std::size_t at = original.find("\nlisten = ");
    original.erase(at + 1, original.find('\n', at + 1) - at);
  }
  std::ofstream(setup.config_path) << original << relay_keys;
  ASSERT_EQ(kill(relay.pid(), SIGHUP), 0);
}

// Submits `count` messages over one SMTP session, subjects "load N".
lab::CommandResult submit(const std::string& dir, std::uint16_t port, const std::string& to,
                          int count) {
  const std::string script = dir + "/load.py";
  std::ofstream(script) << "import smtplib, sys\n"
                           "port, to, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])\n"
                           "s = smtplib.SMTP('127.0.0.1', port)\n"
                           "for i in range(n):\n"
                           "    msg = 'From: a@sender.example\\r\\nTo: %s\\r\\nSubject: load "
                           "%d\\r\\n\\r\\nbody\\r\\n' % (to, i)\n"
                           "    s.sendmail('a@sender.example', [to], msg)\n"
                           "s.quit()\n";
  return lab::run_command("python3 " + script + " " + std::to_string(port) + " " + to + " " +
                          std::to_string(count));
}

TEST(RelaySignals, ReloadUnderLoadLosesNothing) {
  Receivers rx(159);
  auto chain = lab::self_signed({"mx.load159.example"});
  lab::Receiver& mx = rx.add(10, Receivers::with_chain(chain, "mx.load159.example"));
  lab::World world(lab::spec({{{"name", "load159.example"},
                               {"records",
                                {"@ MX 10 mx", "mx A " + rx.ip(10),
                                 rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  RelaySetup setup(world, rx.port(), "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n");
  const std::string original = read_file(setup.config_path);
  auto relay = setup.start();
  const std::uint16_t second = lab::free_tcp_port();

  constexpr int kMessages = 300;
  lab::CommandResult load;
  std::thread submitter(
      [&] { load = submit(world.dir(), setup.listen_port, "a@load159.example", kMessages); });
  const std::string second_listener = "listen = [\"127.0.0.1:" + std::to_string(setup.listen_port) +
                                      "\", \"127.0.0.1:" + std::to_string(second) + "\"]\n";
  const std::vector<std::string> variants = {
      "max_deliveries = 2\n", "max_deliveries = 50\nmax_per_destination = 1\n",
      second_listener + "max_deliveries = 3\n", second_listener,
      second_listener + "max_recipients = 10\n"};
  for (const std::string& v : variants) {
    reload(setup, *relay, original, v);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  submitter.join();
  ASSERT_EQ(load.exit_code, 0) << load.out << relay->log();
  ASSERT_TRUE(lab::wait_messages(mx, kMessages, std::chrono::seconds(60))) << relay->log();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::map<std::string, int> seen;
  for (const lab::Session& s : mx.sessions())
    for (const lab::Message& m : s.messages) {
      const std::size_t at = m.data.find("Subject: load ");
      ASSERT_NE(at, std::string::npos) << m.data;
      ++seen[m.data.substr(at, m.data.find('\r', at) - at)];
    }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kMessages)) << "every message arrived";
  for (const auto& [subject, n] : seen) EXPECT_EQ(n, 1) << subject << " arrived more than once";

  const std::string log = relay->log();
  EXPECT_NE(log.find("reload: relay.max_deliveries: (unset) -> 2"), std::string::npos) << log;
  EXPECT_NE(log.find("reload: listening on 127.0.0.1:" + std::to_string(second)), std::string::npos)
      << log;
  EXPECT_NE(log.find("configuration reloaded from " + setup.config_path), std::string::npos);

  // The new listener serves.
  lab::CommandResult via_second =
      lab::run_command("swaks --server 127.0.0.1:" + std::to_string(second) +
                       " --from a@sender.example --to b@load159.example");
  EXPECT_EQ(via_second.exit_code, 0) << via_second.out;
  ASSERT_TRUE(lab::wait_messages(mx, kMessages + 1)) << relay->log();

  // A wrong file is refused; the running configuration goes on.
  reload(setup, *relay, original, second_listener + "max_deliveries = \"many\"\n");
  ASSERT_TRUE(relay->wait_for_log("configuration refused, the running one stays")) << relay->log();
  EXPECT_NE(relay->log().find("relay.max_deliveries"), std::string::npos);
  EXPECT_EQ(setup.swaks("a@sender.example", "c@load159.example").exit_code, 0);
  ASSERT_TRUE(lab::wait_messages(mx, kMessages + 2)) << relay->log();

  // The allow list applies to the next client at once; the second listener
  // is closed.
  reload(setup, *relay, original, "allow = [\"192.0.2.0/24\"]\n");
  ASSERT_TRUE(
      relay->wait_for_log("reload: stopped listening on 127.0.0.1:" + std::to_string(second)))
      << relay->log();
  ASSERT_TRUE(relay->wait_for_log("configuration reloaded", std::chrono::seconds(5)));
  lab::CommandResult refused = setup.swaks("a@sender.example", "d@load159.example");
  EXPECT_NE(refused.exit_code, 0) << refused.out;
  EXPECT_NE(refused.out.find("554 5.7.1"), std::string::npos) << refused.out;
  EXPECT_NE(lab::run_command("swaks --server 127.0.0.1:" + std::to_string(second) +
                             " --from a@sender.example --to b@load159.example")
                .exit_code,
            0)
      << "closed";
  EXPECT_EQ(relay->stop(SIGTERM), 0);
  EXPECT_EQ(lab::messages(mx), static_cast<std::size_t>(kMessages + 2));
}

TEST(RelaySignals, TermCutsOffSlowAttemptsWithALogLine) {
  Receivers rx(160);
  auto chain = lab::self_signed({"mx.slow160.example"});
  lab::Behaviour slow = Receivers::with_chain(chain, "mx.slow160.example");
  slow.slow_drip_ms = 200;  // a greeting takes seconds
  lab::Receiver& mx = rx.add(10, slow);
  lab::World world(lab::spec({{{"name", "slow160.example"},
                               {"records",
                                {"@ MX 10 mx", "mx A " + rx.ip(10),
                                 rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  RelaySetup setup(world, rx.port(),
                   "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n"
                   "shutdown_grace_seconds = 1\n");
  auto relay = setup.start();
  ASSERT_EQ(setup.swaks("a@sender.example", "b@slow160.example").exit_code, 0);
  ASSERT_TRUE(relay->wait_for_log(": client=")) << relay->log();
  const std::string log = relay->log();
  const std::size_t colon = log.find(": client=");
  const std::size_t space = log.find_last_of(" \n", colon - 1);
  const std::string id = log.substr(space + 1, colon - space - 1);
  // Wait until the relay is connected to the slow receiver.
  for (int i = 0; i < 100 && mx.sessions().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_FALSE(mx.sessions().empty()) << relay->log();

  const int status = relay->stop(SIGTERM);
  const std::string after = relay->log();
  EXPECT_EQ(status, 0) << after;
  EXPECT_NE(after.find("stopping (grace 1 s)"), std::string::npos) << after;
  EXPECT_NE(after.find(id + ": delivery to slow160.example"), std::string::npos) << after;
  EXPECT_NE(after.find("cut off by shutdown; its recipients stay queued"), std::string::npos)
      << after;
  EXPECT_EQ(lab::messages(mx), 0u);
  lab::CommandResult list = setup.queue("list");
  EXPECT_NE(list.out.find("<b@slow160.example>  pending"), std::string::npos) << list.out;
}

}  // namespace
