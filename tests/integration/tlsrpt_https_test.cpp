// tlsrpt::https_post (RFC 8460 section 5.4) against a small HTTPS server on
// 127.0.0.1 (port 0) with certificates from a test CA; the server records
// the request it received.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <exception>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "lab/certs.hpp"
#include "tlsrpt/submit.hpp"

namespace danemta::tlsrpt {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct Recorded {
  bool handshake_done = false;
  bool got_request = false;
  std::string method;
  std::string target;
  std::string host;
  std::string content_type;
  std::string body;
};

// One connection: TLS handshake, then (unless `answer` is false) one request
// read and answered with `status`.
class HttpsServer {
 public:
  HttpsServer(const lab::ChainFiles& files, unsigned status, bool answer = true)
      : status_(status), answer_(answer) {
    ctx_.use_certificate_chain_file(files.chain.string());
    ctx_.use_private_key_file(files.key.string(), asio::ssl::context::pem);
    acceptor_.open(tcp::v4());
    acceptor_.bind(tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
    acceptor_.listen();
    asio::co_spawn(io_, serve(this), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;
  ~HttpsServer() {
    io_.stop();
    thread_.join();
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  Recorded recorded() {
    std::lock_guard lock(mu_);
    return rec_;
  }

 private:
  static asio::awaitable<void> serve(HttpsServer* self) {
    auto [aec, socket] = co_await self->acceptor_.async_accept(use_tuple);
    if (aec) co_return;
    asio::ssl::stream<tcp::socket> tls(std::move(socket), self->ctx_);
    const auto [hec] = co_await tls.async_handshake(asio::ssl::stream_base::server, use_tuple);
    if (hec) co_return;
    {
      std::lock_guard lock(self->mu_);
      self->rec_.handshake_done = true;
    }
    if (!self->answer_) {
      asio::steady_timer forever(tls.get_executor(), 1h);
      co_await forever.async_wait(use_tuple);
      co_return;
    }
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    const auto [rec, n] = co_await http::async_read(tls, buffer, req, use_tuple);
    if (rec) co_return;
    {
      std::lock_guard lock(self->mu_);
      self->rec_.got_request = true;
      self->rec_.method = std::string(req.method_string());
      self->rec_.target = std::string(req.target());
      self->rec_.host = std::string(req[http::field::host]);
      self->rec_.content_type = std::string(req[http::field::content_type]);
      self->rec_.body = req.body();
    }
    http::response<http::string_body> res{static_cast<http::status>(self->status_), 11};
    res.set(http::field::content_type, "text/plain");
    res.set(http::field::connection, "close");
    res.body() = "thanks\n";
    res.prepare_payload();
    co_await http::async_write(tls, res, use_tuple);
    boost::system::error_code ignored;
    tls.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
  }

  unsigned status_;
  bool answer_;
  asio::io_context io_;
  asio::ssl::context ctx_{asio::ssl::context::tls_server};
  tcp::acceptor acceptor_{io_};
  std::mutex mu_;
  Recorded rec_;
  std::thread thread_;
};

Result<void> post(std::string url, std::string body, HttpsOptions options) {
  asio::io_context io;
  std::optional<Result<void>> out;
  std::exception_ptr error;
  asio::co_spawn(io, https_post(std::move(url), std::move(body), std::move(options)),
                 [&](std::exception_ptr e, Result<void> r) {
                   error = e;
                   out = std::move(r);
                 });
  io.run();
  if (error) std::rethrow_exception(error);
  return *out;
}

class HttpsPostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("danemta-https-" + std::to_string(rd()));
    fs::create_directories(dir_);
    const lab::Chain good = lab::private_ca({"localhost", "127.0.0.1"});
    good_ = lab::write_chain_files(good, dir_, "good");
    ASSERT_TRUE(good_.ca);
    std::mt19937 rng(7);
    body_ = std::string("\x1f\x8b\x08\x00", 4);
    for (int i = 0; i < 3000; ++i) body_ += static_cast<char>(rng() & 0xFF);
  }
  void TearDown() override { fs::remove_all(dir_); }

  HttpsOptions options(std::chrono::seconds timeout = 10s) const {
    HttpsOptions o;
    o.timeout = timeout;
    o.ca_file = good_.ca->string();
    return o;
  }

  fs::path dir_;
  lab::ChainFiles good_;
  std::string body_;
};

TEST_F(HttpsPostTest, PostsTheGzippedReport) {
  HttpsServer server(good_, 200);
  const std::string url = "https://localhost:" + std::to_string(server.port()) + "/tlsrpt";
  auto r = post(url, body_, options());
  ASSERT_TRUE(r) << r.error().message;
  const Recorded rec = server.recorded();
  ASSERT_TRUE(rec.got_request);
  EXPECT_EQ(rec.method, "POST");
  EXPECT_EQ(rec.target, "/tlsrpt");
  EXPECT_EQ(rec.host, "localhost:" + std::to_string(server.port()));
  EXPECT_EQ(rec.content_type, "application/tlsrpt+gzip");
  EXPECT_EQ(rec.body, body_);
}

TEST_F(HttpsPostTest, IpLiteralIsVerifiedAgainstTheAddress) {
  HttpsServer server(good_, 202);
  const std::string url = "https://127.0.0.1:" + std::to_string(server.port()) + "/r?x=1#frag";
  auto r = post(url, body_, options());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(server.recorded().target, "/r?x=1");
}

TEST_F(HttpsPostTest, ServerErrorIsAnErrorNamingTheStatus) {
  HttpsServer server(good_, 500);
  auto r = post("https://localhost:" + std::to_string(server.port()) + "/tlsrpt", body_, options());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("500"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().severity, Severity::transient);
  EXPECT_TRUE(server.recorded().got_request);
}

TEST_F(HttpsPostTest, NotFoundIsPermanent) {
  HttpsServer server(good_, 404);
  auto r = post("https://localhost:" + std::to_string(server.port()) + "/nope", body_, options());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("404"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().severity, Severity::permanent);
}

TEST_F(HttpsPostTest, CertificateFromAnUntrustedCaFails) {
  const lab::Chain other = lab::private_ca({"localhost", "127.0.0.1"});
  const lab::ChainFiles files = lab::write_chain_files(other, dir_, "other");
  HttpsServer server(files, 200);
  auto r = post("https://localhost:" + std::to_string(server.port()) + "/tlsrpt", body_, options());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("TLS handshake"), std::string::npos) << r.error().message;
  EXPECT_FALSE(server.recorded().got_request);
}

TEST_F(HttpsPostTest, CertificateForAnotherNameFails) {
  // A trusted CA, but the leaf names "other.example" only.
  const lab::Cert ca = lab::make_ca("test CA", lab::KeyType::ecdsa_p256);
  lab::Chain chain{
      lab::make_leaf({"other.example"}, lab::KeyType::ecdsa_p256, {}, ca), {}, ca, false};
  const lab::ChainFiles files = lab::write_chain_files(chain, dir_, "wrongname");
  ASSERT_TRUE(files.ca);
  HttpsServer server(files, 200);
  HttpsOptions o = options();
  o.ca_file = files.ca->string();
  auto r = post("https://localhost:" + std::to_string(server.port()) + "/tlsrpt", body_, o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("TLS handshake"), std::string::npos) << r.error().message;
}

TEST_F(HttpsPostTest, SilentServerTimesOut) {
  HttpsServer server(good_, 200, /*answer=*/false);
  const auto start = std::chrono::steady_clock::now();
  auto r =
      post("https://localhost:" + std::to_string(server.port()) + "/tlsrpt", body_, options(1s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("timed out"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().severity, Severity::transient);
  EXPECT_LT(elapsed, 5s);
  EXPECT_TRUE(server.recorded().handshake_done);
}

TEST_F(HttpsPostTest, ConnectionRefusedIsAnError) {
  unsigned short port = 0;
  {
    asio::io_context io;
    tcp::acceptor probe(io, tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }
  auto r = post("https://127.0.0.1:" + std::to_string(port) + "/tlsrpt", body_, options(5s));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("connect"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().severity, Severity::transient);
}

TEST_F(HttpsPostTest, MalformedUrisArePermanentErrors) {
  for (const std::string url :
       {"http://localhost/tlsrpt", "https://", "https:///path", "https://[::1/x",
        "https://host:99999/", "https://host:0/", "https://user@host/", "https://ho st/",
        "mailto:reports@example.org"}) {
    auto r = post(url, body_, options(2s));
    ASSERT_FALSE(r) << url;
    EXPECT_EQ(r.error().severity, Severity::permanent) << url << ": " << r.error().message;
  }
}

}  // namespace
}  // namespace danemta::tlsrpt
