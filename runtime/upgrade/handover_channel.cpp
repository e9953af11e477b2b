// handover_channel.cpp — HandoverChannel: frames, SCM_RIGHTS and peer credentials.
#include "runtime/upgrade/handover_channel.hpp"

#include "runtime/net/socket_io.hpp"

#include <aem/error.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace aem::detail {
namespace {

constexpr char kMagic[4] = {'A', 'E', 'M', 'H'};
constexpr std::size_t kHeadSize = 12;
// kControlSpace holds the descriptors of the largest offer.
constexpr std::size_t kControlSpace = CMSG_SPACE(sizeof(int) * kMaxHandoverListeners);

void put_u32(std::string& out, std::uint32_t value) { out.append(reinterpret_cast<const char*>(&value), sizeof value); }

bool take_u32(std::string_view& in, std::uint32_t& value) {
  if (in.size() < sizeof value) return false;
  std::memcpy(&value, in.data(), sizeof value);
  in.remove_prefix(sizeof value);
  return true;
}

}  // namespace

OwnedFds& OwnedFds::operator=(OwnedFds&& other) noexcept {
  if (this != &other) {
    close_all();
    fds = std::move(other.fds);
    other.fds.clear();
  }
  return *this;
}

void OwnedFds::close_all() noexcept {
  for (const int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
  fds.clear();
}

Result<void> HandoverChannel::send(FrameType type, std::string_view payload, std::span<const int> fds,
                                   Deadline deadline) {
  if (payload.size() > kMaxHandoverPayload || fds.size() > kMaxHandoverListeners) {
    return make_error_code(handover_errc::too_many_listeners);
  }
  char head[kHeadSize];
  const std::uint16_t version = kHandoverVersion;
  const auto kind = static_cast<std::uint16_t>(type);
  const auto length = static_cast<std::uint32_t>(payload.size());
  std::memcpy(head, kMagic, 4);
  std::memcpy(head + 4, &version, 2);
  std::memcpy(head + 6, &kind, 2);
  std::memcpy(head + 8, &length, 4);
  std::string frame(head, kHeadSize);
  frame.append(payload);
  alignas(cmsghdr) char control[kControlSpace];
  std::string_view rest = frame;
  bool first = true;
  while (!rest.empty()) {
    iovec part{const_cast<char*>(rest.data()), rest.size()};
    msghdr message{};
    message.msg_iov = &part;
    message.msg_iovlen = 1;
    // The descriptors ride on the frame's first byte: a short write sends the rest without.
    if (first && !fds.empty()) {
      std::memset(control, 0, sizeof control);
      message.msg_control = control;
      message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* header = CMSG_FIRSTHDR(&message);
      header->cmsg_level = SOL_SOCKET;
      header->cmsg_type = SCM_RIGHTS;
      header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
    }
    Result<std::size_t> sent = socket_message(shared_fd(), IoOpcode::sendmsg, &message, MSG_NOSIGNAL, deadline);
    if (!sent) {
      if (sent.error() == std::errc::broken_pipe || sent.error() == std::errc::connection_reset) {
        return make_error_code(handover_errc::peer_gone);
      }
      return sent.error();
    }
    first = false;
    rest.remove_prefix(*sent);
  }
  return {};
}

void HandoverChannel::refuse(handover_errc why, std::string_view reason, Deadline deadline) {
  (void)send(FrameType::refused, encode_refusal(why, reason), {}, deadline);
}

Result<std::size_t> HandoverChannel::receive_some(std::span<char> into, OwnedFds& fds, Deadline deadline) {
  alignas(cmsghdr) char control[kControlSpace];
  iovec part{into.data(), into.size()};
  msghdr message{};
  message.msg_iov = &part;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  Result<std::size_t> received = socket_message(shared_fd(), IoOpcode::recvmsg, &message, MSG_CMSG_CLOEXEC, deadline);
  if (!received) {
    if (received.error() == std::errc::connection_reset) return make_error_code(handover_errc::peer_gone);
    return received;
  }
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
      fds.fds.push_back(fd);
    }
  }
  // Descriptors the kernel could not deliver (more than the room, or none left in this
  // process) are lost to the frame: it cannot be used.
  if ((message.msg_flags & MSG_CTRUNC) != 0) return make_error_code(handover_errc::bad_protocol);
  return received;
}

Result<Frame> HandoverChannel::receive(Deadline deadline) {
  Frame frame;
  char head[kHeadSize];
  std::size_t have = 0;
  while (have < kHeadSize) {
    Result<std::size_t> n = receive_some(std::span(head + have, kHeadSize - have), frame.fds, deadline);
    if (!n) return n.error();
    if (*n == 0) return make_error_code(handover_errc::peer_gone);
    have += *n;
    // A stranger's bytes are refused as soon as they cannot be the magic.
    if (std::memcmp(head, kMagic, std::min<std::size_t>(have, 4)) != 0) {
      return make_error_code(handover_errc::bad_protocol);
    }
  }
  std::uint16_t kind = 0;
  std::uint32_t length = 0;
  std::memcpy(&frame.version, head + 4, 2);
  std::memcpy(&kind, head + 6, 2);
  std::memcpy(&length, head + 8, 4);
  if (length > kMaxHandoverPayload || kind < static_cast<std::uint16_t>(FrameType::hello) ||
      kind > static_cast<std::uint16_t>(FrameType::refused)) {
    return make_error_code(handover_errc::bad_protocol);
  }
  frame.type = static_cast<FrameType>(kind);
  frame.payload.resize(length);
  for (std::size_t got = 0; got < length;) {
    Result<std::size_t> n = receive_some(std::span(frame.payload.data() + got, length - got), frame.fds, deadline);
    if (!n) return n.error();
    if (*n == 0) return make_error_code(handover_errc::peer_gone);
    got += *n;
  }
  return frame;
}

Result<HandoverPeer> HandoverChannel::peer() const {
  ucred credentials{};
  socklen_t size = sizeof credentials;
  if (::getsockopt(fd(), SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) return errno_code(errno);
  return HandoverPeer{credentials.pid, credentials.uid};
}

std::string encode_offer(std::span<const NamedListener> listeners) {
  std::string out;
  put_u32(out, static_cast<std::uint32_t>(listeners.size()));
  for (const NamedListener& listener : listeners) {
    out.push_back(static_cast<char>(static_cast<unsigned char>(listener.name.size())));
    out.append(listener.name);
  }
  return out;
}

Result<std::vector<NamedListener>> decode_offer(std::string_view payload, OwnedFds& fds) {
  std::uint32_t count = 0;
  if (!take_u32(payload, count) || count != fds.fds.size() || count > kMaxHandoverListeners) {
    return make_error_code(handover_errc::bad_protocol);
  }
  std::vector<NamedListener> listeners;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (payload.empty()) return make_error_code(handover_errc::bad_protocol);
    const auto length = static_cast<unsigned char>(payload.front());
    payload.remove_prefix(1);
    if (payload.size() < length) return make_error_code(handover_errc::bad_protocol);
    listeners.push_back({std::string(payload.substr(0, length)), -1});
    payload.remove_prefix(length);
  }
  if (!payload.empty()) return make_error_code(handover_errc::bad_protocol);
  for (std::uint32_t i = 0; i < count; ++i) listeners[i].fd = std::exchange(fds.fds[i], -1);
  fds.fds.clear();
  return listeners;
}

std::string encode_refusal(handover_errc why, std::string_view reason) {
  std::string out;
  put_u32(out, static_cast<std::uint32_t>(why));
  out.append(reason.substr(0, 1024));
  return out;
}

Refusal decode_refusal(std::string_view payload) {
  std::uint32_t code = 0;
  if (!take_u32(payload, code) || code < static_cast<std::uint32_t>(handover_errc::not_allowed) ||
      code > static_cast<std::uint32_t>(handover_errc::not_a_file_path)) {
    return {make_error_code(handover_errc::bad_protocol), "a refusal without a known reason"};
  }
  return {make_error_code(static_cast<handover_errc>(code)), std::string(payload)};
}

}  // namespace aem::detail
