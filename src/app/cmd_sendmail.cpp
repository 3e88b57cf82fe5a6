#include "app/cmd_sendmail.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <memory>
#include <random>
#include <set>

#include "app/cmd_queue.hpp"
#include "app/cmd_relay.hpp"
#include "app/submit.hpp"
#include "base/system.hpp"
#include "config/config.hpp"
#include "mime/header.hpp"
#include "sendmail/command_line.hpp"
#include "sendmail/message.hpp"
#include "smtp/path.hpp"

namespace danemta::app {

namespace {

using namespace danemta::sendmail;

// The invoking user from the password database (never from the
// environment: the sender must not be whatever LOGNAME says).
struct User {
  std::string login;
  std::string gecos_name;  // the GECOS field up to its first comma
};

std::optional<User> invoking_user() {
  const passwd* pw = getpwuid(getuid());
  if (pw == nullptr || pw->pw_name == nullptr || pw->pw_name[0] == '\0') return std::nullopt;
  User u{pw->pw_name, ""};
  if (pw->pw_gecos != nullptr) {
    u.gecos_name = pw->pw_gecos;
    u.gecos_name = u.gecos_name.substr(0, u.gecos_name.find(','));
  }
  return u;
}

// Which exit status a failed submission gets (sysexits.h): a refusal of the
// message text or its size is the data's fault, another 5xx the relay's
// refusal, anything else (no relay, 4xx, a broken session) temporary.
int exit_for(const smtp::Failure& f) {
  if (!f.permanent()) return kExTempFail;
  if (f.kind == smtp::FailureKind::unsupported) return kExDataErr;
  if (f.reply && f.reply->code == 552) return kExDataErr;  // 5.3.4 too big
  switch (f.stage) {
    case smtp::Stage::data:
    case smtp::Stage::body:
    case smtp::Stage::dot:
      return kExDataErr;
    case smtp::Stage::connect:
    case smtp::Stage::greeting:
    case smtp::Stage::ehlo:
    case smtp::Stage::helo:
    case smtp::Stage::starttls:
    case smtp::Stage::tls_handshake:
    case smtp::Stage::mail:
    case smtp::Stage::rcpt:
    case smtp::Stage::rset:
    case smtp::Stage::quit:
      return kExUnavailable;
  }
  return kExUnavailable;
}

// An address as the relay's RCPT/MAIL parser will read it, or why not.
std::optional<std::string> path_problem(const std::string& address) {
  auto p = smtp::parse_path("<" + address + ">", smtp::PathKind::forward);
  if (!p) return p.error().detail;
  if (p->address_literal) return std::string("address literals are not routed (DNS only)");
  return std::nullopt;
}

class Run {
 public:
  explicit Run(std::string name) : name_(std::move(name)) {}

  int error(int status, const std::string& text) const {
    std::cerr << name_ << ": " << text << "\n";
    return status;
  }

  // Adds the mailboxes of one address list (a recipient operand may be
  // "a@x, Name <b@y>"), qualified; false after reporting a bad one.
  bool add(const std::vector<mime::Mailbox>& list, const std::string& domain, int status,
           const std::string& where) {
    for (const mime::Mailbox& m : list) {
      std::string address = qualify(m.address(), domain);
      if (auto problem = path_problem(address)) {
        error(status, where + ": bad address " + address + ": " + *problem);
        return false;
      }
      if (seen_.insert(address).second) recipients_.push_back(std::move(address));
    }
    return true;
  }
  std::vector<std::string>& recipients() { return recipients_; }

 private:
  std::string name_;
  std::set<std::string> seen_;
  std::vector<std::string> recipients_;
};

}  // namespace

int run_sendmail(const std::vector<std::string>& args, const std::string& given_config,
                 const std::string& name, bool mailq) {
  using namespace danemta::sendmail;
  Run run(name);
  auto parsed = parse_command_line(args);
  if (!parsed) return run.error(kExUsage, parsed.error().message);
  const Options& o = *parsed;

  std::string config_path = !o.config_path.empty() ? o.config_path : given_config;
  struct stat st {};
  if (config_path.empty() && ::stat(kDefaultConfigPath, &st) == 0) config_path = kDefaultConfigPath;
  config::Config cfg;
  if (!config_path.empty()) {
    auto loaded = config::load(config_path);
    if (!loaded) return run.error(kExConfig, loaded.error().message);
    cfg = std::move(*loaded);
  }

  if (mailq || o.mode == Mode::queue_list || o.mode == Mode::flush) {
    QueueOptions queue;
    queue.action = mailq || o.mode == Mode::queue_list ? "list" : "flush";
    return run_queue(cfg, queue);
  }

  const std::string domain = cfg.sendmail_domain(local_hostname());
  const std::string host = cfg.relay.hostname.empty() ? local_hostname() : cfg.relay.hostname;

  for (const std::string& operand : o.recipients) {
    auto list = mime::address_list(operand);
    if (!list) return run.error(kExUsage, "recipient \"" + operand + "\": " + list.error().message);
    if (!run.add(*list, domain, kExUsage, "recipient \"" + operand + "\"")) return kExUsage;
  }
  if (!o.extract && run.recipients().empty())
    return run.error(kExUsage,
                     "no recipients: name them on the command line, or use -t to take them from "
                     "the To:, Cc: and Bcc: fields");

  std::string text;
  if (!read_message(std::cin, o.dot_ends, text))
    return run.error(kExIoErr, "cannot read the message from standard input");
  const mime::HeaderSection header = mime::parse_header(text);
  if (o.extract) {
    auto found = header_recipients(header);
    if (!found) return run.error(kExDataErr, found.error().message);
    if (!run.add(*found, domain, kExDataErr, "message header")) return kExDataErr;
    if (run.recipients().empty())
      return run.error(kExDataErr, "-t: the message has no recipients in To:, Cc: or Bcc:");
  }

  // The user matters only for the default sender and an added From:.
  const bool need_user = !o.sender || !mime::has_field(header, "From");
  std::optional<User> user = need_user ? invoking_user() : std::nullopt;
  if (need_user && !user)
    return run.error(kExUnavailable, "no user name for uid " + std::to_string(getuid()) +
                                         " in the password database; give the sender with -f");
  std::string sender = o.sender ? *o.sender : user->login;
  if (!sender.empty()) {
    sender = qualify(sender, domain);
    if (auto problem = path_problem(sender))
      return run.error(kExUsage, "bad sender address " + sender + ": " + *problem);
  }

  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  std::random_device random;
  const std::uint64_t unique = (static_cast<std::uint64_t>(random()) << 32) ^ random();
  Completion add;
  add.date = rfc5322_date(now);
  add.message_id = mime::message_id(now, unique, host);
  add.trace = "Received: by " + host + " (danemta sendmail, from userid " +
              std::to_string(getuid()) + ");\r\n\t" + add.date + "\r\n";
  if (user) {
    const std::string from = sender.empty() ? qualify(user->login, domain) : sender;
    const char* env_name = std::getenv("NAME");
    std::string full = !o.full_name.empty()      ? o.full_name
                       : env_name && env_name[0] ? std::string(env_name)
                                                 : user->gecos_name;
    const std::string phrase = mime::display_name(full);
    add.from = phrase.empty() ? from : phrase + " <" + from + ">";
  }
  auto message = std::make_shared<const std::string>(complete_message(text, header, add));
  std::string().swap(text);

  // One transaction per max_recipients recipients: the relay refuses more
  // in one (452 4.5.3).
  std::vector<smtp::Envelope> envelopes;
  const std::vector<std::string>& all = run.recipients();
  const std::size_t per = std::max<std::size_t>(1, cfg.relay.max_recipients);
  for (std::size_t i = 0; i < all.size(); i += per)
    envelopes.push_back(smtp::Envelope{
        sender, std::vector<std::string>(
                    all.begin() + static_cast<std::ptrdiff_t>(i),
                    all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), i + per)))});

  const std::string where = cfg.sendmail_submit();
  Submitted s = submit_to_relay(where, std::move(envelopes), message);
  int status = 0;
  for (const smtp::SendResult& r : s.results) {
    for (const smtp::RecipientResult& rr : r.recipients) {
      if (rr.delivered()) continue;
      run.error(0, "<" + rr.address + ">: refused by the relay: " + rr.reply.to_string());
      status = rr.reply.permanent() && status != kExTempFail ? kExNoUser : kExTempFail;
    }
    if (o.verbose && r.data_reply) std::cerr << name << ": " << r.data_reply->to_string() << "\n";
  }
  if (s.failure) {
    const int code = exit_for(*s.failure);
    std::string text_out = "cannot submit to the relay at " + where + ": " + s.failure->to_string();
    if (s.failure->stage == smtp::Stage::connect) text_out += " (is `danemta relay` running?)";
    text_out += code == kExTempFail ? "; not sent, try again later" : "; not sent";
    if (!s.results.empty())
      text_out += " (to the recipients after the first " + std::to_string(s.results.size() * per) +
                  ", which were queued)";
    return run.error(code, text_out);
  }
  return status;
}

}  // namespace danemta::app
