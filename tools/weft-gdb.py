# weft-gdb.py - gdb commands for weft's green threads.
#
#   weft threads          lists the live green threads: id, name, state,
#                         worker, and what a parked one waits for
#   weft bt ID [ARGS]     backtrace of a parked or runnable green thread
#                         (ID may also be a thread's name; ARGS go to bt,
#                         e.g. "weft bt 7 full" or "weft bt 7 5")
#
# Load it with "source weft-gdb.py", or let gdb auto-load it: it is
# installed as $datadir/gdb/auto-load$libdir/libweft.so.0.0.0-gdb.py, the
# name gdb looks for when it loads the shared library (the directory must
# be in gdb's "auto-load safe-path").  The program needs debug info for
# libweft (weft's default build has it: -O2 -g).
#
# How it finds green threads: the runtime records every stack mapping it
# makes in weft__stack_all[0 .. weft__stack_nall) (stacks are never
# unmapped) as its base, usable size and guard size (struct
# weft__stack_rec; the guard size may differ from one weft_init() to the
# next), and a green thread's descriptor (struct weft__g) sits at the top of
# its stack mapping, base + guard + size, where weft__g_of_stack() puts it.  A record
# whose descriptor has id 0 or state DONE holds no live green thread.
#
# How it shows a parked thread's stack: a parked green thread's context is
# its saved stack pointer.  With the assembly context switch the frame
# there holds, from offset 0: MXCSR and the x87 control word, r15, r14,
# r13, r12, rbx, rbp, and the return address.  With the ucontext back end
# the context points at the ucontext_t that swapcontext() filled in.
# "weft bt" points the selected kernel thread's registers (frame 0) at that
# state, as if the switch had just returned, runs bt, and puts every
# register back exactly as it was, also on error or interruption.  This
# needs a live process: a core file's registers cannot be written.

import struct

import gdb

_STATES = {1: "runnable", 2: "running", 3: "parked", 4: "done"}
_G_RUNNABLE, _G_RUNNING, _G_PARKED, _G_DONE = 1, 2, 3, 4
_CACHELINE = 64  # WEFT_CACHELINE: the descriptor is aligned down to it

# Registers "weft bt" rewrites: the ones a switch saves, plus rip and rsp.
_BT_REGS = ("rip", "rsp", "rbp", "rbx", "r12", "r13", "r14", "r15")
# Saved and put back as well, in case writing rip touched it (the kernel
# uses it to restart an interrupted system call).
_KEEP_REGS = ("orig_rax",)

# glibc x86-64 ucontext_t: uc_mcontext.gregs at 40, uc_mcontext.fpregs at
# 224, __fpregs_mem at 424; getcontext() and swapcontext() point fpregs at
# __fpregs_mem, which tells a ucontext context from an assembly one.
_UC_GREGS = 40
_UC_FPREGS = 224
_UC_FPREGS_MEM = 424
_UC_REG = {"r12": 4, "r13": 5, "r14": 6, "r15": 7, "rbp": 10, "rbx": 11,
           "rsp": 15, "rip": 16}


def _error(msg):
    raise gdb.GdbError("weft: " + msg)


def _inferior():
    inf = gdb.selected_inferior()
    if inf is None or inf.pid == 0:
        _error("no process (run the program, attach to it, or load a core)")
    return inf


def _read(inf, addr, n):
    try:
        return bytes(inf.read_memory(addr, n))
    except gdb.MemoryError:
        return None


def _u64(inf, addr):
    b = _read(inf, addr, 8)
    return None if b is None else struct.unpack("<Q", b)[0]


def _cstring(inf, addr, limit=128):
    if not addr:
        return ""
    b = _read(inf, addr, limit)
    if b is None:
        # The string may end near the end of a mapping: read less.
        for n in (64, 32, 16, 8, 1):
            b = _read(inf, addr, n)
            if b is not None:
                break
        if b is None:
            return "<unreadable>"
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def _symbol(name):
    try:
        return gdb.parse_and_eval(name)
    except gdb.error:
        _error("cannot find %s: is the program linked with weft, is libweft "
               "loaded yet, and does it have debug info (-g)?" % name)


class _Layout(object):
    """Field offsets of struct weft__g, from the program's debug info."""

    def __init__(self):
        try:
            t = gdb.lookup_type("struct weft__g")
        except gdb.error:
            _error("no debug info for struct weft__g: build libweft with -g")
        self.size = t.sizeof
        self.off = {}
        for f in t.fields():
            self.off[f.name] = f.bitpos // 8
        for name in ("ctx", "id", "state", "base", "size", "guard",
                     "wait_reason", "worker", "name"):
            if name not in self.off:
                _error("struct weft__g has no field %s: this extension does "
                       "not match the program's weft" % name)
        self.name_len = t["name"].type.sizeof


class _G(object):
    """One green thread, read from its descriptor."""

    def __init__(self, addr, lay, raw, inf):
        def q(field):
            return struct.unpack_from("<Q", raw, lay.off[field])[0]

        self.addr = addr
        self.ctx = q("ctx")
        self.id = q("id")
        self.state = raw[lay.off["state"]]
        self.base = q("base")
        self.size = q("size")
        self.guard = q("guard")
        self.worker = struct.unpack_from("<i", raw, lay.off["worker"])[0]
        off = lay.off["name"]
        self.name = raw[off:off + lay.name_len].split(b"\0", 1)[0].decode(
            "utf-8", "replace")
        self.wait_reason = (_cstring(inf, q("wait_reason"))
                            if self.state == _G_PARKED else "")
        self.run_worker = None  # the worker whose cur is this thread
        self.run_thread = None  # that worker's gdb thread

    def state_name(self):
        return _STATES.get(self.state, "state %d" % self.state)


def _rec_layout():
    """(record size, offsets of base, size and guard) of struct
    weft__stack_rec, from the program's debug info."""
    try:
        t = gdb.lookup_type("struct weft__stack_rec")
    except gdb.error:
        _error("no debug info for struct weft__stack_rec: build libweft "
               "with -g")
    off = dict((f.name, f.bitpos // 8) for f in t.fields())
    for name in ("base", "size", "guard"):
        if name not in off:
            _error("struct weft__stack_rec has no field %s: this extension "
                   "does not match the program's weft" % name)
    return t.sizeof, off["base"], off["size"], off["guard"]


def _workers(inf):
    """[(index, cur, pthread_t)] of the running runtime's workers."""
    rt = _symbol("weft__rt")
    out = []
    try:
        n = int(rt["nworkers"])
        wv = rt["w"]
        if n <= 0 or int(wv) == 0:
            return out
        for i in range(min(n, 1024)):
            w = wv[i]
            if int(w) == 0:
                continue
            out.append((int(w["index"]), int(w["cur"]), int(w["thread"])))
    except (gdb.error, gdb.MemoryError):
        pass  # the runtime is starting or stopping: no workers to show
    return out


def _gdb_thread_of(inf, pthread, g):
    """The gdb thread of a worker: by its pthread_t, else by the thread
    whose stack pointer is on g's stack."""
    threads = inf.threads()
    for th in threads:
        try:
            h = th.handle()
        except (AttributeError, gdb.error):
            break
        if h is not None and int.from_bytes(bytes(h), "little") == pthread:
            return th
    lo, hi = g.base, g.base + 2 * g.size + (1 << 16)
    cur = gdb.selected_thread()
    try:
        for th in threads:
            if not th.is_valid() or th.is_running():
                continue
            th.switch()
            sp = int(gdb.parse_and_eval("$sp").cast(
                gdb.lookup_type("unsigned long")))
            if lo <= sp < hi:
                return th
    finally:
        if cur is not None and cur.is_valid():
            cur.switch()
    return None


def green_threads():
    """Every live green thread of the selected inferior, by id."""
    inf = _inferior()
    lay = _Layout()
    nall = int(_symbol("weft__stack_nall"))
    all_p = int(_symbol("weft__stack_all").cast(
        gdb.lookup_type("unsigned long")))
    if nall == 0 or all_p == 0:
        return []
    rsize, rbase, rsz, rguard = _rec_layout()
    recs = _read(inf, all_p, rsize * nall)
    if recs is None:
        _error("cannot read weft__stack_all (%d records at 0x%x)"
               % (nall, all_p))
    out = []
    for i in range(nall):
        at = rsize * i
        base = struct.unpack_from("<Q", recs, at + rbase)[0]
        size = struct.unpack_from("<Q", recs, at + rsz)[0]
        guard = struct.unpack_from("<Q", recs, at + rguard)[0]
        top = base + guard + size
        addr = (top - lay.size) & ~(_CACHELINE - 1)
        raw = _read(inf, addr, lay.size)
        if raw is None:
            continue
        g = _G(addr, lay, raw, inf)
        # A descriptor names its own stack (base, size and guard are set at
        # every spawn and kept when the thread is freed); one that does not
        # was never used.
        if g.base != base or g.size != size or g.guard != guard:
            continue
        if g.id == 0 or g.state == _G_DONE or g.state not in _STATES:
            continue
        out.append(g)
    workers = _workers(inf)
    for g in out:
        if g.state != _G_RUNNING:
            continue
        for idx, cur, pth in workers:
            if cur == g.addr:
                g.run_worker = idx
                g.run_thread = _gdb_thread_of(inf, pth, g)
                break
    out.sort(key=lambda g: g.id)
    return out


def _find(arg):
    gs = green_threads()
    try:
        want = int(arg, 0)
    except ValueError:
        want = None
    if want is not None:
        for g in gs:
            if g.id == want:
                return g
        _error("no live green thread with id %d (see \"weft threads\")"
               % want)
    named = [g for g in gs if g.name == arg]
    if len(named) == 1:
        return named[0]
    if not named:
        _error("no live green thread with id or name %r" % arg)
    _error("%d green threads are named %r: give an id (%s)"
           % (len(named), arg, ", ".join(str(g.id) for g in named)))


def _describe_thread(th):
    if th is None:
        return "?"
    return "%d (LWP %d)" % (th.num, th.ptid[1])


class WeftPrefix(gdb.Command):
    """Commands for weft's green threads.

weft threads     list the live green threads
weft bt ID       backtrace of a parked or runnable green thread"""

    def __init__(self):
        super(WeftPrefix, self).__init__("weft", gdb.COMMAND_STACK,
                                         gdb.COMPLETE_NONE, True)


class WeftThreads(gdb.Command):
    """List weft's live green threads.

Usage: weft threads

For each: id, name, state (runnable, running or parked), worker (the one
running it, else the one that ran it last), and for a parked thread what
it waits for (chan, mutex, sleep, io read, ...).  A running thread also
shows the gdb thread of its worker."""

    def __init__(self):
        super(WeftThreads, self).__init__("weft threads", gdb.COMMAND_STACK,
                                          gdb.COMPLETE_NONE)

    def invoke(self, arg, from_tty):
        gs = green_threads()
        if not gs:
            gdb.write("No live green threads.\n")
            return
        gdb.write("%6s  %-31s  %-8s  %6s  %s\n"
                  % ("ID", "NAME", "STATE", "WORKER", "WAITING ON"))
        for g in gs:
            if g.state == _G_RUNNING:
                worker = "?" if g.run_worker is None else str(g.run_worker)
                what = "(gdb thread %s)" % _describe_thread(g.run_thread)
            else:
                worker = str(g.worker)
                what = g.wait_reason
            gdb.write("%6d  %-31s  %-8s  %6s  %s\n"
                      % (g.id, g.name or '""', g.state_name(), worker, what))
        counts = {}
        for g in gs:
            counts[g.state_name()] = counts.get(g.state_name(), 0) + 1
        gdb.write("%d green thread%s: %s\n"
                  % (len(gs), "" if len(gs) == 1 else "s",
                     ", ".join("%d %s" % (counts[k], k)
                               for k in sorted(counts))))


def _saved_regs(inf, g):
    """The registers of g as its context switch would restore them."""
    ctx = g.ctx
    lo = g.base
    hi = g.base + g.guard + g.size  # guard + usable part
    if not (lo < ctx < hi):
        _error("green thread %d has no saved context on its stack "
               "(context 0x%x, stack 0x%x+0x%x)" % (g.id, ctx, g.base,
                                                     g.size))
    fp = _u64(inf, ctx + _UC_FPREGS)
    if fp is not None and fp == ctx + _UC_FPREGS_MEM:
        raw = _read(inf, ctx + _UC_GREGS, 23 * 8)
        if raw is None:
            _error("cannot read the ucontext of green thread %d" % g.id)
        gregs = struct.unpack("<23Q", raw)
        regs = dict((r, gregs[i]) for r, i in _UC_REG.items())
    else:
        raw = _read(inf, ctx, 0x40)
        if raw is None:
            _error("cannot read the saved frame of green thread %d" % g.id)
        q = struct.unpack("<8Q", raw)
        regs = {"r15": q[1], "r14": q[2], "r13": q[3], "r12": q[4],
                "rbx": q[5], "rbp": q[6], "rip": q[7], "rsp": ctx + 0x40}
    if not (lo < regs["rsp"] < hi):
        _error("green thread %d: saved stack pointer 0x%x is off its stack"
               % (g.id, regs["rsp"]))
    return regs


def _reg(name):
    v = gdb.parse_and_eval("$" + name)
    return int(v.cast(gdb.lookup_type("unsigned long"))) & (2 ** 64 - 1)


def _set_reg(name, value):
    gdb.execute("set $%s = 0x%x" % (name, value), to_string=True)


class WeftBt(gdb.Command):
    """Backtrace of a parked or runnable green thread.

Usage: weft bt ID [BT-ARGS]

ID is a green thread's id, or its name if that is unique ("weft threads"
lists them).  BT-ARGS are passed to bt ("full", a frame count, ...).
The selected kernel thread's registers are pointed at the green thread's
saved context for the time of the backtrace, then restored exactly.  For a
running green thread, select the kernel thread of its worker instead."""

    def __init__(self):
        super(WeftBt, self).__init__("weft bt", gdb.COMMAND_STACK,
                                     gdb.COMPLETE_NONE)

    def invoke(self, arg, from_tty):
        argv = gdb.string_to_argv(arg)
        if not argv:
            _error("usage: weft bt ID [BT-ARGS]")
        inf = _inferior()
        g = _find(argv[0])
        rest = " ".join(argv[1:])
        if g.state == _G_RUNNING:
            if g.run_thread is not None:
                _error("green thread %d \"%s\" is running on worker %s, "
                       "gdb thread %s: select it (\"thread %d\") and use "
                       "bt" % (g.id, g.name,
                               "?" if g.run_worker is None
                               else g.run_worker,
                               _describe_thread(g.run_thread),
                               g.run_thread.num))
            _error("green thread %d \"%s\" is running (worker %s); select "
                   "that worker's kernel thread and use bt"
                   % (g.id, g.name, "?" if g.run_worker is None
                      else g.run_worker))
        regs = _saved_regs(inf, g)
        th = gdb.selected_thread()
        if th is None:
            _error("no thread selected")
        if th.is_running():
            _error("the selected thread is running: interrupt it first")
        try:
            level = gdb.selected_frame().level()
        except (AttributeError, gdb.error):
            level = 0
        gdb.execute("frame 0", to_string=True)
        saved = {}
        for r in _BT_REGS:
            saved[r] = _reg(r)
        for r in _KEEP_REGS:
            try:
                saved[r] = _reg(r)
            except gdb.error:
                pass
        gdb.write("green thread %d \"%s\" (%s%s), saved context 0x%x:\n"
                  % (g.id, g.name, g.state_name(),
                     ": " + g.wait_reason if g.wait_reason else "", g.ctx))
        try:
            try:
                for r in _BT_REGS:
                    _set_reg(r, regs[r])
            except gdb.error as e:
                _error("cannot write registers (%s): a live process is "
                       "needed" % e)
            gdb.execute("bt " + rest if rest else "bt")
        finally:
            _restore(th, saved, level)


def _restore(th, saved, level):
    """Writes back every saved register that differs, then checks."""
    if th.is_valid():
        th.switch()
    bad = []
    for _ in range(2):
        bad = []
        gdb.execute("frame 0", to_string=True)
        for r in ("rip", "rsp") + _BT_REGS[2:] + tuple(
                k for k in _KEEP_REGS if k in saved):
            if _reg(r) != saved[r]:
                try:
                    _set_reg(r, saved[r])
                except gdb.error:
                    pass
        for r, v in saved.items():
            if _reg(r) != v:
                bad.append(r)
        if not bad:
            break
    if bad:
        gdb.write("weft: WARNING: could not restore %s; do not continue "
                  "this thread\n" % ", ".join(bad), gdb.STDERR)
    if level:
        try:
            gdb.execute("frame %d" % level, to_string=True)
        except gdb.error:
            pass


WeftPrefix()
WeftThreads()
WeftBt()
