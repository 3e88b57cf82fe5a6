// [inbound]: danemta as the receiving MX. A DANE-verifying sender (a second
// `danemta relay` with dane-only for the domain) delivers to the inbound
// listener on port 25; the mail goes through the durable queue to the
// internal mailbox server (a lab Receiver). The rollover guard keeps a new
// certificate out of service until its TLSA record is published and its
// TTL has passed (the lab world is re-signed to publish it).
// NETs 190-194 (HACKING.md).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/postfix.hpp"
#include "lab/process.hpp"
#include "lab/receiver.hpp"
#include "lab/relay_setup.hpp"
#include "lab/run.hpp"

namespace {

using namespace danemta;
using lab::spec;
using lab::wait_messages;
using nlohmann::json;

std::string net_ip(int net, int host) {
  return "127.0." + std::to_string(net) + "." + std::to_string(host);
}

// The world: inbound<NET>.example with its MX on 127.0.NET.25 and the
// given TLSA records at _25._tcp.mx (TTL `ttl`).
std::string world_spec(int net, const std::vector<std::string>& tlsa, int ttl) {
  std::vector<std::string> records = {"@ MX 10 mx", "mx A " + net_ip(net, 25)};
  for (const std::string& r : tlsa)
    records.push_back("_25._tcp.mx " + std::to_string(ttl) + " TLSA " + r);
  return spec({{{"name", "inbound" + std::to_string(net) + ".example"}, {"records", records}}});
}

// The inbound relay, the internal mailbox server and the sending relay.
struct InboundLab {
  int net;
  std::string domain;
  lab::World& world;
  std::string dir;
  lab::Receiver internal;
  std::string inbound_config;
  std::string sender_config;
  std::uint16_t inbound_submit_port = lab::free_tcp_port();
  std::uint16_t sender_port = lab::free_tcp_port();

  static lab::Behaviour internal_behaviour(int net) {
    lab::Behaviour b;
    b.address = net_ip(net, 30);
    b.hostname = "mail.internal";
    b.chain = lab::self_signed({"mail.internal"});
    return b;
  }

  InboundLab(int net_, lab::World& world_, const std::vector<std::string>& cert_stems,
             int margin = 1)
      : net(net_),
        domain("inbound" + std::to_string(net_) + ".example"),
        world(world_),
        dir(world_.dir()),
        internal(internal_behaviour(net_)) {
    std::filesystem::create_directories(dir + "/in");
    std::filesystem::create_directories(dir + "/out");
    const std::string dns = "[dns]\nforwarders = [\"" + world.resolver() +
                            "\"]\ntrust_anchor_file = \"" + world.trust_anchor_file() +
                            "\"\ntimeout_seconds = 10\n\n[delivery]\nport = 25\n\n";
    inbound_config = dir + "/inbound.toml";
    std::ofstream in(inbound_config);
    in << dns << "[relay]\nlisten = [\"127.0.0.1:" << inbound_submit_port << "\"]\nspool = \""
       << dir << "/in/queue.db\"\nhostname = \"mx." << domain << "\"\nuser = \""
       << lab::current_user() << "\"\n\n[inbound]\nlisten = [\"" << net_ip(net, 25)
       << ":25\"]\nhostname = \"mx." << domain << "\"\nlocal_domains = [\"" << domain
       << "\"]\ndeliver_to = \"[" << internal.address() << "]:" << internal.port()
       << "\"\ndeliver_tls = \"encrypt\"\nmx_names = [\"mx." << domain
       << "\"]\nrollover_margin_seconds = " << margin
       << "\ncheck_interval_seconds = 1\nexpiry_warning_days = 0\n";
    for (const std::string& stem : cert_stems)
      in << "\n[[inbound.certificate]]\ncert_file = \"" << dir << "/" << stem
         << ".crt\"\nkey_file = \"" << dir << "/" << stem << ".key\"\n";
    sender_config = dir + "/sender.toml";
    std::ofstream out(sender_config);
    out << dns << "[relay]\nlisten = [\"127.0.0.1:" << sender_port << "\"]\nspool = \"" << dir
        << "/out/queue.db\"\nhostname = \"sender.lab.example\"\nuser = \"" << lab::current_user()
        << "\"\nmin_backoff_seconds = 1\nmax_backoff_seconds = 2\n\n[policy]\n\"" << domain
        << "\" = \"dane-only\"\n";
  }

  std::unique_ptr<lab::Process> start(const std::string& config, const std::string& log) const {
    auto p = std::make_unique<lab::Process>(
        std::vector<std::string>{DANEMTA_BINARY, "--config", config, "relay"}, dir + "/" + log);
    EXPECT_TRUE(p->wait_for_log("listening on")) << p->log();
    return p;
  }
  std::unique_ptr<lab::Process> start_inbound() const {
    return start(inbound_config, "inbound.log");
  }
  std::unique_ptr<lab::Process> start_sender() const { return start(sender_config, "sender.log"); }

  lab::CommandResult send(const std::string& to, const std::string& subject) const {
    return lab::run_command("swaks --server 127.0.0.1:" + std::to_string(sender_port) +
                            " --from alice@sender.lab.example --to " + to +
                            " --header 'Subject: " + subject + "' --body 'hello, inbound'");
  }

  // The SPKI SHA2-256 (hex) of the leaf the inbound listener presents to a
  // client offering `sigalgs`.
  std::string served_spki(const std::string& sigalgs = "ECDSA+SHA256") const {
    const lab::CommandResult r = lab::run_command(
        "openssl s_client -connect " + net_ip(net, 25) + ":25 -starttls smtp -sigalgs " + sigalgs +
        " </dev/null 2>/dev/null | openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER "
        "| sha256sum");
    return r.out.substr(0, 64);
  }
};

TEST(Inbound, DaneSenderDeliversThroughTheInboundMxToTheMailbox) {
  const lab::Chain ec = lab::self_signed({"mx.inbound190.example"});
  const lab::Chain rsa = lab::self_signed({"mx.inbound190.example"}, lab::KeyType::rsa2048);
  lab::World world(world_spec(
      190, {lab::tlsa_rdata(ec.leaf, 3, 1, 1), lab::tlsa_rdata(rsa.leaf, 3, 1, 1)}, 300));
  lab::write_chain_files(ec, world.dir(), "ec");
  lab::write_chain_files(rsa, world.dir(), "rsa");
  InboundLab labs(190, world, {"ec", "rsa"});
  auto inbound = labs.start_inbound();
  auto sender = labs.start_sender();

  // RSA and ECDSA at once: OpenSSL picks by the client's signature algorithms.
  EXPECT_EQ(labs.served_spki("ECDSA+SHA256"), lab::tlsa_data_hex(ec.leaf, 1, 1));
  EXPECT_EQ(labs.served_spki("RSA-PSS+SHA256:RSA+SHA256"), lab::tlsa_data_hex(rsa.leaf, 1, 1));

  const lab::CommandResult sent = labs.send("bob@inbound190.example", "inbound one");
  ASSERT_EQ(sent.exit_code, 0) << sent.out;
  ASSERT_TRUE(sender->wait_for_log("status=sent")) << sender->log() << inbound->log();
  EXPECT_NE(sender->log().find("to=<bob@inbound190.example>, relay=mx.inbound190.example[" +
                               net_ip(190, 25) + "]:25"),
            std::string::npos)
      << sender->log();
  EXPECT_NE(sender->log().find("tls=dane-verified"), std::string::npos) << sender->log();

  // Through the inbound relay's queue to the internal mailbox server.
  ASSERT_TRUE(wait_messages(labs.internal, 1)) << inbound->log();
  ASSERT_TRUE(inbound->wait_for_log("status=sent")) << inbound->log();
  const std::vector<lab::Session> sessions = labs.internal.sessions();
  const lab::Message& m = sessions.back().messages.back();
  EXPECT_EQ(m.rcpt_to, std::vector<std::string>{"bob@inbound190.example"});
  EXPECT_TRUE(m.in_tls);  // deliver_tls = "encrypt"
  // The inbound hop's Received: field says STARTTLS, the version and cipher.
  EXPECT_NE(m.data.find("(STARTTLS: using TLSv1.3 with cipher TLS_"), std::string::npos) << m.data;
  EXPECT_NE(m.data.find("by mx.inbound190.example (danemta) with ESMTPS\r\n\tfor "
                        "<bob@inbound190.example>"),
            std::string::npos)
      << m.data;
  EXPECT_NE(m.data.find("Subject: inbound one"), std::string::npos);

  // Never an open relay: other domains are refused at RCPT, without AUTH.
  const lab::CommandResult relay_attempt = lab::run_command(
      "swaks --server " + net_ip(190, 25) + ":25 --from a@b.example --to c@elsewhere.example");
  EXPECT_NE(relay_attempt.exit_code, 0);
  EXPECT_NE(relay_attempt.out.find("554 5.7.1 <c@elsewhere.example>: Relay access denied"),
            std::string::npos)
      << relay_attempt.out;
  // Mail for a local domain in clear is accepted too (STARTTLS is offered,
  // not required: RFC 3207 section 4 for a publicly referenced server).
  const lab::CommandResult plain =
      lab::run_command("swaks --server " + net_ip(190, 25) +
                       ":25 --from a@b.example --to carol@inbound190.example --h-Subject plain");
  EXPECT_EQ(plain.exit_code, 0) << plain.out;
  ASSERT_TRUE(wait_messages(labs.internal, 2)) << inbound->log();
  const std::vector<lab::Session> after = labs.internal.sessions();
  bool saw_plain = false;
  for (const lab::Session& s : after)
    for (const lab::Message& msg : s.messages)
      if (msg.data.find("Subject: plain") != std::string::npos)
        saw_plain = msg.data.find("(no STARTTLS: not encrypted)") != std::string::npos;
  EXPECT_TRUE(saw_plain);
  // The submission listener is unchanged: loopback only, as before.
  EXPECT_NE(
      inbound->log().find("listening on 127.0.0.1:" + std::to_string(labs.inbound_submit_port)),
      std::string::npos);
}

TEST(Inbound, RolloverWaitsForThePublishedRecordAndItsTtl) {
  const int net = 191;
  const int ttl = 3;
  const lab::Chain old_cert = lab::self_signed({"mx.inbound191.example"});
  const lab::Chain new_cert = lab::self_signed({"mx.inbound191.example"});
  const std::string old_rr = lab::tlsa_rdata(old_cert.leaf, 3, 1, 1);
  const std::string new_rr = lab::tlsa_rdata(new_cert.leaf, 3, 1, 1);
  lab::World world(world_spec(net, {old_rr}, ttl));
  lab::write_chain_files(old_cert, world.dir(), "ec");
  InboundLab labs(net, world, {"ec"}, 2);
  auto inbound = labs.start_inbound();
  auto sender = labs.start_sender();
  ASSERT_EQ(labs.served_spki(), lab::tlsa_data_hex(old_cert.leaf, 1, 1));

  // The new key, its record not published: it is not served.
  lab::write_chain_files(new_cert, world.dir(), "ec");
  kill(inbound->pid(), SIGHUP);
  ASSERT_TRUE(
      inbound->wait_for_log("inbound rollover: publish _25._tcp.mx.inbound191.example. IN "
                            "TLSA " +
                            new_rr))
      << inbound->log();
  EXPECT_NE(inbound->log().find("no record matching it is published at every MX name yet"),
            std::string::npos)
      << inbound->log();
  EXPECT_EQ(labs.served_spki(), lab::tlsa_data_hex(old_cert.leaf, 1, 1));
  // What the operator is told to publish, and the inbound self-check.
  const std::string danemta = std::string(DANEMTA_BINARY) + " --config " + labs.inbound_config;
  const lab::CommandResult rollover =
      lab::run_command(danemta + " tlsa --rollover " + world.dir() + "/ec.crt");
  EXPECT_EQ(rollover.exit_code, 1) << rollover.out;
  EXPECT_NE(rollover.out.find("_25._tcp.mx.inbound191.example. IN TLSA " + new_rr + "\n"),
            std::string::npos)
      << rollover.out;
  EXPECT_NE(rollover.out.find("served certificate published, next certificate NOT published"),
            std::string::npos)
      << rollover.out;
  EXPECT_NE(rollover.out.find("; verdict: not yet"), std::string::npos) << rollover.out;
  const lab::CommandResult self_before = lab::run_command(danemta + " check --self --no-connect");
  EXPECT_EQ(self_before.exit_code, 1) << self_before.out;
  EXPECT_NE(self_before.out.find("publish: _25._tcp.mx.inbound191.example. IN TLSA " + new_rr),
            std::string::npos)
      << self_before.out;
  // The same as JSON (docs/check-json.md, "danemta check --self --json").
  const lab::CommandResult json_before =
      lab::run_command(danemta + " check --self --no-connect --json");
  EXPECT_EQ(json_before.exit_code, 1) << json_before.out;
  {
    const auto j = nlohmann::json::parse(json_before.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << json_before.out;
    EXPECT_EQ(j["inbound"]["mx_names"], nlohmann::json({"mx.inbound191.example"}));
    EXPECT_EQ(j["inbound"]["local_domains"], nlohmann::json({"inbound191.example"}));
    EXPECT_EQ(j["inbound"]["tlsa_port"], 25);
    ASSERT_EQ(j["certificates"].size(), 1u) << j.dump(2);
    const auto& c = j["certificates"][0];
    EXPECT_EQ(c["cert_file"], world.dir() + "/ec.crt");
    EXPECT_EQ(c["served"]["spki_sha256"], lab::tlsa_data_hex(old_cert.leaf, 1, 1));
    EXPECT_EQ(c["next"]["spki_sha256"], lab::tlsa_data_hex(new_cert.leaf, 1, 1));
    EXPECT_EQ(c["next"]["chain_length"], 1);
    EXPECT_TRUE(c["files_problem"].is_null());
    ASSERT_EQ(c["names"].size(), 1u);
    EXPECT_EQ(c["names"][0]["mx_name"], "mx.inbound191.example");
    EXPECT_EQ(c["names"][0]["owner"], "_25._tcp.mx.inbound191.example");
    EXPECT_TRUE(c["names"][0]["problem"].is_null());
    EXPECT_EQ(c["names"][0]["served_published"], true);
    EXPECT_EQ(c["names"][0]["next_published"], false);
    EXPECT_TRUE(c["names"][0]["next_servable_from"].is_null());
    EXPECT_EQ(c["rollover"]["status"], "waiting");
    EXPECT_TRUE(c["rollover"]["servable_from"].is_null());
    EXPECT_EQ(c["rollover"]["publish"],
              nlohmann::json({"_25._tcp.mx.inbound191.example. IN TLSA " + new_rr}));
    EXPECT_EQ(c["expiring"], false);
    ASSERT_EQ(c["problems"].size(), 1u);
    EXPECT_EQ(c["problems"][0].get<std::string>().rfind("next certificate not published", 0), 0u)
        << c["problems"];
    EXPECT_EQ(j["verdict"]["status"], "problem");
    EXPECT_EQ(j["verdict"]["exit_code"], 1);
    EXPECT_EQ(j["verdict"]["problems"],
              nlohmann::json({world.dir() + "/ec.crt: " + c["problems"][0].get<std::string>()}));
    ASSERT_EQ(j["domains"].size(), 1u);
    const auto& d = j["domains"][0];
    EXPECT_EQ(d["domain"], "inbound191.example");
    EXPECT_TRUE(d["error"].is_null());
    EXPECT_EQ(d["report"]["domain"], "inbound191.example");
    EXPECT_EQ(d["report"]["policy"], "dane-only");
    EXPECT_EQ(d["report"]["live"], false);
    EXPECT_EQ(d["report"]["hosts"][0]["name"], "mx.inbound191.example");
    EXPECT_EQ(d["report"]["hosts"][0]["requirement"], "dane");
    EXPECT_EQ(d["exit_code"], d["report"]["verdict"]["exit_code"]);
    EXPECT_EQ(d["exit_code"], 0);
  }
  // The DANE sender keeps verifying.
  ASSERT_EQ(labs.send("dave@inbound191.example", "before").exit_code, 0);
  ASSERT_TRUE(sender->wait_for_log("status=sent")) << sender->log();
  EXPECT_NE(sender->log().find("tls=dane-verified"), std::string::npos) << sender->log();

  // Published (old and new side by side): served once TTL + margin passed.
  // No resolver can see the record before the update starts.
  const auto published = std::chrono::steady_clock::now();
  world.update(world_spec(net, {old_rr, new_rr}, ttl));
  ASSERT_TRUE(
      inbound->wait_for_log("published at every MX name; served from", std::chrono::seconds(30)))
      << inbound->log();
  ASSERT_TRUE(inbound->wait_for_log("inbound rollover: now serving", std::chrono::seconds(30)))
      << inbound->log();
  // The staged TTL (3 s) plus the margin (2 s) was honoured: the switch
  // came no sooner than that after the record appeared in DNS.
  EXPECT_GE(std::chrono::steady_clock::now() - published, std::chrono::seconds(ttl + 2));
  EXPECT_EQ(labs.served_spki(), lab::tlsa_data_hex(new_cert.leaf, 1, 1));
  // The self-check, live half included (a DANE-only probe of the MX).
  const lab::CommandResult self_after = lab::run_command(danemta + " check --self");
  EXPECT_EQ(self_after.exit_code, 0) << self_after.out;
  EXPECT_NE(self_after.out.find("_25._tcp.mx.inbound191.example: served certificate published"),
            std::string::npos)
      << self_after.out;
  const lab::CommandResult json_after = lab::run_command(danemta + " check --self --json");
  EXPECT_EQ(json_after.exit_code, 0) << json_after.out;
  {
    const auto j = nlohmann::json::parse(json_after.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << json_after.out;
    ASSERT_EQ(j["certificates"].size(), 1u) << j.dump(2);
    const auto& c = j["certificates"][0];
    EXPECT_EQ(c["served"]["spki_sha256"], lab::tlsa_data_hex(new_cert.leaf, 1, 1));
    EXPECT_TRUE(c["next"].is_null());
    EXPECT_EQ(c["names"][0]["served_published"], true);
    EXPECT_TRUE(c["names"][0]["next_published"].is_null());
    EXPECT_EQ(c["rollover"]["status"], "none");
    EXPECT_TRUE(c["rollover"]["reason"].is_null());
    EXPECT_EQ(c["rollover"]["publish"], nlohmann::json::array());
    EXPECT_EQ(c["problems"], nlohmann::json::array());
    EXPECT_EQ(j["verdict"]["status"], "ok");
    EXPECT_EQ(j["verdict"]["problems"], nlohmann::json::array());
    EXPECT_EQ(j["verdict"]["exit_code"], 0);
    const auto& report = j["domains"][0]["report"];
    EXPECT_EQ(report["live"], true);
    EXPECT_EQ(report["verdict"]["status"], "ok");
    ASSERT_EQ(report["hosts"][0]["probes"].size(), 1u) << report.dump(2);
    EXPECT_EQ(report["hosts"][0]["probes"][0]["authentication"], "dane-verified");
  }

  // The sender verifies the new certificate.
  ASSERT_EQ(labs.send("erin@inbound191.example", "after").exit_code, 0);
  ASSERT_TRUE(wait_messages(labs.internal, 2)) << inbound->log();
  std::string log = sender->log();
  std::size_t verified = 0;
  for (auto at = log.find("tls=dane-verified"); at != std::string::npos;
       at = log.find("tls=dane-verified", at + 1))
    ++verified;
  EXPECT_EQ(verified, 2u) << log;
}

TEST(Inbound, RestartKeepsServingTheOldCertificateWhileTheNewOneIsUnpublished) {
  const int net = 192;
  const lab::Chain old_cert = lab::self_signed({"mx.inbound192.example"});
  const lab::Chain new_cert = lab::self_signed({"mx.inbound192.example"});
  lab::World world(world_spec(net, {lab::tlsa_rdata(old_cert.leaf, 3, 1, 1)}, 300));
  lab::write_chain_files(old_cert, world.dir(), "ec");
  InboundLab labs(net, world, {"ec"});
  {
    auto inbound = labs.start_inbound();
    ASSERT_EQ(labs.served_spki(), lab::tlsa_data_hex(old_cert.leaf, 1, 1));
    inbound->stop();
  }
  // The files change while the relay is down; at the next start it still
  // serves the certificate it served before (kept in its state directory).
  lab::write_chain_files(new_cert, world.dir(), "ec");
  auto inbound = labs.start_inbound();
  ASSERT_TRUE(inbound->wait_for_log("inbound rollover: publish")) << inbound->log();
  EXPECT_EQ(labs.served_spki(), lab::tlsa_data_hex(old_cert.leaf, 1, 1));
  EXPECT_TRUE(std::filesystem::exists(world.dir() + "/in/inbound/state"));
  // The served certificate is expiring within the warning (0 days here: no)
  // and a check with the record still missing keeps the old one.
  EXPECT_EQ(inbound->log().find("inbound rollover: now serving"), std::string::npos);
}

TEST(Inbound, PostfixWithDaneVerifiesTheInboundMxBeforeAndAfterARollover) {
  if (!lab::PostfixSender::available()) GTEST_SKIP() << "postfix, unbound or root missing";
  const int net = 193;
  const int ttl = 3;
  const lab::Chain old_cert = lab::self_signed({"mx.inbound193.example"});
  const lab::Chain new_cert = lab::self_signed({"mx.inbound193.example"});
  const std::string old_rr = lab::tlsa_rdata(old_cert.leaf, 3, 1, 1);
  const std::string new_rr = lab::tlsa_rdata(new_cert.leaf, 3, 1, 1);
  lab::World world(world_spec(net, {old_rr}, ttl));
  lab::write_chain_files(old_cert, world.dir(), "ec");
  InboundLab labs(net, world, {"ec"}, 1);
  auto inbound = labs.start_inbound();
  lab::PostfixSender postfix(world, net_ip(net, 1), net_ip(net, 53));
  const std::string verified =
      "Verified TLS connection established to mx.inbound193.example[" + net_ip(net, 25) + "]:25";

  ASSERT_EQ(postfix.send("frank@inbound193.example", "postfix one").exit_code, 0);
  ASSERT_TRUE(postfix.wait_for_log("status=sent")) << postfix.log() << inbound->log();
  EXPECT_TRUE(postfix.wait_for_log(verified)) << postfix.log();
  ASSERT_TRUE(wait_messages(labs.internal, 1)) << inbound->log();

  // A new key, unpublished: still the old one, still verified.
  lab::write_chain_files(new_cert, world.dir(), "ec");
  kill(inbound->pid(), SIGHUP);
  ASSERT_TRUE(inbound->wait_for_log("inbound rollover: publish")) << inbound->log();
  ASSERT_EQ(postfix.send("frank@inbound193.example", "postfix two").exit_code, 0);
  ASSERT_TRUE(postfix.wait_for_log("status=sent", 2)) << postfix.log() << inbound->log();
  EXPECT_TRUE(postfix.wait_for_log(verified, 2)) << postfix.log();

  // Published; after TTL + margin the new key is served and verified.
  world.update(world_spec(net, {old_rr, new_rr}, ttl));
  ASSERT_TRUE(inbound->wait_for_log("inbound rollover: now serving", std::chrono::seconds(30)))
      << inbound->log();
  EXPECT_EQ(labs.served_spki(), lab::tlsa_data_hex(new_cert.leaf, 1, 1));
  ASSERT_EQ(postfix.send("frank@inbound193.example", "postfix three").exit_code, 0);
  ASSERT_TRUE(postfix.wait_for_log("status=sent", 3)) << postfix.log() << inbound->log();
  EXPECT_TRUE(postfix.wait_for_log(verified, 3)) << postfix.log();
  EXPECT_EQ(postfix.log().find("Untrusted TLS"), std::string::npos) << postfix.log();
  ASSERT_TRUE(wait_messages(labs.internal, 3)) << inbound->log();
}

}  // namespace
