// capsule_dump.cpp — Runtime::dump: each core describes its capsules on its own thread (a task
// run on its dispatcher, between two capsules, so none of them runs meanwhile and every saved
// context is still); the caller waits for each core in turn, up to a timeout, then symbolizes
// and writes the text. Unwinding is done on the core (microseconds a capsule); symbolizing,
// which reads ELF and DWARF, on the caller's thread.
#include "runtime/diag/diagnostics.hpp"

#include "runtime/diag/symbolize.hpp"
#include "alloc/task_memory.hpp"

#include <aem/blocking.hpp>

#include <condition_variable>
#include <cstdio>
#include <ctime>

namespace aem::detail {
namespace {

struct CapsuleSnapshot {
  CapsuleId id = 0;
  CapsuleState state = CapsuleState::pooled;
  Priority priority = Priority::normal;
  Priority base_priority = Priority::normal;
  const void* group = nullptr;
  const SiteRecord* site = nullptr;
  bool root = false;
  bool caller_task = false;  // the task lives on a waiting caller's stack (submit, a cross-core call)
  std::int64_t spawned_ns = 0;
  WaitKind wait_kind = WaitKind::none;
  const void* wait_object = nullptr;
  std::intptr_t wait_arg = 0;
  bool timed_wait = false;
  // For a blocking call: its site, copied while the call is surely alive.
  BlockingCall::CallSite blocking_site{};
  unsigned join_core = 0;
  std::size_t frame_count = 0;
  std::uintptr_t frames[kMaxFrames] = {};
};

struct CoreSnapshot {
  std::vector<CapsuleSnapshot> capsules;
  std::size_t pooled = 0;
  CoreMetrics metrics;
  RegistrationSummary registrations;
  std::uint64_t progress = 0;
  int thread = 0;
  bool answered = false;
};

// collect describes `core`'s capsules. On the core's own thread, with no capsule running but
// perhaps the caller's own (`running`).
void collect(Core& core, CoreSnapshot& out) {
  out.thread = core.thread_id();
  out.progress = core.progress();
  out.metrics = core.snapshot_metrics();
  if (const EventLayer* events = core.events(); events != nullptr) out.registrations = events->summary();
  for (CapsuleControl* capsule = core.capsule_list(); capsule != nullptr; capsule = capsule->all_next) {
    if (capsule->state == CapsuleState::pooled) {
      ++out.pooled;
      continue;
    }
    CapsuleSnapshot& s = out.capsules.emplace_back();
    s.id = capsule->guard.capsule_id;
    s.state = capsule->state;
    s.priority = capsule->priority;
    s.base_priority = capsule->base_priority;
    s.site = capsule->site;
    s.spawned_ns = capsule->spawned_ns;
    if (TaskState* task = capsule->task; task != nullptr) {
      s.group = task->group;
      s.root = core.runtime().is_root(task);
      s.caller_task = task->home == TaskHome::caller;
    }
    if (capsule->state == CapsuleState::suspended) {
      s.wait_kind = capsule->wait_kind;
      s.wait_object = capsule->wait_object;
      s.wait_arg = capsule->wait_arg;
      s.timed_wait = capsule->timer.node.armed();
      if (s.wait_kind == WaitKind::blocking && s.wait_object != nullptr) {
        s.blocking_site = static_cast<const BlockingCall*>(s.wait_object)->where;
      }
      if (s.wait_kind == WaitKind::join && s.wait_object != nullptr) {
        s.caller_task = static_cast<const TaskState*>(s.wait_object)->home == TaskHome::caller;
      }
    }
    if (capsule == core.current()) {
      s.frame_count = unwind_here(s.frames, kMaxFrames);
    } else if (capsule->state == CapsuleState::ready || capsule->state == CapsuleState::suspended) {
      s.frame_count = unwind_saved_context(capsule->context, s.frames, kMaxFrames);
    }
  }
}

// DumpBox is where a core leaves its description; shared, so a core that answers after the
// caller gave up writes into memory that is still there.
struct DumpBox {
  std::mutex mutex;
  std::condition_variable answered;
  bool done = false;
  CoreSnapshot snapshot;
};

// DumpTask runs collect on a core's dispatcher (Core::run_on_dispatcher).
struct DumpTask final : TaskState {
  std::shared_ptr<DumpBox> box;
  explicit DumpTask(std::shared_ptr<DumpBox> b) : box(std::move(b)) {
    run = &run_impl;
    dispose = &dispose_impl;
  }
  static void run_impl(TaskState* state) noexcept {
    auto* self = static_cast<DumpTask*>(state);
    CoreSnapshot snapshot;
    try {
      collect(*Core::current_core(), snapshot);
    } catch (const std::bad_alloc&) {
      snapshot.capsules.clear();  // what fitted is lost; the caller says so
    }
    std::lock_guard lock(self->box->mutex);
    self->box->snapshot = std::move(snapshot);
    self->box->snapshot.answered = true;
    self->box->done = true;
    self->box->answered.notify_all();
  }
  static void dispose_impl(TaskState* state) noexcept { static_cast<DumpTask*>(state)->~DumpTask(); }
};

// ask has `core` describe itself and waits up to `timeout`; false when it did not answer.
bool ask(Core& core, std::chrono::milliseconds timeout, CoreSnapshot& out) {
  if (Core::current_core() == &core) {
    collect(core, out);
    out.answered = true;
    return true;
  }
  if (!core.metrics().serving()) return false;
  auto box = std::make_shared<DumpBox>();
  void* memory = task_allocate(sizeof(DumpTask), alignof(DumpTask));
  auto* task = new (memory) DumpTask(box);
  task->home = TaskHome::heap;
  task->flags.store(TaskState::kReleased, std::memory_order_relaxed);  // the core disposes of it
  core.run_on_dispatcher(task);
  std::unique_lock lock(box->mutex);
  if (!box->answered.wait_for(lock, timeout, [&] { return box->done; })) return false;
  out = std::move(box->snapshot);
  return true;
}

const char* state_name(CapsuleState state) noexcept {
  switch (state) {
    case CapsuleState::running: return "running";
    case CapsuleState::ready: return "ready";
    case CapsuleState::suspended: return "waiting";
    case CapsuleState::finished: return "finished";
    case CapsuleState::pooled: return "pooled";
  }
  return "?";
}

const char* io_name(unsigned opcode) noexcept {
  static constexpr const char* kNames[] = {"read", "write", "readv", "writev", "recv", "send", "recvmsg",
                                           "sendmsg", "accept", "connect", "poll", "accept (multishot)",
                                           "recv (multishot)", "poll (multishot)"};
  return opcode < std::size(kNames) ? kNames[opcode] : "an operation";
}

std::string id_text(CapsuleId id) {
  return std::to_string(id >> 56) + ":" + std::to_string(id & ((CapsuleId{1} << 56) - 1));
}

std::string pointer_text(const void* p) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%jx", static_cast<std::uintmax_t>(reinterpret_cast<std::uintptr_t>(p)));
  return text;
}

std::string wait_text(const CapsuleSnapshot& s) {
  std::string out;
  switch (s.wait_kind) {
    case WaitKind::io:
      out = std::string("on fd ") + std::to_string(s.wait_arg >> 8) + ": " + io_name(static_cast<unsigned>(s.wait_arg & 0xff));
      break;
    case WaitKind::sleep: {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          TimePoint(Duration(s.wait_arg)) - Clock::now());
      out = "on a sleep, " + std::to_string(left.count()) + " ms left";
      break;
    }
    case WaitKind::mutex:
      out = "on mutex " + pointer_text(s.wait_object) +
            (s.wait_arg != 0 ? ", held by capsule " + id_text(static_cast<CapsuleId>(s.wait_arg)) + " when it began waiting"
                             : ", held by a plain thread when it began waiting");
      break;
    case WaitKind::condvar: out = "on condition variable " + pointer_text(s.wait_object); break;
    case WaitKind::semaphore: out = "on semaphore " + pointer_text(s.wait_object); break;
    case WaitKind::wait_group: out = "on wait group " + pointer_text(s.wait_object); break;
    case WaitKind::channel_send: out = "on channel " + pointer_text(s.wait_object) + ": send (full)"; break;
    case WaitKind::channel_receive: out = "on channel " + pointer_text(s.wait_object) + ": receive (empty)"; break;
    case WaitKind::join:
      out = s.caller_task ? "on a cross-core reply: a call it submitted to core " + std::to_string(s.wait_arg)
                          : "on a join: capsule task " + pointer_text(s.wait_object) + " on core " + std::to_string(s.wait_arg);
      break;
    case WaitKind::cross_core: out = "on a cross-core reply from core " + std::to_string(s.wait_arg); break;
    case WaitKind::blocking:
      out = std::string("on a blocking call (aem::blocking) made at ") + s.blocking_site.file + ":" +
            std::to_string(s.blocking_site.line);
      break;
    case WaitKind::none: out = "on the runtime (not described)"; break;
  }
  if (s.timed_wait) out += ", with a deadline";
  return out;
}

// site_text is "file:line (function)", or `unknown` when the site was not recorded.
std::string site_text(const SiteRecord* site, const char* unknown) {
  if (site == nullptr) return unknown;
  return std::string(site->file) + ":" + std::to_string(site->line) + " (" + site->function + ")";
}

// registrations_text lists the live registrations by kind: " 3 data, 1 timer", or " none".
std::string registrations_text(const RegistrationSummary& summary) {
  std::string out;
  for (std::size_t kind = 0; kind < RegistrationSummary::kKinds; ++kind) {
    if (summary.live[kind] == 0) continue;
    out += (out.empty() ? " " : ", ") + std::to_string(summary.live[kind]) + " " + summary.kind_names[kind];
  }
  return out.empty() ? " none live" : out;
}

std::string describe_core(unsigned index, const CoreSnapshot& snapshot, Symbolizer& symbols) {
  std::string out = "core " + std::to_string(index) + " (thread " + std::to_string(snapshot.thread) + "): " +
                    std::to_string(snapshot.capsules.size()) + " live capsule(s), " + std::to_string(snapshot.pooled) +
                    " pooled; loop turns " + std::to_string(snapshot.metrics.loop_turns) + ", stalls " +
                    std::to_string(snapshot.metrics.stalls) + "\n";
  std::uint64_t pending = 0;
  std::string by_priority;
  for (unsigned p = 0; p < kPriorityLevels; ++p) {
    pending += snapshot.metrics.pending_activations[p];
    if (snapshot.metrics.pending_activations[p] != 0) {
      by_priority += " p" + std::to_string(p) + "=" + std::to_string(snapshot.metrics.pending_activations[p]);
    }
  }
  out += "  registrations:" + registrations_text(snapshot.registrations) + "; " + std::to_string(pending) +
         " activation(s) queued" + (by_priority.empty() ? std::string() : " (by priority:" + by_priority + ")") + "\n";
  if (snapshot.registrations.fullest_depth != 0) {
    out += "    fullest queue: " + std::string(snapshot.registrations.fullest_name) + ", " +
           std::to_string(snapshot.registrations.fullest_depth) + " queued, registered at " +
           site_text(snapshot.registrations.fullest_site, "an unknown site") + "\n";
  }
  const std::int64_t now = Clock::now().time_since_epoch().count();
  for (const CapsuleSnapshot& s : snapshot.capsules) {
    out += "  capsule " + id_text(s.id) + " " + state_name(s.state);
    if (s.state == CapsuleState::suspended) out += " " + wait_text(s);
    out += "\n    priority " + std::to_string(static_cast<unsigned>(s.priority));
    if (s.priority != s.base_priority) out += " (own " + std::to_string(static_cast<unsigned>(s.base_priority)) + ")";
    out += ", group " + (s.group == nullptr ? std::string("default") : pointer_text(s.group));
    if (s.spawned_ns != 0) {  // 0: spawned before any watchdog tick or dump
      char age[32];
      std::snprintf(age, sizeof age, "%.1f s", static_cast<double>(now - s.spawned_ns) / 1e9);
      out += ", age ~";
      out += age;
    }
    out += ", spawned at " + site_text(s.site, s.root ? "Runtime::run (the root function)" : "an unknown site");
    out += "\n";
    if (s.frame_count != 0) {
      format_frames(symbols, s.frames, s.frame_count, s.state != CapsuleState::running, out);
    } else if (s.state == CapsuleState::ready || s.state == CapsuleState::suspended) {
      out += saved_context_unwinding() ? "    (no backtrace)\n" : "    backtrace unavailable on this architecture\n";
    }
  }
  return out;
}

}  // namespace

void Diagnostics::dump(const DumpSink& sink, std::chrono::milliseconds per_core) {
  const unsigned count = runtime_.core_count();
  g_diag_clock_ns.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  std::string header = "aem capsule dump: " + std::to_string(count) + " core(s), backend " +
                       std::string(runtime_.backend_name()) + (runtime_.running() ? "" : ", not running") + "\n";
  sink(header);
  // One core after the other: a stalled core costs the dump its timeout, not the others.
  std::vector<CoreSnapshot> snapshots(count);
  std::vector<bool> answered(count, false);
  for (unsigned i = 0; i < count; ++i) answered[i] = ask(runtime_.core(i), per_core, snapshots[i]);
  std::vector<std::string> pieces(count);
  auto describe_all = [&] {
    Symbolizer symbols;
    for (unsigned i = 0; i < count; ++i) {
      if (answered[i]) pieces[i] = describe_core(i, snapshots[i], symbols);
      else if (runtime_.core(i).metrics().serving()) {
        pieces[i] = "core " + std::to_string(i) + " did not answer within " + std::to_string(per_core.count()) + " ms (stalled?)\n";
      } else {
        pieces[i] = "core " + std::to_string(i) + " is not running\n";
      }
    }
  };
  // libdw needs far more stack than a capsule has: from a capsule, symbolize on a thread.
  if (Core::current_core() != nullptr) std::thread(describe_all).join();
  else describe_all();
  for (const std::string& piece : pieces) sink(piece);
}

std::string Diagnostics::dump_text(std::chrono::milliseconds per_core) {
  std::string text;
  dump([&](std::string_view piece) { text += piece; }, per_core);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace aem::detail
