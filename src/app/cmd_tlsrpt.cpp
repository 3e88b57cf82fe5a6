#include "app/cmd_tlsrpt.hpp"
#include "base/system.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "base/text.hpp"
#include "dns/unbound_resolver.hpp"
#include "logging/logger.hpp"
#include "queue/spool.hpp"
#include "tlsrpt/received.hpp"
#include "tlsrpt/submit.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace danemta::app {

namespace {

// "YYYY-MM-DD" -> the UTC day's start.
std::optional<tlsrpt::Time> parse_day(const std::string& s) {
  std::tm tm{};
  if (s.size() != 10 || !strptime(s.c_str(), "%Y-%m-%d", &tm)) return std::nullopt;
  return static_cast<tlsrpt::Time>(timegm(&tm));
}

std::string random_hex(std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::random_device rd;
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(digits[rd() % 16]);
  return out;
}

// RFC 8460 section 5.4 leaves retries to the sender: a failed https POST is
// retried with a growing delay (5 minutes, doubling, at most 4 hours) until
// 24 hours after the first attempt, by later runs of `tlsrpt send`.
constexpr tlsrpt::Time kRetryWindow = 24 * 3600;

// With [relay] log = "syslog", what this command does to reports also goes
// to the relay's log (under danemta/tlsrpt); its own output says it anyway.
class ReportLog {
 public:
  explicit ReportLog(const config::Config& cfg) {
    if (cfg.relay.log != config::RelayConfig::LogTo::syslog) return;
    log_.emplace(logging::options_for(
                     cfg.relay, cfg.relay.hostname.empty() ? local_hostname() : cfg.relay.hostname),
                 std::cout);
  }
  // A report queued as message `id` (the relay delivers it): Postfix's
  // qmgr line gives pflogsumm its size.
  void queued(const std::string& id, const std::string& report_id, const std::string& domain,
              const std::string& from, const std::string& to, std::size_t size) {
    logging::Event e;
    e.id = id;
    e.kind = "tlsrpt";
    e.fields = {{"report_id", report_id},
                {"domain", domain},
                {"rua", "mailto:" + to},
                {"result", "queued"},
                {"size", size}};
    e.lines = {{logging::Program::tlsrpt,
                id + ": TLS report " + report_id + " for " + domain + " queued for <" + to + ">"},
               {logging::Program::qmgr, id + ": from=<" + from + ">, size=" + std::to_string(size) +
                                            ", nrcpt=1 (queue active)"}};
    write(e);
  }
  // A report posted, or a destination that failed (`error`).
  void outcome(const std::string& report_id, const std::string& domain, const std::string& uri,
               const std::string& error) {
    logging::Event e;
    e.level = error.empty() ? logging::Level::info : logging::Level::warning;
    e.kind = "tlsrpt";
    e.fields = {{"report_id", report_id},
                {"domain", domain},
                {"rua", uri},
                {"result", error.empty() ? "posted" : "failed"}};
    if (!error.empty()) e.fields["error"] = logging::one_line(error);
    e.lines.push_back({logging::Program::tlsrpt,
                       logging::one_line("TLS report " + report_id + " for " + domain +
                                         (error.empty() ? " posted to " + uri
                                                        : " not sent to " + uri + ": " + error))});
    write(e);
  }

 private:
  void write(const logging::Event& e) {
    if (log_) log_->write(e);
  }
  std::optional<logging::Logger> log_;
};

tlsrpt::Time retry_delay(int failed_attempts) {
  tlsrpt::Time delay = 300;
  for (int i = 1; i < failed_attempts && delay < 4 * 3600; ++i) delay *= 2;
  return std::min<tlsrpt::Time>(delay, 4 * 3600);
}

}  // namespace

int run_tlsrpt(const config::Config& cfg, const TlsRptOptions& o) {
  const tlsrpt::Time now = static_cast<tlsrpt::Time>(std::time(nullptr));
  tlsrpt::Time begin = (now / 86400 - 1) * 86400;  // yesterday, UTC
  if (!o.date.empty()) {
    auto day = parse_day(o.date);
    if (!day) {
      std::cerr << "danemta tlsrpt: --date " << o.date << ": expected YYYY-MM-DD\n";
      return 2;
    }
    begin = *day;
  }
  const tlsrpt::Time end = begin + 86400;

  auto store = tlsrpt::open_sqlite_store(cfg.tlsrpt_store());
  if (!store) {
    std::cerr << "danemta tlsrpt: " << store.error().message << "\n";
    return 2;
  }
  auto domains = (*store)->domains(begin, end);
  if (!domains) {
    std::cerr << "danemta tlsrpt: " << domains.error().message << "\n";
    return 2;
  }
  // The day's reports, then (unless a day is given) earlier reports with a
  // destination still to retry.
  std::vector<std::pair<tlsrpt::Time, std::string>> work;
  for (std::string& d : *domains) work.emplace_back(begin, std::move(d));
  if (o.date.empty() && !o.print) {
    auto unsent = (*store)->unsent(now - kRetryWindow);
    if (!unsent) {
      std::cerr << "danemta tlsrpt: " << unsent.error().message << "\n";
      return 2;
    }
    for (auto& u : *unsent)
      if (std::find(work.begin(), work.end(), u) == work.end()) work.push_back(std::move(u));
  }

  const std::string host = cfg.relay.hostname.empty() ? local_hostname() : cfg.relay.hostname;
  const std::string submitter = cfg.tlsrpt.submitter.empty() ? host : cfg.tlsrpt.submitter;
  const std::string organization =
      cfg.tlsrpt.organization_name.empty() ? submitter : cfg.tlsrpt.organization_name;
  // RFC 8460 section 4.3 "contact-info": a string; Appendix B gives a mail
  // address, which is what danemta sends unless told otherwise.
  const std::string contact =
      cfg.tlsrpt.contact_info.empty() ? "postmaster@" + submitter : cfg.tlsrpt.contact_info;
  const std::string mail_from =
      cfg.tlsrpt.mail_from.empty() ? "tlsrpt-noreply@" + submitter : cfg.tlsrpt.mail_from;

  boost::asio::io_context io;
  auto resolver = dns::UnboundResolver::create(io, cfg.dns);
  if (!resolver) {
    std::cerr << "danemta tlsrpt: " << resolver.error().message << "\n";
    return 2;
  }
  std::optional<tlsrpt::DkimKey> key;
  if (!cfg.tlsrpt.dkim_key_file.empty() && !o.print) {
    auto k = tlsrpt::load_dkim_key(cfg.tlsrpt.dkim_domain, cfg.tlsrpt.dkim_selector,
                                   cfg.tlsrpt.dkim_key_file);
    if (!k) {
      std::cerr << "danemta tlsrpt: " << k.error().message << "\n";
      return 2;
    }
    key = std::move(*k);
  }
  std::unique_ptr<queue::Spool> spool;
  ReportLog log(cfg);

  int failures = 0;
  for (const auto& [day, domain] : work) {
    if (!o.domain.empty() && normalize_domain(o.domain) != domain) continue;
    const std::string where = "danemta tlsrpt: " + domain + ": ";

    // RFC 8460 section 3: the policy record lives at _smtp._tls.<domain>.
    std::vector<dns::Answer> answers;
    (*resolver)->resolve({{"_smtp._tls." + domain, dns::RrType::TXT}},
                         [&answers](std::vector<dns::Answer> a) { answers = std::move(a); });
    io.run();
    io.restart();
    if (answers.empty() || !answers[0].answered()) {
      if (!o.quiet)
        std::cout << where << "no report: the _smtp._tls lookup failed"
                  << (answers.empty() || answers[0].why.empty() ? "" : " (" + answers[0].why + ")")
                  << "\n";
      continue;
    }
    auto policy = tlsrpt::parse_policy(answers[0].txt);
    if (!policy) {
      if (!o.quiet) std::cout << where << "no report: " << policy.error().message << "\n";
      continue;
    }
    auto results = (*store)->results(domain, day, day + 86400);
    if (!results) {
      std::cerr << where << results.error().message << "\n";
      return 2;
    }
    tlsrpt::ReportInput in;
    in.organization_name = organization;
    in.contact_info = contact;
    in.report_id = utc_time(day, "%Y-%m-%d") + "_" + domain + "_" + random_hex(8) + "@" + submitter;
    if (!o.print) {
      // A report sent again (to a destination that failed) keeps its id.
      auto id = (*store)->report_id(domain, day, in.report_id);
      if (!id) {
        std::cerr << where << id.error().message << "\n";
        return 2;
      }
      in.report_id = std::move(*id);
    }
    in.begin = day;
    in.end = day + 86400;
    in.policy_domain = domain;
    in.results = std::move(*results);
    std::string json = tlsrpt::report_json(in);
    if (o.print) {
      std::cout << json << "\n";
      continue;
    }
    auto gz = tlsrpt::gzip(json);
    if (!gz) {
      std::cerr << where << gz.error().message << "\n";
      return 2;
    }

    for (const std::string& uri : policy->rua) {
      auto state = (*store)->rua_state(domain, day, uri);
      if (!state) {
        std::cerr << where << state.error().message << "\n";
        return 2;
      }
      if (*state && (*state)->sent) {
        if (!o.quiet)
          std::cout << where << "report " << in.report_id << " already sent to " << uri << "\n";
        continue;
      }
      if (*state && now >= (*state)->first_attempt + kRetryWindow) {
        std::cout << where << "report " << in.report_id << " not sent to " << uri
                  << ": gave up after " << (*state)->failed_attempts
                  << " attempts in 24 hours (last: " << (*state)->last_error << ")\n";
        continue;
      }
      if (*state && now < (*state)->next_attempt && !o.retry) {
        if (!o.quiet)
          std::cout << where << "report " << in.report_id << " to " << uri
                    << ": next attempt after "
                    << utc_time((*state)->next_attempt, "%Y-%m-%dT%H:%M:%SZ") << "\n";
        continue;
      }
      tlsrpt::RuaState st;
      if (*state) {
        st = **state;
      } else {
        st.policy_domain = domain;
        st.day = day;
        st.rua = uri;
        st.first_attempt = now;
      }
      // Records the outcome; false when the store cannot (reported).
      auto remember = [&](bool sent, const std::string& error) {
        st.sent = sent;
        if (!sent) {
          ++st.failed_attempts;
          st.next_attempt = now + retry_delay(st.failed_attempts);
          st.last_error = error;
        }
        auto ok = (*store)->set_rua_state(st);
        if (!ok) std::cerr << where << ok.error().message << "\n";
        return static_cast<bool>(ok);
      };
      if (uri.rfind("mailto:", 0) == 0) {
        std::string to = uri.substr(7);
        if (!key) {
          std::cout << where << "skipped " << uri
                    << ": mailed reports must be DKIM-signed (RFC 8460 section 5.3); set "
                       "[tlsrpt] dkim_domain, dkim_selector and dkim_key_file\n";
          ++failures;
          continue;
        }
        auto mail =
            tlsrpt::report_email(tlsrpt::ReportMail{mail_from, to, submitter, now}, in, *gz, *key);
        if (!mail) {
          std::cout << where << uri << ": " << mail.error().message << "\n";
          ++failures;
          continue;
        }
        if (!spool) {
          auto opened = queue::open_sqlite_spool(cfg.relay.spool);
          if (!opened) {
            std::cerr << "danemta tlsrpt: " << opened.error().message << "\n";
            return 2;
          }
          spool = std::move(*opened);
        }
        // RFC 8460 section 3: the relay delivers the report without DANE or
        // TLS enforcement (a domain whose TLS is broken must still get it)
        // and does not report on its delivery.
        queue::NewMessage m{mail_from, {to}, std::move(*mail), now, "local", true};
        m.received_ms = static_cast<std::int64_t>(now) * 1000;
        auto id = spool->enqueue(m);
        if (!id) {
          std::cout << where << uri << ": cannot queue the report: " << id.error().message << "\n";
          log.outcome(in.report_id, domain, uri, "cannot queue the report: " + id.error().message);
          ++failures;
          continue;
        }
        std::cout << where << "report " << in.report_id << " queued for <" << to << "> as " << *id
                  << "\n";
        log.queued(*id, in.report_id, domain, mail_from, to, m.data.size());
        // In the spool the relay delivers it: that is sent, once.
        if (!remember(true, "")) return 2;
      } else if (uri.rfind("https:", 0) == 0) {
        std::optional<Result<void>> posted;
        tlsrpt::HttpsOptions ho;
        ho.ca_file = cfg.tlsrpt.https_ca_file;
        boost::asio::co_spawn(io, tlsrpt::https_post(uri, *gz, ho),
                              [&posted](std::exception_ptr e, Result<void> r) {
                                if (!e) posted = std::move(r);
                              });
        io.run();
        io.restart();
        if (posted && *posted) {
          std::cout << where << "report " << in.report_id << " posted to " << uri << "\n";
          log.outcome(in.report_id, domain, uri, "");
          if (!remember(true, "")) return 2;
        } else {
          const std::string error =
              posted ? posted->error().message : std::string("the POST did not complete");
          if (!remember(false, error)) return 2;
          log.outcome(in.report_id, domain, uri, error);
          std::cout << where << uri << ": " << error << "; next attempt after "
                    << utc_time(st.next_attempt, "%Y-%m-%dT%H:%M:%SZ") << "\n";
          ++failures;
        }
      }
    }
  }
  // [tlsrpt] retention_days: a regular run also forgets old sessions and the
  // records of old reports, so the store stays the size of a few weeks.
  if (o.date.empty() && !o.print && o.domain.empty()) {
    const auto keep = static_cast<tlsrpt::Time>(cfg.tlsrpt.retention.count());
    auto removed = (*store)->expire(now - keep);
    if (!removed) {
      std::cerr << "danemta tlsrpt: " << removed.error().message << "\n";
      return 2;
    }
    if (*removed > 0)
      std::cout << "danemta tlsrpt: removed " << *removed << " session result"
                << (*removed == 1 ? "" : "s") << " older than " << keep / 86400 << " days\n";
  }
  return failures == 0 ? 0 : 1;
}

// ---- tlsrpt read ---------------------------------------------------------------

namespace {

namespace fs = std::filesystem;

// A file larger than this is not read at all: a report mail holds at most
// the 16 MiB of JSON (less, gzipped) in base64.
constexpr std::uintmax_t kMaxFileBytes = 64 * 1024 * 1024;

// In a directory, the files that are reports by their name (section 5.1:
// ".json" and ".json.gz"; ".eml" for saved mails), and every file of a
// Maildir's cur/ and new/ (names there say nothing about the content).
bool report_file_name(const fs::path& p) {
  const std::string name = p.filename().string();
  if (name.empty() || name.front() == '.') return false;
  const std::string parent = p.parent_path().filename().string();
  if (parent == "cur" || parent == "new") return true;
  for (const char* ext : {".json", ".json.gz", ".gz", ".eml"}) {
    const std::string_view e(ext);
    if (name.size() > e.size() && iequals(std::string_view(name).substr(name.size() - e.size()), e))
      return true;
  }
  return false;
}

// Text from a report for a terminal: control characters (escape sequences a
// hostile report could carry) become "?"; nothing at all becomes "-".
std::string shown(std::string_view s) {
  if (s.empty()) return "-";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

std::string rfc3339(tlsrpt::Time t) {
  return utc_time(t, "%Y-%m-%dT%H:%M:%SZ");
}

// Columns padded to their widest cell, the columns in `numeric`
// right-aligned: one line per row.
std::vector<std::string> table_lines(const std::string& indent,
                                     const std::vector<std::vector<std::string>>& rows,
                                     const std::vector<bool>& numeric) {
  std::vector<std::size_t> width(numeric.size(), 0);
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  std::vector<std::string> lines;
  for (const auto& row : rows) {
    std::string line = indent;
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) {
      const std::string pad(width[i] - row[i].size(), ' ');
      const bool last = i + 1 == row.size();
      line += numeric[i] ? pad + row[i] : row[i] + (last ? "" : pad);
      if (!last) line += "  ";
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

// Per organisation: its reports' range, then its policies, each followed by
// the table of its failure details.
void print_text(std::ostream& out, const tlsrpt::Summary& s) {
  for (const tlsrpt::OrganizationSummary& o : s.organizations) {
    out << "\nOrganization: " << shown(o.organization_name)
        << "  contact: " << shown(o.contact_info) << "\n";
    out << "Reports: " << o.reports.size();
    if (o.has_range) out << ", " << rfc3339(o.begin) << " to " << rfc3339(o.end);
    out << "\n";
    std::vector<std::vector<std::string>> rows{
        {"POLICY-TYPE", "POLICY-DOMAIN", "MX-HOST", "SUCCESSFUL", "FAILED"}};
    for (const tlsrpt::PolicyRow& p : o.policies)
      rows.push_back({shown(p.policy_type), shown(p.policy_domain), shown(joined(p.mx_hosts)),
                      std::to_string(p.successful), std::to_string(p.failed)});
    const std::vector<std::string> lines =
        table_lines("  ", rows, {false, false, false, true, true});
    out << lines[0] << "\n";
    for (std::size_t i = 0; i < o.policies.size(); ++i) {
      const tlsrpt::PolicyRow& p = o.policies[i];
      out << lines[i + 1] << "\n";
      if (p.failures.empty()) continue;
      std::vector<std::vector<std::string>> f{
          {"RESULT-TYPE", "SENDING-MTA-IP", "RECEIVING-MX-HOSTNAME", "SESSIONS"}};
      for (const tlsrpt::FailureRow& d : p.failures)
        f.push_back({shown(d.result_type), shown(d.sending_mta_ip), shown(d.receiving_mx_hostname),
                     std::to_string(d.sessions)});
      for (const std::string& l : table_lines("      ", f, {false, false, false, true}))
        out << l << "\n";
    }
    for (const std::string& n : o.notes) out << "Note: " << shown(n) << "\n";
  }
}

nlohmann::ordered_json summary_json(
    const tlsrpt::Summary& s, std::size_t files_read,
    const std::vector<std::pair<std::string, std::string>>& errors) {
  using nlohmann::ordered_json;
  ordered_json orgs = ordered_json::array();
  for (const tlsrpt::OrganizationSummary& o : s.organizations) {
    ordered_json reports = ordered_json::array();
    for (const tlsrpt::ReportRef& r : o.reports) {
      ordered_json j = {{"report-id", r.report_id}, {"file", r.source}};
      if (r.has_range) {
        j["start-datetime"] = rfc3339(r.begin);
        j["end-datetime"] = rfc3339(r.end);
      }
      reports.push_back(std::move(j));
    }
    ordered_json policies = ordered_json::array();
    for (const tlsrpt::PolicyRow& p : o.policies) {
      ordered_json details = ordered_json::array();
      for (const tlsrpt::FailureRow& d : p.failures)
        details.push_back({{"result-type", d.result_type},
                           {"sending-mta-ip", d.sending_mta_ip},
                           {"receiving-mx-hostname", d.receiving_mx_hostname},
                           {"failed-session-count", d.sessions}});
      policies.push_back({{"policy-type", p.policy_type},
                          {"policy-domain", p.policy_domain},
                          {"mx-host", p.mx_hosts},
                          {"total-successful-session-count", p.successful},
                          {"total-failure-session-count", p.failed},
                          {"failure-details", std::move(details)}});
    }
    ordered_json org = {{"organization-name", o.organization_name},
                        {"contact-info", o.contact_info}};
    if (o.has_range) {
      org["start-datetime"] = rfc3339(o.begin);
      org["end-datetime"] = rfc3339(o.end);
    }
    org["reports"] = std::move(reports);
    org["policies"] = std::move(policies);
    org["notes"] = o.notes;
    orgs.push_back(std::move(org));
  }
  ordered_json duplicates = ordered_json::array();
  for (const tlsrpt::Duplicate& d : s.duplicates)
    duplicates.push_back(
        {{"report-id", d.report_id}, {"file", d.source}, {"counted-from", d.first_source}});
  ordered_json errs = ordered_json::array();
  for (const auto& [file, message] : errors) errs.push_back({{"file", file}, {"error", message}});
  return {{"files-read", files_read},
          {"reports", s.reports},
          {"duplicates", duplicates},
          {"errors", errs},
          {"organizations", orgs}};
}

}  // namespace

int run_tlsrpt_read(const TlsRptReadOptions& o) {
  std::vector<std::pair<std::string, std::string>> errors;  // file, what was wrong
  const auto failed = [&errors](const std::string& file, const std::string& what) {
    std::cerr << "danemta tlsrpt read: " << file << ": " << what << "\n";
    errors.emplace_back(file, what);
  };

  // The files, in the order given; a directory's files sorted by name.
  std::vector<std::string> files;
  bool over_limit = false;
  for (const std::string& arg : o.paths) {
    std::error_code ec;
    const fs::file_status st = fs::status(arg, ec);
    if (st.type() == fs::file_type::not_found) {
      failed(arg, "no such file or directory");
      continue;
    }
    if (ec) {
      failed(arg, ec.message());
      continue;
    }
    if (!fs::is_directory(st)) {
      files.push_back(arg);
      continue;
    }
    std::vector<std::string> found;
    // Symbolic links to directories are not followed (no loops).
    fs::recursive_directory_iterator it(arg, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code fe;
      if (!it->is_regular_file(fe) || !report_file_name(it->path())) continue;
      if (files.size() + found.size() >= o.max_files) {
        over_limit = true;
        break;
      }
      found.push_back(it->path().string());
    }
    if (ec) failed(arg, ec.message());
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
    if (over_limit) {
      failed(arg, "more than " + std::to_string(o.max_files) +
                      " files (--max-files): the rest were not read");
      break;
    }
  }

  tlsrpt::Summariser summariser;
  std::size_t files_read = 0;
  for (const std::string& file : files) {
    std::error_code ec;
    const std::uintmax_t size = fs::file_size(file, ec);
    if (ec) {
      failed(file, ec.message());
      continue;
    }
    if (size > kMaxFileBytes) {
      failed(file, "larger than 64 MiB (the limit); not read");
      continue;
    }
    std::ifstream in(file, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      failed(file, "cannot read it");
      continue;
    }
    auto report = tlsrpt::read_report(bytes);
    if (!report) {
      failed(file, report.error().message);
      continue;
    }
    ++files_read;
    summariser.add(*report, file);
  }

  const tlsrpt::Summary summary = summariser.summary();
  if (o.json) {
    std::cout << summary_json(summary, files_read, errors)
                     .dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
              << "\n";
  } else {
    std::cout << summary.reports << " report" << (summary.reports == 1 ? "" : "s") << " from "
              << files_read << " file" << (files_read == 1 ? "" : "s");
    if (!summary.duplicates.empty())
      std::cout << "; " << summary.duplicates.size() << " duplicate report-id"
                << (summary.duplicates.size() == 1 ? "" : "s") << " counted once";
    if (!errors.empty())
      std::cout << "; " << errors.size() << " error" << (errors.size() == 1 ? "" : "s")
                << " (on standard error)";
    std::cout << "\n";
    for (const tlsrpt::Duplicate& d : summary.duplicates)
      std::cout << "Duplicate: report-id " << shown(d.report_id) << " in " << d.source
                << " (counted from " << d.first_source << ")\n";
    print_text(std::cout, summary);
  }
  return errors.empty() ? 0 : 1;
}

}  // namespace danemta::app
