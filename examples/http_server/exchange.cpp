// exchange.cpp — Session's routes: what a request asks for, and the responses.
//   GET|HEAD /hello   "Hello, World!\n" as text/plain
//   POST /echo        the request body, back
//   GET|HEAD /resolve?name=<host>  the host's addresses (resolve_route.cpp)
//   GET|HEAD /...     a file under --root (when given)
#include "session.hpp"

#include "http_response.hpp"

#include <aem/fd_io.hpp>

#include <algorithm>

namespace http {
namespace {

constexpr std::string_view kHello = "Hello, World!\n";
constexpr std::string_view kGetOrHead = "GET, HEAD";
// kFileChunk is the least free room worth reading a piece of a file into.
constexpr std::size_t kFileChunk = 4096;

}  // namespace

void Session::begin_exchange(const RequestHead& head) {
  exchange_.route = Route::status;
  exchange_.status = 404;
  exchange_.allow = {};
  exchange_.keep_alive = head.keep_alive;
  exchange_.http10 = head.version_minor == 0;
  const bool get = head.method == "GET";
  exchange_.head_only = head.method == "HEAD";
  const std::string_view path = head.path;
  if (path == "/hello") {
    if (get || exchange_.head_only) {
      exchange_.route = Route::hello;
    } else {
      exchange_.status = 405;
      exchange_.allow = kGetOrHead;
    }
  } else if (path == "/echo") {
    if (head.method == "POST") {
      exchange_.route = Route::echo;
    } else {
      exchange_.status = 405;
      exchange_.allow = "POST";
    }
    // A known length is reserved at once; a chunked body grows its buffer as it comes.
    if (exchange_.route == Route::echo && head.framing == BodyFraming::content_length &&
        !exchange_.body.reserve(static_cast<std::size_t>(head.content_length))) {
      exchange_.route = Route::status;
      exchange_.status = 503;
    }
  } else if (path == "/resolve") {
    if (get || exchange_.head_only) {
      exchange_.route = Route::resolve;
      exchange_.query.assign(head.query);
    } else {
      exchange_.status = 405;
      exchange_.allow = kGetOrHead;
    }
  } else if (server_.config.root_fd >= 0) {
    if (get || exchange_.head_only) {
      exchange_.file = open_static_file(server_.config.root_fd, head.path);
      if (exchange_.file.status == 0) exchange_.route = Route::file;
      else exchange_.status = exchange_.file.status;
    } else {
      exchange_.status = 405;
      exchange_.allow = kGetOrHead;
    }
  }
  // The client waits for this before it sends the body (or for a final status, which only
  // comes once the body is read).
  if (head.expect_continue && head.framing != BodyFraming::none && !exchange_.http10) {
    const std::span<char> space = output_space(kContinue.size());
    if (!space.empty()) output_.append(kContinue);
  }
}

void Session::take_body(std::string_view bytes) {
  if (exchange_.route != Route::echo) return;  // read and dropped
  ByteBuffer& body = exchange_.body;
  if (body.space().size() < bytes.size() && !body.reserve(std::max(body.size() + bytes.size(), 2 * body.capacity()))) {
    exchange_.route = Route::status;
    exchange_.status = 503;
    body.release();
    return;
  }
  body.append(bytes);
}

void Session::finish_exchange() {
  if (!exchange_.keep_alive || server_.draining.load(std::memory_order_relaxed)) closing_ = true;
  switch (exchange_.route) {
    case Route::hello:
      answer_hello();
      break;
    case Route::echo:
      answer_echo();
      break;
    case Route::file:
      answer_file();
      break;
    case Route::resolve:
      answer_resolve();
      break;
    case Route::status:
      answer_status(exchange_.status, exchange_.allow);
      break;
  }
  // Only a file route holds a file, only an echo a body (most requests hold neither).
  if (exchange_.route == Route::file) exchange_.file = OpenedFile{};
  exchange_.body.release();
}

bool Session::write_head(std::uint16_t status, std::string_view content_type, std::uint64_t length,
                         std::string_view allow) {
  const std::span<char> space = output_space(kMaxResponseHead);
  if (space.empty()) return false;
  ResponseHead head;
  head.status = status;
  head.content_type = content_type;
  head.content_length = length;
  head.close = closing_;
  head.keep_alive = exchange_.http10 && !closing_;
  head.allow = allow;
  head.server = server_.config.server_name;
  output_.commit(format_head(head, http_date(), space));
  return true;
}

void Session::answer_status(std::uint16_t status, std::string_view allow) {
  const std::string_view reason = reason_phrase(status);
  if (!write_head(status, "text/plain; charset=utf-8", reason.size() + 1, allow) || exchange_.head_only) return;
  const std::span<char> space = output_space(reason.size() + 1);
  if (space.empty()) return;
  output_.append(reason);
  output_.append("\n");
}

void Session::answer_hello() {
  if (!write_head(200, "text/plain", kHello.size()) || exchange_.head_only) return;
  if (!output_space(kHello.size()).empty()) output_.append(kHello);
}

void Session::answer_echo() {
  const std::string_view body = exchange_.body.view();
  if (!write_head(200, "application/octet-stream", body.size())) return;
  // A body that fits joins the output; a larger one is written from where it lies.
  if (body.size() <= output_.space().size()) {
    output_.append(body);
  } else if (flush()) {
    (void)write_all(body);
  }
}

void Session::answer_file() {
  const OpenedFile& file = exchange_.file;
  if (!write_head(200, file.content_type, file.size) || exchange_.head_only) return;
  std::uint64_t offset = 0;
  while (offset < file.size) {
    const std::span<char> space = output_space(kFileChunk);
    if (space.empty()) return;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(space.size(), file.size - offset));
    const auto n = aem::read_at(file.file.get(), std::as_writable_bytes(space.first(want)), offset);
    if (!n || *n == 0) {
      // The file shrank or failed under us: the announced length cannot be kept, and only
      // closing tells the client that the response is incomplete.
      broken_ = closing_ = true;
      (void)stream_.shutdown(aem::Shutdown::both);
      return;
    }
    output_.commit(*n);
    offset += *n;
  }
}

}  // namespace http
