// RAII for SQLite handles and prepared-statement use, shared by the SQLite-backed stores (queue,
// tlsrpt). Header-only: the user links SQLite::SQLite3.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace danemta::sqlite {

struct DbClose {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalize {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbPtr = std::unique_ptr<sqlite3, DbClose>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalize>;

// Passes `T**` to a C constructor and hands the result to `owner` at the end
// of the full expression, so a handle is owned on the line that creates it
// (SQLite allocates a connection even when opening fails).
template <class Ptr>
class OutPtr {
 public:
  explicit OutPtr(Ptr& owner) : owner_(owner) {}
  OutPtr(const OutPtr&) = delete;
  OutPtr& operator=(const OutPtr&) = delete;
  ~OutPtr() { owner_.reset(raw_); }
  operator typename Ptr::pointer *() { return &raw_; }

 private:
  Ptr& owner_;
  typename Ptr::pointer raw_ = nullptr;
};

template <class Ptr>
OutPtr<Ptr> out_ptr(Ptr& owner) {
  return OutPtr<Ptr>(owner);
}

// A cached prepared statement in use: binds, steps, reads columns, and resets
// itself when it goes out of scope so the next user starts clean.
class Query {
 public:
  explicit Query(sqlite3_stmt* stmt) : stmt_(stmt) {}
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  ~Query() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  Query& bind(int i, std::string_view text) {
    keep(sqlite3_bind_text64(stmt_, i, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
    return *this;
  }
  Query& bind_blob(int i, std::string_view bytes) {
    // A zero-length blob still needs a non-null pointer or SQLite stores NULL.
    static constexpr char kEmpty = 0;
    keep(sqlite3_bind_blob64(stmt_, i, bytes.empty() ? &kEmpty : bytes.data(), bytes.size(),
                             SQLITE_TRANSIENT));
    return *this;
  }
  Query& bind(int i, std::int64_t value) {
    keep(sqlite3_bind_int64(stmt_, i, value));
    return *this;
  }

  // SQLITE_ROW, SQLITE_DONE, or an error code (a failed bind included).
  int step() {
    if (bind_rc_ != SQLITE_OK) return bind_rc_;
    return sqlite3_step(stmt_);
  }

  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string() : std::string(p, static_cast<std::size_t>(n));
  }
  std::string blob(int col) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string() : std::string(p, static_cast<std::size_t>(n));
  }
  std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  void keep(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

}  // namespace danemta::sqlite
