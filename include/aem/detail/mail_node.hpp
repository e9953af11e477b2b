// detail/mail_node.hpp — the link that carries a message through a core's mailbox.
#pragma once

#include <atomic>
#include <cstdint>

namespace aem::detail {

// MailNode is embedded in whatever travels between cores (a task to start, a capsule to wake
// or recycle); the mailbox is an intrusive MPSC queue, so posting never allocates.
struct MailNode {
  std::atomic<MailNode*> next{nullptr};
  void* owner = nullptr;
  std::uint8_t kind = 0;
};

}  // namespace aem::detail
