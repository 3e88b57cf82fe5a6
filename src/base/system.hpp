// Small facts about the host and the time, shared by the modules.
#pragma once

#include <cstdint>
#include <string>

namespace danemta {

// This host's name (gethostname), "localhost" when it has none.
std::string local_hostname();

// Seconds since the epoch formatted in UTC with a strftime format.
std::string utc_time(std::int64_t t, const char* format);

// RFC 5322 section 3.3 date-time in UTC ("Sun, 29 Nov 2026 20:00:00 +0000"),
// independent of the locale.
std::string rfc5322_date(std::int64_t t);

}  // namespace danemta
