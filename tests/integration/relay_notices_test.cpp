// Delay notices through the real relay: a recipient still deferred after
// [relay] delay_warning_seconds gets its sender one RFC 3464 "delayed" DSN,
// and only one however often it is retried afterwards.
#include <gtest/gtest.h>
#include <signal.h>

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

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(RelayNotices, OneDelayNoticePerRecipient) {
  Receivers rx(161);
  auto chain = lab::self_signed({"mx.busy161.example", "mx.sender161.example"});
  lab::Behaviour busy = Receivers::with_chain(chain, "mx.busy161.example");
  busy.rcpt_replies["<b@busy161.example>"] = {451, "4.3.0 mailbox temporarily unavailable"};
  busy.rcpt_replies["b@busy161.example"] = {451, "4.3.0 mailbox temporarily unavailable"};
  lab::Receiver& busy_mx = rx.add(10, busy);
  lab::Receiver& sender_mx = rx.add(11, Receivers::with_chain(chain, "mx.sender161.example"));
  const std::string tlsa = lab::tlsa_rdata(chain.leaf, 3, 1, 1);
  lab::World world(
      lab::spec({{{"name", "busy161.example"},
                  {"records", {"@ MX 10 mx", "mx A " + rx.ip(10), rx.tlsa_line("mx", tlsa)}}},
                 {{"name", "sender161.example"},
                  {"records", {"@ MX 10 mx", "mx A " + rx.ip(11), rx.tlsa_line("mx", tlsa)}}}}));
  RelaySetup setup(world, rx.port(),
                   "min_backoff_seconds = 1\nmax_backoff_seconds = 1\n"
                   "delay_warning_seconds = 2\n");
  auto relay = setup.start();
  ASSERT_EQ(setup.swaks("a@sender161.example", "b@busy161.example").exit_code, 0);

  // Deferred at once (no notice yet), then again after the warning time.
  ASSERT_TRUE(relay->wait_for_log("sender delay notification")) << relay->log();
  ASSERT_TRUE(lab::wait_messages(sender_mx, 1)) << relay->log();
  // More retries, no more notices.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (count(relay->log(), "to=<b@busy161.example>") < 6 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string log = relay->log();
  EXPECT_GE(count(log, "to=<b@busy161.example>"), 6u) << log;
  EXPECT_EQ(count(log, "sender delay notification"), 1u) << log;
  EXPECT_EQ(lab::messages(sender_mx), 1u);
  EXPECT_EQ(lab::messages(busy_mx), 0u);

  const std::vector<lab::Session> sessions = sender_mx.sessions();
  const lab::Message* notice = nullptr;
  for (const lab::Session& s : sessions)
    for (const lab::Message& m : s.messages) notice = &m;
  ASSERT_NE(notice, nullptr);
  EXPECT_EQ(notice->mail_from, "") << "a DSN has the null sender";
  EXPECT_NE(notice->data.find("Action: delayed"), std::string::npos) << notice->data;
  EXPECT_NE(notice->data.find("Status: 4.3.0"), std::string::npos) << notice->data;
  EXPECT_NE(notice->data.find("b@busy161.example"), std::string::npos) << notice->data;
  EXPECT_EQ(notice->data.find("Action: failed"), std::string::npos) << notice->data;

  // Still queued: a delay notice is not a bounce.
  lab::CommandResult list = setup.queue("list");
  EXPECT_NE(list.out.find("<b@busy161.example>  pending"), std::string::npos) << list.out;
  relay->stop(SIGTERM);
}

}  // namespace
