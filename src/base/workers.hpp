// Named worker threads around an io_context: the relay's intake loop, its
// spool and AUTH workers. The names show in `top -H`, `ps -L` and
// /proc/PID/task/*/comm, so an operator can tell which part of the relay
// uses the CPU.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace danemta {

class Workers {
 public:
  // `count` threads named `name` (at most 15 characters: the kernel's
  // limit) run the context until join() or stop().
  Workers(std::string name, std::size_t count);
  ~Workers();  // stop()
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  boost::asio::io_context& context() { return io_; }

  // Returns once the work queued so far, and whatever it queues in turn,
  // has run; the threads then end.
  void join();
  // Returns once each thread has finished the handler it is running; work
  // still queued stays queued and never runs.
  void stop();

 private:
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
};

}  // namespace danemta
