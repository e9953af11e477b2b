// gate.cpp — Gate: the held passes are an intrusive list under a spin lock; the waiting is a
// WaitGroup with one count per pass. A system call on a pass's stream (shutdown, cancel) is
// never made under the lock: the pass is pinned instead, and its holder waits for the pin to
// go before it moves or gives the pass back.
#include "runtime/sched/core.hpp"

#include <aem/capsule.hpp>
#include <aem/detail/cpu_relax.hpp>
#include <aem/gate.hpp>

#include <mutex>
#include <new>
#include <thread>
#include <utility>

namespace aem {

Result<Gate::Pass> Gate::enter() { return admit(nullptr); }

Result<Gate::Pass> Gate::enter(StreamSocket& stream) { return admit(&stream); }

Result<Gate::Pass> Gate::admit(StreamSocket* stream) {
  Pass pass;
  lock_.lock();
  if (closed()) {
    lock_.unlock();
    return errc::shutting_down;
  }
  pass.gate_ = this;
  pass.stream_ = stream;
  link(pass);
  held_.add(1);  // under the lock: a drain that closes after this sees the count
  lock_.unlock();
  return Result<Pass>(std::move(pass));
}

void Gate::link(Pass& pass) noexcept {
  pass.previous_ = nullptr;
  pass.next_ = head_;
  if (head_ != nullptr) head_->previous_ = &pass;
  head_ = &pass;
}

void Gate::unlink(Pass& pass) noexcept {
  if (pass.previous_ != nullptr) pass.previous_->next_ = pass.next_;
  else head_ = pass.next_;
  if (pass.next_ != nullptr) pass.next_->previous_ = pass.previous_;
  pass.previous_ = pass.next_ = nullptr;
}

void Gate::lock_unpinned(const Pass& pass) noexcept {
  // A pin lasts one system call, made by a capsule that does not suspend meanwhile; so the
  // holder on the same core never waits here, and one on another core waits briefly.
  for (unsigned spins = 0;; ++spins) {
    lock_.lock();
    if (pass.pinned_ == 0) return;
    lock_.unlock();
    if (spins < 256) detail::cpu_relax();
    else std::this_thread::yield();
  }
}

template <typename Select, typename Act>
std::size_t Gate::act_on_streams(Select select, Act act) noexcept {
  std::size_t acted = 0;
  lock_.lock();
  for (Pass* pass = head_; pass != nullptr;) {
    if (pass->stream_ == nullptr || !select(*pass)) {
      pass = pass->next_;
      continue;
    }
    ++pass->pinned_;  // it cannot leave or move: `pass` and its stream stay valid unlocked
    lock_.unlock();
    act(*pass->stream_);
    ++acted;
    lock_.lock();
    --pass->pinned_;
    pass = pass->next_;
  }
  lock_.unlock();
  return acted;
}

namespace {

// keep_for_close appends `item` to `list` (under `lock`) for close() to end, unless the gate is
// `closed` already: false then, and the caller ends the item at once.
template <typename T>
Result<bool> keep_for_close(detail::SpinLock& lock, const std::atomic<bool>& closed, std::vector<T>& list, T item) {
  std::lock_guard guard(lock);
  if (closed.load(std::memory_order_acquire)) return false;
  try {
    list.push_back(item);
  } catch (const std::bad_alloc&) {
    return errc::out_of_memory;
  }
  return true;
}

}  // namespace

Result<void> Gate::close_with(ListenerSocket& listener) {
  Result<bool> kept = keep_for_close(lock_, closed_, listeners_, &listener);
  if (!kept) return kept.error();
  if (!*kept) (void)listener.close();
  return {};
}

Result<void> Gate::close_with(EventId registration) {
  Result<bool> kept = keep_for_close(lock_, closed_, registrations_, registration);
  if (!kept) return kept.error();
  if (!*kept) (void)cancel(registration);
  return {};
}

void Gate::end_listeners() noexcept {
  lock_.lock();
  std::vector<ListenerSocket*> listeners = std::move(listeners_);
  std::vector<EventId> registrations = std::move(registrations_);
  listeners_.clear();
  registrations_.clear();
  lock_.unlock();
  // A registration that has ended already (its listener failed) reports a stale id: fine.
  for (EventId id : registrations) (void)cancel(id);
  for (ListenerSocket* listener : listeners) (void)listener->close();
}

std::size_t Gate::close() noexcept {
  lock_.lock();
  const bool first = !closed_.exchange(true, std::memory_order_acq_rel);
  lock_.unlock();
  if (first) {
    end_listeners();
    // Shut down reading, not both directions: a request that raced the close can still be
    // answered; the holder then sees idle() return false and ends.
    (void)act_on_streams([](const Pass& pass) { return pass.idle_; },
                         [](StreamSocket& stream) { (void)stream.shutdown(Shutdown::read); });
  }
  return held();
}

Result<DrainReport> Gate::drain(Deadline deadline, Duration grace) {
  // Refused before anything closes: a plain thread (not_in_capsule) or an inline handler
  // (inline_handler_blocked, counted) cannot wait for the passes.
  if (detail::Core* core = detail::Core::current_core(); core == nullptr || core->current() == nullptr) {
    return detail::Core::suspension_refused();
  }
  DrainReport report;
  const std::size_t at_close = close();
  if (held_.wait(deadline)) {
    report.finished = at_close;
    return report;
  }
  lock_.lock();
  std::size_t at_deadline = 0;
  for (Pass* pass = head_; pass != nullptr; pass = pass->next_) {
    ++at_deadline;
    if (pass->stream_ != nullptr) pass->cancelled_ = true;
  }
  lock_.unlock();
  report.finished = at_close > at_deadline ? at_close - at_deadline : 0;
  // Cancel first and shut down only after the grace: a shutdown would end a blocked read with
  // 0 before the cancel reaches it, and the holder should be told errc::cancelled. The shutdown
  // is for a holder that goes on with its stream after that (or was between two calls at the
  // deadline, which a cancel does not reach): its calls then end at once.
  report.cancelled =
      act_on_streams([](const Pass& pass) { return pass.cancelled_; }, [](StreamSocket& stream) { stream.cancel(); });
  if (report.cancelled > 0 && held() > 0) (void)held_.wait(Deadline(grace));
  (void)act_on_streams([](const Pass& pass) { return pass.cancelled_; }, [](StreamSocket& stream) {
    (void)stream.shutdown(Shutdown::both);
    stream.cancel();
  });
  report.remaining = held();
  return report;
}

Gate::Pass::Pass(Pass&& other) noexcept {
  Gate* gate = other.gate_;
  if (gate == nullptr) return;
  gate->lock_unpinned(other);
  gate_ = std::exchange(other.gate_, nullptr);
  stream_ = std::exchange(other.stream_, nullptr);
  idle_ = other.idle_;
  cancelled_ = other.cancelled_;
  // Take `other`'s place in the list.
  previous_ = std::exchange(other.previous_, nullptr);
  next_ = std::exchange(other.next_, nullptr);
  if (previous_ != nullptr) previous_->next_ = this;
  else gate->head_ = this;
  if (next_ != nullptr) next_->previous_ = this;
  gate->lock_.unlock();
}

bool Gate::Pass::idle() noexcept {
  if (gate_ == nullptr) return false;
  gate_->lock_.lock();
  const bool open = !gate_->closed();
  if (open) idle_ = true;
  gate_->lock_.unlock();
  return open;
}

void Gate::Pass::busy() noexcept {
  if (gate_ == nullptr) return;
  gate_->lock_.lock();
  idle_ = false;
  gate_->lock_.unlock();
}

void Gate::Pass::leave() noexcept {
  Gate* gate = gate_;
  if (gate == nullptr) return;
  gate->lock_unpinned(*this);
  gate->unlink(*this);
  gate_ = nullptr;
  stream_ = nullptr;
  gate->lock_.unlock();
  gate->held_.done();  // after the unlock: it may wake the drain, which may destroy the gate
}

}  // namespace aem
