#include "dsn/dsn.hpp"

#include "dane/outcome.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace danemta::dsn {
namespace {

constexpr std::int64_t kArrival = 1709294400;  // Fri, 01 Mar 2024 12:00:00 +0000
constexpr std::int64_t kNow = kArrival + 5 * 86400;

struct Part {
  std::string headers;  // unfolded, CRLF-separated fields
  std::string body;
};

struct Parsed {
  std::string headers;
  std::vector<Part> parts;
};

// RFC 5322 section 2.2.3 unfolding.
std::string unfold(std::string s) {
  for (std::size_t p; (p = s.find("\r\n ")) != std::string::npos;) s.erase(p, 2);
  for (std::size_t p; (p = s.find("\r\n\t")) != std::string::npos;) s.erase(p, 2);
  return s;
}

// Field name -> unfolded value; names are compared as written.
std::multimap<std::string, std::string> fields(const std::string& block) {
  std::multimap<std::string, std::string> out;
  const std::string text = unfold(block);
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find("\r\n", pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 2;
    const std::size_t colon = line.find(':');
    if (line.empty() || colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    out.emplace(line.substr(0, colon), value);
  }
  return out;
}

std::string field(const std::string& block, const std::string& name) {
  const auto f = fields(block);
  const auto it = f.find(name);
  return it == f.end() ? std::string("<absent>") : it->second;
}

// Collapses line breaks and indentation of the text part into single spaces.
std::string flat(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '\r' || c == '\n' || c == ' ') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// Checks the whole message's form and splits it into its MIME parts.
Parsed parse(const std::string& message) {
  Parsed p;
  for (std::size_t pos = 0; pos < message.size();) {
    const std::size_t lf = message.find('\n', pos);
    EXPECT_NE(lf, std::string::npos) << "last line without CRLF";
    if (lf == std::string::npos) break;
    EXPECT_GT(lf, pos) << "bare LF";
    if (lf > pos) {
      EXPECT_EQ(message[lf - 1], '\r') << "bare LF at " << lf;
    }
    const std::string_view line(message.data() + pos, lf - pos);
    EXPECT_LE(line.size(), 999U) << "line longer than 998 octets";
    EXPECT_EQ(line.substr(0, line.size() - 1).find('\r'), std::string_view::npos) << "bare CR";
    pos = lf + 1;
  }
  const std::size_t end = message.find("\r\n\r\n");
  EXPECT_NE(end, std::string::npos);
  if (end == std::string::npos) return p;
  p.headers = message.substr(0, end + 2);
  const std::string content_type = field(p.headers, "Content-Type");
  EXPECT_EQ(content_type.rfind("multipart/report; report-type=delivery-status; boundary=\"", 0),
            0U);
  const std::size_t b = content_type.find("boundary=\"") + 10;
  const std::string boundary = content_type.substr(b, content_type.find('"', b) - b);
  EXPECT_FALSE(boundary.empty());
  EXPECT_LE(boundary.size(), 70U);
  const std::string delimiter = "\r\n--" + boundary;
  std::size_t pos = message.find(delimiter, end);
  EXPECT_NE(pos, std::string::npos);
  while (pos != std::string::npos) {
    pos += delimiter.size();
    if (message.compare(pos, 4, "--\r\n") == 0) {
      EXPECT_EQ(pos + 4, message.size());
      break;
    }
    EXPECT_EQ(message.compare(pos, 2, "\r\n"), 0);
    pos += 2;
    const std::size_t next = message.find(delimiter, pos);
    const std::string part = message.substr(pos, next - pos);
    const std::size_t split = part.find("\r\n\r\n");
    EXPECT_NE(split, std::string::npos);
    p.parts.push_back(Part{part.substr(0, split + 2), part.substr(split + 4)});
    pos = next;
  }
  EXPECT_EQ(p.parts.size(), 3U);
  if (p.parts.size() != 3) return p;
  EXPECT_EQ(field(p.parts[0].headers, "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(field(p.parts[1].headers, "Content-Type"), "message/delivery-status");
  EXPECT_EQ(field(p.parts[2].headers, "Content-Type"), "text/rfc822-headers");
  for (const char c : p.parts[1].body) {
    EXPECT_LT(static_cast<unsigned char>(c), 0x80U) << "8-bit in message/delivery-status";
  }
  return p;
}

// The delivery-status part's blocks: [0] per-message, then one per recipient
// (RFC 3464 section 2.1), each checked for the required fields.
std::vector<std::string> status_blocks(const Parsed& p) {
  std::vector<std::string> blocks;
  if (p.parts.size() != 3) return blocks;
  std::string body = p.parts[1].body;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find("\r\n\r\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string block = body.substr(pos, end - pos + 2);
    if (block.size() > 2) blocks.push_back(block);
    pos = end + 4;
  }
  EXPECT_GE(blocks.size(), 2U);
  if (!blocks.empty()) {
    EXPECT_EQ(field(blocks[0], "Reporting-MTA"), "dns; mta.example.net");
    EXPECT_EQ(field(blocks[0], "X-danemta-Queue-ID"), "4QxYz1");
    EXPECT_EQ(field(blocks[0], "Arrival-Date"), "Fri, 01 Mar 2024 12:00:00 +0000");
  }
  for (std::size_t i = 1; i < blocks.size(); ++i) {
    const auto f = fields(blocks[i]);
    EXPECT_EQ(f.count("Final-Recipient"), 1U) << blocks[i];
    EXPECT_EQ(f.count("Action"), 1U) << blocks[i];
    EXPECT_EQ(f.count("Status"), 1U) << blocks[i];
    EXPECT_EQ(f.count("Diagnostic-Code"), 1U) << blocks[i];
    EXPECT_EQ(f.count("Last-Attempt-Date"), 1U) << blocks[i];
    for (const auto& entry : f) {
      const std::string& name = entry.first;
      EXPECT_TRUE(name == "Final-Recipient" || name == "Action" || name == "Status" ||
                  name == "Remote-MTA" || name == "Diagnostic-Code" || name == "Last-Attempt-Date")
          << "unexpected field " << name;
    }
  }
  return blocks;
}

const std::string kOriginal =
    "Received: from client.example.net\r\n"
    "Message-ID: <orig-1@client.example.net>\r\n"
    "From: Alice <alice@example.net>\r\n"
    "To: bob@example.org\r\n"
    "Subject: Quarterly report\r\n"
    "\r\n"
    "Body text.\r\n";

FailedRecipient tlsa_failure(const std::string& address) {
  const dane::OutcomeInfo& info = dane::info(dane::Outcome::tlsa_invalid);
  FailedRecipient r;
  r.address = address;
  r.status = std::string(info.permanent_code);
  r.remote_mta = "mx1.example.org";
  r.diagnostic = "no TLSA record of mx1.example.org matches the certificate chain (depth 0)";
  r.outcome = std::string(info.name);
  r.summary = std::string(info.summary);
  r.fix = std::string(info.fix);
  r.last_attempt = kNow - 60;
  return r;
}

FailedRecipient rejection(const std::string& address) {
  FailedRecipient r;
  r.address = address;
  r.status = "5.1.1";
  r.remote_mta = "mx2.example.com";
  r.diagnostic = "550 5.1.1 <" + address + ">: Recipient address rejected: User unknown";
  r.diagnostic_is_smtp = true;
  r.last_attempt = kNow - 30;
  return r;
}

BounceInput input_with(std::vector<FailedRecipient> recipients) {
  BounceInput in;
  in.reporting_mta = "mta.example.net";
  in.original_id = "4QxYz1";
  in.original_sender = "alice@example.net";
  in.arrival_date = kArrival;
  in.now = kNow;
  in.recipients = std::move(recipients);
  in.original_headers = header_section(kOriginal);
  in.boundary_seed = "4QxYz1";
  return in;
}

TEST(Dsn, DaneFailureSaysWhatTheAdminMustFix) {
  const std::string message = make_bounce(input_with({tlsa_failure("bob@example.org")}));
  const Parsed p = parse(message);
  ASSERT_EQ(p.parts.size(), 3U);
  EXPECT_EQ(field(p.headers, "From"), "Mail Delivery System <MAILER-DAEMON@mta.example.net>");
  EXPECT_EQ(field(p.headers, "To"), "<alice@example.net>");
  EXPECT_EQ(field(p.headers, "Subject"), "Undelivered Mail Returned to Sender");
  EXPECT_EQ(field(p.headers, "Date"), "Wed, 06 Mar 2024 12:00:00 +0000");
  EXPECT_EQ(field(p.headers, "Auto-Submitted"), "auto-replied");
  EXPECT_EQ(field(p.headers, "MIME-Version"), "1.0");
  const std::string id = field(p.headers, "Message-ID");
  EXPECT_EQ(id.front(), '<');
  EXPECT_NE(id.find("@mta.example.net>"), std::string::npos);

  const dane::OutcomeInfo& info = dane::info(dane::Outcome::tlsa_invalid);
  const std::string text = flat(p.parts[0].body);
  EXPECT_NE(text.find("<bob@example.org>"), std::string::npos);
  EXPECT_NE(text.find("5.7.323"), std::string::npos);
  EXPECT_NE(text.find(std::string(info.summary)), std::string::npos);
  EXPECT_NE(text.find("What the receiving domain's administrator must fix: " +
                      flat(std::string(info.fix))),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("4QxYz1"), std::string::npos);
  EXPECT_NE(text.find("Fri, 01 Mar 2024 12:00:00 +0000"), std::string::npos);
  EXPECT_EQ(field(p.parts[0].headers, "Content-Transfer-Encoding"), "7bit");

  const auto blocks = status_blocks(p);
  ASSERT_EQ(blocks.size(), 2U);
  EXPECT_EQ(field(blocks[0], "X-Original-Message-ID"), "<orig-1@client.example.net>");
  EXPECT_EQ(field(blocks[1], "Final-Recipient"), "rfc822; bob@example.org");
  EXPECT_EQ(field(blocks[1], "Action"), "failed");
  EXPECT_EQ(field(blocks[1], "Status"), "5.7.323");
  EXPECT_EQ(field(blocks[1], "Remote-MTA"), "dns; mx1.example.org");
  EXPECT_EQ(field(blocks[1], "Diagnostic-Code"),
            "X-danemta; tlsa-invalid: no TLSA record of mx1.example.org matches the certificate "
            "chain (depth 0)");
  EXPECT_EQ(field(blocks[1], "Last-Attempt-Date"), "Wed, 06 Mar 2024 11:59:00 +0000");

  EXPECT_EQ(p.parts[2].body, header_section(kOriginal));
}

// RFC 3464 section 2.3.6: a 421 at the greeting is the server's reply
// ("smtp;") even though danemta classified it (connection-failed), and a
// timeout is danemta's own ("X-danemta;").
TEST(Dsn, DiagnosticTypeFollowsWhoSaidIt) {
  const dane::OutcomeInfo& info = dane::info(dane::Outcome::connection_failed);
  FailedRecipient refused;
  refused.address = "bob@example.org";
  refused.status = std::string(info.permanent_code);
  refused.remote_mta = "mx1.example.org";
  refused.diagnostic = "421 4.3.2 too busy";
  refused.diagnostic_is_smtp = true;
  refused.outcome = std::string(info.name);
  refused.summary = std::string(info.summary);
  refused.fix = std::string(info.fix);
  refused.last_attempt = kNow - 60;
  FailedRecipient timed_out = refused;
  timed_out.address = "carol@example.org";
  timed_out.diagnostic = "mx1.example.org[192.0.2.1]:25: greeting: timeout after 300 s";
  timed_out.diagnostic_is_smtp = false;
  const Parsed p = parse(make_bounce(input_with({refused, timed_out})));
  const auto blocks = status_blocks(p);
  ASSERT_EQ(blocks.size(), 3U);
  EXPECT_EQ(field(blocks[1], "Diagnostic-Code"), "smtp; 421 4.3.2 too busy");
  EXPECT_EQ(field(blocks[2], "Diagnostic-Code"),
            "X-danemta; connection-failed: mx1.example.org[192.0.2.1]:25: greeting: timeout "
            "after 300 s");
  const std::string text = flat(p.parts[0].body);
  EXPECT_NE(text.find("The receiving server said: 421 4.3.2 too busy"), std::string::npos) << text;
}

TEST(Dsn, ServerRejectionQuotesTheReply) {
  const Parsed p = parse(make_bounce(input_with({rejection("nobody@example.com")})));
  ASSERT_EQ(p.parts.size(), 3U);
  const std::string text = flat(p.parts[0].body);
  EXPECT_NE(text.find("The receiving server said: 550 5.1.1 <nobody@example.com>: Recipient "
                      "address rejected: User unknown"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("administrator must fix"), std::string::npos);
  const auto blocks = status_blocks(p);
  ASSERT_EQ(blocks.size(), 2U);
  EXPECT_EQ(field(blocks[1], "Status"), "5.1.1");
  EXPECT_EQ(field(blocks[1], "Diagnostic-Code"),
            "smtp; 550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown");
}

TEST(Dsn, TwoRecipientsWithTheSameReasonShareOneExplanation) {
  const Parsed p = parse(
      make_bounce(input_with({tlsa_failure("bob@example.org"), tlsa_failure("carol@example.org"),
                              rejection("nobody@example.com")})));
  ASSERT_EQ(p.parts.size(), 3U);
  const std::string text = flat(p.parts[0].body);
  EXPECT_NE(text.find("<bob@example.org> <carol@example.org> Status: 5.7.323"), std::string::npos)
      << text;
  std::size_t fixes = 0;
  for (std::size_t pos = 0; (pos = text.find("must fix:", pos)) != std::string::npos; ++pos) {
    ++fixes;
  }
  EXPECT_EQ(fixes, 1U);
  EXPECT_NE(text.find("The receiving server said:"), std::string::npos);
  const auto blocks = status_blocks(p);
  ASSERT_EQ(blocks.size(), 4U);
  EXPECT_EQ(field(blocks[1], "Final-Recipient"), "rfc822; bob@example.org");
  EXPECT_EQ(field(blocks[2], "Final-Recipient"), "rfc822; carol@example.org");
  EXPECT_EQ(field(blocks[3], "Final-Recipient"), "rfc822; nobody@example.com");
  EXPECT_EQ(field(blocks[3], "Remote-MTA"), "dns; mx2.example.com");
}

TEST(Dsn, DelayedReportSaysNothingToDoYet) {
  FailedRecipient r = tlsa_failure("bob@example.org");
  r.action = Action::delayed;
  r.status = std::string(dane::info(dane::Outcome::tlsa_invalid).transient_code);
  const Parsed p = parse(make_bounce(input_with({r})));
  ASSERT_EQ(p.parts.size(), 3U);
  EXPECT_EQ(field(p.headers, "Subject"), "Delayed Mail (still being retried)");
  const std::string text = flat(p.parts[0].body);
  EXPECT_NE(text.find("still being retried"), std::string::npos);
  EXPECT_NE(text.find("nothing needs to be done by you yet"), std::string::npos);
  EXPECT_EQ(text.find("could not be delivered"), std::string::npos);
  const auto blocks = status_blocks(p);
  ASSERT_EQ(blocks.size(), 2U);
  EXPECT_EQ(field(blocks[1], "Action"), "delayed");
  EXPECT_EQ(field(blocks[1], "Status"), "4.7.323");
}

TEST(Dsn, NoHeaderInjectionFromDiagnosticsOrAddresses) {
  FailedRecipient r = rejection("bob@example.org\r\nBcc: victim@example.com");
  r.diagnostic = "550 no\r\nBcc: victim@example.com\r\n\r\nInjected: body\nX-Evil: 1\r";
  r.remote_mta = "mx.example.org\r\nX-Evil: 2";
  BounceInput in = input_with({r});
  in.original_sender = "alice@example.net>\r\nBcc: victim@example.com";
  in.reporting_mta = "mta.example.net\r\nX-Evil: 3";
  const std::string message = make_bounce(in);
  for (const std::string_view bad : {"\r\nBcc:", "\r\nInjected:", "\r\nX-Evil:"}) {
    EXPECT_EQ(message.find(bad), std::string::npos) << bad << "\n" << message;
  }
  in.reporting_mta = "mta.example.net";
  const Parsed p = parse(make_bounce(in));
  ASSERT_EQ(p.parts.size(), 3U);
  const auto blocks = status_blocks(p);
  ASSERT_EQ(blocks.size(), 2U);
  EXPECT_EQ(field(blocks[1], "Diagnostic-Code"),
            "smtp; 550 no Bcc: victim@example.com Injected: body X-Evil: 1");
  EXPECT_EQ(field(blocks[1], "Final-Recipient"), "rfc822; bob@example.org Bcc: victim@example.com");
}

TEST(Dsn, LongDiagnosticIsFoldedAndWrapped) {
  std::string words;
  while (words.size() < 2000) words += "certificate-chain-mismatch ";
  words.resize(2000);
  const std::string unbroken(2000, 'x');
  for (const std::string& diagnostic : {words, unbroken}) {
    FailedRecipient r = rejection("bob@example.org");
    r.diagnostic = diagnostic;
    const std::string message = make_bounce(input_with({r}));
    const Parsed p = parse(message);
    ASSERT_EQ(p.parts.size(), 3U);
    const auto blocks = status_blocks(p);
    ASSERT_EQ(blocks.size(), 2U);
    const std::string code = field(blocks[1], "Diagnostic-Code");
    if (diagnostic == words) {
      // Folding at spaces loses nothing (RFC 5322 section 2.2.3).
      std::string expected = flat(words);
      if (expected.back() == ' ') expected.pop_back();
      EXPECT_EQ(code, "smtp; " + expected);
      for (std::size_t pos = 0; pos < p.parts[1].body.size();) {
        const std::size_t eol = p.parts[1].body.find("\r\n", pos);
        EXPECT_LE(eol - pos, 78U);
        pos = eol + 2;
      }
    } else {
      EXPECT_EQ(code.size(), std::string("smtp; ").size() + 2000 + 2);  // two split points
    }
    for (std::size_t pos = 0; pos < p.parts[0].body.size();) {
      const std::size_t eol = p.parts[0].body.find("\r\n", pos);
      EXPECT_LE(eol - pos, 76U);
      pos = eol + 2;
    }
  }
}

TEST(Dsn, NonAsciiDiagnosticStaysOutOfTheDeliveryStatus) {
  FailedRecipient r = rejection("bob@example.org");
  r.diagnostic = "550 5.1.1 Empf\xC3\xA4nger unbekannt \xFF";
  const Parsed p = parse(make_bounce(input_with({r})));
  ASSERT_EQ(p.parts.size(), 3U);
  EXPECT_EQ(field(p.parts[0].headers, "Content-Transfer-Encoding"), "quoted-printable");
  EXPECT_NE(p.parts[0].body.find("Empf=C3=A4nger unbekannt ?"), std::string::npos);
  const auto blocks = status_blocks(p);
  ASSERT_EQ(blocks.size(), 2U);
  EXPECT_EQ(field(blocks[1], "Diagnostic-Code"), "smtp; 550 5.1.1 Empf\\x{E4}nger unbekannt ?");
}

TEST(Dsn, NonAsciiRecipientUsesUtf8AddressType) {
  FailedRecipient r = tlsa_failure("j\xC3\xB6rg+x@example.org");
  const Parsed p = parse(make_bounce(input_with({r})));
  const auto blocks = status_blocks(p);
  ASSERT_EQ(blocks.size(), 2U);
  // RFC 6533 section 3 utf-8-addr-xtext.
  EXPECT_EQ(field(blocks[1], "Final-Recipient"), "utf-8; j\\x{F6}rg\\x{2B}x@example.org");
}

TEST(Dsn, HeaderSectionOfLfMessage) {
  EXPECT_EQ(header_section("A: b\nC: d\n e\n\nbody\n\nmore\n"), "A: b\r\nC: d\r\n e\r\n");
  EXPECT_EQ(header_section("A: b\r\nC: d\r\n\r\nbody\r\n"), "A: b\r\nC: d\r\n");
  EXPECT_EQ(header_section("\r\nbody"), "");
  EXPECT_EQ(header_section(""), "");
}

TEST(Dsn, HeaderSectionOfMessageWithoutBody) {
  EXPECT_EQ(header_section("A: b\r\nC: d"), "A: b\r\nC: d\r\n");
  EXPECT_EQ(header_section("A: b\nC: d\n"), "A: b\r\nC: d\r\n");
  BounceInput in = input_with({rejection("bob@example.org")});
  in.original_headers = "Subject: no body\nFrom: a@example.net";
  const Parsed p = parse(make_bounce(in));
  ASSERT_EQ(p.parts.size(), 3U);
  EXPECT_EQ(p.parts[2].body, "Subject: no body\r\nFrom: a@example.net\r\n");
}

TEST(Dsn, HeaderSectionIsBounded) {
  std::string big;
  while (big.size() < 200 * 1024) big += "X-Filler: " + std::string(80, 'f') + "\r\n";
  big += "X-Long: " + std::string(3000, 'l') + "\r\n\r\nbody";
  const std::string headers = header_section(big);
  EXPECT_LE(headers.size(), 64U * 1024U);
  EXPECT_GT(headers.size(), 60U * 1024U);
  EXPECT_EQ(headers.substr(headers.size() - 2), "\r\n");
  const std::string long_line = header_section("X-Long: " + std::string(3000, 'l') + "\r\n");
  // Split into lines of at most 998 octets, continued with a space.
  std::string joined = unfold(long_line);
  EXPECT_EQ(joined.find("\r\n"), joined.size() - 2);
  std::erase(joined, ' ');
  EXPECT_EQ(joined, "X-Long:" + std::string(3000, 'l') + "\r\n");
  for (std::size_t pos = 0; pos < long_line.size();) {
    const std::size_t eol = long_line.find("\r\n", pos);
    EXPECT_LE(eol - pos, 998U);
    pos = eol + 2;
  }
  BounceInput in = input_with({rejection("bob@example.org")});
  in.original_headers = big;
  const Parsed p = parse(make_bounce(in));
  ASSERT_EQ(p.parts.size(), 3U);
}

// The Python standard library's parser reads the report as RFC 6522 says.
TEST(Dsn, PythonEmailParserSeesThreeParts) {
  if (std::system("python3 -c 'import email' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "no python3";
  }
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("danemta_dsn_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
       ".eml");
  {
    std::ofstream out(path, std::ios::binary);
    out << make_bounce(input_with({tlsa_failure("bob@example.org"), rejection("c@example.com")}));
  }
  const std::string command =
      "python3 -c \"import email,sys,email.policy\n"
      "m = email.message_from_binary_file(open(sys.argv[1],'rb'), policy=email.policy.default)\n"
      "print(m.get_content_type(), m.get_param('report-type'), len(m.get_payload()),\n"
      "      *[p.get_content_type() for p in m.get_payload()])\n"
      "ds = m.get_payload()[1].get_payload()\n"
      "print(len(ds), ds[1]['Status'], ds[2]['Action'], len(m.defects))\" " +
      path.string();
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  std::array<char, 256> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) {
    output += buf.data();
  }
  EXPECT_EQ(::pclose(pipe), 0);
  std::filesystem::remove(path);
  EXPECT_EQ(output,
            "multipart/report delivery-status 3 text/plain message/delivery-status "
            "text/rfc822-headers\n"
            "3 5.7.323 failed 0\n");
}

}  // namespace
}  // namespace danemta::dsn
