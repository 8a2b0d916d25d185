/*
 * sync_fuzz.c - fuzz target for weft's channels, select and mutexes.
 *
 * The runtime is started once (2 workers), before the first input.  Each
 * input is a program:
 *
 *   byte 0      number of green threads: 2 + byte % 3
 *   bytes 1-3   capacities of the three channels: byte % 4 (0: unbuffered)
 *   then        operations of 3 bytes each (at most MAX_OPS): an opcode
 *               byte (low nibble: the operation, high nibble: the thread
 *               that runs it, modulo the number of threads) and two
 *               argument bytes a and b
 *
 * The operations: send, receive, close, select over 2 or 3 cases, mutex
 * lock (with a deadline), trylock, unlock, a critical section (yields while
 * holding the mutexes it holds), yield and a short sleep.  Every blocking
 * call has a deadline of at most 1 ms (or WEFT_NOWAIT, or one that has
 * passed), so every program ends.  Each thread runs its operations in
 * order; the threads run at once, so the interleaving is the scheduler's.
 *
 * Checked while it runs:
 *  - every call returns one of its documented results (-EAGAIN only for
 *    WEFT_NOWAIT, -ETIMEDOUT only for a deadline);
 *  - an element received is intact, was sent on that channel by this
 *    input, and is received once;
 *  - nothing can be sent on a channel known to be closed (the call must
 *    give -EPIPE), nothing received from a closed unbuffered channel, and a
 *    select with a case on a closed channel never times out;
 *  - a mutex is held by one thread at a time; relocking it fails (lock:
 *    -EDEADLK, trylock: -EBUSY).
 * Checked once every thread has been joined:
 *  - the elements still buffered plus those received are exactly those
 *    whose send succeeded; a channel holds at most its capacity;
 *  - a channel was closed successfully at most once, and -EPIPE was seen
 *    only on channels that were closed;
 *  - no thread is left queued: the mutexes are free and can be destroyed,
 *    the channels can be freed.
 */
#include "fuzz.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "weft.h"

#define T "sync"
#define NCH 3
#define NMX 2
#define MAXT 4
#define MAX_OPS 96
#define IDS (MAX_OPS * 3) /* ids a thread may use: 3 per select */
#define MAGIC 0x5bd1e9955bd1e995ull

enum op {
  OP_SEND,
  OP_RECV,
  OP_CLOSE,
  OP_SELECT,
  OP_LOCK,
  OP_TRYLOCK,
  OP_UNLOCK,
  OP_CRIT,
  OP_YIELD,
  OP_SLEEP,
  OP_COUNT
};

struct elem {
  uint64_t id; /* serial << 24 | channel << 16 | thread << 12 | seq */
  uint64_t check;
};

struct world;

struct thread {
  struct world *w;
  int idx;
  unsigned seq;
  bool held[NMX];
  bool saw_pipe[NCH];
  size_t nsent[NCH], nrecvd[NCH];
  uint64_t sent[NCH][IDS], recvd[NCH][IDS];
};

struct world {
  uint64_t serial;
  int nthreads;
  const uint8_t *ops;
  size_t nops;
  size_t cap[NCH];
  weft_chan *ch[NCH];
  weft_mutex mx[NMX];
  _Atomic int owner[NMX]; /* thread index + 1, 0: free */
  _Atomic bool closed[NCH];
  _Atomic int closes[NCH];
  struct thread th[MAXT];
};

static _Atomic uint64_t serials;

static int64_t deadline_of(unsigned d) {
  switch (d & 3) {
  case 0:
    return WEFT_NOWAIT;
  case 1:
    return weft_deadline(0); /* already passed */
  case 2:
    return weft_deadline(100 * 1000);
  default:
    return weft_deadline(1000 * 1000);
  }
}

/* A call that did not complete must say why, as documented. */
static void check_timeout(const char *what, int rc, int64_t deadline) {
  int want = deadline == WEFT_NOWAIT ? -EAGAIN : -ETIMEDOUT;
  if (rc != want)
    FUZZ_FAIL(T, "%s returned %d (%s), expected 0, -EPIPE or %d", what, rc,
              weft_strerror(rc), want);
}

static struct elem new_elem(struct thread *t, int c) {
  uint64_t id = t->w->serial << 24 | (uint64_t)c << 16 |
                (uint64_t)t->idx << 12 | (t->seq++ & 0xfff);
  return (struct elem){.id = id, .check = id ^ MAGIC};
}

static void check_elem(const struct world *w, const struct elem *e, int c,
                       const char *what) {
  if (e->check != (e->id ^ MAGIC))
    FUZZ_FAIL(T, "%s on channel %d: torn element %016llx/%016llx", what, c,
              (unsigned long long)e->id, (unsigned long long)e->check);
  if (e->id >> 24 != w->serial || (int)((e->id >> 16) & 0xff) != c)
    FUZZ_FAIL(T, "%s on channel %d: element %016llx was never sent there "
                 "in this run (serial %llu)",
              what, c, (unsigned long long)e->id,
              (unsigned long long)w->serial);
}

static void sent(struct thread *t, int c, const struct elem *e) {
  t->sent[c][t->nsent[c]++] = e->id;
}

static void received(struct thread *t, int c, const struct elem *e,
                     bool was_closed, const char *what) {
  check_elem(t->w, e, c, what);
  if (was_closed && t->w->cap[c] == 0)
    FUZZ_FAIL(T, "%s received %016llx from unbuffered channel %d after it "
                 "was closed",
              what, (unsigned long long)e->id, c);
  t->recvd[c][t->nrecvd[c]++] = e->id;
}

static void acquired(struct thread *t, int m) {
  int none = 0;
  if (!atomic_compare_exchange_strong(&t->w->owner[m], &none, t->idx + 1))
    FUZZ_FAIL(T, "thread %d locked mutex %d, which thread %d holds", t->idx,
              m, none - 1);
  t->held[m] = true;
}

static void release(struct thread *t, int m) {
  int me = t->idx + 1;
  if (!atomic_compare_exchange_strong(&t->w->owner[m], &me, 0))
    FUZZ_FAIL(T, "thread %d holds mutex %d, but its owner is %d", t->idx, m,
              me - 1);
  t->held[m] = false;
  int rc = weft_mutex_unlock(&t->w->mx[m]);
  if (rc != 0)
    FUZZ_FAIL(T, "unlock of a held mutex returned %d", rc);
}

static void op_send(struct thread *t, int c, int64_t dl) {
  struct world *w = t->w;
  struct elem e = new_elem(t, c);
  bool was_closed = atomic_load(&w->closed[c]);
  int rc = weft_chan_send_until(w->ch[c], &e, dl);
  if (rc == 0) {
    if (was_closed)
      FUZZ_FAIL(T, "send succeeded on channel %d after it was closed", c);
    sent(t, c, &e);
  } else if (rc == -EPIPE) {
    t->saw_pipe[c] = true;
  } else if (was_closed) {
    FUZZ_FAIL(T, "send on closed channel %d returned %d, not -EPIPE", c, rc);
  } else {
    check_timeout("send", rc, dl);
  }
}

static void op_recv(struct thread *t, int c, int64_t dl) {
  struct world *w = t->w;
  struct elem e;
  memset(&e, 0xee, sizeof e);
  bool was_closed = atomic_load(&w->closed[c]);
  int rc = weft_chan_recv_until(w->ch[c], &e, dl);
  if (rc == 0) {
    received(t, c, &e, was_closed, "recv");
  } else if (rc == -EPIPE) {
    t->saw_pipe[c] = true;
  } else if (was_closed) {
    FUZZ_FAIL(T, "recv on closed channel %d returned %d, not 0 or -EPIPE", c,
              rc);
  } else {
    check_timeout("recv", rc, dl);
  }
}

static void op_close(struct thread *t, int c) {
  struct world *w = t->w;
  int rc = weft_chan_close(w->ch[c]);
  if (rc == 0) {
    if (atomic_fetch_add(&w->closes[c], 1) != 0)
      FUZZ_FAIL(T, "channel %d closed successfully twice", c);
    atomic_store(&w->closed[c], true);
  } else if (rc == -EPIPE) {
    t->saw_pipe[c] = true;
  } else {
    FUZZ_FAIL(T, "close returned %d", rc);
  }
}

static void op_select(struct thread *t, unsigned a, unsigned b) {
  struct world *w = t->w;
  size_t n = 2 + (a & 1);
  weft_select_case cases[3];
  struct elem elems[3];
  int chs[3];
  bool was_closed[3], any_closed = false;
  int64_t dl = deadline_of(b >> 4);
  for (size_t i = 0; i < n; i++) {
    chs[i] = (int)((a >> (1 + 2 * i)) & 3) % NCH;
    bool is_send = (b >> i) & 1;
    if (is_send)
      elems[i] = new_elem(t, chs[i]);
    else
      memset(&elems[i], 0xee, sizeof elems[i]);
    cases[i] = (weft_select_case){.ch = w->ch[chs[i]],
                                  .op = is_send ? WEFT_SEND : WEFT_RECV,
                                  .elem = &elems[i],
                                  .result = 12345};
  }
  for (size_t i = 0; i < n; i++) {
    was_closed[i] = atomic_load(&w->closed[chs[i]]);
    any_closed |= was_closed[i];
  }
  int rc = weft_select(cases, n, dl);
  if (rc < 0) {
    if (any_closed)
      FUZZ_FAIL(T, "select returned %d with a closed channel among its "
                   "cases",
                rc);
    check_timeout("select", rc, dl);
    return;
  }
  if ((size_t)rc >= n)
    FUZZ_FAIL(T, "select of %zu cases returned %d", n, rc);
  int c = chs[rc];
  int res = cases[rc].result;
  if (res == -EPIPE) {
    t->saw_pipe[c] = true;
  } else if (res != 0) {
    FUZZ_FAIL(T, "select case %d fired with result %d", rc, res);
  } else if (cases[rc].op == WEFT_SEND) {
    if (was_closed[rc])
      FUZZ_FAIL(T, "select sent on channel %d after it was closed", c);
    sent(t, c, &elems[rc]);
  } else {
    received(t, c, &elems[rc], was_closed[rc], "select");
  }
}

static void op_lock(struct thread *t, int m, int64_t dl, bool try) {
  int rc = try ? weft_mutex_trylock(&t->w->mx[m])
               : weft_mutex_lock_until(&t->w->mx[m], dl);
  const char *what = try ? "trylock" : "lock";
  if (rc == 0) {
    if (t->held[m])
      FUZZ_FAIL(T, "%s of mutex %d succeeded while the caller holds it",
                what, m);
    acquired(t, m);
  } else if (try) {
    if (rc != -EBUSY)
      FUZZ_FAIL(T, "trylock returned %d", rc);
  } else if (t->held[m]) {
    /* The mutex checks its owner: relocking is a deadlock, refused. */
    if (rc != -EDEADLK)
      FUZZ_FAIL(T, "lock of mutex %d by its holder returned %d, expected "
                   "-EDEADLK",
                m, rc);
  } else {
    int want = dl == WEFT_NOWAIT ? -EAGAIN : -ETIMEDOUT;
    if (rc != want)
      FUZZ_FAIL(T, "lock returned %d, expected 0 or %d", rc, want);
  }
}

static void op_crit(struct thread *t) {
  struct world *w = t->w;
  for (int m = 0; m < NMX; m++)
    if (t->held[m] && atomic_load(&w->owner[m]) != t->idx + 1)
      FUZZ_FAIL(T, "mutex %d taken from thread %d", m, t->idx);
  weft_yield();
  for (int m = 0; m < NMX; m++)
    if (t->held[m] && atomic_load(&w->owner[m]) != t->idx + 1)
      FUZZ_FAIL(T, "mutex %d taken from thread %d across a yield", m,
                t->idx);
}

static void *run_thread(void *arg) {
  struct thread *t = arg;
  struct world *w = t->w;
  for (size_t i = 0; i < w->nops; i++) {
    const uint8_t *o = w->ops + 3 * i;
    if ((o[0] >> 4) % w->nthreads != t->idx)
      continue;
    unsigned a = o[1], b = o[2];
    int c = (int)(a % NCH), m = (int)(a % NMX);
    switch ((o[0] & 15) % OP_COUNT) {
    case OP_SEND:
      op_send(t, c, deadline_of(b));
      break;
    case OP_RECV:
      op_recv(t, c, deadline_of(b));
      break;
    case OP_CLOSE:
      op_close(t, c);
      break;
    case OP_SELECT:
      op_select(t, a, b);
      break;
    case OP_LOCK:
      op_lock(t, m, deadline_of(b), false);
      break;
    case OP_TRYLOCK:
      op_lock(t, m, WEFT_NOWAIT, true);
      break;
    case OP_UNLOCK:
      if (t->held[m])
        release(t, m);
      break;
    case OP_CRIT:
      op_crit(t);
      break;
    case OP_YIELD:
      weft_yield();
      break;
    case OP_SLEEP:
      weft_sleep((int64_t)(b & 63) * 1000);
      break;
    }
  }
  for (int m = 0; m < NMX; m++)
    if (t->held[m])
      release(t, m);
  return t;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* After the joins: what was sent is what was received or is buffered. */
static void check_channel(struct world *w, int c) {
  size_t nsent = 0, ngot = 0;
  for (int i = 0; i < w->nthreads; i++) {
    nsent += w->th[i].nsent[c];
    ngot += w->th[i].nrecvd[c];
  }
  size_t len = weft_chan_len(w->ch[c]);
  if (len > w->cap[c])
    FUZZ_FAIL(T, "channel %d holds %zu elements, capacity %zu", c, len,
              w->cap[c]);
  uint64_t *s = malloc((nsent + 1) * sizeof *s);
  uint64_t *g = malloc((ngot + len + 1) * sizeof *g);
  if (!s || !g)
    abort();
  size_t ns = 0, ng = 0;
  for (int i = 0; i < w->nthreads; i++) {
    memcpy(s + ns, w->th[i].sent[c], w->th[i].nsent[c] * sizeof *s);
    ns += w->th[i].nsent[c];
    memcpy(g + ng, w->th[i].recvd[c], w->th[i].nrecvd[c] * sizeof *g);
    ng += w->th[i].nrecvd[c];
  }
  bool is_closed = atomic_load(&w->closed[c]);
  for (;;) {
    struct elem e;
    int rc = weft_chan_recv_until(w->ch[c], &e, WEFT_NOWAIT);
    if (rc == 0) {
      check_elem(w, &e, c, "drain");
      if (ng == ngot + len)
        FUZZ_FAIL(T, "channel %d: more than its %zu buffered elements "
                     "drained",
                  c, len);
      g[ng++] = e.id;
      continue;
    }
    if (rc != (is_closed ? -EPIPE : -EAGAIN))
      FUZZ_FAIL(T, "drain of %s channel %d ended with %d",
                is_closed ? "closed" : "open", c, rc);
    break;
  }
  if (ng != ngot + len)
    FUZZ_FAIL(T, "channel %d: %zu buffered, %zu drained", c, len,
              ng - ngot);
  qsort(s, ns, sizeof *s, cmp_u64);
  qsort(g, ng, sizeof *g, cmp_u64);
  for (size_t i = 1; i < ng; i++)
    if (g[i] == g[i - 1])
      FUZZ_FAIL(T, "channel %d: element %016llx received twice", c,
                (unsigned long long)g[i]);
  if (ns != ng)
    FUZZ_FAIL(T, "channel %d (capacity %zu): %zu sends succeeded, %zu "
                 "elements received or left buffered",
              c, w->cap[c], ns, ng);
  for (size_t i = 0; i < ns; i++)
    if (s[i] != g[i])
      FUZZ_FAIL(T, "channel %d: element %016llx sent, %016llx received", c,
                (unsigned long long)s[i], (unsigned long long)g[i]);
  free(s);
  free(g);

  bool epipe = false;
  for (int i = 0; i < w->nthreads; i++)
    epipe |= w->th[i].saw_pipe[c];
  int ncloses = atomic_load(&w->closes[c]);
  if (ncloses > 1 || (epipe && ncloses != 1))
    FUZZ_FAIL(T, "channel %d: closed %d times, -EPIPE seen: %d", c, ncloses,
              epipe);
  int rc = weft_chan_free(w->ch[c]);
  if (rc != 0)
    FUZZ_FAIL(T, "weft_chan_free of channel %d returned %d: a thread is "
                 "still queued on it",
              c, rc);
}

void fuzz_sync_setup(void) {
  if (weft_running())
    return;
  weft_config cfg = {.workers = 2, .hog_ms = -1};
  int rc = weft_init(&cfg);
  if (rc != 0)
    FUZZ_FAIL(T, "weft_init: %s", weft_strerror(rc));
}

void fuzz_sync_check(const uint8_t *data, size_t size) {
  if (size < 4)
    return;
  struct world *w = calloc(1, sizeof *w);
  if (!w)
    abort();
  w->serial = atomic_fetch_add(&serials, 1) + 1;
  w->nthreads = 2 + data[0] % 3;
  w->ops = data + 4;
  w->nops = (size - 4) / 3;
  if (w->nops > MAX_OPS)
    w->nops = MAX_OPS;
  for (int c = 0; c < NCH; c++) {
    w->cap[c] = data[1 + c] % 4;
    int rc = weft_chan_open(&w->ch[c], sizeof(struct elem), w->cap[c]);
    if (rc != 0)
      FUZZ_FAIL(T, "weft_chan_open: %s", weft_strerror(rc));
  }
  for (int m = 0; m < NMX; m++)
    weft_mutex_init(&w->mx[m]);

  weft_gthread g[MAXT];
  weft_gthread_attr attr = {.stack_size = 256 << 10, .name = "sync_fuzz"};
  for (int i = 0; i < w->nthreads; i++) {
    w->th[i].w = w;
    w->th[i].idx = i;
    int rc = weft_spawn(&g[i], &attr, run_thread, &w->th[i]);
    if (rc != 0)
      FUZZ_FAIL(T, "weft_spawn: %s", weft_strerror(rc));
  }
  for (int i = 0; i < w->nthreads; i++) {
    void *res = NULL;
    int rc = weft_join(g[i], &res);
    if (rc != 0 || res != &w->th[i])
      FUZZ_FAIL(T, "weft_join: %s", weft_strerror(rc));
  }

  for (int m = 0; m < NMX; m++) {
    if (atomic_load(&w->owner[m]) != 0)
      FUZZ_FAIL(T, "mutex %d still owned after the joins", m);
    int rc = weft_mutex_trylock(&w->mx[m]);
    if (rc != 0)
      FUZZ_FAIL(T, "mutex %d not free after the joins: trylock %d", m, rc);
    rc = weft_mutex_unlock(&w->mx[m]);
    if (rc != 0)
      FUZZ_FAIL(T, "unlock of mutex %d returned %d", m, rc);
    rc = weft_mutex_destroy(&w->mx[m]);
    if (rc != 0)
      FUZZ_FAIL(T, "weft_mutex_destroy of mutex %d returned %d", m, rc);
  }
  for (int c = 0; c < NCH; c++)
    check_channel(w, c);
  free(w);
}

#ifndef FUZZ_NO_MAIN
/*
 * The runtime is started on the first input rather than in
 * LLVMFuzzerInitialize: libFuzzer installs its crash handlers after
 * LLVMFuzzerInitialize, and only where no handler is installed yet, while
 * weft's own (green-thread crash reports) chain to the handlers that were
 * there before them.  Started first, libFuzzer's handlers stay in the
 * chain, so an abort or a crash on a worker still writes the crash
 * artifact.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool started;
  if (!started) {
    fuzz_sync_setup();
    started = true;
  }
  fuzz_sync_check(data, size);
  return 0;
}
#endif
