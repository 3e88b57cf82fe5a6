// `danemta passwd USER`: a line for the AUTH credentials file ([relay]
// credentials_file), "USER:$y$...", made from a password read on standard
// input (asked twice without echo on a terminal, else the first line).
#pragma once

#include <string>

namespace danemta::app {

int run_passwd(const std::string& user);

}  // namespace danemta::app
