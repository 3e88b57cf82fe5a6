// `danemta queue ...` through the real binary against the spool of a running
// relay in the lab (NETs 163-166): hold, release, requeue and delete by id,
// domain and recipient; list and show (text, --json, --body); the qshape-like
// summary; holds and deletes while a delivery is in flight; the removal of
// finished messages after [relay] finished_retention_seconds.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/process.hpp"
#include "lab/receivers.hpp"
#include "lab/relay_setup.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;
using lab::count;
using lab::messages;
using lab::Receivers;
using lab::RelaySetup;
using lab::spec;
using lab::wait_messages;
using nlohmann::json;

// Submits one message with swaks; its queue id ("" on failure).
std::string submit(const RelaySetup& setup, const std::string& from, const std::string& to) {
  lab::CommandResult sent = setup.swaks(from, to);
  EXPECT_EQ(sent.exit_code, 0) << sent.out;
  const auto at = sent.out.find("queued as ");
  if (at == std::string::npos) return "";
  return sent.out.substr(at + 10, sent.out.find_first_of("\r\n", at) - at - 10);
}

// Waits until `text` occurs at least `n` times in the relay's log.
bool wait_count(const lab::Process& relay, const std::string& text, std::size_t n,
                std::chrono::seconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (count(relay.log(), text) >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

json parse(const lab::CommandResult& r) {
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j;
}

// The message `id` in a `queue list --json` / `show --json` array (null if absent).
json find(const json& list, const std::string& id) {
  if (!list.is_array()) return nullptr;
  for (const json& m : list)
    if (m.at("id") == id) return m;
  return nullptr;
}

// Holds a receiver's reply to the end of data until the test opens it.
class Gate {
 public:
  void pass() {
    std::unique_lock lock(mutex_);
    ++arrived_;
    changed_.notify_all();
    changed_.wait_for(lock, std::chrono::seconds(30), [this] { return open_; });
  }
  bool wait_arrived(int n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(15), [&] { return arrived_ >= n; });
  }
  void set_open(bool open) {
    std::lock_guard lock(mutex_);
    open_ = open;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int arrived_ = 0;
  bool open_ = false;
};

// A port on which rx.ip(10) will serve later (the MX is down at first).
std::uint16_t later_port(const Receivers& rx, const lab::Chain& chain) {
  lab::Behaviour b = Receivers::with_chain(chain, "mx.ok163.example");
  b.address = rx.ip(10);
  auto probe = std::make_unique<lab::Receiver>(b);
  return probe->port();
}

TEST(QueueOps, HoldReleaseDeleteBySelectorWhileTheRelayRuns) {
  Receivers rx(163);
  auto chain = lab::self_signed({"mx.ok163.example"});
  const std::uint16_t port = later_port(rx, chain);
  lab::World world(spec(
      {{{"name", "ok163.example"},
        {"records",
         {"@ MX 10 mx", "mx A " + rx.ip(10),
          "_" + std::to_string(port) + "._tcp.mx TLSA " + lab::tlsa_rdata(chain.leaf, 3, 1, 1)}}},
       {{"name", "other163.example"}, {"records", {"@ MX 10 mx", "mx A " + rx.ip(11)}}},
       {{"name", "notok163.example"}, {"records", {"@ MX 10 mx", "mx A " + rx.ip(12)}}}}));
  // Every MX is down; deferred recipients come due again within seconds.
  RelaySetup setup(world, port,
                   "min_backoff_seconds = 1\nmax_backoff_seconds = 2\ndelay_warning_seconds = 0\n");
  auto relay = setup.start();
  const std::string m1 = submit(setup, "s@sender.example", "a@ok163.example");
  const std::string m2 = submit(setup, "s@sender.example", "b@ok163.example,c@other163.example");
  const std::string m3 = submit(setup, "s@sender.example", "d@notok163.example");
  for (const char* to : {"to=<a@ok163.example>", "to=<b@ok163.example>", "to=<c@other163.example>",
                         "to=<d@notok163.example>"})
    ASSERT_TRUE(wait_count(*relay, to, 1)) << to << relay->log();

  // Hold by domain: exact, any case, trailing dot; notok163.example is another domain.
  lab::CommandResult hold = setup.queue("hold --domain OK163.Example.");
  ASSERT_EQ(hold.exit_code, 0) << hold.out;
  EXPECT_NE(hold.out.find("danemta/postsuper["), std::string::npos) << hold.out;
  EXPECT_NE(hold.out.find(m1 + ": placed on hold"), std::string::npos) << hold.out;
  EXPECT_NE(hold.out.find(m2 + ": placed on hold"), std::string::npos) << hold.out;
  EXPECT_EQ(hold.out.find(m3), std::string::npos) << hold.out;
  EXPECT_NE(hold.out.find("2 recipient(s) of 2 message(s) placed on hold"), std::string::npos)
      << hold.out;

  // Held recipients come due (backoff 1-2 s) but the running relay leaves
  // them alone, while it goes on retrying d@notok163.example: an attempt
  // under way when the hold came may still end.
  const std::size_t a_tries = count(relay->log(), "to=<a@ok163.example>");
  const std::size_t b_tries = count(relay->log(), "to=<b@ok163.example>");
  std::size_t d_tries = count(relay->log(), "to=<d@notok163.example>");
  ASSERT_TRUE(wait_count(*relay, "to=<d@notok163.example>", d_tries + 3)) << relay->log();
  EXPECT_LE(count(relay->log(), "to=<a@ok163.example>"), a_tries + 1) << relay->log();
  EXPECT_LE(count(relay->log(), "to=<b@ok163.example>"), b_tries + 1) << relay->log();

  // The MX comes back: still nothing for the held recipients.
  lab::Behaviour up = Receivers::with_chain(chain, "mx.ok163.example");
  up.address = rx.ip(10);
  up.port = port;
  lab::Receiver mx(up);
  d_tries = count(relay->log(), "to=<d@notok163.example>");
  ASSERT_TRUE(wait_count(*relay, "to=<d@notok163.example>", d_tries + 3)) << relay->log();
  EXPECT_EQ(messages(mx), 0u) << relay->log();

  lab::CommandResult listed = setup.queue("list --json");
  ASSERT_EQ(listed.exit_code, 0) << listed.out;
  const json list = parse(listed);
  ASSERT_TRUE(list.is_array()) << listed.out;
  EXPECT_EQ(list.size(), 3u);
  const json j1 = find(list, m1);
  ASSERT_TRUE(j1.is_object()) << listed.out;
  EXPECT_EQ(j1.at("state"), "held");
  EXPECT_EQ(j1.at("held"), true);
  EXPECT_EQ(j1.at("sender"), "s@sender.example");
  EXPECT_TRUE(j1.at("arrival_ms").is_number_integer());
  EXPECT_GT(j1.at("arrival_ms").get<std::int64_t>(), 1'600'000'000'000);
  EXPECT_TRUE(j1.at("size").is_number_integer());
  EXPECT_TRUE(j1.at("finished_ms").is_null());
  EXPECT_EQ(j1.at("recipients").at(0).at("held"), true);
  EXPECT_TRUE(j1.at("recipients").at(0).at("next_attempt_ms").is_null());
  EXPECT_EQ(j1.at("recipients").at(0).at("last_outcome"), "connection-failed");
  const json j2 = find(list, m2);
  ASSERT_TRUE(j2.is_object());
  EXPECT_EQ(j2.at("state"), "queued") << "held in part";
  EXPECT_EQ(j2.at("held"), true);
  EXPECT_EQ(j2.at("recipients").at(0).at("held"), true);
  EXPECT_EQ(j2.at("recipients").at(1).at("held"), false);
  EXPECT_TRUE(j2.at("recipients").at(1).at("next_attempt_ms").is_number_integer());
  EXPECT_EQ(find(list, m3).at("held"), false);

  lab::CommandResult text = setup.queue("list");
  EXPECT_NE(text.out.find("<a@ok163.example>  held  attempts="), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("<s@sender.example>  held in part"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("-- 3 message(s) with pending recipients (1 held); 0 finished"),
            std::string::npos)
      << text.out;

  // The queue's shape: held recipients apart.
  lab::CommandResult shape = setup.queue("summary --json");
  ASSERT_EQ(shape.exit_code, 0) << shape.out;
  const json s = parse(shape);
  EXPECT_EQ(s.at("total").at("total"), 2);
  EXPECT_EQ(s.at("total").at("counts").at(0), 2) << "under five minutes old";
  ASSERT_EQ(s.at("domains").size(), 2u) << shape.out;
  EXPECT_EQ(s.at("bucket_minutes").size(), 9u);
  lab::CommandResult held_shape = setup.queue("summary --held --json");
  const json h = parse(held_shape);
  ASSERT_EQ(h.at("domains").size(), 1u) << held_shape.out;
  EXPECT_EQ(h.at("domains").at(0).at("domain"), "ok163.example");
  EXPECT_EQ(h.at("domains").at(0).at("total"), 2);
  lab::CommandResult table = setup.queue("summary");
  EXPECT_NE(table.out.find("T 5 10 20 40 80 160 320 640 1280 1280+"), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("\n           TOTAL 2 2  0  0  0  0   0   0   0    0     0\n"),
            std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("\nnotok163.example 1 1  0"), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find(" ok163.example"), std::string::npos) << "held: not shown";

  // Release one recipient: delivered within the relay's next passes.
  lab::CommandResult release = setup.queue("release --recipient a@OK163.example");
  ASSERT_EQ(release.exit_code, 0) << release.out;
  EXPECT_NE(release.out.find(m1 + ": released from hold"), std::string::npos) << release.out;
  EXPECT_NE(release.out.find("1 recipient(s) of 1 message(s) released from hold"),
            std::string::npos)
      << release.out;
  ASSERT_TRUE(wait_messages(mx, 1)) << relay->log();
  ASSERT_TRUE(relay->wait_for_log(m1 + ": removed")) << relay->log();
  d_tries = count(relay->log(), "to=<d@notok163.example>");
  ASSERT_TRUE(wait_count(*relay, "to=<d@notok163.example>", d_tries + 2)) << relay->log();
  EXPECT_EQ(messages(mx), 1u) << "b@ok163.example is still held";

  // The stored message is what went out.
  lab::CommandResult body = setup.queue("show " + m1 + " --body");
  ASSERT_EQ(body.exit_code, 0) << body.out;
  const std::vector<lab::Session> sessions = mx.sessions();
  EXPECT_EQ(body.out, sessions.at(0).messages.at(0).data);
  EXPECT_NE(body.out.find("hello through danemta"), std::string::npos);

  // Finished messages are left out of the default listing.
  lab::CommandResult pending = setup.queue("list");
  EXPECT_EQ(pending.out.find(m1), std::string::npos) << pending.out;
  EXPECT_NE(pending.out.find("1 finished not listed"), std::string::npos) << pending.out;
  const json all = parse(setup.queue("list --all --json"));
  const json finished = find(all, m1);
  ASSERT_TRUE(finished.is_object());
  EXPECT_EQ(finished.at("state"), "finished");
  EXPECT_TRUE(finished.at("finished_ms").is_number_integer());
  EXPECT_EQ(finished.at("recipients").at(0).at("state"), "delivered");
  EXPECT_EQ(finished.at("recipients").at(0).at("last_dsn"), "2.0.0");

  // Delete by domain keeps a message that has other pending recipients.
  lab::CommandResult kept = setup.queue("delete --domain other163.example");
  ASSERT_EQ(kept.exit_code, 0) << kept.out;
  EXPECT_NE(kept.out.find(m2 + ": kept"), std::string::npos) << kept.out;
  EXPECT_NE(kept.out.find("0 message(s) deleted"), std::string::npos) << kept.out;
  // Local parts compare exactly.
  lab::CommandResult other_case = setup.queue("delete --recipient D@notok163.example");
  EXPECT_NE(other_case.out.find("0 message(s) deleted"), std::string::npos) << other_case.out;
  lab::CommandResult gone = setup.queue("delete --recipient d@NOTOK163.example");
  ASSERT_EQ(gone.exit_code, 0) << gone.out;
  EXPECT_NE(gone.out.find(m3 + ": removed"), std::string::npos) << gone.out;
  EXPECT_NE(gone.out.find("1 message(s) deleted"), std::string::npos) << gone.out;
  lab::CommandResult by_id = setup.queue("delete " + m1 + " " + m2);
  ASSERT_EQ(by_id.exit_code, 0) << by_id.out;
  EXPECT_NE(by_id.out.find("2 message(s) deleted"), std::string::npos) << by_id.out;
  EXPECT_EQ(parse(setup.queue("list --all --json")), json::array());

  // The relay went on through all of it.
  ASSERT_EQ(setup.swaks("s@sender.example", "e@ok163.example").exit_code, 0);
  ASSERT_TRUE(wait_messages(mx, 2)) << relay->log();
  EXPECT_EQ(relay->stop(SIGTERM), 0) << relay->log();
}

// A message deleted or put on hold while the relay delivers it: the attempt
// ends normally, nothing is delivered twice, the relay logs what it could not
// record and goes on.
TEST(QueueOps, HoldAndDeleteWhileADeliveryIsInFlight) {
  Receivers rx(164);
  auto chain = lab::self_signed({"mx.flight164.example"});
  Gate accepting;
  Gate refusing;
  lab::Behaviour ok = Receivers::with_chain(chain, "mx.flight164.example");
  ok.on_message = [&accepting](const lab::Session&, std::size_t) { accepting.pass(); };
  lab::Receiver& mx = rx.add(10, ok);
  lab::Behaviour later = Receivers::with_chain(chain, "mx.later164.example");
  later.replies[lab::Stage::dot] = {451, "4.3.0 try again later"};
  later.on_message = [&refusing](const lab::Session&, std::size_t) { refusing.pass(); };
  lab::Receiver& mx_later = rx.add(11, later);
  const std::string tlsa = lab::tlsa_rdata(chain.leaf, 3, 1, 1);
  lab::World world(
      spec({{{"name", "flight164.example"},
             {"records", {"@ MX 10 mx", "mx A " + rx.ip(10), rx.tlsa_line("mx", tlsa)}}},
            {{"name", "later164.example"},
             {"records", {"@ MX 10 mx", "mx A " + rx.ip(11), rx.tlsa_line("mx", tlsa)}}},
            {{"name", "down164.example"}, {"records", {"@ MX 10 mx", "mx A " + rx.ip(12)}}}}));
  RelaySetup setup(world, rx.port(), "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n");
  auto relay = setup.start();

  // Deleted while the receiver holds the end-of-data reply.
  const std::string m1 = submit(setup, "s@sender.example", "x@flight164.example");
  ASSERT_TRUE(accepting.wait_arrived(1)) << relay->log();
  lab::CommandResult deleted = setup.queue("delete " + m1);
  EXPECT_EQ(deleted.exit_code, 0) << deleted.out;
  EXPECT_NE(deleted.out.find(m1 + ": removed"), std::string::npos) << deleted.out;
  accepting.set_open(true);
  ASSERT_TRUE(relay->wait_for_log(m1 + ": results not recorded")) << relay->log();
  EXPECT_NE(relay->log().find(m1 + ": to=<x@flight164.example>"), std::string::npos);
  EXPECT_EQ(setup.queue("show " + m1).exit_code, 1);

  // Held while in flight, then accepted: delivered once, finished.
  accepting.set_open(false);
  const std::string m2 = submit(setup, "s@sender.example", "y@flight164.example");
  ASSERT_TRUE(accepting.wait_arrived(2)) << relay->log();
  lab::CommandResult held = setup.queue("hold " + m2);
  EXPECT_NE(held.out.find(m2 + ": placed on hold"), std::string::npos) << held.out;
  accepting.set_open(true);
  ASSERT_TRUE(relay->wait_for_log(m2 + ": removed")) << relay->log();
  const json done = find(parse(setup.queue("show " + m2 + " --json")), m2);
  ASSERT_TRUE(done.is_object());
  EXPECT_EQ(done.at("state"), "finished");
  EXPECT_EQ(done.at("recipients").at(0).at("state"), "delivered");
  EXPECT_EQ(messages(mx), 2u) << "each message once";

  // Held while in flight, then deferred: it stays held.
  const std::string m3 = submit(setup, "s@sender.example", "z@later164.example");
  ASSERT_TRUE(refusing.wait_arrived(1)) << relay->log();
  EXPECT_EQ(setup.queue("hold " + m3).exit_code, 0);
  refusing.set_open(true);
  ASSERT_TRUE(relay->wait_for_log(m3 + ": to=<z@later164.example>")) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("status=deferred")) << relay->log();

  // Requeue makes the unheld deferred recipient due, never the held one.
  const std::string m4 = submit(setup, "s@sender.example", "w@down164.example");
  ASSERT_TRUE(wait_count(*relay, "to=<w@down164.example>", 1)) << relay->log();
  lab::CommandResult requeue = setup.queue("requeue --all");
  ASSERT_EQ(requeue.exit_code, 0) << requeue.out;
  EXPECT_NE(requeue.out.find(m4 + ": requeued"), std::string::npos) << requeue.out;
  EXPECT_EQ(requeue.out.find(m3), std::string::npos) << requeue.out;
  EXPECT_NE(requeue.out.find("1 recipient(s) of 1 message(s) requeued"), std::string::npos)
      << requeue.out;
  ASSERT_TRUE(wait_count(*relay, "to=<w@down164.example>", 2)) << relay->log();
  const json stays = find(parse(setup.queue("show " + m3 + " --json")), m3);
  ASSERT_TRUE(stays.is_object());
  EXPECT_EQ(stays.at("state"), "held");
  EXPECT_EQ(stays.at("recipients").at(0).at("attempts"), 1);
  EXPECT_EQ(stays.at("recipients").at(0).at("last_dsn"), "4.3.0");
  EXPECT_EQ(mx_later.sessions().size(), 1u);
  EXPECT_EQ(relay->stop(SIGTERM), 0) << relay->log();
}

// Finished messages (delivered, bounced, and the bounce itself once
// delivered) leave the spool after the retention; a message with a pending
// recipient stays.
TEST(QueueOps, FinishedMessagesAreRemovedAfterTheRetention) {
  Receivers rx(165);
  auto chain = lab::self_signed({"mx.ok165.example"});
  lab::Behaviour b = Receivers::with_chain(chain, "mx.ok165.example");
  b.rcpt_replies["nobody@ok165.example"] = {550, "5.1.1 no such user"};
  lab::Receiver& mx = rx.add(10, b);
  lab::World world(
      spec({{{"name", "ok165.example"},
             {"records",
              {"@ MX 10 mx", "mx A " + rx.ip(10),
               rx.tlsa_line("mx", lab::tlsa_rdata(chain.leaf, 3, 1, 1))}}},
            {{"name", "down165.example"}, {"records", {"@ MX 10 mx", "mx A " + rx.ip(12)}}}}));
  RelaySetup setup(world, rx.port(),
                   "finished_retention_seconds = 2\nmin_backoff_seconds = 600\n"
                   "max_backoff_seconds = 600\n");
  auto relay = setup.start();
  const std::string m1 = submit(setup, "a@ok165.example", "b@ok165.example");
  const std::string m2 = submit(setup, "a@ok165.example", "c@ok165.example,d@down165.example");
  const std::string m3 = submit(setup, "a@ok165.example", "nobody@ok165.example");
  // b, c, and the bounce of m3 to a@ok165.example.
  ASSERT_TRUE(wait_messages(mx, 3)) << relay->log();
  ASSERT_TRUE(relay->wait_for_log("sender non-delivery notification")) << relay->log();

  json all;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    all = parse(setup.queue("list --all --json"));
    if (all.is_array() && all.size() == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(all.size(), 1u) << all.dump(2) << relay->log();
  EXPECT_EQ(all.at(0).at("id"), m2);
  EXPECT_EQ(all.at(0).at("recipients").at(0).at("state"), "delivered");
  EXPECT_EQ(all.at(0).at("recipients").at(1).at("state"), "pending");
  EXPECT_NE(relay->log().find("retention: removed "), std::string::npos) << relay->log();
  EXPECT_EQ(setup.queue("show " + m1).exit_code, 1);
  EXPECT_EQ(setup.queue("show " + m3).exit_code, 1);
  EXPECT_EQ(relay->stop(SIGTERM), 0) << relay->log();
}

// The commands' own rules, on a spool without a relay: what does not fit
// together is refused with exit status 2 before anything is touched.
TEST(QueueOps, UsageErrorsAndIdsFromStandardInput) {
  const std::string dir = std::filesystem::temp_directory_path() / "danemta-queue-ops-XXXXXX";
  std::string made = dir;
  ASSERT_NE(mkdtemp(made.data()), nullptr);
  const std::string config = made + "/danemta.toml";
  std::ofstream(config) << "[relay]\nspool = \"" << made << "/queue.db\"\nuser = \""
                        << lab::current_user() << "\"\n";
  auto queue = [&](const std::string& args) {
    return lab::run_command(std::string(DANEMTA_BINARY) + " --config " + config + " queue " + args);
  };
  for (const char* bad :
       {"hold", "release --all 0123", "delete --domain a@b.example", "hold --recipient nodomain",
        "requeue --recipient @example.org", "show", "show A B --body", "show A --body --json",
        "delete 'x;y'", "hold --domain ''"}) {
    lab::CommandResult r = queue(bad);
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.out;
  }
  lab::CommandResult empty = queue("list");
  EXPECT_EQ(empty.exit_code, 0) << empty.out;
  EXPECT_NE(empty.out.find("-- 0 message(s) with pending recipients (0 held); 0 finished"),
            std::string::npos)
      << empty.out;
  EXPECT_EQ(json::parse(queue("list --json").out), json::array());
  EXPECT_EQ(json::parse(queue("summary --json").out).at("total").at("total"), 0);
  lab::CommandResult piped =
      lab::run_command("printf 'AAAA\\nBBBB CCCC\\n' | " + std::string(DANEMTA_BINARY) +
                       " --config " + config + " queue delete -");
  EXPECT_EQ(piped.exit_code, 1) << piped.out;
  for (const char* id : {"AAAA", "BBBB", "CCCC"})
    EXPECT_NE(piped.out.find(std::string("no message ") + id), std::string::npos) << piped.out;
  EXPECT_EQ(queue("purge").exit_code, 0);
  std::filesystem::remove_all(made);
}

}  // namespace
