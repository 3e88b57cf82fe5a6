#include "app/cmd_queue.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/system.hpp"
#include "base/text.hpp"
#include "logging/logger.hpp"
#include "queue/shape.hpp"
#include "queue/spool.hpp"

namespace danemta::app {

namespace {

using nlohmann::json;

queue::Time wall_clock() {
  return static_cast<queue::Time>(std::time(nullptr));
}

std::string time_text(queue::Time t) {
  return t == 0 ? "-" : utc_time(t, "%Y-%m-%d %H:%M:%S");
}

std::int64_t arrival_ms(const queue::MessageInfo& m) {
  return m.received_ms != 0 ? m.received_ms : m.received_at * 1000;
}

// "queued", "held" or "finished" (docs/queue-json.md).
std::string message_state(const queue::MessageInfo& m) {
  if (m.finished()) return "finished";
  return m.held() ? "held" : "queued";
}

json nullable(const std::string& s) {
  return s.empty() ? json(nullptr) : json(s);
}

json message_json(const queue::MessageInfo& m) {
  json recipients = json::array();
  for (const queue::RecipientStatus& r : m.recipients) {
    const bool pending = r.state == queue::RecipientState::pending;
    recipients.push_back(
        {{"address", r.address},
         {"domain", r.domain},
         {"state", queue::to_string(r.state)},
         {"held", pending && r.held},
         {"attempts", r.attempts},
         {"next_attempt_ms", pending && !r.held ? json(r.next_attempt_at * 1000) : json(nullptr)},
         {"last_dsn", nullable(r.last_dsn)},
         {"last_outcome", nullable(r.last_outcome)},
         {"last_diagnostic", nullable(r.last_diagnostic)}});
  }
  return {{"id", m.id},
          {"sender", m.mail_from},
          {"arrival_ms", arrival_ms(m)},
          {"received_from", m.received_from},
          {"size", m.size},
          {"state", message_state(m)},
          {"held", m.held_in_part()},
          {"finished_ms", m.finished_at > 0 ? json(m.finished_at * 1000) : json(nullptr)},
          {"recipients", std::move(recipients)}};
}

void print_message(std::ostream& out, const queue::MessageInfo& m) {
  out << std::left << std::setw(16) << m.id << " " << std::right << std::setw(9) << m.size << "  "
      << time_text(m.received_at) << "  <" << m.mail_from << ">";
  if (m.held())
    out << "  held";
  else if (m.held_in_part())
    out << "  held in part";
  out << "\n";
  for (const queue::RecipientStatus& r : m.recipients) {
    const bool pending = r.state == queue::RecipientState::pending;
    out << "    <" << r.address << ">  "
        << (pending && r.held ? std::string_view("held") : queue::to_string(r.state))
        << "  attempts=" << r.attempts;
    if (pending && !r.held) out << "  next=" << time_text(r.next_attempt_at);
    if (!r.last_dsn.empty()) out << "  " << r.last_dsn;
    if (!r.last_outcome.empty()) out << " " << r.last_outcome;
    if (!r.last_diagnostic.empty()) out << ": " << r.last_diagnostic;
    out << "\n";
  }
}

// The qshape-like table: a header of bucket bounds, the TOTAL row, then
// one row per domain, numbers right-aligned.
void print_shape(std::ostream& out, const queue::Shape& s) {
  std::vector<std::string> header = {"T"};
  for (int m : queue::kShapeMinutes) header.push_back(std::to_string(m));
  header.push_back(std::to_string(queue::kShapeMinutes.back()) + "+");
  std::vector<const queue::ShapeRow*> rows = {&s.total};
  for (const queue::ShapeRow& r : s.domains) rows.push_back(&r);
  std::size_t name_width = 0;
  std::vector<std::size_t> widths(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) widths[c] = header[c].size();
  for (const queue::ShapeRow* r : rows) {
    name_width = std::max(name_width, r->domain.size());
    widths[0] = std::max(widths[0], std::to_string(r->total).size());
    for (std::size_t c = 0; c < r->counts.size(); ++c)
      widths[c + 1] = std::max(widths[c + 1], std::to_string(r->counts[c]).size());
  }
  out << std::string(name_width, ' ');
  for (std::size_t c = 0; c < header.size(); ++c)
    out << " " << std::setw(static_cast<int>(widths[c])) << header[c];
  out << "\n";
  for (const queue::ShapeRow* r : rows) {
    out << std::setw(static_cast<int>(name_width)) << r->domain << " "
        << std::setw(static_cast<int>(widths[0])) << r->total;
    for (std::size_t c = 0; c < r->counts.size(); ++c)
      out << " " << std::setw(static_cast<int>(widths[c + 1])) << r->counts[c];
    out << "\n";
  }
}

json shape_json(const queue::Shape& s, queue::Time now, bool held) {
  auto row = [](const queue::ShapeRow& r) {
    return json{{"domain", r.domain}, {"total", r.total}, {"counts", r.counts}};
  };
  json domains = json::array();
  for (const queue::ShapeRow& r : s.domains) domains.push_back(row(r));
  json total = row(s.total);
  total.erase("domain");
  return {{"now_ms", now * 1000},
          {"held", held},
          {"bucket_minutes", queue::kShapeMinutes},
          {"total", std::move(total)},
          {"domains", std::move(domains)}};
}

// Usage errors: one line, exit status 2.
int usage(const QueueOptions& o, const std::string& text) {
  std::cerr << "danemta queue " << o.action << ": " << text << "\n";
  return 2;
}

bool plausible_id(const std::string& id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  });
}

bool has_space_or_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

// Replaces "-" among the ids by the ids on standard input (whitespace
// separated), as postsuper reads them: `... | danemta queue delete -`.
void read_ids_from_stdin(QueueOptions& o) {
  auto dash = std::find(o.ids.begin(), o.ids.end(), "-");
  if (dash == o.ids.end()) return;
  o.ids.erase(std::remove(o.ids.begin(), o.ids.end(), "-"), o.ids.end());
  std::string id;
  while (std::cin >> id) o.ids.push_back(id);
}

// Checks what the action needs; "" when fine, else the complaint.
std::string check(const QueueOptions& o) {
  const bool selects =
      o.action == "hold" || o.action == "release" || o.action == "requeue" || o.action == "delete";
  for (const std::string& id : o.ids)
    if (!plausible_id(id)) return "\"" + id + "\" is not a queue id (letters and digits)";
  for (const std::string& d : o.domains)
    if (normalize_domain(d).empty() || d.find('@') != std::string::npos || has_space_or_control(d))
      return "--domain " + d + ": expected a domain name such as example.org";
  for (const std::string& a : o.recipients) {
    const auto at = a.rfind('@');
    if (at == std::string::npos || at == 0 || at + 1 == a.size() || has_space_or_control(a))
      return "--recipient " + a + ": expected an address such as user@example.org";
  }
  if (o.action == "show") {
    if (o.ids.empty()) return "give a queue id";
    if (o.body && o.ids.size() != 1) return "--body shows one message: give one queue id";
    if (o.body && o.json) return "--body and --json do not go together";
  }
  if (selects) {
    const bool some = !o.ids.empty() || !o.domains.empty() || !o.recipients.empty();
    if (!some && !o.all) return "give queue ids, --domain DOMAIN, --recipient ADDRESS or --all";
    if (some && o.all) return "--all goes alone (it already selects everything)";
  }
  return "";
}

queue::Selector selector_of(const QueueOptions& o) {
  queue::Selector s;
  s.ids = o.ids;
  s.domains = o.domains;
  s.addresses = o.recipients;
  s.all = o.all;
  return s;
}

// The log of the queue commands: Postfix's postsuper lines in the relay's
// log ([relay] log). With log = "stdout" that is this command's standard
// output; with syslog the line goes there and the operator sees it plainly.
class OperatorLog {
 public:
  explicit OperatorLog(const config::Config& cfg)
      : syslog_(cfg.relay.log == config::RelayConfig::LogTo::syslog),
        log_(logging::options_for(
                 cfg.relay, cfg.relay.hostname.empty() ? local_hostname() : cfg.relay.hostname),
             std::cout) {}

  void message(const std::string& id, const std::string& kind, const std::string& what,
               std::size_t recipients) {
    logging::Event e;
    e.id = id;
    e.kind = kind;
    if (recipients > 0) e.fields = {{"recipients", recipients}};
    e.lines.push_back({logging::Program::postsuper, id + ": " + what});
    log_.write(e);
    if (syslog_) std::cout << id << ": " << what << "\n";
  }

 private:
  bool syslog_;
  logging::Logger log_;
};

int storage_error(const QueueOptions& o, const Error& e) {
  std::cerr << "danemta queue " << o.action << ": " << e.message << "\n";
  return 2;
}

int missing(const std::vector<std::string>& ids) {
  for (const std::string& id : ids) std::cerr << "danemta queue: no message " << id << "\n";
  return ids.empty() ? 0 : 1;
}

int list(queue::Spool& spool, const QueueOptions& o) {
  auto all = spool.list(o.all);
  if (!all) return storage_error(o, all.error());
  if (o.json) {
    // One array, written element by element: a large spool is never one
    // document in memory twice.
    std::cout << "[";
    bool first = true;
    for (const queue::MessageInfo& m : *all) {
      std::cout << (first ? "\n" : ",\n") << message_json(m).dump();
      first = false;
    }
    std::cout << (first ? "]\n" : "\n]\n");
    return 0;
  }
  std::size_t pending = 0;
  std::size_t held = 0;
  for (const queue::MessageInfo& m : *all) {
    print_message(std::cout, m);
    if (!m.finished()) ++pending;
    if (m.held()) ++held;
  }
  if (o.all) {
    std::cout << "-- " << all->size() << " message(s), " << pending << " with pending recipients\n";
    return 0;
  }
  auto counts = spool.counts();
  if (!counts) return storage_error(o, counts.error());
  std::cout << "-- " << pending << " message(s) with pending recipients (" << held << " held); "
            << counts->finished << " finished not listed (--all lists them)\n";
  return 0;
}

int show(queue::Spool& spool, const QueueOptions& o) {
  if (o.body) {
    auto text = spool.reader(o.ids.front());
    if (!text && text.error().severity == Severity::permanent) return missing(o.ids);
    if (!text) return storage_error(o, text.error());
    std::string chunk;
    for (;;) {
      chunk.clear();
      auto n = (*text)->read(chunk, 64 * 1024);
      if (!n) return storage_error(o, n.error());
      if (*n == 0) break;
      std::cout.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
    std::cout.flush();
    return 0;
  }
  std::vector<std::string> absent;
  json out = json::array();
  for (const std::string& id : o.ids) {
    auto m = spool.info(id);
    if (!m) return storage_error(o, m.error());
    if (!*m) {
      absent.push_back(id);
      continue;
    }
    if (o.json)
      out.push_back(message_json(**m));
    else
      print_message(std::cout, **m);
  }
  if (o.json) std::cout << out.dump(2) << "\n";
  return missing(absent);
}

int summary(queue::Spool& spool, const QueueOptions& o) {
  auto pending = spool.list(false);
  if (!pending) return storage_error(o, pending.error());
  const queue::Time now = wall_clock();
  const queue::Shape s = queue::shape(*pending, now, o.held);
  if (o.json)
    std::cout << shape_json(s, now, o.held).dump(2) << "\n";
  else
    print_shape(std::cout, s);
  return 0;
}

int change(const config::Config& cfg, queue::Spool& spool, const QueueOptions& o) {
  const queue::QueueAction action = o.action == "hold"      ? queue::QueueAction::hold
                                    : o.action == "release" ? queue::QueueAction::release
                                                            : queue::QueueAction::requeue;
  auto changes = spool.change(action, selector_of(o), wall_clock());
  if (!changes) return storage_error(o, changes.error());
  const std::size_t recipients = changes->recipients();
  const std::size_t messages = changes->messages.size();
  if (o.action == "flush") {
    std::cout << recipients << " recipient(s) due now; a running relay picks them up within "
              << "seconds\n";
    return missing(changes->missing);
  }
  OperatorLog log(cfg);
  const char* what = action == queue::QueueAction::hold      ? "placed on hold"
                     : action == queue::QueueAction::release ? "released from hold"
                                                             : "requeued";
  for (const auto& [id, n] : changes->messages) log.message(id, o.action, what, n);
  std::cout << recipients << " recipient(s) of " << messages << " message(s) " << what;
  if (action != queue::QueueAction::hold)
    std::cout << "; due now, a running relay picks them up within seconds";
  std::cout << "\n";
  return missing(changes->missing);
}

int remove(const config::Config& cfg, queue::Spool& spool, const QueueOptions& o) {
  auto removal = spool.remove(selector_of(o));
  if (!removal) return storage_error(o, removal.error());
  OperatorLog log(cfg);
  for (const std::string& id : removal->removed) log.message(id, "deleted", "removed", 0);
  for (const std::string& id : removal->kept)
    std::cout << id
              << ": kept: it has pending recipients that were not selected (delete it by id "
                 "to drop them too)\n";
  std::cout << removal->removed.size() << " message(s) deleted\n";
  return missing(removal->missing);
}

int purge(queue::Spool& spool, const QueueOptions& o) {
  auto n = spool.purge_finished(wall_clock(), SIZE_MAX);
  if (!n) return storage_error(o, n.error());
  std::cout << *n << " finished message(s) removed\n";
  return 0;
}

// Adds the selectors of the commands that change recipients or messages.
void add_selectors(CLI::App* cmd, QueueOptions& o, const std::string& all_help) {
  cmd->add_option("id", o.ids, "queue ids (\"-\": read them from standard input)");
  cmd->add_option("--domain", o.domains, "recipients at this domain (exact, any case; repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--recipient", o.recipients,
                  "this recipient (local part exact, domain any case; repeatable)")
      ->allow_extra_args(false);
  cmd->add_flag("--all", o.all, all_help);
}

}  // namespace

CLI::App* add_queue_command(CLI::App& app, QueueOptions& o) {
  CLI::App* queue = app.add_subcommand(
      "queue",
      "look at and manage the queue: list, show, summary, hold, release, requeue, flush, "
      "delete, purge (docs/operations.md)");
  queue->require_subcommand(1);
  auto sub = [&o, queue](const std::string& name, const std::string& help) {
    CLI::App* c = queue->add_subcommand(name, help);
    c->callback([&o, name]() { o.action = name; });
    return c;
  };

  CLI::App* cmd_list = sub("list", "messages with pending recipients and each recipient's state");
  cmd_list->add_flag("--all", o.all, "finished (delivered and bounced) messages too");
  cmd_list->add_flag("--json", o.json, "one JSON array (docs/queue-json.md)");

  CLI::App* cmd_show = sub("show", "the given messages (any state)");
  cmd_show->add_option("id", o.ids, "queue ids");
  cmd_show->add_flag("--json", o.json, "one JSON array like list --json");
  cmd_show->add_flag("--body", o.body, "print the stored message itself (one id)");

  CLI::App* cmd_summary =
      sub("summary", "pending recipients per domain by age in minutes, like Postfix's qshape");
  cmd_summary->add_flag("--json", o.json, "one JSON object (docs/queue-json.md)");
  cmd_summary->add_flag("--held", o.held, "the recipients on hold instead of the others");

  add_selectors(sub("hold", "put pending recipients on hold: the relay leaves them alone"), o,
                "every pending recipient");
  add_selectors(sub("release", "take recipients off hold and make them due now"), o,
                "every held recipient");
  add_selectors(sub("requeue", "make deferred recipients (not held) due now"), o,
                "every pending recipient");
  CLI::App* cmd_flush = sub("flush", "make deferred recipients of one message (or all) due now");
  cmd_flush->add_option("id", o.ids, "queue id (default: every message)");
  add_selectors(sub("delete",
                    "delete messages; by domain or recipient only those whose pending "
                    "recipients are all selected"),
                o, "every message, whatever its state");
  sub("purge",
      "remove every finished message now (the relay does it after "
      "[relay] finished_retention_seconds)");
  return queue;
}

int run_queue(const config::Config& cfg, QueueOptions o) {
  read_ids_from_stdin(o);
  if (o.action == "flush" && o.ids.empty()) o.all = true;
  if (std::string problem = check(o); !problem.empty()) return usage(o, problem);

  auto opened = queue::open_sqlite_spool(cfg.relay.spool);
  if (!opened) {
    std::cerr << "danemta queue: " << opened.error().message << "\n";
    return 2;
  }
  queue::Spool& spool = **opened;
  if (o.action == "list") return list(spool, o);
  if (o.action == "show") return show(spool, o);
  if (o.action == "summary") return summary(spool, o);
  if (o.action == "hold" || o.action == "release" || o.action == "requeue" || o.action == "flush")
    return change(cfg, spool, o);
  if (o.action == "delete") return remove(cfg, spool, o);
  if (o.action == "purge") return purge(spool, o);
  std::cerr << "danemta queue: unknown action " << o.action << "\n";
  return 2;
}

}  // namespace danemta::app
