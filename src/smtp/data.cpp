#include "smtp/data.hpp"

#include <algorithm>

namespace danemta::smtp {

void DataEncoder::input(std::string_view piece, bool last) {
  std::string next(rest_);
  next.append(piece);
  buffer_ = std::move(next);
  rest_ = buffer_;
  last_ = last;
}

void DataEncoder::fill(std::string& out, std::size_t want) {
  while (out.size() < want && !rest_.empty() && !needs_input()) {
    if (rest_.front() == '\r' || rest_.front() == '\n') {
      const bool crlf = rest_.size() >= 2 && rest_[0] == '\r' && rest_[1] == '\n';
      rest_.remove_prefix(crlf ? 2 : 1);
      out += "\r\n";
      line_start_ = true;
      continue;
    }
    if (line_start_ && rest_.front() == '.') out += '.';
    line_start_ = false;
    std::size_t run = rest_.find_first_of("\r\n");
    if (run == std::string_view::npos) run = rest_.size();
    run = std::min(run, want - out.size() + 1);
    out.append(rest_.substr(0, run));
    rest_.remove_prefix(run);
  }
  if (rest_.empty() && last_ && !finished_) {
    if (!line_start_) out += "\r\n";
    out += ".\r\n";
    finished_ = true;
  }
}

std::string encode_data(std::string_view message) {
  std::string out;
  DataEncoder encoder(message);
  while (!encoder.done()) encoder.fill(out, out.size() + 64 * 1024);
  return out;
}

std::size_t DataDecoder::feed(std::string_view in) {
  std::size_t i = 0;
  while (i < in.size() && !done_) {
    const char c = in[i];
    switch (state_) {
      case State::bol:
        if (c == '.') {
          state_ = State::bol_dot;
          ++i;
        } else {
          state_ = State::mid;
        }
        continue;
      case State::bol_dot:
        if (c == '\r') {
          state_ = State::bol_dot_cr;
          ++i;
        } else if (c == '\n') {
          end_line(false);
          ++i;
        } else {
          state_ = State::mid;
        }
        continue;
      case State::bol_dot_cr:
        if (c == '\n') {
          ++i;
          if (after_crlf_) {
            done_ = true;
          } else {
            end_line(true);
          }
        } else {
          state_ = State::mid_cr;
        }
        continue;
      case State::mid: {
        const auto stop = std::min(in.find_first_of("\r\n", i), in.size());
        emit(in.substr(i, stop - i));
        i = stop;
        if (i == in.size()) continue;
        if (in[i] == '\r') {
          state_ = State::mid_cr;
        } else {
          end_line(false);
        }
        ++i;
        continue;
      }
      case State::mid_cr:
        if (c == '\n') {
          end_line(true);
          ++i;
          continue;
        }
        emit("\r");  // a bare CR stays text
        if (c == '\r') {
          ++i;
        } else {
          state_ = State::mid;
        }
        continue;
    }
  }
  return i;
}

void DataDecoder::end_line(bool crlf) {
  emit("\r\n");
  after_crlf_ = crlf;
  state_ = State::bol;
}

void DataDecoder::emit(std::string_view s) {
  if (overflow_ || s.empty()) return;
  if (total_ + s.size() > max_) {
    overflow_ = true;
    std::string().swap(data_);
    return;
  }
  total_ += s.size();
  data_.append(s);
}

}  // namespace danemta::smtp
