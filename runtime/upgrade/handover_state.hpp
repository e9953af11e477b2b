// handover_state.hpp — Handover::State: what a Handover and its offering capsules share.
// Private to the library.
#pragma once

#include "runtime/upgrade/handover_channel.hpp"

#include <aem/handover.hpp>
#include <aem/net/unix.hpp>

#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace aem {

struct Handover::State : std::enable_shared_from_this<Handover::State> {
  explicit State(HandoverOptions o) : options(std::move(o)), own_uid(::geteuid()) {}
  ~State();

  // log hands one line to HandoverOptions::log (stderr without one).
  void log(std::string_view line) const;
  // allowed tells whether processes of `uid` may take part.
  bool allowed(std::uint32_t uid) const noexcept;
  // offered_copy returns the listeners to hand over (the descriptors stay owned here).
  std::vector<detail::NamedListener> offered_copy();
  // close_offered closes this process's own references once a successor holds the sockets.
  void close_offered() noexcept;
  // start_offering binds the hand-over socket (a fresh file renamed over the path, so that a
  // successor always finds one) and starts accepting successors on the calling core.
  Result<void> start_offering();
  // serve_successor runs the hand-over with one connected process (a capsule per connection).
  void serve_successor(detail::HandoverChannel channel);
  // remove_file removes the socket file if it is still the one this process bound.
  void remove_file() noexcept;

  const HandoverOptions options;
  const std::uint32_t own_uid;  // the effective user of this process

  HandoverPeer predecessor;
  detail::HandoverChannel predecessor_channel;  // open from claim to ready
  bool ready_called = false;

  mutable std::mutex lock;  // guards the two lists (never held across a suspension)
  std::vector<detail::NamedListener> received;  // from the predecessor, not taken yet (owned)
  std::vector<detail::NamedListener> offered;   // our own references (dup), handed to a successor

  UnixListener listener;  // the hand-over socket while offering
  dev_t file_device = 0;  // identity of the socket file we bound
  ino_t file_inode = 0;
  bool busy = false;  // a successor is being served (the offering core only)
  std::atomic<bool> handed_over{false};
  std::atomic<bool> closed{false};
};

}  // namespace aem
