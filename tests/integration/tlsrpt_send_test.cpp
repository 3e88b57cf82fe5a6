// `danemta tlsrpt send` keeps a per-report, per-destination sent state in
// the TLS-RPT store: an https: destination that failed (500) is retried
// (RFC 8460 section 5.4) with the same report, a sent one never again.
// The HTTPS server listens on 127.0.141.1.
#include <unistd.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lab/certs.hpp"
#include "lab/lab.hpp"
#include "lab/run.hpp"
#include "tlsrpt/tlsrpt.hpp"

namespace danemta {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr const char* kAddress = "127.0.141.1";

// Answers request n with statuses[n] (the last one once they run out) and
// keeps each request's body.
class ScriptedHttps {
 public:
  ScriptedHttps(const lab::ChainFiles& files, std::vector<unsigned> statuses)
      : statuses_(std::move(statuses)) {
    ctx_.use_certificate_chain_file(files.chain.string());
    ctx_.use_private_key_file(files.key.string(), asio::ssl::context::pem);
    acceptor_.open(tcp::v4());
    acceptor_.bind(tcp::endpoint(asio::ip::make_address_v4(kAddress), 0));
    acceptor_.listen();
    asio::co_spawn(io_, accept(this), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ScriptedHttps(const ScriptedHttps&) = delete;
  ScriptedHttps& operator=(const ScriptedHttps&) = delete;
  ~ScriptedHttps() {
    io_.stop();
    thread_.join();
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mu_);
    return bodies_;
  }

 private:
  static asio::awaitable<void> accept(ScriptedHttps* self) {
    for (;;) {
      auto [ec, socket] = co_await self->acceptor_.async_accept(use_tuple);
      if (ec) co_return;
      co_await serve(self, std::move(socket));
    }
  }

  static asio::awaitable<void> serve(ScriptedHttps* self, tcp::socket socket) {
    asio::ssl::stream<tcp::socket> tls(std::move(socket), self->ctx_);
    const auto [hec] = co_await tls.async_handshake(asio::ssl::stream_base::server, use_tuple);
    if (hec) co_return;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    const auto [rec, n] = co_await http::async_read(tls, buffer, req, use_tuple);
    if (rec) co_return;
    unsigned status = 0;
    {
      std::lock_guard lock(self->mu_);
      const std::size_t i = std::min(self->bodies_.size(), self->statuses_.size() - 1);
      status = self->statuses_[i];
      self->bodies_.push_back(req.body());
    }
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::connection, "close");
    res.body() = "x\n";
    res.prepare_payload();
    co_await http::async_write(tls, res, use_tuple);
    boost::system::error_code ignored;
    tls.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
  }

  std::vector<unsigned> statuses_;
  asio::io_context io_;
  asio::ssl::context ctx_{asio::ssl::context::tls_server};
  tcp::acceptor acceptor_{io_};
  std::mutex mu_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

TEST(TlsRptSend, HttpsRetriedUntilSentThenNeverAgain) {
  const std::filesystem::path certs_dir =
      std::filesystem::temp_directory_path() / ("danemta-send141-" + std::to_string(getpid()));
  std::filesystem::create_directories(certs_dir);
  const lab::ChainFiles certs =
      lab::write_chain_files(lab::private_ca({kAddress}), certs_dir, "https141");
  ASSERT_TRUE(certs.ca);
  ScriptedHttps server(certs, {500, 200});

  lab::World reporting(
      nlohmann::json{{"zones",
                      {{{"name", "rpt141.example"},
                        {"records",
                         {"@ MX 10 mx", "mx A 127.0.141.2",
                          "_smtp._tls TXT \"v=TLSRPTv1; rua=https://" + std::string(kAddress) +
                              ":" + std::to_string(server.port()) + "/tlsrpt\""}}}}}}
          .dump());
  const std::string dir = reporting.dir();

  const std::string store_path = dir + "/tlsrpt.db";
  {
    auto store = tlsrpt::open_sqlite_store(store_path);
    ASSERT_TRUE(store) << store.error().message;
    tlsrpt::SessionResult r;
    r.at = static_cast<tlsrpt::Time>(std::time(nullptr));
    r.policy_domain = "rpt141.example";
    r.policy_type = tlsrpt::PolicyType::tlsa;
    r.policy_strings = {"3 1 1 AABBCCDD"};
    r.mx_host = "mx.rpt141.example";
    r.result_type = "tlsa-invalid";
    r.sending_mta_ip = "127.0.0.1";
    r.receiving_mx_hostname = "mx.rpt141.example";
    r.receiving_ip = "127.0.141.2";
    ASSERT_TRUE((*store)->record(r));
  }
  const std::string config = dir + "/danemta.toml";
  std::ofstream(config) << "[dns]\nforwarders = [\"" << reporting.resolver()
                        << "\"]\ntrust_anchor_file = \"" << reporting.trust_anchor_file()
                        << "\"\n\n[relay]\nspool = \"" << dir
                        << "/queue.db\"\nhostname = \"relay.sender141.example\"\n\n"
                           "[tlsrpt]\nstore = \""
                        << store_path << "\"\nsubmitter = \"sender141.example\"\nhttps_ca_file = \""
                        << certs.ca->string() << "\"\n";
  const std::string send = std::string(DANEMTA_BINARY) + " --config " + config +
                           " tlsrpt send --date " + lab::utc_today();

  lab::CommandResult first = lab::run_command(send);
  EXPECT_EQ(first.exit_code, 1) << first.out;
  EXPECT_NE(first.out.find("500"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("next attempt after"), std::string::npos) << first.out;
  ASSERT_EQ(server.bodies().size(), 1u);

  // Before the backoff has passed, a run does not post.
  lab::CommandResult early = lab::run_command(send);
  EXPECT_EQ(early.exit_code, 0) << early.out;
  EXPECT_EQ(server.bodies().size(), 1u) << early.out;

  lab::CommandResult second = lab::run_command(send + " --retry");
  EXPECT_EQ(second.exit_code, 0) << second.out;
  EXPECT_NE(second.out.find("posted to https://"), std::string::npos) << second.out;
  const std::vector<std::string> bodies = server.bodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_EQ(bodies[1], bodies[0]) << "the retry sends the same report (same report-id)";

  lab::CommandResult third = lab::run_command(send + " --retry");
  EXPECT_EQ(third.exit_code, 0) << third.out;
  EXPECT_NE(third.out.find("already sent"), std::string::npos) << third.out;
  EXPECT_EQ(server.bodies().size(), 2u) << "a sent report is not sent twice";

  // What was posted is a report strict receivers accept.
  std::ofstream(dir + "/posted.json.gz", std::ios::binary) << bodies[1];
  lab::CommandResult checked = lab::run_command(
      "python3 " DANEMTA_TESTS_DIR "/tlsrpt/check_report.py " + dir + "/posted.json.gz");
  EXPECT_EQ(checked.exit_code, 0) << checked.out;
  std::filesystem::remove_all(certs_dir);
}

// [tlsrpt] retention_days: a regular `tlsrpt send` run deletes what is older.
TEST(TlsRptSend, RegularRunsExpireOldSessions) {
  lab::World world(nlohmann::json{{"zones", nlohmann::json::array()}}.dump());
  const std::string dir = world.dir();
  const std::string store_path = dir + "/tlsrpt.db";
  const auto now = static_cast<tlsrpt::Time>(std::time(nullptr));
  {
    auto store = tlsrpt::open_sqlite_store(store_path);
    ASSERT_TRUE(store) << store.error().message;
    for (tlsrpt::Time at : {now - 20 * 86400, now - 15 * 86400, now - 86400 / 2, now}) {
      tlsrpt::SessionResult r;
      r.at = at;
      r.policy_domain = "old146.example";
      r.policy_type = tlsrpt::PolicyType::no_policy_found;
      r.mx_host = "mx.old146.example";
      r.success = true;
      ASSERT_TRUE((*store)->record(r));
    }
  }
  const std::string config = dir + "/danemta.toml";
  std::ofstream(config) << "[dns]\nforwarders = [\"" << world.resolver()
                        << "\"]\ntrust_anchor_file = \"" << world.trust_anchor_file()
                        << "\"\n\n[relay]\nspool = \"" << dir
                        << "/queue.db\"\n\n[tlsrpt]\nretention_days = 14\nstore = \"" << store_path
                        << "\"\n";
  const std::string tlsrpt = std::string(DANEMTA_BINARY) + " --config " + config + " tlsrpt ";
  // A run for a given day or one that only prints expires nothing.
  lab::CommandResult printed = lab::run_command(tlsrpt + "send --print");
  EXPECT_EQ(printed.out.find("removed"), std::string::npos) << printed.out;
  lab::CommandResult run = lab::run_command(tlsrpt + "send");
  EXPECT_NE(run.out.find("removed 2 session results older than 14 days"), std::string::npos)
      << run.out;
  auto store = tlsrpt::open_sqlite_store(store_path);
  ASSERT_TRUE(store);
  auto left = (*store)->results("old146.example", 0, now + 1);
  ASSERT_TRUE(left);
  EXPECT_EQ(left->size(), 2u);
  lab::CommandResult again = lab::run_command(tlsrpt + "send");
  EXPECT_EQ(again.out.find("removed"), std::string::npos) << again.out;
}

}  // namespace
}  // namespace danemta
