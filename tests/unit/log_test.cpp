// The log's lines and records: Postfix's delay=/delays= arithmetic and
// printing, the status parenthesis, the prefixes, JSON numbers and times.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <syslog.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "delivery/log.hpp"
#include "logging/logger.hpp"

namespace {

using namespace danemta;
using delivery::Delays;
using delivery::postfix_seconds;
using nlohmann::json;
using ::testing::HasSubstr;

// 2026-11-29T20:37:31.123Z
std::chrono::system_clock::time_point sample_time() {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(1795984651123LL));
}

delivery::RecipientResult sent() {
  delivery::RecipientResult r;
  r.recipient = "b@example.org";
  r.status = delivery::Status::delivered;
  r.dsn = "2.0.0";
  r.diagnostic = "250 2.0.0 Ok: queued as 4XyZ";
  r.relay = "mx1.example.org[192.0.2.1]:25";
  r.tls = dane::Authentication::dane_verified;
  return r;
}

delivery::RecipientResult deferred_tlsa() {
  delivery::RecipientResult r;
  r.recipient = "c@example.net";
  r.status = delivery::Status::deferred;
  r.dsn = "4.7.323";
  r.outcome = dane::Outcome::tlsa_invalid;
  r.diagnostic = "mx.example.net[192.0.2.9]:25: no TLSA record matched the certificate";
  r.relay = "mx.example.net[192.0.2.9]:25";
  return r;
}

TEST(PostfixSeconds, PrintsAsPostfixDoes) {
  EXPECT_EQ(postfix_seconds(0), "0");
  EXPECT_EQ(postfix_seconds(-3), "0");
  EXPECT_EQ(postfix_seconds(0.004), "0");
  EXPECT_EQ(postfix_seconds(0.005), "0.01");
  EXPECT_EQ(postfix_seconds(0.35), "0.35");
  EXPECT_EQ(postfix_seconds(0.1), "0.1");
  EXPECT_EQ(postfix_seconds(0.05), "0.05");
  EXPECT_EQ(postfix_seconds(1.2), "1.2");
  EXPECT_EQ(postfix_seconds(2), "2");
  EXPECT_EQ(postfix_seconds(9.994), "9.99");
  EXPECT_EQ(postfix_seconds(9.996), "10");
  EXPECT_EQ(postfix_seconds(10), "10");
  EXPECT_EQ(postfix_seconds(12.7), "12");
  EXPECT_EQ(postfix_seconds(432001.9), "432001");
}

TEST(Delays, WaitIsWhatSetupAndTransmissionLeaveOfTheAttempt) {
  const Delays d = delivery::delays_of(300.5, 2.0, 0.4, 0.3);
  EXPECT_DOUBLE_EQ(d.queue, 300.5);
  EXPECT_DOUBLE_EQ(d.setup, 0.4);
  EXPECT_DOUBLE_EQ(d.transmission, 0.3);
  EXPECT_DOUBLE_EQ(d.wait, 1.3);
  EXPECT_DOUBLE_EQ(d.total(), 302.5);
  // A clock step never makes a part negative.
  const Delays stepped = delivery::delays_of(-1, 0.1, 0.2, 0.05);
  EXPECT_EQ(stepped.queue, 0);
  EXPECT_EQ(stepped.wait, 0);
  EXPECT_DOUBLE_EQ(stepped.total(), 0.25);
}

TEST(DeliveryLine, SentReadsAsPostfixSmtpLine) {
  const Delays d = delivery::delays_of(0.02, 0.33, 0.21, 0.12);
  EXPECT_EQ(delivery::log_line("01A2B3", sent(), d),
            "01A2B3: to=<b@example.org>, relay=mx1.example.org[192.0.2.1]:25, delay=0.35, "
            "delays=0.02/0/0.21/0.12, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4XyZ), "
            "tls=dane-verified");
}

TEST(DeliveryLine, OutcomeNameLeadsTheParenthesis) {
  const Delays d = delivery::delays_of(300, 0.4, 0.4, 0);
  EXPECT_EQ(delivery::log_line("Q2", deferred_tlsa(), d),
            "Q2: to=<c@example.net>, relay=mx.example.net[192.0.2.9]:25, delay=300, "
            "delays=300/0/0.4/0, dsn=4.7.323, status=deferred (tlsa-invalid: "
            "mx.example.net[192.0.2.9]:25: no TLSA record matched the certificate), tls=none");
  delivery::RecipientResult expired = deferred_tlsa();
  expired.status = delivery::Status::bounced;
  expired.dsn = "5.7.323";
  EXPECT_THAT(delivery::log_line("Q2", expired, d, true),
              HasSubstr("dsn=5.7.323, status=bounced (tlsa-invalid: mx.example.net[192.0.2.9]:25: "
                        "no TLSA record matched the certificate; queue lifetime expired), "
                        "tls=none"));
}

TEST(DeliveryLine, NoConnectionIsRelayNoneAndRepliesSpanOneLine) {
  delivery::RecipientResult r;
  r.recipient = "x@nowhere.example";
  r.status = delivery::Status::bounced;
  r.dsn = "5.1.10";
  r.outcome = dane::Outcome::null_mx;
  r.diagnostic = "line one\r\nline two";
  const std::string line = delivery::log_line("Q3", r, Delays{});
  EXPECT_THAT(line, HasSubstr("to=<x@nowhere.example>, relay=none, delay=0, delays=0/0/0/0, "
                              "dsn=5.1.10, status=bounced (null-mx: line one  line two)"));
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(DeliveryEvent, JsonNumbersAreNumbers) {
  const Delays d = delivery::delays_of(1.23456, 0.5, 0.2, 0.1);
  const logging::Event e = delivery::delivery_event("Q1", sent(), d);
  EXPECT_EQ(e.level, logging::Level::info);
  ASSERT_EQ(e.lines.size(), 1u);
  EXPECT_EQ(e.lines[0].program, logging::Program::smtp);
  const json j = json::parse(logging::json_record(e, sample_time()));
  EXPECT_EQ(j["time"], "2026-11-29T20:37:31.123Z");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["id"], "Q1");
  EXPECT_EQ(j["event"], "delivery");
  ASSERT_TRUE(j["delay"].is_number()) << j;
  EXPECT_DOUBLE_EQ(j["delay"].get<double>(), 1.735);
  ASSERT_TRUE(j["delays"].is_object()) << j;
  EXPECT_DOUBLE_EQ(j["delays"]["queue"].get<double>(), 1.235);
  EXPECT_DOUBLE_EQ(j["delays"]["wait"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(j["delays"]["setup"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(j["delays"]["transmission"].get<double>(), 0.1);
  EXPECT_EQ(j["status"], "sent");
  EXPECT_EQ(j["dsn"], "2.0.0");
  EXPECT_EQ(j["tls"], "dane-verified");
  EXPECT_EQ(j["expired"], false);
  EXPECT_FALSE(j.contains("outcome"));
  // The dump has the number itself, not its string.
  EXPECT_THAT(logging::json_record(e, sample_time()), HasSubstr("\"delay\":1.735"));
}

TEST(DeliveryEvent, LevelsFollowTheStatus) {
  const logging::Event deferred = delivery::delivery_event("Q", deferred_tlsa(), Delays{});
  EXPECT_EQ(deferred.level, logging::Level::warning);
  const json j = json::parse(logging::json_record(deferred, sample_time()));
  EXPECT_EQ(j["outcome"], "tlsa-invalid");
  EXPECT_EQ(j["level"], "warning");
  delivery::RecipientResult bounced = deferred_tlsa();
  bounced.status = delivery::Status::bounced;
  EXPECT_EQ(delivery::delivery_event("Q", bounced, Delays{}, true).level, logging::Level::error);
  EXPECT_EQ(json::parse(logging::json_record(delivery::delivery_event("Q", bounced, Delays{}, true),
                                             sample_time()))["expired"],
            true);
  EXPECT_EQ(logging::syslog_priority(logging::Level::info), LOG_INFO);
  EXPECT_EQ(logging::syslog_priority(logging::Level::warning), LOG_WARNING);
  EXPECT_EQ(logging::syslog_priority(logging::Level::error), LOG_ERR);
}

TEST(LogTime, Rfc3339WithMillisecondsInUtc) {
  EXPECT_EQ(logging::rfc3339_ms(sample_time()), "2026-11-29T20:37:31.123Z");
  EXPECT_EQ(logging::rfc3339_ms(std::chrono::system_clock::time_point{}),
            "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(
      logging::rfc3339_ms(std::chrono::system_clock::time_point(std::chrono::milliseconds(5))),
      "1970-01-01T00:00:00.005Z");
}

TEST(LogPrefix, SyslogJournalAndNone) {
  logging::Options o;
  o.hostname = "relay.example.net";
  o.pid = 812;
  const logging::Line line{logging::Program::smtp, "Q1: to=<b@example.org>"};
  o.prefix = logging::Prefix::syslog;
  EXPECT_EQ(logging::stream_line(o, logging::Level::info, line, sample_time()),
            "2026-11-29T20:37:31.123Z relay.example.net danemta/smtp[812]: Q1: to=<b@example.org>");
  o.prefix = logging::Prefix::journal;
  EXPECT_EQ(logging::stream_line(o, logging::Level::warning, line, sample_time()),
            "<4>Q1: to=<b@example.org>");
  EXPECT_EQ(logging::stream_line(o, logging::Level::error, line, sample_time()),
            "<3>Q1: to=<b@example.org>");
  o.prefix = logging::Prefix::none;
  EXPECT_EQ(logging::stream_line(o, logging::Level::info, line, sample_time()),
            "Q1: to=<b@example.org>");
}

TEST(LogPrefix, JournalStreamMatchesDeviceAndInode) {
  EXPECT_TRUE(logging::journal_stream("8:12345", 8, 12345));
  EXPECT_FALSE(logging::journal_stream("8:12345", 8, 12346));
  EXPECT_FALSE(logging::journal_stream("", 8, 12345));
  EXPECT_FALSE(logging::journal_stream("8:12345x", 8, 12345));
}

TEST(Logger, TextEventsWriteEachLineUnderItsProgram) {
  std::ostringstream out;
  logging::Options o;
  o.hostname = "h";
  o.pid = 7;
  logging::Logger log(o, out, [] { return sample_time(); });
  logging::Event e;
  e.id = "Q1";
  e.kind = "queued";
  e.fields = {{"size", 187}};
  e.lines = {{logging::Program::smtpd, "Q1: client=unknown[127.0.0.1]"},
             {logging::Program::qmgr, "Q1: from=<a@b>, size=187, nrcpt=1 (queue active)"}};
  log.write(e);
  EXPECT_EQ(out.str(),
            "2026-11-29T20:37:31.123Z h danemta/smtpd[7]: Q1: client=unknown[127.0.0.1]\n"
            "2026-11-29T20:37:31.123Z h danemta/qmgr[7]: Q1: from=<a@b>, size=187, nrcpt=1 "
            "(queue active)\n");
}

TEST(Logger, JsonEventsAreOneObjectPerLine) {
  std::ostringstream out;
  logging::Options o;
  o.format = logging::Format::json;
  logging::Logger log(o, out, [] { return sample_time(); });
  logging::Event e;
  e.id = "Q1";
  e.kind = "queued";
  e.fields = {{"from", "a@b"}, {"size", 187}, {"nrcpt", 2}};
  e.lines = {{logging::Program::smtpd, "x"}, {logging::Program::qmgr, "y"}};
  log.write(e);
  log.write(logging::notice(logging::Program::master, logging::Level::info, "", "two\nlines"));
  std::istringstream in(out.str());
  std::string first;
  std::string second;
  ASSERT_TRUE(std::getline(in, first));
  ASSERT_TRUE(std::getline(in, second));
  const json q = json::parse(first);
  EXPECT_EQ(q["event"], "queued");
  EXPECT_TRUE(q["size"].is_number_unsigned());
  EXPECT_EQ(q["size"], 187);
  EXPECT_EQ(q["nrcpt"], 2);
  EXPECT_EQ(q["time"], "2026-11-29T20:37:31.123Z");
  const json n = json::parse(second);
  EXPECT_EQ(n["event"], "notice");
  EXPECT_EQ(n["text"], "two lines");
  EXPECT_FALSE(n.contains("id"));
}

TEST(Logger, NoticeCarriesTheQueueIdFirst) {
  const logging::Event e =
      logging::notice(logging::Program::qmgr, logging::Level::error, "Q9", "cannot read");
  ASSERT_EQ(e.lines.size(), 1u);
  EXPECT_EQ(e.lines[0].text, "Q9: cannot read");
  EXPECT_EQ(e.fields["text"], "cannot read");
  EXPECT_EQ(logging::to_string(e.lines[0].program), "qmgr");
}

}  // namespace
