#include "io/epoll/epoll_interest.hpp"

#include <cerrno>
#include <poll.h>
#include <sys/epoll.h>

namespace aem::detail {

void FdWaitList::push_back(FdWaiter* waiter) noexcept {
  waiter->prev = tail_;
  waiter->next = nullptr;
  if (tail_ != nullptr) tail_->next = waiter;
  else head_ = waiter;
  tail_ = waiter;
}

void FdWaitList::erase(FdWaiter* waiter) noexcept {
  if (waiter->prev != nullptr) waiter->prev->next = waiter->next;
  else head_ = waiter->next;
  if (waiter->next != nullptr) waiter->next->prev = waiter->prev;
  else tail_ = waiter->prev;
  waiter->prev = waiter->next = nullptr;
}

FdInterest* InterestTable::find(int fd) noexcept {
  if (fd < 0 || static_cast<std::size_t>(fd) >= entries_.size()) return nullptr;
  return &entries_[static_cast<std::size_t>(fd)];
}

std::uint32_t InterestTable::wanted(const FdInterest& entry) noexcept {
  std::uint32_t events = 0;
  if (!entry.lists[static_cast<int>(WaitKind::reader)].empty()) events |= EPOLLIN;
  if (!entry.lists[static_cast<int>(WaitKind::writer)].empty()) events |= EPOLLOUT;
  for (const FdWaiter* p = entry.lists[static_cast<int>(WaitKind::poller)].front(); p != nullptr; p = p->next) {
    events |= p->poll_mask;
  }
  // Errors and hang-ups are reported whether asked for or not.
  return events & ~static_cast<std::uint32_t>(POLLERR | POLLHUP | POLLNVAL);
}

int InterestTable::add(FdWaiter* waiter, bool rearm) noexcept {
  const auto index = static_cast<std::size_t>(waiter->fd);
  if (index >= entries_.size()) {
    try {
      entries_.resize(index + 1);
    } catch (...) {
      return -ENOMEM;
    }
  }
  entries_[index].lists[static_cast<int>(waiter->kind)].push_back(waiter);
  waiter->queued = true;
  const int rc = sync(waiter->fd, rearm);
  if (rc != 0) {
    remove(waiter);
    sync(waiter->fd);
  }
  return rc;
}

void InterestTable::remove(FdWaiter* waiter) noexcept {
  if (!waiter->queued) return;
  entries_[static_cast<std::size_t>(waiter->fd)].lists[static_cast<int>(waiter->kind)].erase(waiter);
  waiter->queued = false;
}

int InterestTable::sync(int fd, bool rearm) noexcept {
  FdInterest* entry = find(fd);
  if (entry == nullptr) return 0;
  const std::uint32_t want = wanted(*entry);
  if (want == entry->registered && !(rearm && want != 0)) return 0;
  if (want == 0) {
    // EBADF / ENOENT: the fd was closed, which ended the registration already.
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    entry->registered = 0;
    --registered_fds_;
    return 0;
  }
  // Edge-triggered: one event per change, so a multishot poll reports each change once and a
  // waiter that found nothing to do is not woken again until something happens.
  epoll_event event{};
  event.events = want | EPOLLET;
  event.data.u64 = static_cast<std::uint64_t>(fd);
  const bool adding = entry->registered == 0;
  int rc = ::epoll_ctl(epoll_fd_, adding ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &event);
  // Our record and the kernel's disagree when the fd was closed and its number reused, or
  // when a dup of a closed fd keeps the old registration alive: try the other verb.
  if (rc != 0 && ((adding && errno == EEXIST) || (!adding && errno == ENOENT))) {
    rc = ::epoll_ctl(epoll_fd_, adding ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &event);
  }
  if (rc != 0) return -errno;
  if (adding) ++registered_fds_;
  entry->registered = want;
  return 0;
}

}  // namespace aem::detail
