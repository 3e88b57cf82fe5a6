// The log of the relay and of the commands that change its state: one event,
// one record, queue id first, in the words and layout Postfix operators and
// their tools know (DESIGN.md section 6), so pflogsumm and Postfix-style
// Grok or mtail patterns read it.
//
// An event has a text form (one line, or two for an arrival: Postfix logs
// `client=` under smtpd and `from=, size=, nrcpt=` under qmgr) and a JSON
// form (one object with the same facts, numbers as numbers). Each text line
// is logged under a Postfix program name ("danemta/smtp"), which is the
// syslog tag with `log = "syslog"` and part of the syslog-style prefix on
// standard output:
//
//   2026-11-29T20:37:31.123Z relay.example.net danemta/smtp[812]: 01A2...: to=<b@example.org>, ...
//
// Under systemd with standard output going to the journal, the prefix is the
// journal's level marker ("<4>") alone: the journal adds time, host and tag.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"

namespace danemta::logging {

// Syslog severity: info for the normal course of mail, warning for
// deferrals and trouble danemta works around (a full disk, a refused
// address), error for failures (a recipient bounced, a result or a message
// that could not be read or written).
enum class Level { info, warning, error };
std::string_view to_string(Level level);  // "info", "warning", "error"
int syslog_priority(Level level);         // LOG_INFO, LOG_WARNING, LOG_ERR

// The Postfix program that logs the same event; a line's tag is
// "danemta/" + this name.
enum class Program {
  master,     // daemon start, stop and notices
  smtpd,      // arrivals (client=) and refused clients
  qmgr,       // the queue: from=/size=/nrcpt=, removed, storage trouble
  smtp,       // delivery attempts and each recipient's result
  bounce,     // non-delivery notifications
  postsuper,  // operator changes to the queue (danemta queue delete)
  tlsrpt,     // TLS reports (RFC 8460) sent or queued
};
std::string_view to_string(Program program);  // "smtp"

struct Line {
  Program program = Program::master;
  std::string text;  // without prefix or line end; never contains a line end
};

struct Event {
  Level level = Level::info;
  std::string id;    // queue id, or "" when the event concerns no message
  std::string kind;  // the JSON "event": "queued", "delivery", ...
  nlohmann::json fields = nlohmann::json::object();  // the JSON facts besides time/level/id/event
  std::vector<Line> lines;                           // the text form
};

// An event that is one line of free text ("notice"): `id` (if any) goes
// first in the text as in every line, and as "id" in JSON.
Event notice(Program program, Level level, const std::string& id, const std::string& text);

enum class Destination { stream, syslog };
enum class Format { text, json };
enum class Prefix {
  syslog,   // "2026-11-29T20:37:31.123Z host danemta/smtp[pid]: "
  journal,  // "<4>" (sd-daemon(3) level marker read by the journal)
  none,
};

struct Options {
  Destination destination = Destination::stream;
  Format format = Format::text;
  Prefix prefix = Prefix::syslog;  // for Destination::stream
  std::string hostname = "localhost";
  long pid = 0;
};

// The options for [relay] log, log_format and log_prefix; "auto" becomes
// Prefix::journal when the process's standard output is the journal's
// stream (the JOURNAL_STREAM variable systemd sets names its device and
// inode, systemd.exec(5)), else Prefix::syslog.
Options options_for(const config::RelayConfig& relay, std::string hostname);

// Writes events; safe to call from several threads. With Destination::stream
// each record is one line on `out`, flushed; with Destination::syslog each
// text line (or the JSON object) is one syslog(3) message with facility
// LOG_MAIL, tag "danemta/PROGRAM" and the PID.
class Logger {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;
  Logger(Options options, std::ostream& out, Clock clock = std::chrono::system_clock::now);
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  void write(const Event& event);
  const Options& options() const { return options_; }

 private:
  Options options_;
  std::ostream& out_;
  Clock clock_;
  std::mutex mutex_;
};

// The pieces, pure:
// "2026-11-29T20:37:31.123Z" (RFC 3339, UTC, milliseconds).
std::string rfc3339_ms(std::chrono::system_clock::time_point t);
// One text line as written to a stream, without the line end.
std::string stream_line(const Options& options, Level level, const Line& line,
                        std::chrono::system_clock::time_point t);
// The JSON object of an event: "time", "level", "id" (when set), "event",
// then the event's fields.
std::string json_record(const Event& event, std::chrono::system_clock::time_point t);
// Whether JOURNAL_STREAM's value ("DEVICE:INODE") names this device and inode.
bool journal_stream(std::string_view value, std::uint64_t device, std::uint64_t inode);
// A line without CR or LF (replies may span lines; a log line may not).
std::string one_line(std::string text);

}  // namespace danemta::logging
