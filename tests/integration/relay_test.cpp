// `danemta relay` end to end: the daemon binary with its SQLite spool, fed by
// swaks, delivering through the signed lab world to lab receivers; bounces,
// restarts after kill -9, and refusal of clients outside `allow`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
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
using lab::messages;
using lab::Receivers;
using lab::RelaySetup;
using lab::spec;
using lab::wait_messages;
using nlohmann::json;

TEST(Relay, DeliversWithDaneAndLogsIt) {
  Receivers rx(71);
  auto chain = lab::self_signed({"mx.good71.example"});
  lab::Receiver& mx = rx.add(10, Receivers::with_chain(chain, "mx.good71.example"));
  lab::World world(spec({{{"name", "good71.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  RelaySetup setup(world, rx.port(), "");
  auto relay = setup.start();

  lab::CommandResult sent = setup.swaks("a@sender.example", "b@good71.example");
  ASSERT_EQ(sent.exit_code, 0) << sent.out;
  EXPECT_NE(sent.out.find("queued as"), std::string::npos) << sent.out;
  ASSERT_TRUE(wait_messages(mx, 1)) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("status=sent")) << relay->log();
  std::string log = relay->log();
  EXPECT_NE(log.find("to=<b@good71.example>, relay=mx.good71.example[" + rx.ip(10)),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("tls=dane-verified"), std::string::npos) << log;
  // Postfix's layout, which pflogsumm and Postfix patterns expect.
  EXPECT_TRUE(std::regex_search(
      log, std::regex(
               R"(danemta/smtp\[\d+\]: \w+: to=<b@good71\.example>, )"
               R"(relay=mx\.good71\.example\[[0-9.]+\]:\d+, delay=[0-9.]+, )"
               R"(delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=2\.0\.0, status=sent \(250 [^)]*\), )"
               R"(tls=dane-verified\n)")))
      << log;
  const std::vector<lab::Session> sessions = mx.sessions();  // a copy: keep it alive
  const lab::Message& m = sessions[0].messages[0];
  EXPECT_TRUE(m.in_tls);
  EXPECT_EQ(m.mail_from, "a@sender.example");
  EXPECT_NE(m.data.find("Received: from "), std::string::npos) << "trace header (RFC 5321 4.4)";
  EXPECT_NE(m.data.find("hello through danemta"), std::string::npos);

  lab::CommandResult q = setup.queue("list --all");
  EXPECT_EQ(q.exit_code, 0) << q.out;
  EXPECT_NE(q.out.find("delivered"), std::string::npos) << q.out;

  // Its threads, by the names docs/operations.md lists.
  std::map<std::string, int> threads;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(relay->pid()) + "/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    ++threads[name];
  }
  EXPECT_EQ(threads["danemta-intake"], 1);
  EXPECT_EQ(threads["danemta-spool"], 8);
  EXPECT_EQ(threads["danemta-auth"], 1);
  EXPECT_GE(threads["danemta"], 1) << "the main thread";

  EXPECT_EQ(relay->stop(SIGTERM), 0) << relay->log();
  EXPECT_NE(relay->log().find("danemta relay: stopped"), std::string::npos);
}

TEST(Relay, JsonLinesLog) {
  Receivers rx(78);
  auto chain = lab::self_signed({"mx.j78.example"});
  lab::Receiver& mx = rx.add(10, Receivers::with_chain(chain, "mx.j78.example"));
  lab::World world(spec({{{"name", "j78.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}}}));
  RelaySetup setup(world, rx.port(), "log_format = \"json\"\n");
  auto relay = setup.start();
  ASSERT_EQ(setup.swaks("a@sender.example", "b@j78.example").exit_code, 0);
  ASSERT_TRUE(wait_messages(mx, 1)) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("\"event\":\"removed\"")) << relay->log();
  relay->stop(SIGTERM);

  std::istringstream lines(relay->log());
  std::string text;
  std::size_t queued = 0, delivered = 0, removed = 0;
  const std::regex millis(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$)");
  while (std::getline(lines, text)) {
    json j;
    ASSERT_NO_THROW(j = json::parse(text)) << "not a JSON line: " << text;
    ASSERT_TRUE(j.contains("time") && j.contains("event") && j.contains("level")) << text;
    EXPECT_TRUE(std::regex_match(j["time"].get<std::string>(), millis)) << text;
    if (j["event"] == "queued") {
      ++queued;
      EXPECT_EQ(j["from"], "a@sender.example");
      EXPECT_EQ(j["client"], "127.0.0.1");
      EXPECT_TRUE(j["size"].is_number_unsigned()) << text;
      EXPECT_GT(j["size"].get<std::size_t>(), 20u) << text;
      EXPECT_EQ(j["nrcpt"], 1) << text;
    }
    if (j["event"] == "delivery") {
      ++delivered;
      EXPECT_EQ(j["level"], "info");
      EXPECT_EQ(j["to"], "b@j78.example");
      EXPECT_EQ(j["status"], "sent");
      EXPECT_EQ(j["dsn"], "2.0.0");
      EXPECT_EQ(j["tls"], "dane-verified");
      EXPECT_EQ(j["relay"], "mx.j78.example[" + rx.ip(10) + "]:" + std::to_string(rx.port()));
      EXPECT_EQ(j["id"], j["id"].get<std::string>());
      ASSERT_TRUE(j["delay"].is_number()) << text;
      ASSERT_TRUE(j["delays"].is_object()) << text;
      double sum = 0;
      for (const char* part : {"queue", "wait", "setup", "transmission"}) {
        ASSERT_TRUE(j["delays"][part].is_number()) << part << ": " << text;
        EXPECT_GE(j["delays"][part].get<double>(), 0) << part << ": " << text;
        sum += j["delays"][part].get<double>();
      }
      // The parts add up to the delay (each rounded to the millisecond); a
      // delivery over a DANE session takes some setup and transmission time.
      EXPECT_NEAR(sum, j["delay"].get<double>(), 0.0025) << text;
      EXPECT_GT(j["delays"]["setup"].get<double>(), 0) << text;
      EXPECT_GT(j["delays"]["transmission"].get<double>(), 0) << text;
      EXPECT_LT(j["delay"].get<double>(), 60) << text;
    }
    if (j["event"] == "removed") ++removed;
  }
  EXPECT_EQ(queued, 1u);
  EXPECT_EQ(delivered, 1u);
  EXPECT_EQ(removed, 1u);
}

TEST(Relay, StaleTlsaDefersThenBouncesWithTheCodeAndTheFix) {
  Receivers rx(72);
  auto good = lab::self_signed({"mx.home72.example"});
  auto old_key = lab::self_signed({"mx.stale72.example"});
  lab::Receiver& home = rx.add(10, Receivers::with_chain(good, "mx.home72.example"));
  lab::Receiver& stale = rx.add(11, Receivers::with_chain(good, "mx.stale72.example"));
  lab::World world(spec({{{"name", "home72.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            rx.tlsa_line("mx", lab::tlsa_rdata(good.leaf, 3, 1, 1))}}},
                         {{"name", "stale72.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(11),
                            rx.tlsa_line("mx", lab::tlsa_rdata(old_key.leaf, 3, 1, 1))}}}}));
  RelaySetup setup(
      world, rx.port(),
      "queue_lifetime_seconds = 2\nmin_backoff_seconds = 1\nmax_backoff_seconds = 1\n");
  auto relay = setup.start();

  lab::CommandResult sent = setup.swaks("alice@home72.example", "bob@stale72.example");
  ASSERT_EQ(sent.exit_code, 0) << sent.out;
  ASSERT_TRUE(relay->wait_for_log("dsn=4.7.323, status=deferred (tlsa-invalid")) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("queue lifetime expired")) << relay->log();
  ASSERT_TRUE(wait_messages(home, 1)) << relay->log();
  EXPECT_EQ(messages(stale), 0u) << "never a byte of mail to the impostor";

  const std::vector<lab::Session> sessions = home.sessions();
  const lab::Message& bounce = sessions[0].messages[0];
  EXPECT_EQ(bounce.mail_from, "") << "bounces have the null sender";
  EXPECT_EQ(bounce.rcpt_to, std::vector<std::string>{"alice@home72.example"});
  EXPECT_NE(bounce.data.find("multipart/report"), std::string::npos) << bounce.data;
  EXPECT_NE(bounce.data.find("Status: 5.7.323"), std::string::npos) << bounce.data;
  EXPECT_NE(bounce.data.find("Final-Recipient: rfc822; bob@stale72.example"), std::string::npos)
      << bounce.data;
  EXPECT_NE(bounce.data.find("Publish a TLSA record for the certificate"), std::string::npos)
      << "the words for the receiving admin: " << bounce.data;
  relay->stop(SIGTERM);
}

TEST(Relay, AcceptedMessageSurvivesKillNine) {
  Receivers rx(73);
  auto chain = lab::self_signed({"mx.later73.example"});
  // Fix the port with a first receiver, then take it away: the MX is down.
  auto probe = std::make_unique<lab::Receiver>([&] {
    lab::Behaviour b = Receivers::with_chain(chain, "mx.later73.example");
    b.address = rx.ip(10);
    return b;
  }());
  std::uint16_t port = probe->port();
  probe.reset();
  lab::World world(spec({{{"name", "later73.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            "_" + std::to_string(port) + "._tcp.mx TLSA " +
                                lab::tlsa_rdata(chain.leaf, 3, 1, 1)}}}}));
  RelaySetup setup(world, port, "min_backoff_seconds = 1\nmax_backoff_seconds = 1\n");
  auto relay = setup.start();
  lab::CommandResult sent = setup.swaks("a@sender.example", "c@later73.example");
  ASSERT_EQ(sent.exit_code, 0) << sent.out;
  ASSERT_TRUE(relay->wait_for_log("status=deferred")) << relay->log();
  relay->stop(SIGKILL);

  lab::Behaviour b = Receivers::with_chain(chain, "mx.later73.example");
  b.address = rx.ip(10);
  b.port = port;
  lab::Receiver mx(b);
  auto again = setup.start();
  ASSERT_TRUE(wait_messages(mx, 1)) << again->log();
  EXPECT_TRUE(again->wait_for_log("status=sent")) << again->log();
  again->stop(SIGTERM);
}

TEST(Relay, QueueDrainsOverOneSessionWhenTheMxReturns) {
  Receivers rx(76);
  auto chain = lab::self_signed({"mx.back76.example"});
  auto probe = std::make_unique<lab::Receiver>([&] {
    lab::Behaviour b = Receivers::with_chain(chain, "mx.back76.example");
    b.address = rx.ip(10);
    return b;
  }());
  std::uint16_t port = probe->port();
  probe.reset();  // the MX is down while mail queues up
  lab::World world(spec({{{"name", "back76.example"},
                          {"records",
                           {"@ MX 10 mx", "mx A " + rx.ip(10),
                            "_" + std::to_string(port) + "._tcp.mx TLSA " +
                                lab::tlsa_rdata(chain.leaf, 3, 1, 1)}}}}));
  RelaySetup setup(world, port, "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n");
  auto relay = setup.start();
  for (int i = 0; i < 4; ++i)
    ASSERT_EQ(
        setup.swaks("a@sender.example", "m" + std::to_string(i) + "@back76.example").exit_code, 0);
  auto deferred = [&] {
    std::string log = relay->log();
    std::size_t n = 0;
    for (auto at = log.find("status=deferred"); at != std::string::npos;
         at = log.find("status=deferred", at + 1))
      ++n;
    return n;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (deferred() < 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(deferred(), 4u) << relay->log();

  lab::Behaviour b = Receivers::with_chain(chain, "mx.back76.example");
  b.address = rx.ip(10);
  b.port = port;
  lab::Receiver mx(b);
  ASSERT_EQ(setup.queue("flush").exit_code, 0);
  ASSERT_TRUE(wait_messages(mx, 4)) << relay->log();
  EXPECT_EQ(mx.sessions().size(), 1u) << "four queued messages, one DANE session";
  relay->stop(SIGTERM);
}

TEST(Relay, SendAndQueueCommands) {
  // The MX is down: the message stays pending for the queue commands to see.
  lab::World world(
      spec({{{"name", "down75.example"}, {"records", {"@ MX 10 mx", "mx A 127.0.75.10"}}}}));
  RelaySetup setup(world, 25, "min_backoff_seconds = 60\nmax_backoff_seconds = 60\n");
  auto relay = setup.start();
  std::string msg = world.dir() + "/m.eml";
  std::ofstream(msg) << "Subject: queued\n\nbody\n";
  lab::CommandResult sent =
      lab::run_command(std::string(DANEMTA_BINARY) + " --config " + setup.config_path +
                       " send -f me@sender.example you@down75.example < " + msg);
  ASSERT_EQ(sent.exit_code, 0) << sent.out;
  auto at = sent.out.find("queued as ");
  ASSERT_NE(at, std::string::npos) << sent.out;
  std::string id = sent.out.substr(at + 10, sent.out.find_first_of("\r\n", at) - at - 10);
  ASSERT_TRUE(relay->wait_for_log(id + ": to=<you@down75.example>")) << relay->log();

  lab::CommandResult show = setup.queue("show " + id);
  EXPECT_EQ(show.exit_code, 0) << show.out;
  EXPECT_NE(show.out.find("<you@down75.example>  pending  attempts=1"), std::string::npos)
      << show.out;
  EXPECT_NE(show.out.find("connection-failed"), std::string::npos) << show.out;

  lab::CommandResult flush = setup.queue("flush " + id);
  EXPECT_EQ(flush.exit_code, 0) << flush.out;
  EXPECT_NE(flush.out.find("1 recipient(s) due now"), std::string::npos) << flush.out;
  // The running relay retries within its idle poll (5 s), not after the 60 s backoff.
  const auto first = relay->log().find(id + ": to=<you@down75.example>");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (relay->log().find(id + ": to=<you@down75.example>", first + 1) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_NE(relay->log().find(id + ": to=<you@down75.example>", first + 1), std::string::npos)
      << "flush made the relay try again: " << relay->log();

  EXPECT_EQ(setup.queue("delete " + id).exit_code, 0);
  lab::CommandResult gone = setup.queue("show " + id);
  EXPECT_EQ(gone.exit_code, 1) << gone.out;
  EXPECT_NE(gone.out.find("no message " + id), std::string::npos) << gone.out;
  EXPECT_EQ(setup.queue("delete " + id).exit_code, 1);
  EXPECT_EQ(setup.queue("show").exit_code, 2) << "show needs an id";
  relay->stop(SIGTERM);
}

TEST(Relay, BadSetupIsOneClearLineAndExitTwo) {
  lab::World world(
      spec({{{"name", "x77.example"}, {"records", {"@ MX 10 mx", "mx A 127.0.77.10"}}}}));
  const std::string bin = DANEMTA_BINARY;
  const std::string cfg = world.dir() + "/bad.toml";
  std::ofstream(cfg) << "[relay]\nspool = \"/nonexistent/dir/queue.db\"\nuser = \""
                     << lab::current_user() << "\"\n";
  lab::CommandResult no_spool = lab::run_command(bin + " --config " + cfg + " relay");
  EXPECT_EQ(no_spool.exit_code, 2) << no_spool.out;
  EXPECT_NE(no_spool.out.find("/nonexistent/dir/queue.db"), std::string::npos) << no_spool.out;

  RelaySetup setup(world, 25, "");
  auto first = setup.start();
  lab::CommandResult busy =
      lab::run_command(bin + " --config " + setup.config_path + " relay");  // same listen port
  EXPECT_EQ(busy.exit_code, 2) << busy.out;
  EXPECT_NE(busy.out.find("cannot listen on 127.0.0.1:" + std::to_string(setup.listen_port)),
            std::string::npos)
      << busy.out;
  first->stop(SIGTERM);

  std::ofstream(cfg) << "[relay]\nlisten = [\"nowhere\"]\n";
  lab::CommandResult bad = lab::run_command(bin + " --config " + cfg + " relay");
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
  EXPECT_NE(bad.out.find("relay.listen"), std::string::npos) << bad.out;
}

TEST(Relay, RefusesClientsOutsideAllow) {
  lab::World world(
      spec({{{"name", "x74.example"}, {"records", {"@ MX 10 mx", "mx A 127.0.74.10"}}}}));
  RelaySetup setup(world, 25, "allow = [\"127.0.0.2/32\"]\n");
  auto relay = setup.start();
  lab::CommandResult refused = setup.swaks("a@sender.example", "b@x74.example", "127.0.0.1");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.out.find("554 5.7.1"), std::string::npos) << refused.out;
  lab::CommandResult allowed = setup.swaks("a@sender.example", "b@x74.example", "127.0.0.2");
  EXPECT_EQ(allowed.exit_code, 0) << allowed.out;
  EXPECT_EQ(relay->log().find("client=unknown[127.0.0.1]"), std::string::npos) << relay->log();
  EXPECT_NE(relay->log().find("NOQUEUE: reject: CONNECT from unknown[127.0.0.1]: 554 5.7.1"),
            std::string::npos)
      << relay->log();
  relay->stop(SIGTERM);
}

}  // namespace
