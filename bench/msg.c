/*
 * msg.c - how many 4 KiB messages per second one unit can hand to another:
 * by reference, where both see the same memory, or copied through the
 * kernel, where they do not.
 *
 * A sender fills a 4 KiB payload and hands it over; the receiver reads all
 * of it (sums its words) and is done with it.  Between threads (and
 * between processes with the shared heap) the payload is not copied: the
 * sender allocates it, passes a pointer through a channel, and the
 * receiver frees it.  Through a pipe it is copied twice (write, read).
 *
 *   msg.rate.green         two green threads, 2 workers: malloc, a weft
 *                          channel of pointers (capacity 64), free
 *   msg.rate.kthread       two kernel threads (KTHREAD tasks) pinned to two
 *                          CPUs: malloc, a weft channel (capacity 64), free
 *   msg.rate.process.pipe  two worker processes pinned to two CPUs: the
 *                          payload copied through a pipe of 256 KiB (64
 *                          messages), read into a private buffer
 *   msg.rate.process.shm   two worker processes pinned to two CPUs:
 *                          weft_shm_alloc in the sender, the pointer through
 *                          a weft_pchan (capacity 64), weft_shm_free in the
 *                          receiver, which queues the free back to the
 *                          sender (the owner), which does it on its next
 *                          shared-heap call
 *   msg.rate.process.ring  the reference for the two above, not weft: the
 *                          same two processes and payload work over a bare
 *                          ring in shared memory, the index of one of 128
 *                          fixed buffers per message (64 in flight at
 *                          most) and a second ring handing buffers back;
 *                          both sides spin, nothing sleeps, nothing is
 *                          allocated or checked.  What this machine allows
 *                          for moving 4 KiB between two CPUs by reference.
 *
 * The rate is the receiver's: messages after a warm-up of 256, divided by
 * the time from the first of them to the end of the stream.  Each sample
 * is a fresh process; the kinds take turns within a repetition.
 *
 * Fairness: every kind fills the same payload and its receiver sums all of
 * it.  The pipe's read and write have no timeout; the pchan calls take one
 * deadline for the whole stream (TMO_NS from its start), computed once, so
 * that the shm side does not pay a clock read per message that the pipe
 * side does not (a hung peer still fails the sample, as does alarm()).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "gbench.h"

#define PAYLOAD 4096
#define DEPTH 64
#define WARMUP 256
#define SHM_SIZE ((size_t)256 << 20)
#define TMO_NS 10000000000LL
/* The first word of the pipe message that ends the stream (the supervisor
 * holds both ends of the pipe too, so closing it would not end it). */
#define END UINT64_MAX

enum kind { GREEN, KTHREAD, PR_PIPE, PR_SHM, PR_RING, NKINDS };

static const char *const kind_arg[NKINDS] = {
    "green", "kthread", "process.pipe", "process.shm", "process.ring"};
static const char *const kind_name[NKINDS] = {
    "msg.rate.green", "msg.rate.kthread", "msg.rate.process.pipe",
    "msg.rate.process.shm", "msg.rate.process.ring"};

/* The bare ring of msg.rate.process.ring: buffer indices from the sender
 * (at most DEPTH in flight, as the channels allow), and back. */
#define RING_BUFS 128
#define RING_END UINT32_MAX

struct ring {
  _Alignas(64) _Atomic uint64_t tail; /* sender: messages published */
  _Alignas(64) _Atomic uint64_t head; /* receiver: messages taken */
  _Alignas(64) uint32_t msg[DEPTH];
  _Alignas(64) _Atomic uint64_t rtail; /* receiver: buffers handed back */
  _Alignas(64) _Atomic uint64_t rhead; /* sender: buffers taken back */
  _Alignas(64) uint32_t back[RING_BUFS];
  _Alignas(4096) uint64_t buf[RING_BUFS][PAYLOAD / 8];
};

struct stream {
  enum kind kind;
  int64_t budget;
  weft_chan *ch;
  weft_pchan *pch;
  struct ring *ring;
  int fd[2];
  /* Results, written by the receiver. */
  int64_t ns;
  long msgs;
  uint64_t sum;
  int err;
};

static void fill(uint64_t *w, uint64_t seq) {
  for (int i = 0; i < PAYLOAD / 8; i++)
    w[i] = seq + (uint64_t)i;
}

static uint64_t sum(const uint64_t *w) {
  uint64_t s = 0;

  for (int i = 0; i < PAYLOAD / 8; i++)
    s += w[i];
  return s;
}

static int fail(struct stream *s, const char *what, int rc) {
  fprintf(stderr, "bench: %s %s: %s\n", kind_arg[s->kind], what,
          weft_strerror(rc));
  s->err = rc;
  return 1;
}

/* Pipe: exactly PAYLOAD bytes each way (a pipe write of at most PIPE_BUF
 * bytes is atomic; reads may still come in pieces). */
static int write_all(int fd, const void *buf) {
  for (size_t done = 0; done < PAYLOAD;) {
    ssize_t w = write(fd, (const char *)buf + done, PAYLOAD - done);

    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -errno;
    done += (size_t)w;
  }
  return 0;
}

static int read_all(int fd, void *buf) {
  /* 0, or -errno; an early end of file is -EPIPE. */
  for (size_t done = 0; done < PAYLOAD;) {
    ssize_t r = read(fd, (char *)buf + done, PAYLOAD - done);

    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return r < 0 ? -errno : -EPIPE;
    done += (size_t)r;
  }
  return 0;
}

/* The bare ring.  Each side spins on the other's index; every 1024 looks
 * it checks the stream's deadline, so a dead peer fails the sample. */
static int ring_until_not(_Atomic uint64_t *a, uint64_t v, int64_t deadline) {
  for (unsigned n = 1; atomic_load_explicit(a, memory_order_acquire) == v;
       n++) {
    __builtin_ia32_pause();
    if (n % 1024 == 0 && weft_now() > deadline)
      return -ETIMEDOUT;
  }
  return 0;
}

struct ring_free {
  uint32_t b[RING_BUFS];
  int n;
};

/* The sender's next buffer: one of its own free ones, or, when it has
 * none, every one handed back since it last looked. */
static int ring_take(struct ring *r, struct ring_free *f, int64_t deadline,
                     uint32_t *out) {
  if (f->n == 0) {
    uint64_t h = atomic_load_explicit(&r->rhead, memory_order_relaxed);
    int rc = ring_until_not(&r->rtail, h, deadline);
    uint64_t t = atomic_load_explicit(&r->rtail, memory_order_acquire);

    if (rc < 0)
      return rc;
    /* More back than were lent: a stream this sender did not start. */
    if (t - h > RING_BUFS)
      return -EPROTO;
    for (; h != t; h++)
      f->b[f->n++] = r->back[h % RING_BUFS];
    atomic_store_explicit(&r->rhead, h, memory_order_release);
  }
  *out = f->b[--f->n];
  return 0;
}

static int ring_put(struct ring *r, uint32_t b, int64_t deadline) {
  uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

  while (t - atomic_load_explicit(&r->head, memory_order_acquire) >= DEPTH) {
    int rc = ring_until_not(&r->head,
                            atomic_load_explicit(&r->head,
                                                 memory_order_relaxed),
                            deadline);
    if (rc < 0)
      return rc;
  }
  r->msg[t % DEPTH] = b;
  atomic_store_explicit(&r->tail, t + 1, memory_order_release);
  return 0;
}

/* The receiver's next message: its buffer, or NULL at the end. */
static int ring_get(struct ring *r, uint64_t **out, uint32_t *b,
                    int64_t deadline) {
  uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
  int rc = ring_until_not(&r->tail, h, deadline);

  if (rc < 0)
    return rc;
  *b = r->msg[h % DEPTH];
  atomic_store_explicit(&r->head, h + 1, memory_order_release);
  *out = *b == RING_END ? NULL : r->buf[*b];
  return 0;
}

static void ring_give_back(struct ring *r, uint32_t b) {
  uint64_t t = atomic_load_explicit(&r->rtail, memory_order_relaxed);

  /* Never full: there are RING_BUFS buffers in all. */
  r->back[t % RING_BUFS] = b;
  atomic_store_explicit(&r->rtail, t + 1, memory_order_release);
}

static int sender(struct stream *s) {
  static uint64_t buf[PAYLOAD / 8];
  int64_t t0 = 0, deadline = weft_deadline(TMO_NS);
  uint64_t *p = NULL;
  int rc = 0;
  struct ring_free rf = {.n = 0};

  if (s->kind == PR_RING)
    for (uint32_t b = 0; b < RING_BUFS; b++)
      rf.b[rf.n++] = b;
  if (s->kind != GREEN)
    bench_pin(0);
  for (uint64_t seq = 0;; seq++) {
    if (seq == WARMUP)
      t0 = bench_now();
    /* Every 64 messages: is the time up? */
    if (seq > WARMUP && seq % 64 == 0 && bench_now() - t0 >= s->budget)
      break;
    switch (s->kind) {
    case GREEN:
    case KTHREAD:
      if (!(p = malloc(PAYLOAD)))
        return fail(s, "malloc", -ENOMEM);
      fill(p, seq);
      rc = weft_chan_send(s->ch, &p);
      break;
    case PR_SHM:
      if ((rc = weft_shm_alloc(PAYLOAD, (void **)&p)) < 0)
        return fail(s, "weft_shm_alloc", rc);
      fill(p, seq);
      rc = weft_pchan_send(s->pch, &p, deadline);
      break;
    case PR_RING: {
      uint32_t b;

      if ((rc = ring_take(s->ring, &rf, deadline, &b)) < 0)
        return fail(s, "ring: no buffer back", rc);
      fill(s->ring->buf[b], seq);
      rc = ring_put(s->ring, b, deadline);
      break;
    }
    default:
      fill(buf, seq);
      rc = write_all(s->fd[1], buf);
      break;
    }
    if (rc < 0)
      return fail(s, "send", rc);
  }
  /* The end of the stream: a NULL pointer, or an END message. */
  p = NULL;
  switch (s->kind) {
  case GREEN:
  case KTHREAD:
    rc = weft_chan_send(s->ch, &p);
    break;
  case PR_SHM:
    rc = weft_pchan_send(s->pch, &p, deadline);
    break;
  case PR_RING:
    rc = ring_put(s->ring, RING_END, deadline);
    break;
  default:
    buf[0] = END;
    rc = write_all(s->fd[1], buf);
    break;
  }
  return rc < 0 ? fail(s, "send", rc) : 0;
}

static int receiver(struct stream *s) {
  static uint64_t buf[PAYLOAD / 8];
  int64_t t0 = 0, deadline = weft_deadline(TMO_NS);
  uint64_t total = 0, *p;
  long n = 0;
  int rc;

  if (s->kind != GREEN)
    bench_pin(1);
  for (;;) {
    switch (s->kind) {
    case GREEN:
    case KTHREAD:
      rc = weft_chan_recv(s->ch, &p);
      if (rc == 0 && p) {
        total += sum(p);
        free(p);
      }
      break;
    case PR_SHM:
      rc = weft_pchan_recv(s->pch, &p, deadline);
      if (rc == 0 && p) {
        total += sum(p);
        if ((rc = weft_shm_free(p)) < 0)
          return fail(s, "weft_shm_free", rc);
      }
      break;
    case PR_RING: {
      uint32_t b;

      rc = ring_get(s->ring, &p, &b, deadline);
      if (rc == 0 && p) {
        total += sum(p);
        ring_give_back(s->ring, b);
      }
      break;
    }
    default:
      rc = read_all(s->fd[0], buf);
      p = rc == 0 && buf[0] != END ? buf : NULL;
      if (p)
        total += sum(p);
      break;
    }
    if (rc < 0)
      return fail(s, "recv", rc);
    if (!p)
      break;
    if (n++ == WARMUP)
      t0 = bench_now();
  }
  s->ns = bench_now() - t0;
  s->msgs = n - WARMUP - 1;
  s->sum = total;
  return 0;
}

static void *sender_fn(void *p) { return (void *)(intptr_t)sender(p); }
static void *receiver_fn(void *p) { return (void *)(intptr_t)receiver(p); }

static int worker(int index, void *arg) {
  gb_worker_setup();
  return index == 0 ? sender(arg) : receiver(arg);
}

/* Child: args KIND BUDGET_MS.  Writes messages per second and the number
 * of messages timed. */
static int child(const struct bench_opts *o) {
  struct stream *s = bench_shared(sizeof(*s));
  int k;

  for (k = 0; k < NKINDS; k++)
    if (strcmp(o->child_argv[0], kind_arg[k]) == 0)
      break;
  if (k == NKINDS)
    return 2;
  s->kind = (enum kind)k;
  s->budget = atol(o->child_argv[1]) * 1000000LL;
  if (s->kind == GREEN) {
    weft_gthread a, b;

    gb_init(2);
    gb_check(weft_chan_open(&s->ch, sizeof(void *), DEPTH), "weft_chan_open");
    b = gb_spawn(receiver_fn, s);
    a = gb_spawn(sender_fn, s);
    if (gb_join(a) || gb_join(b))
      return 1;
    gb_check(weft_shutdown(), "weft_shutdown");
  } else if (s->kind == KTHREAD) {
    gb_check(weft_chan_open(&s->ch, sizeof(void *), DEPTH), "weft_chan_open");
    if (gb_kthread_pair(sender_fn, receiver_fn, s))
      return 1;
  } else {
    if (s->kind == PR_SHM) {
      gb_check(weft_shm_setup(SHM_SIZE, 2), "weft_shm_setup");
      gb_check(weft_pchan_open(&s->pch, sizeof(void *), DEPTH),
               "weft_pchan_open");
    } else if (s->kind == PR_RING) {
      s->ring = bench_shared(sizeof(*s->ring)); /* zeroed */
    } else {
      if (pipe(s->fd) != 0) {
        perror("bench: pipe");
        return 1;
      }
      /* Room for DEPTH messages, as the channels have. */
      if (fcntl(s->fd[1], F_SETPIPE_SZ, DEPTH * PAYLOAD) < 0)
        perror("bench: F_SETPIPE_SZ");
    }
    if (gb_procs_pair(worker, s))
      return 1;
  }
  if (s->err || s->msgs <= 0 || s->ns <= 0)
    return 1;
  bench_put(o, (double)s->msgs * 1e9 / (double)s->ns);
  bench_put(o, (double)s->msgs);
  return 0;
}

int main(int argc, char **argv) {
  struct bench_opts o;
  double rate[NKINDS][BENCH_MAX_REPS], msgs[NKINDS][BENCH_MAX_REPS];
  struct bench_tally t[NKINDS] = {{.runs = 0}};
  int got[NKINDS] = {0};
  char budget[16], note[160];

  bench_init(&o, argc, argv, "4 KiB messages per second between units", 120);
  if (o.child)
    return child(&o);
  snprintf(budget, sizeof(budget), "%d", o.quick ? 50 : 150);
  for (int k = 0; k < NKINDS; k++)
    snprintf(t[k].name, sizeof(t[k].name), "%s", kind_name[k]);
  for (int r = 0; r < o.reps; r++)
    for (int k = 0; k < NKINDS; k++) {
      const char *args[3] = {kind_arg[k], budget, NULL};
      double out[2];

      if (bench_childv(&o, &t[k], "msg", out, 2, args) == 2) {
        rate[k][got[k]] = out[0];
        msgs[k][got[k]++] = out[1];
      }
    }
  bench_table(&o, "4 KiB messages from one unit to another, per second");
  for (int k = 0; k < NKINDS; k++) {
    snprintf(note, sizeof(note), "%.0f messages in about %s ms; %s",
             bench_median(msgs[k], got[k]), budget,
             k == GREEN     ? "2 workers"
             : k == PR_PIPE ? "copied through a pipe, 2 CPUs"
             : k == PR_SHM  ? "pointer through a pchan, 2 CPUs"
             : k == PR_RING ? "bare ring, not weft: the machine's ceiling"
                            : "pointer through a channel, 2 CPUs");
    bench_row(&o, kind_name[k], &t[k], rate[k], got[k], "msg/s", note);
  }
  return bench_status();
}
