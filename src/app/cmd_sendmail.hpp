// `danemta sendmail ...`, and the danemta binary invoked as `sendmail` or
// `mailq`: the sendmail command applications call, submitting to the
// running relay over SMTP (docs/operations.md, "The sendmail command").
#pragma once

#include <string>
#include <vector>

namespace danemta::app {

// The configuration file when neither -C nor --config names one (used only
// if it exists; otherwise the built-in defaults apply).
inline constexpr const char* kDefaultConfigPath = "/etc/danemta/danemta.toml";

// `args`: the arguments after the program name (or after "sendmail");
// `config_path`: from danemta's --config, "" when not given (sendmail's -C
// wins); `name`: how errors start ("sendmail", "danemta sendmail");
// `mailq`: list the queue whatever the flags say. Returns a sysexits.h
// status: 0, 64 usage, 65 data, 67 recipient refused, 69 relay refuses,
// 74 input, 75 try again later, 78 configuration.
int run_sendmail(const std::vector<std::string>& args, const std::string& config_path,
                 const std::string& name, bool mailq);

}  // namespace danemta::app
