#include "delivery/session_cache.hpp"

#include <algorithm>
#include <sstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "base/text.hpp"
#include "smtp/client.hpp"

namespace danemta::delivery {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

std::string session_key(const dane::DestinationPlan& plan, const dane::HostPlan& host,
                        const std::string& address, const std::string& helo_name) {
  // Every field that decides what the session had to prove. Length-prefixed
  // so that no two different plans can give the same text.
  std::ostringstream k;
  auto field = [&k](std::string_view v) { k << v.size() << ':' << v << ';'; };
  field(plan.domain);
  field(std::to_string(plan.port));
  field(config::to_string(plan.policy));
  field(host.name);
  field(address);
  field(dane::to_string(host.requirement));
  field(host.sni());
  field(host.mx_secure ? "mx-secure" : "mx-insecure");
  field(helo_name);
  std::vector<std::string> records;
  for (const dns::TlsaRecord& r : host.usable_tlsa)
    records.push_back(std::to_string(r.usage) + " " + std::to_string(r.selector) + " " +
                      std::to_string(r.mtype) + " " + to_hex(r.data));
  std::sort(records.begin(), records.end());
  for (const std::string& r : records) field(r);
  field("names");
  std::vector<std::string> names = host.reference_names;
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) field(n);
  return k.str();
}

struct SessionCache::Entry {
  std::string key;
  ParkedSession session;
  Clock::time_point idle_since;
};

namespace {

asio::awaitable<void> quit_session(std::unique_ptr<smtp::Client> client) {
  co_await client->quit();
}

void close_session(asio::io_context& io, std::unique_ptr<smtp::Client> client) {
  if (!client) return;
  asio::co_spawn(io, quit_session(std::move(client)), asio::detached);
}

}  // namespace

SessionCache::SessionCache(asio::io_context& io, Limits limits)
    : io_(io),
      limits_(limits),
      entries_(std::make_shared<std::list<Entry>>()),
      closed_(std::make_shared<bool>(false)),
      timer_(std::make_unique<asio::steady_timer>(io)) {}

SessionCache::~SessionCache() {
  for (Entry& e : *entries_)
    if (e.session.client) e.session.client->close();
  entries_->clear();
}

std::optional<ParkedSession> SessionCache::take(const std::string& key) {
  expire();
  // Most recently parked first: the likeliest to be alive.
  for (auto it = entries_->rbegin(); it != entries_->rend(); ++it) {
    if (it->key != key) continue;
    ParkedSession s = std::move(it->session);
    entries_->erase(std::next(it).base());
    if (!s.client->connected()) continue;  // the server closed it meanwhile
    ++reused_;
    return s;
  }
  return std::nullopt;
}

void SessionCache::park(const std::string& key, ParkedSession session) {
  const Clock::time_point now = Clock::now();
  if (*closed_ || limits_.idle <= Clock::duration::zero() || !session.client ||
      !session.client->connected() || now - session.opened >= limits_.max_age) {
    close_session(io_, std::move(session.client));
    return;
  }
  entries_->push_back(Entry{key, std::move(session), now});
  while (entries_->size() > limits_.max_sessions) {
    close_session(io_, std::move(entries_->front().session.client));
    entries_->pop_front();
  }
  arm();
}

void SessionCache::close_all() {
  *closed_ = true;
  for (Entry& e : *entries_) close_session(io_, std::move(e.session.client));
  entries_->clear();
  timer_->cancel();
}

std::size_t SessionCache::parked() const {
  return entries_->size();
}

void SessionCache::expire() {
  const Clock::time_point now = Clock::now();
  for (auto it = entries_->begin(); it != entries_->end();) {
    const bool idle = now - it->idle_since >= limits_.idle;
    const bool old = now - it->session.opened >= limits_.max_age;
    const bool gone = !it->session.client->connected();
    if (idle || old || gone) {
      close_session(io_, std::move(it->session.client));
      it = entries_->erase(it);
    } else {
      ++it;
    }
  }
}

void SessionCache::arm() {
  if (entries_->empty()) return;
  // The earliest idle deadline (entries are parked in time order).
  timer_->expires_at(entries_->front().idle_since + limits_.idle);
  std::weak_ptr<std::list<Entry>> alive = entries_;
  timer_->async_wait([this, alive](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    expire();
    arm();
  });
}

}  // namespace danemta::delivery
