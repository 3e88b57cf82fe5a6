#include "dns/unbound_resolver.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unbound.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "dns/trust_anchor.hpp"
#include "dns/wire.hpp"

namespace danemta::dns {

namespace asio = boost::asio;

namespace {

// IANA root zone trust anchors (https://data.iana.org/root-anchors/root-anchors.xml,
// RFC 9718): KSK-2017 and KSK-2024, algorithm 8, SHA-256 digests (RFC 4509).
constexpr const char* kRootAnchors[] = {
    ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",
    ". IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16",
};

constexpr int kClassIn = 1;

struct UbCtxDelete {
  void operator()(ub_ctx* ctx) const { ub_ctx_delete(ctx); }
};
using UbCtxPtr = std::unique_ptr<ub_ctx, UbCtxDelete>;

struct UbResultFree {
  void operator()(ub_result* r) const { ub_resolve_free(r); }
};
using UbResultPtr = std::unique_ptr<ub_result, UbResultFree>;

std::string ub_error(int err) {
  return ub_strerror(err);
}

std::string duration_text(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

// "IP" or "IP@PORT" (config::valid_forwarder has accepted it).
bool is_loopback(const std::string& forwarder) {
  const std::string host = forwarder.substr(0, forwarder.rfind('@'));
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

// ub_ctx_add_ta_file only records the name; libunbound reads the file when the
// first query starts and then fails every lookup. Reading and checking it here
// turns a bad path or a malformed record into a start-up error.
Result<void> check_trust_anchor_file(const std::string& path) {
  auto anchors = read_trust_anchor_file(path);
  if (!anchors) return tl::unexpected(anchors.error());
  return {};
}

}  // namespace

struct UnboundResolver::Impl : std::enable_shared_from_this<UnboundResolver::Impl> {
  struct Batch {
    std::vector<Query> queries;
    std::vector<Answer> answers;
    std::size_t remaining = 0;
    std::function<void(std::vector<Answer>)> done;
  };

  // One query in flight. `mydata` for libunbound; lives until its callback ran
  // or ub_cancel succeeded, so libunbound never sees a dangling pointer.
  struct Pending {
    Pending(Impl& owner, std::uint64_t id, std::shared_ptr<Batch> b, std::size_t i)
        : impl(&owner), serial(id), batch(std::move(b)), index(i), timer(owner.io) {}
    Impl* impl;
    std::uint64_t serial;
    std::shared_ptr<Batch> batch;
    std::size_t index;
    int async_id = 0;
    bool completed = false;  // answered (timeout); waiting only for libunbound to let go
    asio::steady_timer timer;
  };

  Impl(asio::io_context& context, UbCtxPtr c, std::chrono::milliseconds t)
      : io(context), ctx(std::move(c)), fd(context, ub_fd(ctx.get())), timeout(t) {}

  ~Impl() {
    for (auto& [serial, p] : pending) ub_cancel(ctx.get(), p->async_id);
    pending.clear();
    fd.release();  // ub_ctx_delete closes it
  }

  // A batch with a failed answer waits for the probe (wire.hpp
  // probe_query) that tells a broken destination from a broken resolver.
  void resolve(std::vector<Query> queries, std::function<void(std::vector<Answer>)> done) {
    resolve_batch(std::move(queries), [weak = weak_from_this(), done = std::move(done)](
                                          std::vector<Answer> answers) mutable {
      auto self = weak.lock();
      if (!self) return;  // destroyed: `done` is never called
      if (!needs_probe(answers)) {
        done(std::move(answers));
        return;
      }
      self->resolve_batch({probe_query()}, [answers = std::move(answers), done = std::move(done)](
                                               std::vector<Answer> probe) mutable {
        apply_probe(answers, probe.front());
        done(std::move(answers));
      });
    });
  }

  void resolve_batch(std::vector<Query> queries, std::function<void(std::vector<Answer>)> done) {
    auto batch = std::make_shared<Batch>();
    batch->answers.resize(queries.size());
    batch->remaining = queries.size();
    batch->queries = std::move(queries);
    batch->done = std::move(done);
    if (batch->remaining == 0) {
      asio::post(io, [batch] { batch->done(std::move(batch->answers)); });
      return;
    }
    for (std::size_t i = 0; i < batch->queries.size(); ++i) start(batch, i);
    arm();
  }

  void start(const std::shared_ptr<Batch>& batch, std::size_t index) {
    const std::uint64_t serial = next_serial++;
    auto owned = std::make_unique<Pending>(*this, serial, batch, index);
    Pending& p = *owned;
    pending.emplace(serial, std::move(owned));
    ++active;

    const Query& q = batch->queries[index];
    const std::string name = q.name.empty() ? "." : q.name;
    const int rc = ub_resolve_async(ctx.get(), name.c_str(), static_cast<int>(q.type), kClassIn, &p,
                                    &Impl::on_result, &p.async_id);
    if (rc != 0) {
      complete(p, indeterminate_answer(q, "cannot start the query: " + ub_error(rc)));
      pending.erase(serial);
      return;
    }
    p.timer.expires_after(timeout);
    p.timer.async_wait([weak = weak_from_this(), serial](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->on_timeout(serial);
    });
  }

  // Keeps one wait on ub_fd outstanding while any query is unanswered.
  void arm() {
    if (waiting || active == 0) return;
    waiting = true;
    fd.async_wait(asio::posix::stream_descriptor::wait_read,
                  [weak = weak_from_this()](const boost::system::error_code& ec) {
                    auto self = weak.lock();
                    if (!self) return;
                    self->waiting = false;
                    if (!ec) self->process();
                    self->arm();
                  });
  }

  void process() {
    const int rc = ub_process(ctx.get());
    if (rc == 0) return;
    std::vector<std::uint64_t> serials;
    for (auto& [serial, p] : pending) {
      if (!p->completed) serials.push_back(serial);
    }
    for (std::uint64_t serial : serials) abandon(serial, "resolver failure: " + ub_error(rc));
  }

  // ub_callback_type. Runs inside ub_process, on the io thread.
  static void on_result(void* mydata, int err, ub_result* result) {
    UbResultPtr owned(result);
    auto* p = static_cast<Pending*>(mydata);
    Impl& self = *p->impl;
    const std::uint64_t serial = p->serial;
    if (!p->completed) {
      RawResult raw;
      raw.err = err;
      if (err != 0) raw.err_text = "resolver error: " + ub_error(err);
      if (owned) {
        raw.rcode = owned->rcode;
        raw.secure = owned->secure != 0;
        raw.bogus = owned->bogus != 0;
        raw.nxdomain = owned->nxdomain != 0;
        raw.havedata = owned->havedata != 0;
        if (owned->why_bogus != nullptr) raw.why_bogus = owned->why_bogus;
        if (owned->answer_packet != nullptr && owned->answer_len > 0) {
          const auto* bytes = static_cast<const std::uint8_t*>(owned->answer_packet);
          raw.packet.assign(bytes, bytes + owned->answer_len);
        }
      } else if (err == 0) {
        raw.err = UB_NOMEM;
        raw.err_text = "resolver returned no result";
      }
      self.complete(*p, build_answer(p->batch->queries[p->index], raw));
    }
    self.pending.erase(serial);
  }

  void on_timeout(std::uint64_t serial) {
    abandon(serial, "timeout after " + duration_text(timeout));
    if (active == 0 && waiting) fd.cancel();  // nothing left to wait for
  }

  // Answers an unanswered query as indeterminate and tells libunbound to drop it.
  void abandon(std::uint64_t serial, std::string why) {
    auto it = pending.find(serial);
    if (it == pending.end() || it->second->completed) return;
    Pending& p = *it->second;
    complete(p, indeterminate_answer(p.batch->queries[p.index], std::move(why)));
    // After a successful ub_cancel the callback is never called (unbound.h);
    // otherwise the Pending waits for it.
    if (ub_cancel(ctx.get(), p.async_id) == 0) pending.erase(it);
  }

  void complete(Pending& p, Answer answer) {
    p.completed = true;
    p.timer.cancel();
    --active;
    Batch& b = *p.batch;
    b.answers[p.index] = std::move(answer);
    if (--b.remaining == 0) {
      asio::post(io, [batch = p.batch] { batch->done(std::move(batch->answers)); });
    }
  }

  asio::io_context& io;
  UbCtxPtr ctx;
  asio::posix::stream_descriptor fd;  // does not own ub_fd: released before ctx goes
  std::chrono::milliseconds timeout;
  std::map<std::uint64_t, std::unique_ptr<Pending>> pending;
  std::uint64_t next_serial = 1;
  std::size_t active = 0;  // pending entries not yet answered
  bool waiting = false;
};

Result<std::unique_ptr<UnboundResolver>> UnboundResolver::create(asio::io_context& io,
                                                                 const config::DnsConfig& cfg) {
  UbCtxPtr ctx(ub_ctx_create());
  if (!ctx) return fail("cannot create the libunbound context");

  auto set = [&](const char* what, int rc) -> Result<void> {
    if (rc != 0) return fail(std::string(what) + ": " + ub_error(rc), Severity::permanent);
    return {};
  };
  // Threads, not the default fork (DESIGN.md section 6).
  if (auto r = set("ub_ctx_async", ub_ctx_async(ctx.get(), 1)); !r)
    return tl::unexpected(r.error());

  // Cache sizes ([dns] cache_mib): messages 1/4, RRsets 1/2, keys 1/4.
  const std::size_t kib = cfg.cache_mib * 1024;
  for (const auto& [option, size] :
       {std::pair{"msg-cache-size:", kib / 4}, std::pair{"rrset-cache-size:", kib / 2},
        std::pair{"key-cache-size:", kib / 4}}) {
    const std::string value = std::to_string(size) + "k";
    if (auto r = set(option, ub_ctx_set_option(ctx.get(), option, value.c_str())); !r)
      return tl::unexpected(r.error());
  }

  bool loopback = false;
  for (const std::string& fwd : cfg.forwarders) {
    if (!config::valid_forwarder(fwd)) {
      return fail("bad forwarder \"" + fwd + "\": want IP or IP@PORT", Severity::permanent);
    }
    if (int rc = ub_ctx_set_fwd(ctx.get(), fwd.c_str()); rc != 0) {
      return fail("bad forwarder \"" + fwd + "\": " + ub_error(rc), Severity::permanent);
    }
    loopback = loopback || is_loopback(fwd);
  }
  if (loopback) {
    if (auto r = set("do-not-query-localhost",
                     ub_ctx_set_option(ctx.get(), "do-not-query-localhost:", "no"));
        !r) {
      return tl::unexpected(r.error());
    }
  }
  if (!cfg.trust_anchor_file.empty()) {
    if (auto r = check_trust_anchor_file(cfg.trust_anchor_file); !r) {
      return tl::unexpected(r.error());
    }
    if (int rc = ub_ctx_add_ta_file(ctx.get(), cfg.trust_anchor_file.c_str()); rc != 0) {
      return fail("cannot read trust anchor file " + cfg.trust_anchor_file + ": " + ub_error(rc),
                  Severity::permanent);
    }
  } else {
    for (const char* anchor : kRootAnchors) {
      if (auto r = set("built-in root trust anchor", ub_ctx_add_ta(ctx.get(), anchor)); !r) {
        return tl::unexpected(r.error());
      }
    }
  }

  if (ub_fd(ctx.get()) < 0) return fail("libunbound has no result descriptor");
  auto impl = std::make_shared<Impl>(io, std::move(ctx), cfg.timeout);
  return std::unique_ptr<UnboundResolver>(new UnboundResolver(std::move(impl)));
}

UnboundResolver::UnboundResolver(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

UnboundResolver::~UnboundResolver() = default;

void UnboundResolver::resolve(std::vector<Query> queries,
                              std::function<void(std::vector<Answer>)> done) {
  impl_->resolve(std::move(queries), std::move(done));
}

}  // namespace danemta::dns
