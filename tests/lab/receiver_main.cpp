// danemta-lab-receiver: one lab SMTP receiver for shell scripts (the demo).
//
//   danemta-lab-receiver --address 127.0.0.10 [--port P] [--hostname mx1.good.example]
//       [--cert self-signed|private-ca|none] [--names a,b] [--key rsa|ecdsa]
//       [--no-starttls] [--expired-leaf] [--send-root] [--spool DIR]
//
// Prints one JSON line once listening, then serves until SIGTERM or SIGINT (exit 0):
//   {"address":"127.0.0.10","port":2525,"hostname":"...",
//    "tlsa":{"3 1 1":"3 1 1 <hex>","3 1 2":"...","3 0 1":"...",
//            "2 1 1":"2 1 1 <hex of the leaf's issuer>","2 1 2":"...",
//            "2 1 1 root":"2 1 1 <hex of the root>"}}
// ("2 ..." keys only with --cert private-ca; "tlsa" is {} with --cert none).
// With --spool, each message is written to DIR/<n>.eml: "X-Lab-Mail-From: <path>",
// one "X-Lab-Rcpt-To: <path>" per recipient, "X-Lab-TLS: yes|no", a blank line, then the
// data as received (un-dot-stuffed). Usage errors exit 2, start-up failures exit 1.
#include "lab/certs.hpp"
#include "lab/receiver.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <sstream>

namespace {

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "danemta-lab-receiver: " << why << "\n"
            << "usage: danemta-lab-receiver --address ADDR [--port P] [--hostname NAME]\n"
               "  [--cert self-signed|private-ca|none] [--names a,b] [--key rsa|ecdsa]\n"
               "  [--no-starttls] [--expired-leaf] [--send-root] [--spool DIR]\n";
  std::exit(2);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace danemta::lab;
  Behaviour b;
  std::string cert = "self-signed";
  std::vector<std::string> names;
  KeyType key = KeyType::ecdsa_p256;
  bool no_starttls = false;
  bool expired_leaf = false;
  bool send_root = false;
  std::string spool;
  bool have_address = false;

  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--address") {
      b.address = value();
      have_address = true;
    } else if (arg == "--port") {
      const std::string v = value();
      char* end = nullptr;
      unsigned long p = std::strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || p > 65535) usage("bad port: " + v);
      b.port = static_cast<std::uint16_t>(p);
    } else if (arg == "--hostname") {
      b.hostname = value();
    } else if (arg == "--cert") {
      cert = value();
      if (cert != "self-signed" && cert != "private-ca" && cert != "none") {
        usage("bad --cert: " + cert);
      }
    } else if (arg == "--names") {
      names = split(value(), ',');
    } else if (arg == "--key") {
      const std::string v = value();
      if (v == "rsa") {
        key = KeyType::rsa2048;
      } else if (v == "ecdsa") {
        key = KeyType::ecdsa_p256;
      } else {
        usage("bad --key: " + v);
      }
    } else if (arg == "--no-starttls") {
      no_starttls = true;
    } else if (arg == "--expired-leaf") {
      expired_leaf = true;
    } else if (arg == "--send-root") {
      send_root = true;
    } else if (arg == "--spool") {
      spool = value();
    } else {
      usage("unknown argument: " + arg);
    }
  }
  if (!have_address) usage("--address is required");
  if (names.empty()) names = {b.hostname};

  // Blocked before any thread starts, so every thread inherits the mask and sigwait
  // below is the only taker.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    nlohmann::json tlsa = nlohmann::json::object();
    if (cert == "self-signed") {
      b.chain = self_signed(names, key);
      if (expired_leaf) {
        b.chain->leaf = make_self_signed(names, key, kExpired);
      }
    } else if (cert == "private-ca") {
      b.chain = private_ca(names, key, expired_leaf);
      b.chain->send_root = send_root;
    }
    if (b.chain) {
      for (auto [s, m] : {std::pair{1, 1}, std::pair{1, 2}, std::pair{0, 1}}) {
        const std::string k = "3 " + std::to_string(s) + ' ' + std::to_string(m);
        tlsa[k] = tlsa_rdata(b.chain->leaf, 3, s, m);
      }
      if (b.chain->root) {
        tlsa["2 1 1"] = tlsa_rdata(*b.chain->issuer(), 2, 1, 1);
        tlsa["2 1 2"] = tlsa_rdata(*b.chain->issuer(), 2, 1, 2);
        tlsa["2 1 1 root"] = tlsa_rdata(*b.chain->root, 2, 1, 1);
      }
    }
    if (no_starttls) b.offer_starttls = false;

    if (!spool.empty()) {
      auto counter = std::make_shared<std::atomic<unsigned>>(0);
      b.on_message = [spool, counter](const Session& s, std::size_t i) {
        const Message& m = s.messages[i];
        std::string out = "X-Lab-Mail-From: <" + m.mail_from + ">\r\n";
        for (const auto& r : m.rcpt_to) out += "X-Lab-Rcpt-To: <" + r + ">\r\n";
        out += std::string("X-Lab-TLS: ") + (m.in_tls ? "yes" : "no") + "\r\n\r\n" + m.data;
        const auto n = ++*counter;
        const std::filesystem::path dir(spool);
        const auto tmp = dir / ("." + std::to_string(n) + ".tmp");
        try {
          write_file(tmp, out);
          std::filesystem::rename(tmp, dir / (std::to_string(n) + ".eml"));
        } catch (const std::exception& e) {
          std::cerr << "danemta-lab-receiver: spool: " << e.what() << std::endl;
        }
      };
    }

    Receiver receiver(std::move(b));
    nlohmann::json line = {{"address", receiver.address()},
                           {"port", receiver.port()},
                           {"hostname", receiver.behaviour().hostname},
                           {"tlsa", tlsa}};
    std::cout << line.dump() << std::endl;

    int sig = 0;
    sigwait(&stop_signals, &sig);
  } catch (const std::exception& e) {
    std::cerr << "danemta-lab-receiver: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
