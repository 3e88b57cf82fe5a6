// libFuzzer target: what `danemta web` reads from visitors (web/guard.hpp),
// on arbitrary bytes. The first byte picks the function; checks their
// contracts:
// - validate_domain: what it accepts is lower-case letter-digit-hyphen
//   labels of 1..63 octets, no hyphen at a label's ends, at least two labels,
//   at most 253 octets, and validating it again gives it back unchanged;
// - validate_port: an accepted port is one of the allowed ones;
// - forwarded_client (peer, a newline, then the X-Forwarded-For value): the
//   peer itself, or an address text that parses and that the header holds;
// - query_value, private_target, client_key: no crash, bounded output.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "web/guard.hpp"

namespace {

using namespace danemta;

bool ldh_lower(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

void check_domain(std::string_view input) {
  const auto d = web::validate_domain(input);
  if (!d) {
    if (d.error().message.empty()) __builtin_trap();
    return;
  }
  if (d->empty() || d->size() > 253) __builtin_trap();
  std::size_t labels = 0;
  std::size_t start = 0;
  while (start <= d->size()) {
    std::size_t end = d->find('.', start);
    if (end == std::string::npos) end = d->size();
    const std::string_view label = std::string_view(*d).substr(start, end - start);
    if (label.empty() || label.size() > 63) __builtin_trap();
    for (char c : label)
      if (!ldh_lower(c)) __builtin_trap();
    if (label.front() == '-' || label.back() == '-') __builtin_trap();
    ++labels;
    start = end + 1;
  }
  if (labels < 2) __builtin_trap();
  const auto again = web::validate_domain(*d);
  if (!again || *again != *d) __builtin_trap();
}

void check_port(std::string_view input) {
  const std::vector<std::uint16_t> allowed = {25, 587};
  const auto p = web::validate_port(input, allowed);
  if (p && *p != 25 && *p != 587) __builtin_trap();
}

void check_forwarded(std::string_view input) {
  const std::size_t nl = input.find('\n');
  const std::string peer(input.substr(0, nl));
  const std::string_view header = nl == std::string_view::npos ? "" : input.substr(nl + 1);
  static const std::vector<config::Network> trusted = {
      {"127.0.0.0", 8}, {"10.0.0.0", 8}, {"::1", 128}, {"fd00::", 8}};
  const std::string client = web::forwarded_client(peer, header, trusted);
  if (client == peer) return;
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(client, ec);
  if (ec || address.to_string() != client) __builtin_trap();
  // Only a trusted peer's header is read.
  if (!config::contains(trusted[0], peer) && !config::contains(trusted[1], peer) &&
      !config::contains(trusted[2], peer) && !config::contains(trusted[3], peer))
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 6) {
    case 0:
      check_domain(input);
      break;
    case 1:
      check_port(input);
      break;
    case 2:
      check_forwarded(input);
      break;
    case 3:
      if (web::query_value(input, "domain").size() > input.size()) __builtin_trap();
      break;
    case 4:
      web::private_target(std::string(input));
      break;
    case 5:
      if (web::client_key(std::string(input)).size() > input.size() + 64) __builtin_trap();
      break;
  }
  return 0;
}
