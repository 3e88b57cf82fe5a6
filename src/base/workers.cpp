#include "base/workers.hpp"

#include <pthread.h>

namespace danemta {

Workers::Workers(std::string name, std::size_t count) : work_(boost::asio::make_work_guard(io_)) {
  if (name.size() > 15) name.resize(15);
  threads_.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    threads_.emplace_back([this, name]() {
      pthread_setname_np(pthread_self(), name.c_str());
      io_.run();
    });
  }
}

Workers::~Workers() {
  stop();
}

void Workers::join() {
  work_.reset();
  for (std::thread& t : threads_)
    if (t.joinable()) t.join();
}

void Workers::stop() {
  io_.stop();
  join();
}

}  // namespace danemta
