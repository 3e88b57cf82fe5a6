// danemta_bench_tls: what a TLS handshake costs danemta's client side, full
// (what the relay does today: tickets off, DANE verification of the chain)
// against resumed (TLS session resumption, RFC 8446 section 2.2 / RFC 5077),
// with the client configured as the relay configures it. Issue 9 asks to
// measure resumption's saving before adopting it (bench/README.md).
//
// Client and server talk through an OpenSSL BIO pair in one thread: no
// sockets, no scheduler, so the figures are the handshake's CPU alone, timed
// with the thread's CPU clock around every SSL call of each side.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "lab/certs.hpp"
#include "tls/context.hpp"

namespace {

using danemta::lab::Chain;
using danemta::lab::KeyType;

double thread_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

[[noreturn]] void die(const std::string& what) {
  std::string detail;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    detail += std::string(" ") + buf;
  }
  throw std::runtime_error(what + detail);
}

struct Side {
  SSL* ssl = nullptr;
  double cpu_us = 0;
};

// Runs one SSL call of side `s`, adding its CPU time to the side.
template <class Step>
void pump(Side& s, Step step) {
  const double t0 = thread_cpu_us();
  step(s.ssl);
  s.cpu_us += thread_cpu_us() - t0;
}

struct Options {
  KeyType key = KeyType::ecdsa_p256;
  int max_version = TLS1_3_VERSION;
  bool resume = false;
  int rounds = 2000;
};

struct Figures {
  std::vector<double> client_us, server_us;
  int reused = 0, dane_ok = 0, dane_authority = 0;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Figures run(const Options& o, const Chain& chain) {
  SSL_CTX* sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  if (sctx == nullptr || cctx == nullptr) die("SSL_CTX_new");
  if (SSL_CTX_use_certificate(sctx, chain.leaf.x509()) != 1 ||
      SSL_CTX_use_PrivateKey(sctx, chain.leaf.key()) != 1)
    die("server certificate");
  SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION);
  // The relay's client context, exactly (DANE on, tickets and cache off).
  if (auto r = danemta::tls::configure_client_context(cctx); !r)
    throw std::runtime_error(r.error().message);
  SSL_CTX_set_min_proto_version(cctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(cctx, o.max_version);
  if (o.resume) {
    SSL_CTX_clear_options(cctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  }
  const std::string tlsa_hex = danemta::lab::tlsa_data_hex(chain.leaf, 1, 1);
  std::vector<unsigned char> digest;
  for (std::size_t i = 0; i + 1 < tlsa_hex.size(); i += 2)
    digest.push_back(static_cast<unsigned char>(std::stoi(tlsa_hex.substr(i, 2), nullptr, 16)));

  Figures f;
  SSL_SESSION* saved = nullptr;
  for (int i = 0; i < o.rounds + 1; ++i) {  // round 0 primes the ticket; not counted
    Side c, s;
    c.ssl = SSL_new(cctx);
    s.ssl = SSL_new(sctx);
    BIO *cb = nullptr, *sb = nullptr;
    if (BIO_new_bio_pair(&cb, 0, &sb, 0) != 1) die("BIO_new_bio_pair");
    SSL_set_bio(c.ssl, cb, cb);
    SSL_set_bio(s.ssl, sb, sb);
    SSL_set_connect_state(c.ssl);
    SSL_set_accept_state(s.ssl);
    // As delivery does it: SNI and DANE reference name, one TLSA 3 1 1.
    SSL_set_tlsext_host_name(c.ssl, "mx.bench.example");
    if (SSL_dane_enable(c.ssl, "mx.bench.example") <= 0) die("SSL_dane_enable");
    if (SSL_dane_tlsa_add(c.ssl, 3, 1, 1, digest.data(), digest.size()) <= 0)
      die("SSL_dane_tlsa_add");
    if (saved != nullptr) SSL_set_session(c.ssl, saved);

    bool cdone = false, sdone = false;
    for (int guard = 0; !(cdone && sdone) && guard < 100; ++guard) {
      if (!cdone) pump(c, [&cdone](SSL* ssl) { cdone = SSL_do_handshake(ssl) == 1; });
      if (!sdone) pump(s, [&sdone](SSL* ssl) { sdone = SSL_do_handshake(ssl) == 1; });
    }
    if (!cdone || !sdone) die("handshake did not complete");
    // One SMTP exchange, so that the client reads (and keeps) the tickets a
    // TLS 1.3 server sends after the handshake.
    char buf[256];
    pump(c, [](SSL* ssl) { SSL_write(ssl, "EHLO relay\r\n", 12); });
    pump(s, [&buf](SSL* ssl) {
      SSL_read(ssl, buf, sizeof buf);
      SSL_write(ssl, "250 ok\r\n", 8);
    });
    pump(c, [&buf](SSL* ssl) { SSL_read(ssl, buf, sizeof buf); });

    // QUIT, then close_notify: a session freed without it is marked not
    // resumable (OpenSSL treats the connection as possibly truncated).
    pump(c, [](SSL* ssl) { SSL_shutdown(ssl); });
    pump(s, [](SSL* ssl) { SSL_shutdown(ssl); });
    if (i > 0) {
      f.client_us.push_back(c.cpu_us);
      f.server_us.push_back(s.cpu_us);
      if (SSL_session_reused(c.ssl)) ++f.reused;
      if (SSL_get_verify_result(c.ssl) == X509_V_OK) ++f.dane_ok;
      // Which TLSA record matched, at which depth: what the relay logs.
      if (SSL_get0_dane_authority(c.ssl, nullptr, nullptr) >= 0) ++f.dane_authority;
    }
    if (o.resume) {
      if (saved != nullptr) SSL_SESSION_free(saved);
      saved = SSL_get1_session(c.ssl);  // the newest ticket; each is used once
    }
    SSL_free(c.ssl);
    SSL_free(s.ssl);
  }
  if (saved != nullptr) SSL_SESSION_free(saved);
  SSL_CTX_free(cctx);
  SSL_CTX_free(sctx);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 2000;
  if (argc > 1) rounds = std::max(10, std::atoi(argv[1]));
  if (argc > 2 || (argc > 1 && std::string(argv[1]) == "--help")) {
    std::puts("usage: danemta_bench_tls [ROUNDS]  (default 2000 handshakes per variant)");
    return argc > 2 ? 2 : 0;
  }
  try {
    std::printf("%d handshakes per variant; CPU microseconds per handshake (median)\n", rounds);
    std::printf(
        "| server key | protocol | handshake | client us | server us | resumed | verify result ok "
        "| matched record known |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    for (KeyType key : {KeyType::ecdsa_p256, KeyType::rsa2048}) {
      const Chain chain = danemta::lab::self_signed({"mx.bench.example"}, key);
      for (int version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
        for (bool resume : {false, true}) {
          Options o;
          o.key = key;
          o.max_version = version;
          o.resume = resume;
          o.rounds = rounds;
          const Figures f = run(o, chain);
          std::printf("| %s | %s | %s | %.0f | %.0f | %d/%d | %d/%d | %d/%d |\n",
                      key == KeyType::ecdsa_p256 ? "ECDSA P-256" : "RSA 2048",
                      version == TLS1_3_VERSION ? "TLS 1.3" : "TLS 1.2",
                      resume ? "resumed" : "full", median(f.client_us), median(f.server_us),
                      f.reused, rounds, f.dane_ok, rounds, f.dane_authority, rounds);
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "danemta_bench_tls: %s\n", e.what());
    return 1;
  }
  return 0;
}
