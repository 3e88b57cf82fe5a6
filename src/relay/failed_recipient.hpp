// A recipient's delivery result as the bounce or delay notice shows it.
// Pure: no I/O.
#pragma once

#include <cstdint>
#include <string>

#include "delivery/deliver.hpp"
#include "dsn/dsn.hpp"

namespace danemta::relay {

// RFC 3464 section 2.3.6: the Diagnostic-Code is "smtp;" with the reply the
// remote server sent (RecipientResult::reply, a 421 at the greeting
// included), and "X-danemta;" with the outcome name and danemta's reason for
// everything decided locally (DANE, DNSSEC, DNS, timeouts, connections, an
// unreadable spool file). An outcome adds its summary and the fix for the
// receiving admin whichever type the diagnostic is. `status` is the code to
// report (the final one when the queue lifetime ended); `now` the last attempt.
dsn::FailedRecipient to_failed_recipient(const delivery::RecipientResult& rr,
                                         const std::string& status, std::int64_t now);

}  // namespace danemta::relay
