#include "lab/lab.hpp"

#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace danemta::lab {
namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

struct Outcome {
  int status = -1;  // exit code, or -1 when the command did not exit normally
  std::string output;
};

// Runs `lab.py ARGS`, stdout and stderr together.
Outcome run_lab(const std::string& args) {
  const std::string command =
      "python3 " + shell_quote(DANEMTA_LAB_SCRIPT) + " " + args + " 2>&1 </dev/null";
  Outcome outcome;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    outcome.output = "popen failed";
    return outcome;
  }
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) outcome.output.append(buffer, n);
  const int status = ::pclose(pipe);
  if (status != -1 && WIFEXITED(status)) outcome.status = WEXITSTATUS(status);
  return outcome;
}

std::string make_world_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  std::string templ = base + "/danemta-lab-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "lab: mkdtemp in " + base);
  }
  return std::string(buf.data());
}

void tear_down(const std::string& dir) {
  run_lab("down " + shell_quote(dir));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);  // backstop: the directory is ours (mkdtemp)
}

}  // namespace

World::World(const std::string& spec_json) : dir_(make_world_dir()) {
  try {
    const std::string spec_path = dir_ + "/spec.json";
    {
      std::ofstream spec(spec_path);
      spec << spec_json;
      if (!spec.flush()) throw std::runtime_error("lab: cannot write " + spec_path);
    }
    const Outcome up = run_lab("up " + shell_quote(spec_path) + " " + shell_quote(dir_));
    if (up.status != 0) {
      std::string message = up.output;
      while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
        message.pop_back();
      }
      throw std::runtime_error("lab.py up failed (exit " + std::to_string(up.status) +
                               "): " + message);
    }
    std::ifstream in(dir_ + "/lab.json");
    if (!in) throw std::runtime_error("lab: no lab.json after lab.py up: " + up.output);
    const nlohmann::json info = nlohmann::json::parse(in, nullptr, false);
    if (info.is_discarded() || !info.contains("port") || !info.contains("resolver") ||
        !info.contains("trust_anchor_file")) {
      throw std::runtime_error("lab: malformed lab.json in " + dir_);
    }
    const auto port = info.at("port").get<long>();
    if (port <= 0 || port > std::numeric_limits<std::uint16_t>::max()) {
      throw std::runtime_error("lab: bad port in lab.json: " + std::to_string(port));
    }
    port_ = static_cast<std::uint16_t>(port);
    resolver_ = info.at("resolver").get<std::string>();
    trust_anchor_file_ = info.at("trust_anchor_file").get<std::string>();
  } catch (...) {
    tear_down(dir_);
    throw;
  }
}

void World::update(const std::string& spec_json) {
  const std::string spec_path = dir_ + "/spec-update.json";
  {
    std::ofstream spec(spec_path);
    spec << spec_json;
    if (!spec.flush()) throw std::runtime_error("lab: cannot write " + spec_path);
  }
  const Outcome out = run_lab("update " + shell_quote(spec_path) + " " + shell_quote(dir_));
  if (out.status != 0)
    throw std::runtime_error("lab.py update failed (exit " + std::to_string(out.status) +
                             "): " + out.output);
}

World::~World() {
  tear_down(dir_);
}

}  // namespace danemta::lab
