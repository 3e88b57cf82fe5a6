#include "lab/receiver.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <list>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

namespace danemta::lab {
namespace {

// RFC 5321 4.5.3.1.6: a text line is at most 1000 octets including CRLF.
constexpr std::size_t kMaxLine = 1000;
// Larger messages are read to the end but not stored, and answered 552.
constexpr std::size_t kMaxMessage = 64u << 20;

class Fd {
 public:
  explicit Fd(int fd = -1) noexcept : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

struct SslCtxFree {
  void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
struct SslFree {
  void operator()(SSL* p) const noexcept { SSL_free(p); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), "lab receiver: " + what);
}

std::string openssl_errors() {
  std::string msg;
  while (unsigned long e = ERR_get_error()) {
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    if (!msg.empty()) msg += "; ";
    msg += buf.data();
  }
  return msg;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string render(const Reply& r) {
  const std::string code = std::to_string(r.code);
  if (r.text.empty()) return code + "\r\n";
  std::string out;
  std::string_view rest = r.text;
  while (true) {
    auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out += code;
    out += nl == std::string_view::npos ? ' ' : '-';
    out += line;
    out += "\r\n";
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return out;
}

// The path in "MAIL FROM:<path> params" / "RCPT TO:<path>", after `prefix` (matched
// case-insensitively, spaces before '<' tolerated); nullopt when malformed.
std::optional<std::string> parse_path(const std::string& line, std::string_view prefix) {
  if (line.size() < prefix.size() || upper(line.substr(0, prefix.size())) != prefix) {
    return std::nullopt;
  }
  auto pos = line.find_first_not_of(' ', prefix.size());
  if (pos == std::string::npos || line[pos] != '<') return std::nullopt;
  auto end = line.find('>', pos);
  if (end == std::string::npos) return std::nullopt;
  return line.substr(pos + 1, end - pos - 1);
}

int sni_callback(SSL* ssl, int* /*alert*/, void* /*arg*/) {
  auto* session = static_cast<Session*>(SSL_get_app_data(ssl));
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (session && name) session->sni = name;
  return SSL_TLSEXT_ERR_OK;
}

// One connection's byte stream, plain or TLS. Every wait also watches the receiver's
// stop eventfd and gives up after the idle timeout; any failure means "close".
class Conn {
 public:
  Conn(int fd, int stop_fd, std::chrono::milliseconds idle, int drip_ms)
      : fd_(fd), stop_fd_(stop_fd), idle_(idle), drip_ms_(drip_ms) {}

  bool tls() const { return ssl_ != nullptr; }

  // Appends at least one byte to `buf`; false on EOF, error, stop or idle timeout.
  bool read_more(std::string& buf) {
    std::array<char, 16384> chunk{};
    for (;;) {
      if (ssl_) {
        int n = SSL_read(ssl_.get(), chunk.data(), static_cast<int>(chunk.size()));
        if (n > 0) {
          buf.append(chunk.data(), static_cast<std::size_t>(n));
          return true;
        }
        if (!wait_ssl(n)) return false;
      } else {
        ssize_t n = ::recv(fd_, chunk.data(), chunk.size(), 0);
        if (n > 0) {
          buf.append(chunk.data(), static_cast<std::size_t>(n));
          return true;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return false;
        if (!wait(POLLIN)) return false;
      }
    }
  }

  // Sends `data` (one byte at a time, drip_ms apart, when dripping).
  bool send(std::string_view data) {
    if (drip_ms_ <= 0) return write_all(data);
    for (char c : data) {
      if (!write_all(std::string_view(&c, 1))) return false;
      if (!sleep_ms(drip_ms_)) return false;
    }
    return true;
  }

  bool write_all(std::string_view data) {
    while (!data.empty()) {
      if (ssl_) {
        int n = SSL_write(ssl_.get(), data.data(), static_cast<int>(data.size()));
        if (n > 0) {
          data.remove_prefix(static_cast<std::size_t>(n));
        } else if (!wait_ssl(n)) {
          return false;
        }
      } else {
        ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n > 0) {
          data.remove_prefix(static_cast<std::size_t>(n));
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
          if (!wait(POLLOUT)) return false;
        } else {
          return false;
        }
      }
    }
    return true;
  }

  // Server side of the TLS handshake; records SNI, version, cipher or the failure.
  bool start_tls(SSL_CTX* ctx, Session& s) {
    ERR_clear_error();
    SslPtr ssl(SSL_new(ctx));
    if (!ssl || SSL_set_fd(ssl.get(), fd_) != 1) {
      s.tls_error = "SSL_new: " + openssl_errors();
      return false;
    }
    SSL_set_app_data(ssl.get(), &s);
    SSL_set_accept_state(ssl.get());
    for (;;) {
      int r = SSL_accept(ssl.get());
      if (r == 1) break;
      int err = SSL_get_error(ssl.get(), r);
      bool again = (err == SSL_ERROR_WANT_READ && wait(POLLIN)) ||
                   (err == SSL_ERROR_WANT_WRITE && wait(POLLOUT));
      if (!again) {
        std::string why = openssl_errors();
        s.tls_error =
            why.empty() ? "handshake failed (SSL_get_error " + std::to_string(err) + ")" : why;
        return false;
      }
    }
    SSL_set_app_data(ssl.get(), nullptr);
    s.tls_version = SSL_get_version(ssl.get());
    s.cipher = SSL_get_cipher_name(ssl.get());
    ssl_ = std::move(ssl);
    return true;
  }

  // Discards input until EOF, error, stop or idle timeout.
  void drain() {
    std::string sink;
    while (read_more(sink)) sink.clear();
  }

  // Makes the coming close() send RST instead of FIN.
  void arm_reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }

 private:
  bool wait_ssl(int ret) {
    switch (SSL_get_error(ssl_.get(), ret)) {
      case SSL_ERROR_WANT_READ:
        return wait(POLLIN);
      case SSL_ERROR_WANT_WRITE:
        return wait(POLLOUT);
      default:
        return false;
    }
  }

  // True when `events` is ready on the socket; false on stop, timeout or hang-up without
  // the event.
  bool wait(short events) {
    std::array<pollfd, 2> fds{pollfd{fd_, events, 0}, pollfd{stop_fd_, POLLIN, 0}};
    for (;;) {
      int n = ::poll(fds.data(), fds.size(), static_cast<int>(idle_.count()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || fds[1].revents != 0) return false;
      return (fds[0].revents & (events | POLLHUP | POLLERR)) != 0;
    }
  }

  // Sleeps, interrupted by stop; false when stopped.
  bool sleep_ms(int ms) {
    pollfd p{stop_fd_, POLLIN, 0};
    return ::poll(&p, 1, ms) == 0;
  }

  int fd_;
  int stop_fd_;
  std::chrono::milliseconds idle_;
  int drip_ms_;
  SslPtr ssl_;
};

// RFC 5321 reading: CRLF-terminated lines out of a buffered stream, so that pipelined
// commands are answered in order (RFC 2920).
class LineReader {
 public:
  struct Line {
    std::string raw;  // with its terminator
    bool too_long = false;
  };

  explicit LineReader(Conn& conn) : conn_(conn) {}

  // The next line; nullopt when the connection ended first. A line over kMaxLine octets
  // is consumed entirely and returned empty with too_long set.
  std::optional<Line> next() {
    bool too_long = false;
    for (;;) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        Line line{buf_.substr(0, nl + 1), too_long || nl + 1 > kMaxLine};
        buf_.erase(0, nl + 1);
        if (line.too_long) line.raw.clear();
        return line;
      }
      if (buf_.size() > kMaxLine) {
        too_long = true;
        buf_.clear();
      }
      if (!conn_.read_more(buf_)) return std::nullopt;
    }
  }

  // Takes whatever was read but not yet returned.
  std::string take_buffered() { return std::exchange(buf_, {}); }

 private:
  Conn& conn_;
  std::string buf_;
};

std::string strip_eol(std::string s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (!s.empty() && s.back() == '\r') s.pop_back();
  return s;
}

std::string peer_name(const sockaddr_storage& ss) {
  std::array<char, INET6_ADDRSTRLEN> buf{};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf.data(), buf.size());
    return std::string(buf.data()) + ' ' + std::to_string(ntohs(a->sin_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
  inet_ntop(AF_INET6, &a->sin6_addr, buf.data(), buf.size());
  return std::string(buf.data()) + ' ' + std::to_string(ntohs(a->sin6_port));
}

SslCtxPtr make_ctx(const Behaviour& b) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) throw std::runtime_error("lab receiver: SSL_CTX_new: " + openssl_errors());
  if (b.min_tls_version) SSL_CTX_set_min_proto_version(ctx.get(), b.min_tls_version);
  if (b.max_tls_version) SSL_CTX_set_max_proto_version(ctx.get(), b.max_tls_version);
  SSL_CTX_set_tlsext_servername_callback(ctx.get(), sni_callback);
  if (b.chain) {
    auto presented = b.chain->presented();
    bool ok = SSL_CTX_use_certificate(ctx.get(), presented.front().x509()) == 1;
    for (std::size_t i = 1; ok && i < presented.size(); ++i) {
      ok = SSL_CTX_add1_chain_cert(ctx.get(), presented[i].x509()) == 1;
    }
    ok = ok && SSL_CTX_use_PrivateKey(ctx.get(), b.chain->leaf.key()) == 1 &&
         SSL_CTX_check_private_key(ctx.get()) == 1;
    if (!ok) throw std::runtime_error("lab receiver: certificate setup: " + openssl_errors());
  }
  return ctx;
}

}  // namespace

struct Receiver::Impl {
  Fd listen;
  Fd stop;
  SslCtxPtr ctx;
};

bool Session::verb_in_clear(const std::string& verb) const {
  const std::string want = upper(verb);
  return std::any_of(commands.begin(), commands.end(), [&](const Command& c) {
    return !c.in_tls && upper(c.line.substr(0, c.line.find(' '))) == want;
  });
}

Receiver::Receiver(Behaviour behaviour)
    : behaviour_(std::move(behaviour)), impl_(std::make_unique<Impl>()) {
  impl_->ctx = make_ctx(behaviour_);

  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, behaviour_.address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(behaviour_.port);
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, behaviour_.address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(behaviour_.port);
    len = sizeof(sockaddr_in6);
  } else {
    throw std::invalid_argument("lab receiver: not an IP address: " + behaviour_.address);
  }

  Fd listen(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (listen.get() < 0) throw_errno("socket");
  int one = 1;
  ::setsockopt(listen.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Replies go out one write(2) each; with Nagle on, a reply following an
  // unacknowledged one waits for the client's delayed ACK (~40 ms). Accepted
  // sockets inherit this on Linux.
  ::setsockopt(listen.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (ss.ss_family == AF_INET6) {
    ::setsockopt(listen.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (::bind(listen.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    throw_errno("bind " + behaviour_.address + " port " + std::to_string(behaviour_.port));
  }
  if (::listen(listen.get(), 64) != 0) throw_errno("listen");
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof bound;
  if (::getsockname(listen.get(), reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0) {
    throw_errno("getsockname");
  }
  port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  impl_->listen = std::move(listen);
  impl_->stop = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (impl_->stop.get() < 0) throw_errno("eventfd");

  thread_ = std::thread([this] { accept_loop(); });
}

Receiver::~Receiver() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(impl_->stop.get(), &one, sizeof one);
  ::shutdown(impl_->listen.get(), SHUT_RDWR);
  if (thread_.joinable()) thread_.join();
}

std::vector<Session> Receiver::sessions() const {
  std::lock_guard lock(mutex_);
  return sessions_;
}

bool Receiver::wait_closed(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] {
    return static_cast<std::size_t>(std::count_if(sessions_.begin(), sessions_.end(),
                                                  [](const Session& s) { return s.closed; })) >= n;
  });
}

void Receiver::publish(std::size_t index, const Session& s) {
  {
    std::lock_guard lock(mutex_);
    sessions_[index] = s;
  }
  changed_.notify_all();
}

void Receiver::accept_loop() {
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<Worker> workers;
  std::array<pollfd, 2> fds{pollfd{impl_->listen.get(), POLLIN, 0},
                            pollfd{impl_->stop.get(), POLLIN, 0}};
  for (;;) {
    int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[1].revents != 0) break;
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    int fd = ::accept4(impl_->listen.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) continue;
    Fd conn(fd);
    std::size_t index = 0;
    {
      std::lock_guard lock(mutex_);
      index = sessions_.size();
      sessions_.emplace_back().peer = peer_name(peer);
    }
    for (auto it = workers.begin(); it != workers.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    workers.push_back(Worker{std::thread([this, c = std::move(conn), index, done]() mutable {
                               serve(c.get(), index);
                               done->store(true);
                             }),
                             done});
  }
  for (auto& w : workers) w.thread.join();
}

// One connection, from greeting to close. `fd` stays owned by the caller.
void Receiver::serve(int fd, std::size_t index) {
  // OpenSSL writes to the socket with write(2): a peer that went away would raise SIGPIPE
  // and kill the test process. Blocked here, it stays a thread-directed pending signal
  // (discarded when the thread ends) and the write fails with EPIPE instead.
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);

  const Behaviour& b = behaviour_;
  Session s;
  {
    std::lock_guard lock(mutex_);
    s.peer = sessions_[index].peer;
  }
  Conn conn(fd, impl_->stop.get(), b.idle_timeout, b.slow_drip_ms);
  LineReader reader(conn);
  const bool offer_tls = b.offer_starttls.value_or(b.chain.has_value());

  bool helo = false;
  std::optional<Message> txn;
  std::size_t queued = 0;

  auto reply_for = [&](Stage st, Reply normal) {
    auto it = b.replies.find(st);
    return it != b.replies.end() ? it->second : normal;
  };
  auto respond = [&](const Reply& r) { return conn.send(render(r)); };
  auto drop = [&](Stage st) { return b.drop_after == st; };
  auto ok = [](const Reply& r) { return r.code / 100 == 2; };

  auto run = [&]() {
    if (drop(Stage::greeting)) return;
    if (b.garbage_greeting) {
      std::string junk(4096, '\0');
      RAND_bytes(reinterpret_cast<unsigned char*>(junk.data()), static_cast<int>(junk.size()));
      if (conn.write_all(junk)) conn.drain();
      return;
    }
    if (b.greeting_line_bytes > 0) {
      std::string line = "220 ";
      line.resize(std::max<std::size_t>(b.greeting_line_bytes, line.size()), 'x');
      if (conn.write_all(line)) conn.drain();
      return;
    }
    if (!respond(reply_for(Stage::greeting, {220, b.hostname + " ESMTP danemta-lab"}))) return;
    if (b.reset_after_greeting) {
      conn.arm_reset();
      return;
    }

    for (;;) {
      auto line = reader.next();
      if (!line) return;
      if (line->too_long) {
        if (!respond({500, "5.5.2 line too long"})) return;
        continue;
      }
      const std::string cmd = strip_eol(line->raw);
      s.commands.push_back({cmd, conn.tls()});
      publish(index, s);
      const std::string verb = upper(cmd.substr(0, cmd.find(' ')));

      if (verb == "EHLO" || verb == "HELO") {
        const bool ehlo = verb == "EHLO";
        if (drop(ehlo ? Stage::ehlo : Stage::helo)) return;
        if (ehlo && b.endless_multiline) {
          const std::string junk = "250-" + std::string(72, 'X') + "\r\n";
          while (conn.write_all(junk)) {
          }
          return;
        }
        std::string text = b.hostname;
        if (ehlo) {
          for (const auto& kw : b.advertise) text += "\n" + kw;
          if (offer_tls && !conn.tls()) text += "\nSTARTTLS";
        }
        Reply r = reply_for(ehlo ? Stage::ehlo : Stage::helo, {250, text});
        if (ok(r)) {
          helo = true;
          txn.reset();
        }
        if (!respond(r)) return;
      } else if (verb == "STARTTLS") {
        if (drop(Stage::starttls)) return;
        Reply normal{220, "2.0.0 Ready to start TLS"};
        if (conn.tls()) {
          normal = {554, "5.5.1 TLS already active"};
        } else if (!offer_tls) {
          normal = {502, "5.5.1 STARTTLS not available"};
        }
        Reply r = reply_for(Stage::starttls, normal);
        if (!respond(r)) return;
        if (r.code != 220 || conn.tls()) continue;
        // RFC 3207 5: anything the client sent after STARTTLS before the handshake is
        // discarded, never executed.
        s.pipelined_after_starttls = reader.take_buffered();
        publish(index, s);
        if (b.tls_abort) return;
        bool done = conn.start_tls(impl_->ctx.get(), s);
        publish(index, s);
        if (!done) return;
        s.starttls_completed = true;
        // RFC 3207 4.2: the client must discard knowledge from before TLS and EHLO again.
        helo = false;
        txn.reset();
        publish(index, s);
      } else if (verb == "MAIL") {
        if (drop(Stage::mail)) return;
        Reply r;
        auto path = parse_path(cmd, "MAIL FROM:");
        if (!helo) {
          r = {503, "5.5.1 EHLO first"};
        } else if (txn) {
          r = {503, "5.5.1 nested MAIL command"};
        } else if (!path) {
          r = {501, "5.5.4 syntax: MAIL FROM:<address>"};
        } else {
          r = reply_for(Stage::mail, {250, "2.1.0 Ok"});
          if (ok(r)) {
            txn.emplace();
            txn->mail_from = *path;
            txn->in_tls = conn.tls();
          }
        }
        if (!respond(r)) return;
      } else if (verb == "RCPT") {
        if (drop(Stage::rcpt)) return;
        Reply r;
        auto path = parse_path(cmd, "RCPT TO:");
        if (!txn) {
          r = {503, "5.5.1 need MAIL command"};
        } else if (!path) {
          r = {501, "5.5.4 syntax: RCPT TO:<address>"};
        } else {
          auto it = b.rcpt_replies.find(*path);
          if (it == b.rcpt_replies.end()) {
            it = std::find_if(b.rcpt_replies.begin(), b.rcpt_replies.end(),
                              [&](const auto& kv) { return lower(kv.first) == lower(*path); });
          }
          r = it != b.rcpt_replies.end() ? it->second : reply_for(Stage::rcpt, {250, "2.1.5 Ok"});
          if (ok(r)) txn->rcpt_to.push_back(*path);
        }
        if (!respond(r)) return;
      } else if (verb == "DATA") {
        if (drop(Stage::data)) return;
        Reply r;
        if (!txn) {
          r = {503, "5.5.1 need MAIL command"};
        } else if (b.replies.count(Stage::data)) {
          r = b.replies.at(Stage::data);
        } else if (txn->rcpt_to.empty()) {
          r = {554, "5.5.1 no valid recipients"};
        } else {
          r = {354, "End data with <CR><LF>.<CR><LF>"};
        }
        if (!respond(r)) return;
        if (r.code != 354) continue;
        bool long_line = false;
        bool too_big = false;
        std::size_t data_size = 0;
        for (;;) {
          auto data_line = reader.next();
          if (!data_line) return;
          if (data_line->too_long) {
            long_line = true;
            continue;
          }
          // Only CRLF.CRLF ends the data; a bare-LF "." line is content (RFC 5321 4.1.1.4,
          // no SMTP smuggling).
          if (data_line->raw == ".\r\n") break;
          std::string_view raw = data_line->raw;
          if (raw.front() == '.') raw.remove_prefix(1);  // RFC 5321 4.5.2
          if (data_size + raw.size() > kMaxMessage) too_big = true;
          data_size += raw.size();
          if (!too_big && b.keep_data) txn->data.append(raw);
        }
        Message m = std::move(*txn);
        txn.reset();
        s.messages.push_back(std::move(m));
        if (drop(Stage::dot)) return;
        Reply dot = long_line ? Reply{500, "5.5.2 line too long"}
                    : too_big
                        ? Reply{552, "5.3.4 message too big"}
                        : reply_for(Stage::dot,
                                    {250, "2.0.0 Ok: queued as lab" + std::to_string(++queued)});
        s.messages.back().reply_code = dot.code;
        if (b.on_message) b.on_message(s, s.messages.size() - 1);
        publish(index, s);
        if (!respond(dot)) return;
      } else if (verb == "RSET") {
        if (drop(Stage::rset)) return;
        txn.reset();
        if (!respond(reply_for(Stage::rset, {250, "2.0.0 Ok"}))) return;
      } else if (verb == "NOOP") {
        if (drop(Stage::noop)) return;
        if (!respond(reply_for(Stage::noop, {250, "2.0.0 Ok"}))) return;
      } else if (verb == "QUIT") {
        if (drop(Stage::quit)) return;
        respond(reply_for(Stage::quit, {221, "2.0.0 Bye"}));
        return;
      } else {
        if (!respond({500, "5.5.2 command not recognized"})) return;
      }
    }
  };
  run();
  s.closed = true;
  publish(index, s);
}

}  // namespace danemta::lab
