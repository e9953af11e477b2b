// handover_channel.hpp — the wire of aem::Handover: framed messages over a Unix stream socket,
// listening sockets passed with SCM_RIGHTS, and the peer's credentials. Private to the library.
//
// A frame is a 12-byte head — "AEMH", the protocol version (u16), the message type (u16), the
// payload length (u32), in host byte order (both ends run on one machine) — and the payload:
//   hello     successor → running process: "give me your listeners" (no payload)
//   offer     running process → successor: u32 count, then per listener u8 name length and the
//             name; the listeners' descriptors travel with the frame, in the same order
//   ready     successor → running process: "I accept on them" (no payload)
//   done      running process → successor: "I stop accepting" (no payload)
//   refused   either way: u32 handover_errc, then a sentence for the other side's log
#pragma once

#include <aem/handover.hpp>
#include <aem/net/unix.hpp>
#include <aem/result.hpp>
#include <aem/time.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace aem::detail {

inline constexpr std::uint16_t kHandoverVersion = 1;
inline constexpr std::size_t kMaxHandoverPayload = 64 * 1024;
inline constexpr std::size_t kMaxListenerName = 255;

enum class FrameType : std::uint16_t { hello = 1, offer = 2, ready = 3, done = 4, refused = 5 };

// OwnedFds closes the descriptors it holds unless they are taken out.
struct OwnedFds {
  std::vector<int> fds;
  OwnedFds() = default;
  OwnedFds(OwnedFds&& other) noexcept : fds(std::move(other.fds)) { other.fds.clear(); }
  OwnedFds& operator=(OwnedFds&& other) noexcept;
  OwnedFds(const OwnedFds&) = delete;
  OwnedFds& operator=(const OwnedFds&) = delete;
  ~OwnedFds() { close_all(); }
  void close_all() noexcept;
};

// Frame is one message received.
struct Frame {
  std::uint16_t version = 0;
  FrameType type = FrameType::hello;
  std::string payload;
  OwnedFds fds;  // descriptors that came with it (an offer's listeners)
};

// NamedListener is one entry of an offer.
struct NamedListener {
  std::string name;
  int fd = -1;
};

// Refusal is a refused frame read back.
struct Refusal {
  std::error_code code;
  std::string reason;
};

// HandoverChannel is one connection between two processes of a hand-over.
class HandoverChannel : public UnixStream {
 public:
  HandoverChannel() noexcept = default;
  explicit HandoverChannel(UnixStream stream) noexcept : UnixStream(std::move(stream)) {}

  // send writes one frame with `fds` attached. Call from a capsule. Errors: handover_errc::
  // peer_gone (the peer closed), errc::timed_out, those of the socket.
  Result<void> send(FrameType type, std::string_view payload, std::span<const int> fds, Deadline deadline);
  // refuse sends a refused frame (failures ignored: the peer may be gone already).
  void refuse(handover_errc why, std::string_view reason, Deadline deadline);
  // receive reads one frame. Call from a capsule. Errors: handover_errc::bad_protocol (not a
  // frame: wrong magic, too long, descriptors cut off), peer_gone (the peer closed, also in the
  // middle of a frame), errc::timed_out, those of the socket.
  Result<Frame> receive(Deadline deadline);
  // peer returns the peer's credentials (SO_PEERCRED). Any thread.
  Result<HandoverPeer> peer() const;

 private:
  // receive_some reads into `into` and appends any descriptors that come along to `fds`.
  Result<std::size_t> receive_some(std::span<char> into, OwnedFds& fds, Deadline deadline);
};

// encode_offer / decode_offer: the offer's payload. decode_offer pairs the names with `fds` in
// order (taking them out of `fds`). Errors: handover_errc::bad_protocol.
std::string encode_offer(std::span<const NamedListener> listeners);
Result<std::vector<NamedListener>> decode_offer(std::string_view payload, OwnedFds& fds);
// encode_refusal / decode_refusal: the refused frame's payload.
std::string encode_refusal(handover_errc why, std::string_view reason);
Refusal decode_refusal(std::string_view payload);

}  // namespace aem::detail
