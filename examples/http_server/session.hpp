// session.hpp — Session: one HTTP connection, whichever style feeds it bytes.
//
// The two serving styles differ only in how bytes arrive: a capsule per connection reads through
// an aem::BufferedStream whose buffered bytes are the parser's window (serve), an on_data
// registration hands over each receive (on_received), which is parsed where it lies — only the
// incomplete tail of a request is copied, to wait for its remaining bytes. The framing is the
// parser's in both (not BufferedStream::read_until "\r\n\r\n"): its scan validates each byte,
// resumes where it stopped, takes empty lines before a request line, counts the head limit
// exactly and decodes chunked bodies in place; the registration style's bytes arrive as
// EventData, which a BufferedStream (it reads the socket itself) cannot take.
// Responses are gathered in one output buffer and written when the input at hand is used up (or
// the buffer fills up): pipelined requests get their responses in one write. Requests are
// answered in order, one at a time.
#pragma once

#include "byte_buffer.hpp"
#include "connections.hpp"
#include "http_parser.hpp"
#include "server.hpp"
#include "static_file.hpp"

#include <aem/net/buffered_stream.hpp>
#include <aem/net/stream.hpp>
#include <aem/time.hpp>
#include <aem/tls/stream.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace http {

// Route is what a request asks for.
enum class Route : std::uint8_t { hello, echo, file, resolve, status };

// Exchange is what the session keeps of the request being read, for the response: the head's
// views do not outlive the bytes they point into.
struct Exchange {
  Route route = Route::status;
  std::uint16_t status = 0;   // for Route::status
  std::string_view allow;     // for a 405
  bool head_only = false;     // HEAD: the same head as GET, no body
  bool keep_alive = true;
  bool http10 = false;
  OpenedFile file;            // for Route::file
  ByteBuffer body;            // for Route::echo
  std::string query;          // for Route::resolve: the target's query, copied
};

class Session {
 public:
  // Session registers a connection of the calling core. `stream` must outlive the session.
  // Call on the core (from a capsule or an inline handler); the session is then used there only.
  // With `tls` (HTTPS), requests and responses go through it; `stream` is the TCP beneath, which
  // the timeouts and the drain shut down.
  Session(aem::StreamSocket& stream, Admission admission, Server& server, aem::tls::Stream* tls = nullptr);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // handshake runs the TLS handshake of an HTTPS session (true at once without TLS), under the
  // header timeout and the drain as a request head would be. False: the connection is over.
  bool handshake();

  // serve reads and answers requests until the connection ends (capsule style).
  void serve();

  // start prepares a registration-style session for its first bytes; false if the server is
  // draining (the connection should be dropped).
  bool start();

  // on_received answers what `bytes` completes (registration style). Returns false once the
  // connection is finished: later bytes are dropped until the peer closes or the linger
  // deadline passes.
  bool on_received(std::string_view bytes);

 private:
  // process answers the requests in `window`; returns how many bytes it used up.
  std::size_t process(std::string_view window);
  void begin_exchange(const RequestHead& head);
  void take_body(std::string_view bytes);
  void finish_exchange();
  void answer_status(std::uint16_t status, std::string_view allow = {});
  void answer_hello();
  void answer_echo();
  void answer_file();
  void answer_resolve();  // resolve_route.cpp
  // write_head formats a response head into the output. False if the connection broke.
  bool write_head(std::uint16_t status, std::string_view content_type, std::uint64_t length, std::string_view allow = {});
  // output_space returns at least `n` free bytes of the output buffer, flushing it first if
  // needed; empty if the connection broke.
  std::span<char> output_space(std::size_t n);
  // flush writes the output buffer. False (and the session is broken) if the write failed.
  bool flush();
  bool write_all(std::string_view bytes);
  // wait_for_input records the deadline of the next wait for bytes (see connections.hpp).
  void wait_for_input();
  // finish_connection sends what is left, ends the sending side and enters the linger phase.
  void finish_connection();

  aem::StreamSocket& stream_;
  aem::tls::Stream* tls_;
  Admission admission_;
  Server& server_;
  ConnectionRecord record_;
  RequestParser parser_;
  Exchange exchange_;
  ByteBuffer input_;   // registration style: bytes of a request that are not complete yet
  ByteBuffer output_;  // responses not yet written
  aem::TimePoint request_start_{};
  bool in_request_ = false;  // bytes of a request have arrived, its end has not
  bool head_done_ = false;
  bool closing_ = false;     // no further request is answered
  bool broken_ = false;      // a write failed: nothing more can be sent
};

}  // namespace http
