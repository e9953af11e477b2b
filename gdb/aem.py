# aem.py — gdb commands for programs built on aem: list the capsules of every core of every
# runtime, and show the stack of a suspended capsule. Works on a live process and on a core file
# (the runtimes are found through the global array aem_diag_runtimes).
#
#   (gdb) source /path/to/aem/gdb/aem.py          # or let auto-load find it (docs/diagnostics.md)
#   (gdb) aem capsules                            # every live capsule: id, state, wait, site
#   (gdb) aem bt 1:5                              # the stack of capsule 1:5 (core 1, number 5)
#
# `aem bt` switches gdb to the capsule's saved registers (x86-64 only), prints the backtrace and
# puts the thread's registers back. A core file's registers cannot be written: there the stack
# is walked through the frame pointers, which needs code built with -fno-omit-frame-pointer.
import gdb

STATES = {0: "pooled", 1: "ready", 2: "running", 3: "waiting", 4: "finished"}
WAITS = ["on the runtime (not described)", "on fd", "on a sleep", "on mutex", "on condition variable",
         "on semaphore", "on wait group", "on channel (send: full)", "on channel (receive: empty)",
         "on a join", "on a cross-core reply", "on a blocking call"]
IO_OPS = ["read", "write", "readv", "writev", "recv", "send", "recvmsg", "sendmsg", "accept", "connect",
          "poll", "accept (multishot)", "recv (multishot)", "poll (multishot)"]


def _atomic(value):
    """The value inside a std::atomic (libstdc++ keeps it in _M_i, perhaps in a base class)."""
    for _ in range(4):
        try:
            return value["_M_i"]
        except gdb.error:
            pass
        fields = value.type.strip_typedefs().fields()
        if not fields:
            break
        value = value[fields[0]]
    return value


def _id_text(capsule_id):
    return "%d:%d" % (capsule_id >> 56, capsule_id & ((1 << 56) - 1))


def _parse_id(text):
    text = text.strip()
    if ":" in text:
        core, number = text.split(":", 1)
        return (int(core, 0) << 56) | int(number, 0)
    return int(text, 0)


def _runtimes():
    try:
        entries = gdb.parse_and_eval("aem_diag_runtimes")
    except gdb.error:
        raise gdb.GdbError("aem: this program has no aem runtime (no symbol aem_diag_runtimes)")
    count = entries.type.strip_typedefs().range()[1] + 1
    for i in range(count):
        entry = entries[i]
        if int(entry["runtime"]) != 0:
            yield entry


def _cores():
    for entry in _runtimes():
        cores = entry["cores"]
        for j in range(int(entry["core_count"])):
            core = cores[j]
            if int(core) != 0:
                yield core.dereference()


def _capsules(core):
    capsule = core["all_"]
    while int(capsule) != 0:
        yield capsule.dereference()
        capsule = capsule["all_next"]


def _string(pointer):
    try:
        return pointer.string()
    except gdb.error:
        return "?"


def _wait_text(capsule):
    kind = int(capsule["wait_kind"])
    arg = int(capsule["wait_arg"])
    obj = int(capsule["wait_object"])
    text = WAITS[kind] if kind < len(WAITS) else "on kind %d" % kind
    if kind == 1:
        op = arg & 0xFF
        text += " %d: %s" % (arg >> 8, IO_OPS[op] if op < len(IO_OPS) else "op %d" % op)
    elif kind in (3, 4, 5, 6, 7, 8):
        text += " 0x%x" % obj
        if kind == 3:
            text += ", held by capsule %s when it began waiting" % _id_text(arg) if arg else ", held by a plain thread"
    elif kind in (9, 10):
        text += ", core %d" % arg
    elif kind == 11 and obj:
        call = gdb.parse_and_eval("(aem::detail::BlockingCall*)%d" % obj).dereference()
        text += " made at %s:%d" % (_string(call["where"]["file"]), int(call["where"]["line"]))
    return text


def _describe(capsule):
    state = int(capsule["state"])
    line = "capsule %s %s" % (_id_text(int(capsule["guard"]["capsule_id"])), STATES.get(state, str(state)))
    if state == 3:
        line += " " + _wait_text(capsule)
    site = capsule["site"]
    where = "an unknown site"
    if int(site) != 0:
        where = "%s:%d (%s)" % (_string(site["file"]), int(site["line"]), _string(site["function"]))
    line += "\n    priority %d, spawned at %s" % (int(capsule["priority"]), where)
    return line


def _find_capsule(capsule_id):
    for core in _cores():
        for capsule in _capsules(core):
            if int(capsule["state"]) != 0 and int(capsule["guard"]["capsule_id"]) == capsule_id:
                return core, capsule
    return None, None


def _has_symbol(name):
    try:
        gdb.parse_and_eval("(long)&%s" % name)
        return True
    except gdb.error:
        return False


def _saved_registers(capsule):
    """The registers a suspended capsule's last switch saved (x86-64), as {name: value}."""
    saved = int(capsule["context"]["saved"])
    if saved == 0:
        return None
    words = gdb.parse_and_eval("(unsigned long*)%d" % saved)
    if _has_symbol("aem_context_start"):
        return {"pc": int(words[0]), "rbp": int(words[1]), "sp": saved + 16 + 128}
    return {"r12": int(words[1]), "r13": int(words[2]), "r14": int(words[3]), "r15": int(words[4]),
            "rbx": int(words[5]), "rbp": int(words[6]), "pc": int(words[7]), "sp": saved + 64}


def _frame_pointer_walk(registers, limit=64):
    """Names along the frame-pointer chain, for a core file (no register writes)."""
    lines = []
    pc, rbp = registers["pc"], registers["rbp"]
    inferior = gdb.selected_inferior()
    for depth in range(limit):
        block = None
        try:
            block = gdb.block_for_pc(pc if depth == 0 else pc - 1)
        except RuntimeError:
            pass
        name = block.function.print_name if block is not None and block.function is not None else "??"
        lines.append("#%d  0x%x in %s" % (depth, pc, name))
        if rbp == 0:
            break
        try:
            memory = inferior.read_memory(rbp, 16).tobytes()
        except gdb.MemoryError:
            break
        rbp, pc = int.from_bytes(memory[:8], "little"), int.from_bytes(memory[8:], "little")
        if pc == 0:
            break
    return "\n".join(lines)


class AemPrefix(gdb.Command):
    """aem: commands for aem capsules (aem capsules, aem bt ID)."""

    def __init__(self):
        super().__init__("aem", gdb.COMMAND_STACK, prefix=True)


class AemCapsules(gdb.Command):
    """aem capsules: list every live capsule of every core: id, state, what it waits for, priority, spawn site."""

    def __init__(self):
        super().__init__("aem capsules", gdb.COMMAND_STACK)

    def invoke(self, argument, from_tty):
        for core in _cores():
            capsules = [c for c in _capsules(core) if int(c["state"]) != 0]
            gdb.write("core %d (thread %d): %d live capsule(s)\n" %
                      (int(core["index_"]), int(_atomic(core["thread_id_"])), len(capsules)))
            for capsule in capsules:
                gdb.write("  " + _describe(capsule) + "\n")


class AemBacktrace(gdb.Command):
    """aem bt ID: the stack of the suspended capsule ID (as `aem capsules` prints it, CORE:N, or the raw id)."""

    def __init__(self):
        super().__init__("aem bt", gdb.COMMAND_STACK)

    def invoke(self, argument, from_tty):
        if not argument.strip():
            raise gdb.GdbError("usage: aem bt ID")
        arch = gdb.selected_frame().architecture().name()
        if "x86-64" not in arch:
            raise gdb.GdbError("aem bt: backtrace unavailable on this architecture (%s)" % arch)
        core, capsule = _find_capsule(_parse_id(argument))
        if capsule is None:
            raise gdb.GdbError("aem bt: no live capsule %s" % argument.strip())
        if int(capsule["state"]) == 2:
            raise gdb.GdbError("aem bt: capsule %s is running: select its core's thread (thread id %d) and use bt"
                               % (argument.strip(), int(_atomic(core["thread_id_"]))))
        registers = _saved_registers(capsule)
        if registers is None:
            raise gdb.GdbError("aem bt: capsule %s has no saved context" % argument.strip())
        gdb.write(_describe(capsule) + "\n")
        names = list(registers.keys())
        gdb.execute("select-frame 0", to_string=True)
        original = {name: int(gdb.parse_and_eval("$" + name)) for name in names}
        try:
            for name in names:
                gdb.execute("set $%s = %d" % (name, registers[name]), to_string=True)
        except gdb.error:
            # A core file: its registers cannot be written.
            gdb.write(_frame_pointer_walk(registers) + "\n")
            return
        try:
            gdb.execute("bt")
        finally:
            gdb.execute("select-frame 0", to_string=True)
            for name in names:
                gdb.execute("set $%s = %d" % (name, original[name]), to_string=True)


AemPrefix()
AemCapsules()
AemBacktrace()
