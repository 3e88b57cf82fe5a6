// RAII for SQLite handles, shared by the SQLite-backed stores (queue, tlsrpt).
// Header-only: the user links SQLite::SQLite3.
#pragma once

#include <sqlite3.h>

#include <memory>

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

}  // namespace danemta::sqlite
