#include "logging/logger.hpp"

#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace danemta::logging {

std::string_view to_string(Level level) {
  switch (level) {
    case Level::info:
      return "info";
    case Level::warning:
      return "warning";
    case Level::error:
      return "error";
  }
  return "info";
}

int syslog_priority(Level level) {
  switch (level) {
    case Level::info:
      return LOG_INFO;
    case Level::warning:
      return LOG_WARNING;
    case Level::error:
      return LOG_ERR;
  }
  return LOG_INFO;
}

namespace {

// syslog(3) keeps the tag's pointer: these live as long as the program.
const char* syslog_tag(Program program) {
  switch (program) {
    case Program::master:
      return "danemta/master";
    case Program::smtpd:
      return "danemta/smtpd";
    case Program::qmgr:
      return "danemta/qmgr";
    case Program::smtp:
      return "danemta/smtp";
    case Program::bounce:
      return "danemta/bounce";
    case Program::postsuper:
      return "danemta/postsuper";
    case Program::tlsrpt:
      return "danemta/tlsrpt";
  }
  return "danemta";
}

}  // namespace

std::string_view to_string(Program program) {
  return std::string_view(syslog_tag(program)).substr(std::string_view("danemta/").size());
}

std::string one_line(std::string text) {
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

Event notice(Program program, Level level, const std::string& id, const std::string& text) {
  Event e;
  e.level = level;
  e.id = id;
  e.kind = "notice";
  e.fields["text"] = one_line(text);
  e.lines.push_back({program, one_line(id.empty() ? text : id + ": " + text)});
  return e;
}

std::string rfc3339_ms(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  auto seconds = static_cast<std::time_t>(ms / 1000);
  auto millis = static_cast<int>(ms % 1000);
  if (millis < 0) {  // before 1970: floor, not truncation
    millis += 1000;
    --seconds;
  }
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[80];  // the longest int fields fit; a real time takes 24
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

std::string stream_line(const Options& options, Level level, const Line& line,
                        std::chrono::system_clock::time_point t) {
  switch (options.prefix) {
    case Prefix::syslog:
      return rfc3339_ms(t) + " " + options.hostname + " " + syslog_tag(line.program) + "[" +
             std::to_string(options.pid) + "]: " + line.text;
    case Prefix::journal:
      return "<" + std::to_string(syslog_priority(level)) + ">" + line.text;
    case Prefix::none:
      return line.text;
  }
  return line.text;
}

std::string json_record(const Event& event, std::chrono::system_clock::time_point t) {
  nlohmann::ordered_json j;  // time, level, id and event first, for people
  j["time"] = rfc3339_ms(t);
  j["level"] = to_string(event.level);
  if (!event.id.empty()) j["id"] = event.id;
  j["event"] = event.kind;
  for (const auto& [key, value] : event.fields.items()) j[key] = value;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool journal_stream(std::string_view value, std::uint64_t device, std::uint64_t inode) {
  return value == std::to_string(device) + ":" + std::to_string(inode);
}

Options options_for(const config::RelayConfig& relay, std::string hostname) {
  Options o;
  o.destination =
      relay.log == config::RelayConfig::LogTo::syslog ? Destination::syslog : Destination::stream;
  o.format = relay.log_json ? Format::json : Format::text;
  o.hostname = std::move(hostname);
  o.pid = static_cast<long>(::getpid());
  switch (relay.log_prefix) {
    case config::RelayConfig::LogPrefix::syslog:
      o.prefix = Prefix::syslog;
      break;
    case config::RelayConfig::LogPrefix::none:
      o.prefix = Prefix::none;
      break;
    case config::RelayConfig::LogPrefix::automatic: {
      o.prefix = Prefix::syslog;
      const char* stream = std::getenv("JOURNAL_STREAM");
      struct stat st {};
      if (stream != nullptr && ::fstat(STDOUT_FILENO, &st) == 0 &&
          journal_stream(stream, static_cast<std::uint64_t>(st.st_dev),
                         static_cast<std::uint64_t>(st.st_ino)))
        o.prefix = Prefix::journal;
      break;
    }
  }
  return o;
}

Logger::Logger(Options options, std::ostream& out, Clock clock)
    : options_(std::move(options)), out_(out), clock_(std::move(clock)) {}

void Logger::write(const Event& event) {
  const auto t = clock_();
  std::lock_guard lock(mutex_);
  if (options_.destination == Destination::syslog) {
    // openlog() again only changes the tag; the connection to the log
    // socket stays open.
    auto send = [&event](Program program, const std::string& text) {
      ::openlog(syslog_tag(program), LOG_PID | LOG_NDELAY, LOG_MAIL);
      ::syslog(LOG_MAIL | syslog_priority(event.level), "%s", text.c_str());
    };
    if (options_.format == Format::json) {
      send(event.lines.empty() ? Program::master : event.lines.front().program,
           json_record(event, t));
    } else {
      for (const Line& line : event.lines) send(line.program, line.text);
    }
    return;
  }
  if (options_.format == Format::json) {
    std::string record = json_record(event, t);
    if (options_.prefix == Prefix::journal)
      record = "<" + std::to_string(syslog_priority(event.level)) + ">" + record;
    out_ << record << std::endl;
    return;
  }
  for (const Line& line : event.lines) out_ << stream_line(options_, event.level, line, t) << '\n';
  out_.flush();
}

}  // namespace danemta::logging
