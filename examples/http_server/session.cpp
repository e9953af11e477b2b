// session.cpp — Session: feeding the parser, deadlines, the output buffer, closing.
#include "session.hpp"

#include "http_response.hpp"

#include <algorithm>
#include <span>
#include <utility>

namespace http {
namespace {

// kOutputCapacity is the output buffer: about a hundred small pipelined responses, or one
// chunk of a file.
constexpr std::size_t kOutputCapacity = 16 * 1024;

// input_capacity must hold a whole head of the largest size allowed (see http_parser.hpp).
std::size_t input_capacity(const Limits& limits) { return std::max<std::size_t>(limits.max_head_bytes, 16 * 1024); }

std::span<const std::byte> as_bytes(std::string_view text) { return std::as_bytes(std::span(text.data(), text.size())); }

}  // namespace

Session::Session(aem::StreamSocket& stream, Admission admission, Server& server, aem::tls::Stream* tls)
    : stream_(stream), tls_(tls), admission_(std::move(admission)), server_(server), parser_(server.config.limits) {
  record_.stream = &stream_;
  this_core_connections().link(record_);
}

Session::~Session() { ConnectionTable::unlink(record_); }

bool Session::start() {
  wait_for_input();
  return !closing_;
}

bool Session::handshake() {
  if (tls_ == nullptr) return true;
  // Like a request head: the header timeout bounds it, and a drain may end it at once (idle).
  wait_for_input();
  if (closing_) return false;
  record_.deadline = aem::Clock::now() + server_.config.header_timeout;
  auto done = tls_->handshake(record_.deadline);
  if (!done && done.error() == aem::errc::timed_out) server_.timed_out.fetch_add(1, std::memory_order_relaxed);
  return static_cast<bool>(done);
}

void Session::serve() {
  // The parser's window is what the BufferedStream holds; what a step uses up is consumed, and
  // the incomplete rest is moved to the front only when the next read needs the room. The
  // framing stays the parser's (see session.hpp), so no read_until here.
  const aem::BufferedStreamOptions buffering{.read_capacity = input_capacity(server_.config.limits), .write_capacity = 0};
  aem::BufferedStream input = tls_ != nullptr ? aem::BufferedStream(*tls_, buffering) : aem::BufferedStream(stream_, buffering);
  if (!output_.reserve(kOutputCapacity)) return;
  while (!closing_) {
    wait_for_input();
    if (closing_) break;
    // Progress is certain: the buffer holds max_head_bytes, which the parser either completes
    // a head from or refuses with 431, and body bytes are used up as they come; so fill never
    // meets a full buffer. 0: the client closed, or a timeout or a drain shut the socket down;
    // an error: the connection failed. Either way nothing more will be answered.
    auto n = input.fill();
    if (!n || *n == 0) return;
    input.consume(process(input.buffered_text()));
    if (!flush()) return;
  }
  finish_connection();
  if (broken_) return;
  while (auto dropped = input.read_some()) {  // lingering: what the client still sends is dropped
    if (dropped->empty()) break;
  }
}

bool Session::on_received(std::string_view bytes) {
  if (closing_) return false;  // lingering: what the client still sends is dropped
  if (!output_.reserve(kOutputCapacity)) {
    broken_ = closing_ = true;
    (void)stream_.shutdown(aem::Shutdown::both);
    return false;
  }
  if (input_.empty()) {
    // The common case: whole requests, answered from the receive's own bytes.
    const std::string_view rest = bytes.substr(process(bytes));
    if (!closing_ && !rest.empty()) {
      // An incomplete head (shorter than max_head_bytes: the parser has not refused it).
      if (input_.reserve(input_capacity(server_.config.limits))) input_.append(rest);
      else closing_ = true;
    }
  } else {
    while (!bytes.empty() && !closing_) {
      const std::size_t n = std::min(bytes.size(), input_.space().size());
      input_.append(bytes.substr(0, n));
      bytes.remove_prefix(n);
      // Progress is certain: a full buffer holds max_head_bytes, which the parser either
      // completes a head from or refuses with 431.
      input_.drop_front(process(input_.view()));
    }
  }
  if (input_.empty()) input_.release();
  if (flush()) wait_for_input();
  output_.release();
  if (broken_) return false;
  if (closing_) {
    finish_connection();
    return false;
  }
  return true;
}

std::size_t Session::process(std::string_view window) {
  std::size_t used = 0;
  while (!closing_) {
    if (!in_request_ && used < window.size()) {
      in_request_ = true;
      head_done_ = false;
      request_start_ = coarse_now();
    }
    const ParseStep step = parser_.next(window.substr(used));
    used += step.consumed;
    switch (step.event) {
      case ParseEvent::need:
        return used;
      case ParseEvent::head:
        head_done_ = true;
        begin_exchange(parser_.head());
        break;
      case ParseEvent::body:
        take_body(step.body);
        break;
      case ParseEvent::end:
        in_request_ = false;
        finish_exchange();
        break;
      case ParseEvent::error:
        // The framing of the stream is lost: answer, then close.
        in_request_ = false;
        closing_ = true;
        exchange_.head_only = false;
        exchange_.http10 = false;
        answer_status(parser_.status());
        break;
    }
  }
  return used;
}

void Session::wait_for_input() {
  if (!in_request_ && server_.draining.load(std::memory_order_relaxed)) {
    closing_ = true;  // between requests during a drain: nothing is cut off by closing now
    return;
  }
  const ServerConfig& config = server_.config;
  if (!in_request_) {
    record_.phase = Phase::idle;
    record_.deadline = coarse_now() + config.idle_timeout;
  } else {
    record_.phase = Phase::receiving;
    record_.deadline = request_start_ + (head_done_ ? config.request_timeout : config.header_timeout);
  }
}

std::span<char> Session::output_space(std::size_t n) {
  if (output_.space().size() < n && !flush()) return {};
  return output_.space();
}

bool Session::flush() {
  if (broken_) return false;
  if (output_.empty()) return true;
  const bool written = write_all(output_.view());
  output_.clear();
  return written;
}

bool Session::write_all(std::string_view bytes) {
  record_.phase = Phase::sending;
  record_.deadline = coarse_now() + server_.config.send_timeout;
  if (tls_ != nullptr ? static_cast<bool>(tls_->write_all(as_bytes(bytes))) : static_cast<bool>(stream_.write_all(as_bytes(bytes)))) {
    return true;
  }
  // The client is gone or too slow: end both directions, so that a registration ends too.
  broken_ = closing_ = true;
  (void)stream_.shutdown(aem::Shutdown::both);
  return false;
}

void Session::finish_connection() {
  if (!flush()) return;
  // Lingering close: end the sending side (after TLS's close_notify), then read and drop what
  // the client still sends until it closes or the linger time is over.
  if (tls_ != nullptr) (void)tls_->shutdown(aem::Clock::now() + server_.config.send_timeout);
  (void)stream_.shutdown(aem::Shutdown::write);
  record_.phase = Phase::lingering;
  record_.deadline = coarse_now() + server_.config.linger;
}

}  // namespace http
