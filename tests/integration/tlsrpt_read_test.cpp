// `danemta tlsrpt read` over reports made by danemta's own reporter: the
// store holds a known set of session results, `tlsrpt send` builds and
// DKIM-signs the report mails and queues them, `queue show --body` gives the
// mails as they would be delivered (.eml); Python's email and gzip modules
// take the attachment out as .json.gz and .json (the same reports again, so
// duplicates). Reading all of them back gives exactly the counts recorded,
// each report once, and a broken file among them is named on standard error
// while the others are still read. No receivers: DNS only (the _smtp._tls
// records), so no NET addresses are used.
#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "lab/lab.hpp"
#include "lab/run.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace danemta {
namespace {

using nlohmann::json;

TEST(TlsRptRead, ReadsBackDanemtasOwnReportsWithExactCounts) {
  lab::World world(
      json{{"zones",
            {{{"name", "a200.example"},
              {"records",
               {"@ MX 10 mx", "mx A 192.0.2.1",
                "_smtp._tls TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports200.example\""}}},
             {{"name", "b200.example"},
              {"records",
               {"@ MX 10 mx", "mx A 192.0.2.2",
                "_smtp._tls TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports200.example\""}}}}}}
          .dump());
  const std::string dir = world.dir();
  ASSERT_EQ(lab::run_command("openssl genrsa -out " + dir + "/dkim.pem 2048").exit_code, 0);

  // What the relay saw today.
  {
    auto store = tlsrpt::open_sqlite_store(dir + "/tlsrpt.db");
    ASSERT_TRUE(store) << store.error().message;
    const auto now = static_cast<tlsrpt::Time>(std::time(nullptr));
    const auto record = [&](const std::string& domain, tlsrpt::PolicyType type,
                            const std::string& mx, bool ok, const std::string& result,
                            const std::string& sending_ip, int times) {
      for (int i = 0; i < times; ++i) {
        tlsrpt::SessionResult r;
        r.at = now;
        r.policy_domain = domain;
        r.policy_type = type;
        if (type == tlsrpt::PolicyType::tlsa) r.policy_strings = {"3 1 1 AABBCCDD"};
        r.mx_host = mx;
        r.success = ok;
        r.result_type = result;
        r.sending_mta_ip = sending_ip;
        r.receiving_mx_hostname = ok ? "" : mx;
        r.receiving_ip = ok ? "" : "192.0.2.9";
        ASSERT_TRUE((*store)->record(r));
      }
    };
    using tlsrpt::PolicyType;
    record("a200.example", PolicyType::tlsa, "mx.a200.example", true, "", "", 4);
    record("a200.example", PolicyType::tlsa, "mx.a200.example", false, "tlsa-invalid", "127.0.0.1",
           3);
    record("a200.example", PolicyType::tlsa, "mx.a200.example", false, "tlsa-invalid", "127.0.0.2",
           2);
    record("b200.example", PolicyType::no_policy_found, "mx.b200.example", true, "", "", 5);
    record("b200.example", PolicyType::no_policy_found, "mx.b200.example", false,
           "validation-failure", "127.0.0.1", 1);
  }
  const std::string config = dir + "/danemta.toml";
  std::ofstream(config) << "[dns]\nforwarders = [\"" << world.resolver()
                        << "\"]\ntrust_anchor_file = \"" << world.trust_anchor_file()
                        << "\"\n\n[relay]\nspool = \"" << dir
                        << "/queue.db\"\nhostname = \"relay.sender200.example\"\n\n"
                           "[tlsrpt]\nstore = \""
                        << dir
                        << "/tlsrpt.db\"\nsubmitter = \"sender200.example\"\n"
                           "organization_name = \"Sender 200\"\n"
                           "dkim_domain = \"sender200.example\"\ndkim_selector = \"rpt\"\n"
                           "dkim_key_file = \""
                        << dir << "/dkim.pem\"\n";
  const std::string bin = std::string(DANEMTA_BINARY) + " --config " + config;

  lab::CommandResult sent = lab::run_command(bin + " tlsrpt send --date " + lab::utc_today());
  ASSERT_EQ(sent.exit_code, 0) << sent.out;
  // Both domains' reports go to the same rua: one mail each.
  std::vector<std::string> ids;
  const std::string queued = "queued for <tlsrpt@reports200.example> as ";
  for (std::size_t at = 0; (at = sent.out.find(queued, at)) != std::string::npos;
       at += queued.size()) {
    const std::size_t start = at + queued.size();
    ids.push_back(sent.out.substr(start, sent.out.find('\n', start) - start));
  }
  ASSERT_EQ(ids.size(), 2u) << sent.out;

  const std::string in = dir + "/reports";
  std::filesystem::create_directories(in + "/extracted");
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::string eml = in + "/report" + std::to_string(i) + ".eml";
    ASSERT_EQ(lab::run_command(bin + " queue show --body " + ids[i] + " > " + eml).exit_code, 0);
    // The attachment as a .json.gz file and as a .json file: the same
    // reports again (the same report-ids).
    lab::CommandResult x = lab::run_command(
        "python3 -c \"import email,gzip,sys; m=email.message_from_binary_file(open(sys.argv[1],"
        "'rb')); p=[x for x in m.walk() if x.get_content_type()=='application/tlsrpt+gzip'][0]; "
        "z=p.get_payload(decode=True); open(sys.argv[2]+'.json.gz','wb').write(z); "
        "open(sys.argv[2]+'.json','wb').write(gzip.decompress(z))\" " +
        eml + " " + in + "/extracted/report" + std::to_string(i));
    ASSERT_EQ(x.exit_code, 0) << x.out;
  }
  // Not a report; and a file a directory walk leaves alone.
  std::ofstream(in + "/broken.json") << "{\"organization-name\": \"x\", \"policies\": [{}]}";
  std::ofstream(in + "/README.txt") << "not read: not a report's file name\n";

  const std::string err = dir + "/read.err";
  lab::CommandResult read =
      lab::run_command("(" + bin + " tlsrpt read --json " + in + " 2>" + err + ")");
  EXPECT_EQ(read.exit_code, 1) << "one file failed: " << read.out;
  std::ifstream err_in(err);
  const std::string errors((std::istreambuf_iterator<char>(err_in)),
                           std::istreambuf_iterator<char>());
  EXPECT_EQ(errors, "danemta tlsrpt read: " + in + "/broken.json: policies[0].policy: missing\n")
      << errors;
  json j = json::parse(read.out);
  EXPECT_EQ(j["files-read"], 6) << j.dump(2);
  EXPECT_EQ(j["reports"], 2) << j.dump(2);
  EXPECT_EQ(j["duplicates"].size(), 4u) << j.dump(2);
  ASSERT_EQ(j["errors"].size(), 1u);
  EXPECT_EQ(j["errors"][0]["file"], in + "/broken.json");
  ASSERT_EQ(j["organizations"].size(), 1u) << j.dump(2);
  const json& org = j["organizations"][0];
  EXPECT_EQ(org["organization-name"], "Sender 200");
  EXPECT_EQ(org["contact-info"], "postmaster@sender200.example");
  EXPECT_EQ(org["start-datetime"], lab::utc_today() + "T00:00:00Z");
  EXPECT_EQ(org["end-datetime"], lab::utc_today() + "T23:59:59Z");
  EXPECT_EQ(org["reports"].size(), 2u);
  EXPECT_EQ(org["notes"], json::array()) << "danemta's reports need no tolerance";
  // In ascending order of policy type, domain and MX hosts.
  const json expected = json::parse(R"([
    {"policy-type": "no-policy-found", "policy-domain": "b200.example",
     "mx-host": ["mx.b200.example"],
     "total-successful-session-count": 5, "total-failure-session-count": 1,
     "failure-details": [
       {"result-type": "validation-failure", "sending-mta-ip": "127.0.0.1",
        "receiving-mx-hostname": "mx.b200.example", "failed-session-count": 1}]},
    {"policy-type": "tlsa", "policy-domain": "a200.example", "mx-host": ["mx.a200.example"],
     "total-successful-session-count": 4, "total-failure-session-count": 5,
     "failure-details": [
       {"result-type": "tlsa-invalid", "sending-mta-ip": "127.0.0.1",
        "receiving-mx-hostname": "mx.a200.example", "failed-session-count": 3},
       {"result-type": "tlsa-invalid", "sending-mta-ip": "127.0.0.2",
        "receiving-mx-hostname": "mx.a200.example", "failed-session-count": 2}]}])");
  EXPECT_EQ(org["policies"], expected) << org["policies"].dump(2);

  // Each form alone gives the same counts; the text table shows them.
  for (const std::string& one :
       {in + "/report0.eml", in + "/extracted/report0.json.gz", in + "/extracted/report0.json"}) {
    lab::CommandResult r = lab::run_command(bin + " tlsrpt read " + one);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("1 report from 1 file\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Organization: Sender 200  contact: postmaster@sender200.example"),
              std::string::npos)
        << r.out;
  }
  lab::CommandResult text = lab::run_command(bin + " tlsrpt read " + in + "/report0.eml " + in +
                                             "/report1.eml " + in + "/extracted");
  EXPECT_EQ(text.exit_code, 0) << text.out;
  EXPECT_NE(text.out.find("2 reports from 6 files; 4 duplicate report-ids counted once"),
            std::string::npos)
      << text.out;
  // Columns are padded: compare with runs of spaces made one.
  std::string words;
  for (const char c : text.out)
    if (c != ' ' || words.empty() || words.back() != ' ') words += c;
  EXPECT_NE(words.find("\n tlsa a200.example mx.a200.example 4 5\n"), std::string::npos)
      << text.out;
  EXPECT_NE(words.find("\n no-policy-found b200.example mx.b200.example 5 1\n"), std::string::npos)
      << text.out;
  EXPECT_NE(words.find("\n tlsa-invalid 127.0.0.1 mx.a200.example 3\n"), std::string::npos)
      << text.out;
  EXPECT_NE(words.find("\n tlsa-invalid 127.0.0.2 mx.a200.example 2\n"), std::string::npos)
      << text.out;
  EXPECT_NE(words.find("\n validation-failure 127.0.0.1 mx.b200.example 1\n"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("Reports: 2, " + lab::utc_today() + "T00:00:00Z to " + lab::utc_today() +
                          "T23:59:59Z\n"),
            std::string::npos)
      << text.out;

  // A missing path is an error too, and the rest is still read.
  lab::CommandResult missing =
      lab::run_command(bin + " tlsrpt read " + dir + "/nonexistent " + in + "/report1.eml");
  EXPECT_EQ(missing.exit_code, 1) << missing.out;
  EXPECT_NE(missing.out.find(dir + "/nonexistent: no such file or directory"), std::string::npos)
      << missing.out;
  EXPECT_NE(missing.out.find("1 report from 1 file; 1 error"), std::string::npos) << missing.out;
}

}  // namespace
}  // namespace danemta
