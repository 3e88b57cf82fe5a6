// The DATA text on the wire (RFC 5321 4.1.1.4, 4.5.2, 2.3.8): the encoder the
// client sends with and the decoder the server receives with. Pure: no I/O.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

namespace danemta::smtp {

// Produces the DATA text in chunks: every line ending (CRLF, bare LF or bare
// CR) becomes CRLF (RFC 5321 2.3.8), a line starting with "." gets another
// "." (4.5.2), a missing final CRLF is added, and ".CRLF" ends it.
// `message` must outlive the encoder.
class DataEncoder {
 public:
  // The whole text at once.
  explicit DataEncoder(std::string_view message) : rest_(message) {}
  // The text in pieces: input() each piece while needs_input().
  DataEncoder() : last_(false) {}

  bool done() const { return finished_; }

  // Appends to `out` until it holds at least `want` bytes, the text ends, or
  // (streaming) the piece given is used up.
  void fill(std::string& out, std::size_t want);

  // Streaming: true when fill() can go no further without the next piece.
  bool needs_input() const { return !last_ && (rest_.empty() || rest_ == "\r"); }
  // Streaming: the next piece (`last`: the text ends with it). A CR left at
  // the end of the previous piece is kept in front of it, so a CRLF split
  // between pieces stays one line ending.
  void input(std::string_view piece, bool last);

 private:
  std::string_view rest_;
  std::string buffer_;  // streaming: the current piece
  bool last_ = true;
  bool line_start_ = true;
  bool finished_ = false;
};

// The whole of DataEncoder's output for `message`, ".CRLF" included.
std::string encode_data(std::string_view message);

// The DATA text decoder of the server (RFC 5321 4.5.2, 2.3.8). The text ends
// only at <CRLF>.<CRLF> (the DATA command's CRLF counts, so ".CRLF" at once is
// an empty message); a dot line after a bare LF or ended by a bare LF ends
// nothing (no SMTP smuggling): such lines are text. Bare LF line ends become
// CRLF; a bare CR stays as it is; a leading dot is removed from every line.
// Beyond `max` bytes of decoded text the rest is read and dropped, and
// overflow() is true (take() is then empty). The result does not depend on
// how the input is split between feed() calls.
//
// So for any text T, feeding encode_data(T) yields T with every line ending
// (CRLF, bare LF, bare CR) as CRLF and a final CRLF added when T is not empty
// and does not end in one, and done() exactly at the last octet.
class DataDecoder {
 public:
  explicit DataDecoder(std::size_t max) : max_(max) {}

  // Consumes bytes up to and including the end-of-data line; returns how
  // many were consumed (all of `in` unless done()).
  std::size_t feed(std::string_view in);

  bool done() const { return done_; }
  bool overflow() const { return overflow_; }
  // The decoded text since the last take() (moved out): called once after
  // done() it is the whole text; called after each feed() it streams it.
  std::string take() {
    std::string out = std::move(data_);
    data_.clear();
    return out;
  }
  // Octets decoded so far (taken or not).
  std::size_t size() const { return total_; }

 private:
  enum class State {
    bol,         // at the start of a line
    bol_dot,     // a line's leading "."
    bol_dot_cr,  // "." CR at the start of a line
    mid,         // inside a line
    mid_cr,      // a CR inside a line
  };

  void end_line(bool crlf);
  void emit(std::string_view s);

  std::size_t max_;
  State state_ = State::bol;
  bool after_crlf_ = true;
  bool done_ = false;
  bool overflow_ = false;
  std::size_t total_ = 0;
  std::string data_;
};

}  // namespace danemta::smtp
