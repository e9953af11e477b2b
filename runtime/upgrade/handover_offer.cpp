// handover_offer.cpp — the offering side of a Handover: the hand-over socket, and the hand-over
// with each process that connects to it (one capsule per connection, all on the core that
// called ready(), so `busy` needs no lock: one successor at a time, the others refused).
#include "runtime/upgrade/handover_channel.hpp"
#include "runtime/upgrade/handover_state.hpp"

#include <aem/capsule.hpp>
#include <aem/error.hpp>
#include <aem/handover.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <utility>

namespace aem {
namespace {

std::string who(const HandoverPeer& peer) {
  return "pid " + std::to_string(peer.pid) + " (uid " + std::to_string(peer.uid) + ")";
}

// BusyFlag marks the state busy for as long as it lives.
class BusyFlag {
 public:
  explicit BusyFlag(bool& busy) noexcept : busy_(busy) { busy_ = true; }
  ~BusyFlag() { busy_ = false; }
  BusyFlag(const BusyFlag&) = delete;
  BusyFlag& operator=(const BusyFlag&) = delete;

 private:
  bool& busy_;
};

// offer_loop accepts processes on the hand-over socket until it is closed (or the runtime stops).
void offer_loop(const std::shared_ptr<Handover::State>& state) {
  const unsigned core = this_core::id();
  for (;;) {
    Result<UnixStream> connection = state->listener.accept();
    if (!connection) {
      if (!state->closed.load() && connection.error() != errc::shutting_down) {
        state->log("the hand-over socket failed: " + connection.error().message() + "; no longer offering");
      }
      return;
    }
    auto served = spawn(
        [state, channel = detail::HandoverChannel(std::move(*connection))]() mutable {
          state->serve_successor(std::move(channel));
        },
        {.core = core});
    if (served) served->detach();
    else state->log("cannot serve a process on the hand-over socket: " + served.error().message());
  }
}

}  // namespace

Result<void> Handover::State::start_offering() {
  // A file of our own, renamed over the path: a successor that connects meanwhile finds the
  // old socket or the new one, never none (which it would take for a first start).
  const std::string fresh = options.path + ".new." + std::to_string(::getpid());
  Result<SocketAddress> address = SocketAddress::unix_path(fresh);
  if (!address) return address.error();
  (void)::unlink(fresh.c_str());
  Result<UnixListener> bound = UnixListener::bind(*address);
  if (!bound) return bound.error();
  const mode_t mode = options.allowed_uids.empty() ? 0600 : 0666;
  struct stat file {};
  if (::chmod(fresh.c_str(), mode) != 0 || ::stat(fresh.c_str(), &file) != 0 ||
      ::rename(fresh.c_str(), options.path.c_str()) != 0) {
    const int error = errno;
    (void)::unlink(fresh.c_str());
    return errno_code(error);
  }
  file_device = file.st_dev;
  file_inode = file.st_ino;
  listener = std::move(*bound);
  if (closed.load()) {  // closed while binding: do not start
    (void)listener.close();
    remove_file();
    return errc::cancelled;
  }
  std::shared_ptr<State> self = shared_from_this();
  auto loop = spawn([self] { offer_loop(self); });
  if (!loop) {
    (void)listener.close();
    remove_file();
    return loop.error();
  }
  loop->detach();
  log("offering " + std::to_string(offered_copy().size()) + " listeners on " + options.path);
  return {};
}

void Handover::State::remove_file() noexcept {
  struct stat file {};
  if (file_inode != 0 && ::stat(options.path.c_str(), &file) == 0 && file.st_dev == file_device &&
      file.st_ino == file_inode) {
    (void)::unlink(options.path.c_str());
  }
}

void Handover::State::serve_successor(detail::HandoverChannel channel) {
  const Duration timeout = options.timeout;
  Result<HandoverPeer> peer = channel.peer();
  if (!peer) {
    log("a process on the hand-over socket has no credentials: " + peer.error().message());
    return;
  }
  if (!allowed(peer->uid)) {
    channel.refuse(handover_errc::not_allowed,
                   "user " + std::to_string(peer->uid) + " may not take the listeners of pid " +
                       std::to_string(::getpid()),
                   timeout);
    log("refused " + who(*peer) + ": its user is not allowed to take the listeners");
    return;
  }
  Result<detail::Frame> hello = channel.receive(timeout);
  if (!hello) {
    if (hello.error() == handover_errc::bad_protocol) {
      channel.refuse(handover_errc::bad_protocol, "this is an aem hand-over socket; it speaks nothing else", timeout);
      log("refused " + who(*peer) + ": it does not speak the hand-over protocol");
    } else {
      log("dropped " + who(*peer) + ": " + hello.error().message());
    }
    return;
  }
  if (hello->version != detail::kHandoverVersion) {
    channel.refuse(handover_errc::version_mismatch,
                   "this process speaks version " + std::to_string(detail::kHandoverVersion) + " of the protocol",
                   timeout);
    log("refused " + who(*peer) + ": it speaks version " + std::to_string(hello->version) + " of the protocol");
    return;
  }
  if (hello->type == detail::FrameType::refused) {
    log(who(*peer) + " refused to take the listeners: " + detail::decode_refusal(hello->payload).reason);
    return;
  }
  if (hello->type != detail::FrameType::hello) {
    channel.refuse(handover_errc::bad_protocol, "the first message must ask for the listeners", timeout);
    log("refused " + who(*peer) + ": it did not begin with a hello");
    return;
  }
  if (handed_over.load(std::memory_order_acquire)) {
    channel.refuse(handover_errc::superseded, "pid " + std::to_string(::getpid()) +
                                                  " has handed its listeners over already; its successor offers them next",
                   timeout);
    log("refused " + who(*peer) + ": the listeners are handed over already");
    return;
  }
  if (busy) {
    channel.refuse(handover_errc::busy,
                   "pid " + std::to_string(::getpid()) + " is handing its listeners to another successor", timeout);
    log("refused " + who(*peer) + ": another successor is taking the listeners");
    return;
  }
  BusyFlag flag(busy);
  const std::vector<detail::NamedListener> listeners = offered_copy();
  std::vector<int> fds;
  for (const detail::NamedListener& l : listeners) fds.push_back(l.fd);
  if (Result<void> sent = channel.send(detail::FrameType::offer, detail::encode_offer(listeners), fds, timeout); !sent) {
    log("successor " + who(*peer) + " went away before it got the listeners (" + sent.error().message() +
        "): still serving");
    return;
  }
  log("handed " + std::to_string(listeners.size()) + " listeners to " + who(*peer) + "; waiting until it accepts");
  Result<detail::Frame> ready = channel.receive(options.ready_timeout);
  if (!ready || ready->type != detail::FrameType::ready) {
    log("successor " + who(*peer) + " did not start accepting (" +
        (ready ? std::string("an unexpected message") : ready.error().message()) + "): still serving");
    return;
  }
  handed_over.store(true, std::memory_order_release);
  (void)channel.send(detail::FrameType::done, {}, {}, timeout);
  close_offered();  // the successor holds the sockets: our references are not needed any more
  log(who(*peer) + " accepts on the listeners: this process stops accepting and drains");
  if (options.on_handed_over) options.on_handed_over(*peer);
}

}  // namespace aem
