// Submission from other hosts through the real relay binary: STARTTLS with
// the configured certificate (served anew after SIGHUP), AUTH PLAIN and LOGIN
// against a credentials file made by `danemta passwd`, only over TLS, and
// per-listener rules ([[relay.listener]] tls and auth), while the plain
// `listen` address keeps relaying for [relay] allow. Clients are swaks and
// tests/integration/smtp_dialog.py (raw dialogues, the certificate served).
//
// Addresses (HACKING.md, NETs 175-178): the relay listens on 127.0.175.N
// (one N per test); clients inside [relay] allow (127.0.175.0/24) come from
// 127.0.175.(100+N), clients outside it from 127.0.176.N; the lab MX is
// 127.0.177.(10*N).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
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
using lab::CommandResult;
using lab::Receivers;
using lab::RelaySetup;

const std::string kPassword = "correct horse battery";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// One test's world: an MX for sub<N>.example behind DANE, and a relay with
// three listeners on 127.0.175.N:
//   plain:    [relay] listen (no STARTTLS, no AUTH; [relay] allow only)
//   required: tls = "required", auth = "required" (a submission port)
//   may:      tls = "may", auth = "may" (allow relays without AUTH)
// and the user alice in its credentials file.
class Submission {
 public:
  explicit Submission(int n)
      : n_(n),
        rx_(177),
        domain_("sub" + std::to_string(n) + ".example"),
        mx_chain_(lab::self_signed({"mx." + domain_})),
        mx_(rx_.add(10 * n, Receivers::with_chain(mx_chain_, "mx." + domain_))),
        world_(lab::spec({{{"name", domain_},
                           {"records",
                            {"@ MX 10 mx", "mx A " + rx_.ip(10 * n),
                             rx_.tlsa_line("mx", lab::tlsa_rdata(mx_chain_.leaf, 3, 1, 1))}}}})),
        relay_chain_(lab::self_signed({"relay.lab.example"})) {
    cert_ = lab::write_chain_files(relay_chain_, world_.dir(), "relay");
    credentials_ = world_.dir() + "/credentials";
    const CommandResult entry = passwd("alice", kPassword);
    EXPECT_EQ(entry.exit_code, 0) << entry.out;
    std::ofstream(credentials_) << "# AUTH users\n" << entry.out;
    ::chmod(credentials_.c_str(), 0640);

    required_port_ = lab::free_tcp_port();
    may_port_ = lab::free_tcp_port();
    setup_ = std::make_unique<RelaySetup>(
        world_, rx_.port(),
        "allow = [\"127.0.175.0/24\"]\n"
        "min_backoff_seconds = 600\nmax_backoff_seconds = 600\n"
        "tls_cert_file = \"" +
            cert_.chain.string() + "\"\ntls_key_file = \"" + cert_.key.string() +
            "\"\ncredentials_file = \"" + credentials_ + "\"\n\n[[relay.listener]]\naddress = \"" +
            listener(required_port_) +
            "\"\ntls = \"required\"\nauth = \"required\"\n\n[[relay.listener]]\naddress = \"" +
            listener(may_port_) + "\"\ntls = \"may\"\nauth = \"may\"\n");
    // RelaySetup listens on 127.0.0.1; this test's address instead.
    std::string text = read_file(setup_->config_path);
    const std::string loopback = "\"127.0.0.1:" + std::to_string(setup_->listen_port) + "\"";
    text.replace(text.find(loopback), loopback.size(), "\"" + listener(setup_->listen_port) + "\"");
    std::ofstream(setup_->config_path) << text;
    relay_ = setup_->start();
  }

  std::string relay_ip() const { return "127.0.175." + std::to_string(n_); }
  std::string inside() const { return "127.0.175." + std::to_string(100 + n_); }
  std::string outside() const { return "127.0.176." + std::to_string(n_); }
  std::string listener(std::uint16_t port) const { return relay_ip() + ":" + std::to_string(port); }
  std::uint16_t plain() const { return setup_->listen_port; }
  std::uint16_t required() const { return required_port_; }
  std::uint16_t may() const { return may_port_; }
  const std::string& domain() const { return domain_; }
  const lab::Receiver& mx() const { return mx_; }
  lab::Process& relay() { return *relay_; }
  const RelaySetup& setup() const { return *setup_; }
  const lab::ChainFiles& cert() const { return cert_; }
  const std::string& credentials() const { return credentials_; }

  static CommandResult passwd(const std::string& user, const std::string& password) {
    return lab::run_command("printf '%s\\n' '" + password + "' | " + DANEMTA_BINARY + " passwd " +
                            user);
  }

  // swaks from `from_ip` to `port` with `options` (--tls, --auth ...).
  CommandResult swaks(std::uint16_t port, const std::string& from_ip, const std::string& to,
                      const std::string& options) const {
    return lab::run_command("swaks --server " + listener(port) + " --local-interface " + from_ip +
                            " --ehlo client.example --from a@sender.example --to " + to + " " +
                            options +
                            " --header 'Subject: submission test' --body 'hello through 587'");
  }

  // tests/integration/smtp_dialog.py with `steps`.
  CommandResult dialog(std::uint16_t port, const std::string& from_ip,
                       const std::vector<std::string>& steps) const {
    std::string command = "python3 " + std::string(DANEMTA_TESTS_DIR) +
                          "/integration/smtp_dialog.py " + relay_ip() + " " + std::to_string(port) +
                          " " + from_ip;
    for (const std::string& s : steps) command += " '" + s + "'";
    return lab::run_command(command);
  }

  // The SHA-256 fingerprint of the certificate the listener on `port`
  // serves after STARTTLS.
  std::string served_fingerprint(std::uint16_t port) const {
    const CommandResult r =
        dialog(port, inside(),
               {"expect:220", "send:EHLO client.example", "expect:250", "send:STARTTLS",
                "expect:220", "starttls", "fingerprint", "send:QUIT", "expect:221"});
    const std::size_t at = r.out.find("fingerprint ");
    return at == std::string::npos ? r.out : r.out.substr(at + 12, 64);
  }

 private:
  int n_;
  Receivers rx_;
  std::string domain_;
  lab::Chain mx_chain_;
  lab::Receiver& mx_;
  lab::World world_;
  lab::Chain relay_chain_;
  lab::ChainFiles cert_;
  std::string credentials_;
  std::uint16_t required_port_ = 0;
  std::uint16_t may_port_ = 0;
  std::unique_ptr<RelaySetup> setup_;
  std::unique_ptr<lab::Process> relay_;
};

TEST(Submission, AuthPlainAndLoginOverTlsDeliver) {
  Submission s(1);
  const std::string auth = "--tls --auth-user alice --auth-password '" + kPassword + "' --auth ";
  const CommandResult plain =
      s.swaks(s.required(), s.outside(), "plain@" + s.domain(), auth + "PLAIN");
  ASSERT_EQ(plain.exit_code, 0) << plain.out << s.relay().log();
  EXPECT_NE(plain.out.find("235 2.7.0 Authentication successful"), std::string::npos) << plain.out;
  const CommandResult login =
      s.swaks(s.required(), s.outside(), "login@" + s.domain(), auth + "LOGIN");
  ASSERT_EQ(login.exit_code, 0) << login.out << s.relay().log();
  EXPECT_NE(login.out.find("334 VXNlcm5hbWU6"), std::string::npos) << login.out;
  // PLAIN without an initial response: an empty 334 first (RFC 4954 4).
  const CommandResult no_initial = s.dialog(s.required(), s.outside(),
                                            {"expect:220",
                                             "send:EHLO client.example",
                                             "expect:250",
                                             "send:STARTTLS",
                                             "expect:220",
                                             "starttls",
                                             "send:EHLO client.example",
                                             "expect:250",
                                             "has:AUTH PLAIN LOGIN",
                                             "send:AUTH PLAIN",
                                             "expect:334 ",
                                             "b64:\\0alice\\0" + kPassword,
                                             "expect:235 2.7.0",
                                             "send:AUTH LOGIN",
                                             "expect:503 5.5.1 Error: already authenticated",
                                             "send:MAIL FROM:<a@sender.example> AUTH=<>",
                                             "expect:250",
                                             "send:RCPT TO:<dialog@" + s.domain() + ">",
                                             "expect:250",
                                             "send:DATA",
                                             "expect:354",
                                             "send:Subject: dialog\\r\\n\\r\\nhello\\r\\n.",
                                             "expect:250 2.0.0 Ok: queued as",
                                             "send:QUIT",
                                             "expect:221"});
  ASSERT_EQ(no_initial.exit_code, 0) << no_initial.out;
  // LOGIN with the user name on the AUTH line (an initial response).
  const CommandResult login_initial =
      s.dialog(s.required(), s.outside(),
               {"expect:220", "send:EHLO client.example", "expect:250", "send:STARTTLS",
                "expect:220", "starttls", "send:EHLO client.example", "expect:250",
                "send:AUTH LOGIN YWxpY2U=", "expect:334 UGFzc3dvcmQ6", "b64:" + kPassword,
                "expect:235 2.7.0", "send:QUIT", "expect:221"});
  EXPECT_EQ(login_initial.exit_code, 0) << login_initial.out;

  ASSERT_TRUE(lab::wait_messages(s.mx(), 3)) << s.relay().log();
  const std::vector<lab::Session> sessions = s.mx().sessions();
  for (const lab::Session& session : sessions) {
    for (const lab::Message& m : session.messages) {
      // RFC 3848: TLS and AUTH on the submission's hop; no user name by
      // default ([relay] received_auth_user).
      EXPECT_NE(m.data.find("Received: from client.example ([" + s.outside() + "])"),
                std::string::npos)
          << m.data;
      EXPECT_NE(m.data.find("\t(using TLSv1.3 with cipher "), std::string::npos) << m.data;
      EXPECT_NE(m.data.find("(danemta) with ESMTPSA; "), std::string::npos) << m.data;
      EXPECT_EQ(m.data.find("Authenticated sender"), std::string::npos) << m.data;
    }
  }
  const std::string log = s.relay().log();
  EXPECT_NE(log.find("client=unknown[" + s.outside() + "], sasl_method=PLAIN, sasl_username=alice"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("client=unknown[" + s.outside() + "], sasl_method=LOGIN, sasl_username=alice"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("Anonymous TLS connection established from unknown[" + s.outside() +
                     "]: TLSv1.3 with cipher"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find(kPassword), std::string::npos) << "never a password in the log";
  EXPECT_EQ(s.relay().stop(SIGTERM), 0);
}

TEST(Submission, PlaintextAuthIsRefusedAndNotAdvertised) {
  Submission s(2);
  // Before TLS: STARTTLS offered, AUTH neither offered nor accepted.
  const CommandResult clear =
      s.dialog(s.may(), s.outside(),
               {"expect:220", "send:EHLO client.example", "expect:250", "has:STARTTLS",
                "lacks:AUTH", "auth-plain:\\0alice\\0" + kPassword,
                "expect:538 5.7.11 Encryption required for requested authentication mechanism",
                "send:AUTH LOGIN", "expect:538 5.7.11", "send:MAIL FROM:<a@sender.example>",
                "expect:530 5.7.0 Authentication required", "send:QUIT", "expect:221"});
  EXPECT_EQ(clear.exit_code, 0) << clear.out;
  // swaks gives up: the server offers no AUTH in clear.
  const CommandResult swaks =
      s.swaks(s.may(), s.outside(), "b@" + s.domain(),
              "--auth PLAIN --auth-user alice --auth-password '" + kPassword + "'");
  EXPECT_NE(swaks.exit_code, 0) << swaks.out;
  EXPECT_EQ(swaks.out.find("235 "), std::string::npos) << swaks.out;
  // tls = "required": nothing before STARTTLS, AUTH after it.
  const CommandResult required = s.dialog(
      s.required(), s.inside(),
      {"expect:220", "send:EHLO client.example", "expect:250", "lacks:AUTH",
       "send:MAIL FROM:<a@sender.example>", "expect:530 5.7.0 Must issue a STARTTLS command first",
       "auth-plain:\\0alice\\0" + kPassword, "expect:538 5.7.11", "send:STARTTLS", "expect:220",
       "starttls", "send:EHLO client.example", "expect:250", "has:AUTH PLAIN LOGIN",
       "lacks:STARTTLS", "send:STARTTLS", "expect:554 5.5.1", "send:QUIT", "expect:221"});
  EXPECT_EQ(required.exit_code, 0) << required.out;
  const std::string log = s.relay().log();
  EXPECT_NE(log.find("NOQUEUE: reject: MAIL from unknown[" + s.inside() +
                     "]: 530 5.7.0 Must issue a STARTTLS command first; from=<a@sender.example>"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("NOQUEUE: reject: MAIL from unknown[" + s.outside() +
                     "]: 530 5.7.0 Authentication required; from=<a@sender.example>"),
            std::string::npos)
      << log;
  EXPECT_EQ(lab::messages(s.mx()), 0u);
}

TEST(Submission, WrongPasswordIs535LoggedAndCounted) {
  Submission s(3);
  const CommandResult wrong =
      s.swaks(s.required(), s.outside(), "b@" + s.domain(),
              "--tls --auth PLAIN --auth-user alice --auth-password 'Tr0ub4dor&3'");
  EXPECT_NE(wrong.exit_code, 0) << wrong.out;
  EXPECT_NE(wrong.out.find("535 5.7.8 Error: authentication failed"), std::string::npos)
      << wrong.out;
  ASSERT_TRUE(s.relay().wait_for_log("authentication failed")) << s.relay().log();
  std::string log = s.relay().log();
  EXPECT_NE(log.find("warning: unknown[" + s.outside() +
                     "]: SASL PLAIN authentication failed: authentication failure, "
                     "sasl_username=alice"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("Tr0ub4dor"), std::string::npos) << "never a password in the log";

  // Failures count towards the error limit (10): the tenth gets 421. An
  // unknown user costs the same and reads the same; a malformed PLAIN
  // message and a cancelled exchange count too.
  std::vector<std::string> steps = {
      "expect:220", "send:EHLO client.example", "expect:250", "send:STARTTLS", "expect:220",
      "starttls",   "send:EHLO client.example", "expect:250"};
  for (int i = 0; i < 6; ++i) {
    steps.push_back("auth-plain:\\0" + std::string(i % 2 ? "alice" : "mallory") + "\\0guess" +
                    std::to_string(i));
    steps.push_back("expect:535 5.7.8 Error: authentication failed");
  }
  for (const char* more :
       {"auth-plain:no NULs here", "expect:535 5.7.8", "send:AUTH LOGIN", "expect:334 VXNlcm5hbWU6",
        "send:*", "expect:501 5.7.0", "send:AUTH PLAIN !!!!", "expect:501 5.5.2",
        "auth-plain:\\0alice\\0guess", "expect:421 4.7.0", "closed"})
    steps.push_back(more);
  const CommandResult limit = s.dialog(s.required(), s.outside(), steps);
  EXPECT_EQ(limit.exit_code, 0) << limit.out;
  ASSERT_TRUE(s.relay().wait_for_log("too many errors")) << s.relay().log();
  log = s.relay().log();
  EXPECT_NE(log.find("SASL PLAIN authentication failed: authentication failure, "
                     "sasl_username=mallory"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("SASL PLAIN authentication failed: malformed response"), std::string::npos)
      << log;
  EXPECT_NE(log.find("too many errors after AUTH from unknown[" + s.outside() + "]"),
            std::string::npos)
      << log;
  // The session's last line: ten AUTH commands failed, the tenth with 421.
  ASSERT_TRUE(s.relay().wait_for_log("auth=0/10")) << s.relay().log();
  log = s.relay().log();
  EXPECT_NE(log.find("disconnect from unknown[" + s.outside() +
                     "] ehlo=2 starttls=1 auth=0/10 commands=3/13"),
            std::string::npos)
      << log;
  EXPECT_EQ(lab::messages(s.mx()), 0u);
}

TEST(Submission, ListenerRulesAndTheAllowNetwork) {
  Submission s(4);
  const std::string tls_only = "--tls";
  // auth = "required": even a client in [relay] allow must authenticate.
  const CommandResult inside_required =
      s.swaks(s.required(), s.inside(), "refused@" + s.domain(), tls_only);
  EXPECT_NE(inside_required.exit_code, 0) << inside_required.out;
  EXPECT_NE(inside_required.out.find("530 5.7.0 Authentication required"), std::string::npos)
      << inside_required.out;
  // auth = "may": [relay] allow relays without AUTH, others may not.
  const CommandResult inside_may =
      s.swaks(s.may(), s.inside(), "inside-may@" + s.domain(), tls_only);
  EXPECT_EQ(inside_may.exit_code, 0) << inside_may.out;
  const CommandResult outside_may =
      s.swaks(s.may(), s.outside(), "refused@" + s.domain(), tls_only);
  EXPECT_NE(outside_may.exit_code, 0) << outside_may.out;
  EXPECT_NE(outside_may.out.find("530 5.7.0 Authentication required"), std::string::npos)
      << outside_may.out;
  // The plain `listen` address: [relay] allow as before, in clear; others
  // are refused when they connect.
  const CommandResult inside_plain =
      s.swaks(s.plain(), s.inside(), "inside-plain@" + s.domain(), "");
  EXPECT_EQ(inside_plain.exit_code, 0) << inside_plain.out;
  const CommandResult outside_plain = s.swaks(s.plain(), s.outside(), "refused@" + s.domain(), "");
  EXPECT_NE(outside_plain.exit_code, 0) << outside_plain.out;
  EXPECT_NE(outside_plain.out.find("554 5.7.1"), std::string::npos) << outside_plain.out;
  const CommandResult no_tls_offered =
      s.dialog(s.plain(), s.inside(),
               {"expect:220", "send:EHLO client.example", "expect:250", "lacks:STARTTLS",
                "lacks:AUTH", "send:STARTTLS", "expect:502 5.5.1", "send:QUIT", "expect:221"});
  EXPECT_EQ(no_tls_offered.exit_code, 0) << no_tls_offered.out;

  ASSERT_TRUE(lab::wait_messages(s.mx(), 2)) << s.relay().log();
  std::vector<std::string> delivered;
  std::string received_may;
  for (const lab::Session& session : s.mx().sessions()) {
    for (const lab::Message& m : session.messages) {
      delivered.push_back(m.rcpt_to.front());
      if (m.rcpt_to.front() == "inside-may@" + s.domain()) received_may = m.data;
    }
  }
  std::sort(delivered.begin(), delivered.end());
  EXPECT_EQ(delivered,
            (std::vector<std::string>{"inside-may@" + s.domain(), "inside-plain@" + s.domain()}));
  EXPECT_NE(received_may.find("(danemta) with ESMTPS; "), std::string::npos)
      << "TLS without AUTH (RFC 3848)\n"
      << received_may;
}

TEST(Submission, SighupServesTheNewCertificateAndUsers) {
  Submission s(5);
  // The certificate from the start.
  const std::string before = s.served_fingerprint(s.required());
  ASSERT_EQ(before.size(), 64u) << before;
  const auto log_has = [&](const std::string& text) { return s.relay().wait_for_log(text); };
  ASSERT_TRUE(log_has("STARTTLS certificate relay.lab.example from " + s.cert().chain.string() +
                      " (sha256 " + before))
      << s.relay().log();

  // A renewed certificate in the same files, a new user, and the user's
  // name in Received: from now on: SIGHUP.
  const lab::Chain renewed = lab::self_signed({"relay.lab.example", "smtp.lab.example"});
  lab::write_chain_files(renewed, std::filesystem::path(s.cert().chain).parent_path(), "relay");
  const std::string renewed_fp = lab::tlsa_data_hex(renewed.leaf, 0, 1);
  ASSERT_NE(renewed_fp, before);
  const CommandResult bob = Submission::passwd("bob", "bobs password");
  ASSERT_EQ(bob.exit_code, 0) << bob.out;
  std::ofstream(s.credentials(), std::ios::app) << bob.out;
  std::string config = read_file(s.setup().config_path);
  config.insert(config.find("\n\n[[relay.listener]]"), "\nreceived_auth_user = true");
  std::ofstream(s.setup().config_path) << config;
  ASSERT_EQ(kill(s.relay().pid(), SIGHUP), 0);
  ASSERT_TRUE(log_has("reload: relay.received_auth_user: (unset) -> true")) << s.relay().log();
  ASSERT_TRUE(log_has("STARTTLS certificate relay.lab.example,smtp.lab.example from " +
                      s.cert().chain.string() + " (sha256 " + renewed_fp))
      << s.relay().log();
  ASSERT_TRUE(log_has("AUTH credentials for 2 user(s) from " + s.credentials())) << s.relay().log();
  EXPECT_EQ(s.served_fingerprint(s.required()), renewed_fp);
  EXPECT_EQ(s.served_fingerprint(s.may()), renewed_fp);
  const CommandResult as_bob =
      s.swaks(s.required(), s.outside(), "bob@" + s.domain(),
              "--tls --auth LOGIN --auth-user bob --auth-password 'bobs password'");
  EXPECT_EQ(as_bob.exit_code, 0) << as_bob.out;
  ASSERT_TRUE(lab::wait_messages(s.mx(), 1)) << s.relay().log();
  const std::vector<lab::Session> sessions = s.mx().sessions();
  ASSERT_FALSE(sessions.front().messages.empty());
  EXPECT_NE(sessions.front().messages.front().data.find(
                "\t(Authenticated sender: bob)\r\n\tby relay.lab.example (danemta) with ESMTPSA; "),
            std::string::npos)
      << sessions.front().messages.front().data;

  // A broken certificate file and a credentials file others can read are
  // refused: the running ones stay.
  std::ofstream(s.cert().chain) << "-----BEGIN CERTIFICATE-----\nnot base64\n";
  ::chmod(s.credentials().c_str(), 0644);
  ASSERT_EQ(kill(s.relay().pid(), SIGHUP), 0);
  ASSERT_TRUE(log_has("STARTTLS certificate refused, the running one stays: certificate file " +
                      s.cert().chain.string()))
      << s.relay().log();
  ASSERT_TRUE(log_has("AUTH credentials refused, the running ones stay: credentials file " +
                      s.credentials() + ": readable or writable by others (mode 0644)"))
      << s.relay().log();
  EXPECT_EQ(s.served_fingerprint(s.required()), renewed_fp);
  const CommandResult still_bob =
      s.swaks(s.required(), s.outside(), "bob2@" + s.domain(),
              "--tls --auth PLAIN --auth-user bob --auth-password 'bobs password'");
  EXPECT_EQ(still_bob.exit_code, 0) << still_bob.out;
  ASSERT_TRUE(lab::wait_messages(s.mx(), 2)) << s.relay().log();
  EXPECT_EQ(s.relay().stop(SIGTERM), 0) << s.relay().log();
}

// A user with a sender list in the credential file sends only as those
// addresses (an address, "@domain"); one without may use any.
TEST(Submission, AuthenticatedUsersSendOnlyAsTheirListedAddresses) {
  Submission s(7);
  CommandResult app = Submission::passwd("app", "apps password");
  ASSERT_EQ(app.exit_code, 0) << app.out;
  while (!app.out.empty() && app.out.back() == '\n') app.out.pop_back();
  std::ofstream(s.credentials(), std::ios::app)
      << app.out << ":noreply@sender.example,@alerts.sender.example\n";
  ASSERT_EQ(kill(s.relay().pid(), SIGHUP), 0);
  ASSERT_TRUE(s.relay().wait_for_log("AUTH credentials for 2 user(s) from " + s.credentials()))
      << s.relay().log();
  const std::string as_app = "--tls --auth PLAIN --auth-user app --auth-password 'apps password'";
  const std::string as_alice =
      "--tls --auth PLAIN --auth-user alice --auth-password '" + std::string(kPassword) + "'";

  const CommandResult listed = s.swaks(s.required(), s.outside(), "one@" + s.domain(),
                                       as_app + " --from noreply@sender.example");
  EXPECT_EQ(listed.exit_code, 0) << listed.out;
  const CommandResult domain = s.swaks(s.required(), s.outside(), "two@" + s.domain(),
                                       as_app + " --from Pager@ALERTS.sender.example");
  EXPECT_EQ(domain.exit_code, 0) << domain.out;
  const CommandResult other = s.swaks(s.required(), s.outside(), "three@" + s.domain(),
                                      as_app + " --from ceo@sender.example");
  EXPECT_NE(other.exit_code, 0) << other.out;
  EXPECT_NE(other.out.find("553 5.7.1 <ceo@sender.example>: Sender address rejected: not owned "
                           "by user app"),
            std::string::npos)
      << other.out;
  const CommandResult null_sender =
      s.swaks(s.required(), s.outside(), "four@" + s.domain(), as_app + " --from '<>'");
  EXPECT_NE(null_sender.exit_code, 0) << null_sender.out;
  const CommandResult sibling = s.swaks(s.required(), s.outside(), "five@" + s.domain(),
                                        as_app + " --from x@evil-alerts.sender.example");
  EXPECT_NE(sibling.exit_code, 0) << sibling.out;
  const CommandResult unrestricted = s.swaks(s.required(), s.outside(), "six@" + s.domain(),
                                             as_alice + " --from ceo@sender.example");
  EXPECT_EQ(unrestricted.exit_code, 0) << unrestricted.out;

  ASSERT_TRUE(lab::wait_messages(s.mx(), 3)) << s.relay().log();
  EXPECT_TRUE(s.relay().wait_for_log(
      "NOQUEUE: reject: MAIL from unknown[" + s.outside() +
      "]: 553 5.7.1 <ceo@sender.example>: Sender address rejected: not owned by user app"))
      << s.relay().log();
  std::vector<std::string> delivered;
  for (const lab::Session& session : s.mx().sessions())
    for (const lab::Message& m : session.messages) delivered.push_back(m.rcpt_to.at(0));
  std::sort(delivered.begin(), delivered.end());
  EXPECT_EQ(delivered, (std::vector<std::string>{"one@" + s.domain(), "six@" + s.domain(),
                                                 "two@" + s.domain()}));
  EXPECT_EQ(s.relay().stop(SIGTERM), 0) << s.relay().log();
}

// RFC 3207 section 4.2 and CVE-2011-0411: a command pipelined after STARTTLS
// in the same packet must not run as if the TLS client had sent it.
TEST(Submission, CommandsInjectedAfterStarttlsAreDiscarded) {
  Submission s(6);
  const CommandResult injected = s.dialog(
      s.may(), s.inside(),
      {"expect:220", "send:EHLO client.example", "expect:250",
       "raw:STARTTLS\\r\\nMAIL FROM:<evil@sender.example>\\r\\n", "expect:220 2.0.0", "starttls",
       "send:EHLO client.example", "expect:250", "send:RCPT TO:<victim@" + s.domain() + ">",
       "expect:503 5.5.1 Error: need MAIL command", "send:QUIT", "expect:221"});
  EXPECT_EQ(injected.exit_code, 0) << injected.out;
  ASSERT_TRUE(s.relay().wait_for_log("sent after STARTTLS before the TLS handshake: discarded"))
      << s.relay().log();
  EXPECT_NE(s.relay().log().find("warning: unknown[" + s.inside() +
                                 "]: 33 octet(s) sent after STARTTLS before the TLS handshake: "
                                 "discarded"),
            std::string::npos)
      << s.relay().log();
  // The session starts over after TLS (RFC 3207 4.2): EHLO is needed again.
  const CommandResult forgotten =
      s.dialog(s.may(), s.inside(),
               {"expect:220", "send:EHLO client.example", "expect:250", "send:STARTTLS",
                "expect:220", "starttls", "send:MAIL FROM:<a@sender.example>",
                "expect:503 5.5.1 Error: send HELO/EHLO first", "send:QUIT", "expect:221"});
  EXPECT_EQ(forgotten.exit_code, 0) << forgotten.out;
  EXPECT_EQ(lab::messages(s.mx()), 0u);
}

}  // namespace
