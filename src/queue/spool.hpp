// The durable queue: accepted messages and each recipient's fate. The relay
// answers 250 to a submitter only after enqueue() returned, and enqueue()
// returns only after the message is on stable storage (fsync): a message
// acknowledged with 250 survives kill -9 and power loss (DESIGN.md section 8).
//
// Spool is the narrow interface the relay uses; SqliteSpool is the embedded
// implementation (WAL). Later implementations (PostgreSQL for fleet mode)
// implement the same interface. Methods block (they may fsync): call them off
// the event loop. Implementations are safe to call from several threads.
//
// Errors: storage failures (I/O, disk full, locked, corrupt file) are
// transient and name the spool's path and the storage engine's message;
// misuse that a retry cannot fix (no recipient, an address without '@', an
// unknown message id or recipient index) is permanent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.hpp"
#include "base/text_source.hpp"

namespace danemta::queue {

// Seconds since the epoch (UTC). The relay passes the clock in; the spool
// never reads it itself, so tests control time.
using Time = std::int64_t;

struct NewMessage {
  std::string mail_from;                // "" = null reverse-path (a bounce)
  std::vector<std::string> recipients;  // at least one; each "local@domain"
  std::string data;                     // the message as received (CRLF lines, unstuffed)
  Time received_at = 0;
  std::string received_from;  // submitter, for logs: "[127.0.0.1]" or "local"
  // A TLS report (RFC 8460 section 3): delivered without DANE or TLS
  // enforcement, and its sessions are not themselves reported.
  bool tls_report = false;
  // The submitter's MAIL parameters, passed on to the next hop:
  // BODY=8BITMIME (RFC 6152) and SMTPUTF8 (RFC 6531).
  bool body_8bitmime = false;
  bool smtputf8 = false;
  // received_at in milliseconds since the epoch, for the delays in the log;
  // 0: unknown (received_at is used).
  std::int64_t received_ms = 0;
};

enum class RecipientState { pending, delivered, bounced };
std::string_view to_string(RecipientState s);

struct RecipientStatus {
  std::string address;
  std::string domain;  // lower case
  RecipientState state = RecipientState::pending;
  // On hold (operator action, `danemta queue hold`): a pending recipient
  // that is never picked for delivery until released.
  bool held = false;
  int attempts = 0;
  // Pending: when the next attempt is due. Delivered or bounced: when it
  // became so (recorded since spool schema 6; before: its message's arrival).
  Time next_attempt_at = 0;
  std::string last_dsn;         // "4.7.323"
  std::string last_diagnostic;  // reason or server reply of the last attempt
  std::string last_outcome;     // dane::OutcomeInfo::name, or "" (server reply)
};

// One destination's share of one message: the unit of delivery.
struct Job {
  std::string message_id;
  std::string domain;
  std::string mail_from;
  Time received_at = 0;
  std::vector<std::size_t> recipient_indexes;  // into the message's recipients
  std::vector<std::string> recipients;         // same order
  std::vector<bool> delay_warned;              // same order: a delay notice went out
  int attempts = 0;                            // max over these recipients
  bool tls_report = false;                     // NewMessage::tls_report
  bool body_8bitmime = false;                  // NewMessage::body_8bitmime
  bool smtputf8 = false;                       // NewMessage::smtputf8
  std::int64_t received_ms = 0;                // NewMessage::received_ms (0: received_at)
};

struct MessageInfo {
  std::string id;
  std::string mail_from;
  Time received_at = 0;
  std::int64_t received_ms = 0;  // NewMessage::received_ms (0: unknown)
  std::string received_from;
  std::size_t size = 0;
  // When the last pending recipient was delivered or bounced (the latest of
  // the recipients' times); 0 while one is pending. Finished messages are
  // removed once this is old enough (purge_finished).
  Time finished_at = 0;
  std::vector<RecipientStatus> recipients;
  bool finished() const;  // no recipient pending (every one delivered or bounced)
  // Some pending recipient is on hold / every pending recipient is (and
  // there is one).
  bool held_in_part() const;
  bool held() const;
};

// The recipients an operator command applies to: those of the messages
// `ids`, those at one of `domains` (compared exactly, case-insensitively,
// after removing one trailing dot: "example.org" never matches
// "notexample.org" or "mail.example.org"), those with one of `addresses`
// (the local part compared exactly, the domain as above), or with `all`
// every one. The union of what is given; empty selects nothing. (Every
// member has an initialiser, so `Selector{.domains = {"example.org"}}`
// leaves the others empty.)
struct Selector {
  std::vector<std::string> ids{};
  std::vector<std::string> domains{};
  std::vector<std::string> addresses{};
  bool all = false;

  // Whether a recipient of message `message_id` with `address` at `domain`
  // (the stored, lower-case domain) is selected.
  bool matches(const std::string& message_id, std::string_view address,
               std::string_view domain) const;
};

// Whether `wanted` ("Local@Example.ORG") names the recipient `address`:
// local parts equal exactly, domains equal ignoring case and one trailing dot.
bool same_recipient(std::string_view wanted, std::string_view address);

// What an operator command does to the pending recipients it selects.
enum class QueueAction {
  hold,     // put on hold: never picked for delivery until released
  release,  // take off hold and make due now
  requeue,  // make due now (those not on hold; already due ones unchanged)
};
std::string_view to_string(QueueAction a);  // "hold", "release", "requeue"

struct Changes {
  // Per message, in id order: how many of its recipients changed.
  std::vector<std::pair<std::string, std::size_t>> messages;
  std::vector<std::string> missing;  // ids in the selector that name no message
  std::size_t recipients() const;
};

struct Removal {
  std::vector<std::string> removed;  // in id order
  std::vector<std::string> missing;  // ids in the selector that name no message
  // Selected by domain or address but kept: the message also has pending
  // recipients that were not selected (deleting it would lose their mail).
  std::vector<std::string> kept;
};

struct Counts {
  std::size_t unfinished = 0;  // messages with a pending recipient
  std::size_t held = 0;        // of those, messages whose pending recipients are all held
  std::size_t finished = 0;
};

// What the queue holds, for monitoring (danemta_queue_* in docs/metrics.md).
struct QueueCounts {
  std::size_t due = 0;        // pending recipients whose next attempt is due (or under way)
  std::size_t deferred = 0;   // pending recipients waiting for a later retry
  std::size_t delivered = 0;  // finished recipients kept until `danemta queue purge`
  std::size_t bounced = 0;
  std::size_t messages = 0;            // messages with a pending recipient
  std::optional<Time> oldest_pending;  // received_at of the oldest of those
  std::size_t destinations = 0;        // domains with a pending recipient
  std::vector<std::pair<std::string, std::size_t>> top_destinations;  // see Spool::counts
};

// What one attempt did to one recipient of a job.
struct RecipientUpdate {
  std::size_t index = 0;
  RecipientState state = RecipientState::pending;  // pending = deferred
  Time next_attempt_at = 0;                        // for pending
  std::string dsn;
  std::string diagnostic;
  std::string outcome;
  // The sender has now been sent a delay notice for this recipient (kept
  // once set: one notice per recipient).
  bool delay_warned = false;
};

// A message's text on its way into the spool, appended as it arrives so that
// a large message is never held whole in memory: a small text stays in memory
// (and is stored in the database), a large one goes to a file next to the
// spool as it is appended. Used from one thread at a time; destroying a draft
// that was not enqueued discards it.
class Draft {
 public:
  virtual ~Draft() = default;
  // Appends text. The first failure (Cause::storage_full for a full disk)
  // breaks the draft: later appends do nothing and return that error again,
  // and enqueue() refuses it.
  virtual Result<void> append(std::string_view text) = 0;
  virtual std::size_t size() const = 0;
};

class Spool {
 public:
  virtual ~Spool() = default;

  // A new, empty draft. Its append() may block on the file system (write,
  // never fsync); enqueue(message, draft) makes it durable.
  virtual Result<std::unique_ptr<Draft>> draft() = 0;
  // Like enqueue(message) with the draft's text (`message.data` is ignored).
  virtual Result<std::string> enqueue(const NewMessage& message, std::unique_ptr<Draft> text) = 0;
  // The message's text for reading in pieces; a permanent error if there is
  // no such message.
  virtual Result<std::unique_ptr<TextSource>> reader(const std::string& message_id) = 0;

  // Stores the message durably and returns its queue id (letters and digits,
  // unique). Only after this returns may the submitter be told 250.
  // Every recipient starts pending, due at received_at. The domain of a
  // recipient is the part after its last '@', lower-cased.
  // Ids sort by the time they were issued (SqliteSpool: 13 upper-case hex
  // digits of microseconds since the epoch, then 4 random hex digits).
  virtual Result<std::string> enqueue(const NewMessage& message) = 0;

  // Jobs with pending recipients not on hold whose next attempt is due at
  // `now`, oldest first, at most `limit`, skipping messages in `busy` (being
  // delivered).
  // A job holds the due recipients of one message for one domain; jobs are
  // ordered by (received_at, message id, domain), recipients by index.
  virtual Result<std::vector<Job>> due(Time now, std::size_t limit,
                                       const std::vector<std::string>& busy) = 0;

  // The earliest next_attempt_at of any pending recipient not on hold;
  // nullopt if none.
  virtual Result<std::optional<Time>> next_due() = 0;

  // The message as received; a permanent error if there is no such message.
  virtual Result<std::string> data(const std::string& message_id) = 0;

  // Records one attempt's results durably (each update increments that
  // recipient's attempt count). A recipient left pending keeps its hold; one
  // delivered or bounced is no longer held and keeps `now` as when it
  // finished (RecipientStatus::next_attempt_at). All or nothing: an unknown
  // message or recipient index is a permanent error and changes nothing.
  // Returns whether the message is now finished (no recipient pending).
  virtual Result<bool> record(const std::string& message_id,
                              const std::vector<RecipientUpdate>& updates, Time now) = 0;

  // info: nullopt if there is no such message. list: the unfinished
  // messages (every message with `finished_too`), ordered like due()
  // (received_at, then id); recipients by index in both.
  virtual Result<std::optional<MessageInfo>> info(const std::string& message_id) = 0;
  virtual Result<std::vector<MessageInfo>> list(bool finished_too) = 0;
  virtual Result<Counts> counts() = 0;

  // Applies `action` to the pending recipients `selector` picks, in one
  // transaction (operator commands; a running relay sees the result at its
  // next pass). A recipient being delivered meanwhile keeps its attempt:
  // its result is recorded as usual, and a hold then keeps it from the next.
  virtual Result<Changes> change(QueueAction action, const Selector& selector, Time now) = 0;

  // Deletes a message whatever its state (operator action). False if absent.
  virtual Result<bool> remove(const std::string& message_id) = 0;
  // Deletes the selected messages in one transaction: by id (or `all`) each
  // message whatever its state; by domain or address each message that has
  // a pending recipient and whose pending recipients are all selected.
  virtual Result<Removal> remove(const Selector& selector) = 0;

  // Deletes up to `limit` messages that finished at or before `finished_by`
  // (every recipient delivered or bounced by then; never one with a pending
  // recipient). Returns how many.
  virtual Result<std::size_t> purge_finished(Time finished_by, std::size_t limit) = 0;
  // Recipients by state (pending ones due at `now` or later), and the
  // `top` domains with the most pending recipients (most first, then by
  // name) with their counts. One read transaction.
  virtual Result<QueueCounts> counts(Time now, std::size_t top) = 0;
};

// Opens (creating if needed) the SQLite spool at `path` (WAL, synchronous=FULL).
// Texts over `inline_max` bytes are kept in files under `path` + "-bodies/"
// (mode 0700), written and fsync'd before the row that names them commits;
// files left by a crash (no row, older than an hour) are removed at open.
Result<std::unique_ptr<Spool>> open_sqlite_spool(const std::string& path,
                                                 std::size_t inline_max = 256 * 1024);

// Retry schedule: the delay before attempt `attempts + 1` after `attempts`
// failed ones: `first` (5 min), then doubling up to `cap` (1 h; Postfix's
// minimal and maximal backoff), with up to `jitter_fraction` of random spread
// (the caller passes `random01` in [0,1)). attempts <= 1 gives the first
// delay; the cap applies before jitter; random01 and jitter_fraction are
// clamped to [0,1]; never less than `floor` (60 s, or `first` if smaller).
Time retry_delay(int attempts, double random01, Time first = 300, Time cap = 3600,
                 double jitter_fraction = 0.1);

}  // namespace danemta::queue
