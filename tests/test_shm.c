/*
 * test_shm.c - the shared heap between worker processes.
 *
 * Each test runs a supervisor in a child of Criterion's process
 * (shm_helpers.h) that maps the region and forks workers, which attach to
 * their slots the way proc.c's workers do.
 *
 * Invariants checked:
 *  - weft_shm_setup refuses bad sizes and part counts (-EINVAL), a second
 *    mapping (-EALREADY), and vm.overcommit_memory=2 (-ENOMEM, with a
 *    message naming the sysctl); nothing is allowed without a region or
 *    outside a worker (-EPERM);
 *  - objects are 16-byte aligned, inside the region, owned by the worker
 *    that allocated them, keep their contents, and are counted live until
 *    freed; sizes 0 and above 1 GiB are refused, a full partition gives
 *    -ENOMEM;
 *  - a double free, a pointer from outside the region and a pointer into
 *    the middle of an object are refused with -EINVAL and a message;
 *  - a free by another process is routed to the owner, which completes it
 *    (its live count drops to zero, its remote-free count rises);
 *  - the threads and green threads of one worker allocate and free
 *    concurrently, also each other's objects;
 *  - after a worker dies and its partition is reclaimed: its generation
 *    is bumped, old references are -ESTALE, its memory reads zero, and
 *    its replacement's first objects land at the old addresses and read
 *    zero before they are written;
 *  - purging the arena discards freed pages for real (they read zero);
 *  - 1,000,000 objects of 8 B to 64 KiB pass between 4 worker processes
 *    through process channels with no checksum error, every free routed
 *    back to the owner, and 0 objects and 0 bytes live at the end.
 */
#include "shm_helpers.h"

#include <pthread.h>

#define MIB ((size_t)1 << 20)

TestSuite(shm, .timeout = 60);

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */
/* ------------------------------------------------------------------------ */

static int attach_bad(int index, void *arg) {
  (void)arg;
  /* sh_spawn attached to slot `index` already. */
  SH_CHECK_EQ(weft__shm_attach(index), -EALREADY);
  return 0;
}

static void setup_args_sup(void *arg) {
  (void)arg;
  int x = 0;
  void *p = NULL;
  /* Nothing works without a region. */
  SH_CHECK_EQ(weft_shm_alloc(16, &p), -EPERM);
  SH_CHECK_EQ(weft_shm_free(&x), -EINVAL);
  SH_CHECK_EQ(weft_shm_owner(&x), -EINVAL);
  SH_CHECK(!weft_shm_contains(&x));
  SH_CHECK_EQ(weft__shm_attach(0), -EPERM);
  weft_pchan *ch;
  SH_CHECK_EQ(weft_pchan_open(&ch, 8, 8), -EPERM);

  SH_CHECK_EQ(weft_shm_setup(0, 4), -EINVAL);
  SH_CHECK_EQ(weft_shm_setup(256 * MIB, 0), -EINVAL);
  SH_CHECK_EQ(weft_shm_setup(256 * MIB, -1), -EINVAL);
  SH_CHECK_EQ(weft_shm_setup(256 * MIB, WEFT__SHM_MAX_PARTS + 1), -EINVAL);
  SH_CHECK_EQ(weft_shm_setup(2 * MIB, 4), -EINVAL); /* parts under 1 MiB */
  SH_CHECK_EQ(weft_shm_setup(SIZE_MAX, 4), -EINVAL);
  SH_CHECK(weft__shm == NULL);

  SH_CHECK_EQ(weft_shm_setup(256 * MIB, 4), 0);
  SH_CHECK_EQ(weft_shm_setup(256 * MIB, 4), -EALREADY);
  SH_CHECK_EQ(weft_shm_setup(512 * MIB, 2), -EALREADY);
  SH_CHECK(weft__shm != NULL);
  SH_CHECK_EQ(weft__shm->nparts, 4);
  SH_CHECK(weft__shm->part_size >= 64 * MIB - 4096);
  SH_CHECK(weft_shm_contains(weft__shm->parts));
  SH_CHECK(!weft_shm_contains(&x));
  for (int i = 0; i < 4; i++) {
    SH_CHECK_EQ(weft__shm->slots[i].gen, 1);
    SH_CHECK_EQ(weft__shm->slots[i].alive, 0);
  }

  /* The supervisor is not a worker. */
  SH_CHECK_EQ(weft_shm_alloc(16, &p), -EPERM);
  SH_CHECK_EQ(weft__shm_attach(-1), -EINVAL);
  SH_CHECK_EQ(weft__shm_attach(4), -EINVAL);
  /* Pointers into the region that are not objects. */
  SH_CHECK_EQ(weft_shm_free(weft__shm->parts + 64), -EINVAL);
  SH_CHECK_EQ(weft_shm_owner(weft__shm->parts + 64), -EINVAL);

  pid_t w = sh_spawn(2, attach_bad, NULL);
  sh_wait_ok(w, "worker 2");
  SH_CHECK_EQ(weft__shm->slots[2].pid, w);
  SH_CHECK_EQ(weft__shm->slots[2].alive, 1);
  weft__shm_reclaim(2);
  SH_CHECK_EQ(weft__shm->slots[2].alive, 0);
  SH_CHECK_EQ(weft__shm->slots[2].pid, 0);
  SH_CHECK_EQ(weft__shm->slots[2].gen, 2);
}

Test(shm, setup_arguments) {
  struct h_child res;
  sh_run(setup_args_sup, NULL, &res, 30);
}

static void overcommit_sup(void *arg) {
  const char *dir = arg;
  char path[256];
  snprintf(path, sizeof path, "%s/overcommit", dir);
  FILE *f = fopen(path, "w");
  SH_CHECK(f != NULL);
  if (!f)
    return;
  fputs("2\n", f);
  fclose(f);
  weft__shm_overcommit_file = path;
  SH_CHECK_EQ(weft_shm_setup(256 * MIB, 4), -ENOMEM);
  SH_CHECK(weft__shm == NULL);
  f = fopen(path, "w");
  fputs("1\n", f);
  fclose(f);
  SH_CHECK_EQ(weft_shm_setup(256 * MIB, 4), 0);
  unlink(path);
}

Test(shm, overcommit_strict_refused) {
  char dir[] = "/tmp/weft-shm-XXXXXX";
  cr_assert(mkdtemp(dir) != NULL);
  struct h_child res;
  sh_run(overcommit_sup, dir, &res, 30);
  rmdir(dir);
  cr_expect(strstr(res.err, "vm.overcommit_memory=2") != NULL,
            "no message naming the sysctl; stderr:\n%s", res.err);
}

/* ------------------------------------------------------------------------ */
/* One worker: basics and refusals                                          */
/* ------------------------------------------------------------------------ */

static int basics_worker(int index, void *arg) {
  (void)arg;
  static const size_t sizes[] = {1,       8,    16,   17,    100,    1000,
                                 4096,    8176, 8177, 65536, 100000, MIB,
                                 3 * MIB, 24,   48,   64};
  enum { NS = sizeof sizes / sizeof sizes[0] };
  void *p[NS];
  int64_t objs, bytes, want_bytes = 0;

  SH_CHECK_EQ(weft__shm_live(&objs, &bytes), 0);
  SH_CHECK_EQ(objs, 0);
  for (int i = 0; i < NS; i++) {
    SH_CHECK_EQ(weft_shm_alloc(sizes[i], &p[i]), 0);
    SH_CHECK_EQ((uintptr_t)p[i] % 16, 0);
    SH_CHECK(weft_shm_contains(p[i]));
    SH_CHECK_EQ(weft_shm_owner(p[i]), index);
    SH_CHECK_EQ(weft_shm_owner((char *)p[i] + sizes[i] - 1), index);
    memset(p[i], 0x40 + i, sizes[i]);
    want_bytes += (int64_t)sizes[i];
    weft_shm_ref r = weft_shm_ref_of(p[i]);
    SH_CHECK_EQ(r.gen, 1);
    SH_CHECK_EQ(weft_shm_ref_check(r), 0);
  }
  SH_CHECK_EQ(weft__shm_live(&objs, &bytes), 0);
  SH_CHECK_EQ(objs, NS);
  SH_CHECK_EQ(bytes, want_bytes);
  SH_CHECK_EQ(weft__shm->slots[index].live_objs, NS);
  for (int i = 0; i < NS; i++) {
    const unsigned char *c = p[i];
    size_t bad = 0;
    for (size_t k = 0; k < sizes[i]; k++)
      bad += c[k] != 0x40 + i;
    SH_CHECK_EQ(bad, 0);
  }

  /* Refusals. */
  void *q = NULL;
  int local = 0;
  SH_CHECK_EQ(weft_shm_alloc(0, &q), -EINVAL);
  SH_CHECK_EQ(weft_shm_alloc(((size_t)1 << 30) + 1, &q), -EINVAL);
  SH_CHECK_EQ(weft_shm_alloc(16, NULL), -EINVAL);
  SH_CHECK_EQ(weft_shm_alloc(1 << 30, &q), -ENOMEM); /* 64 MiB partition */
  void *priv = malloc(64);
  SH_CHECK_EQ(weft_shm_free(priv), -EINVAL);
  free(priv);
  SH_CHECK_EQ(weft_shm_free(&local), -EINVAL);
  SH_CHECK_EQ(weft_shm_free((char *)p[4] + 16), -EINVAL); /* interior */
  SH_CHECK_EQ(weft_shm_free((char *)p[4] + 1), -EINVAL);  /* misaligned */
  SH_CHECK_EQ(weft_shm_owner(&local), -EINVAL);
  weft_shm_ref bad = weft_shm_ref_of(&local);
  SH_CHECK_EQ(bad.gen, 0);
  SH_CHECK_EQ(weft_shm_ref_check(bad), -EINVAL);

  /* Free everything; a second free of each is refused. */
  weft_shm_ref r0 = weft_shm_ref_of(p[0]);
  for (int i = 0; i < NS; i++)
    SH_CHECK_EQ(weft_shm_free(p[i]), 0);
  SH_CHECK_EQ(weft_shm_free(p[0]), -EINVAL);
  SH_CHECK_EQ(weft_shm_free(p[NS - 1]), -EINVAL);
  SH_CHECK_EQ(weft_shm_free(p[12]), -EINVAL);   /* a large one */
  SH_CHECK_EQ(weft_shm_ref_check(r0), -ESTALE); /* freed */
  SH_CHECK_EQ(weft_shm_free(NULL), 0);
  SH_CHECK_EQ(weft__shm_live(&objs, &bytes), 0);
  SH_CHECK_EQ(objs, 0);
  SH_CHECK_EQ(bytes, 0);

  /* The memory is reused. */
  for (int round = 0; round < 1000; round++) {
    for (int i = 0; i < NS; i++)
      SH_CHECK_EQ(weft_shm_alloc(sizes[i], &p[i]), 0);
    for (int i = 0; i < NS; i++)
      SH_CHECK_EQ(weft_shm_free(p[i]), 0);
  }
  SH_CHECK(weft__shm->slots[index].used < 32 * MIB);
  SH_CHECK_EQ(weft__shm_live(&objs, &bytes), 0);
  SH_CHECK_EQ(objs, 0);
  return 0;
}

static void basics_sup(void *arg) {
  (void)arg;
  SH_CHECK_EQ(weft_shm_setup(4 * 64 * MIB, 4), 0);
  pid_t w = sh_spawn(1, basics_worker, NULL);
  sh_wait_ok(w, "worker 1");
}

Test(shm, alloc_free_and_refusals) {
  struct h_child res;
  sh_run(basics_sup, NULL, &res, 30);
  cr_expect(strstr(res.err, "double free") != NULL, "stderr:\n%s", res.err);
  cr_expect(strstr(res.err, "not a shared-heap pointer") != NULL, "stderr:\n%s",
            res.err);
  cr_expect(strstr(res.err, "not the start of a shared-heap object") != NULL,
            "stderr:\n%s", res.err);
}

/* ------------------------------------------------------------------------ */
/* Purging discards pages for real                                          */
/* ------------------------------------------------------------------------ */

static size_t nonzero(const void *p, size_t n) {
  const unsigned char *c = p;
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += c[i] != 0;
  return bad;
}

static int purge_worker(int index, void *arg) {
  (void)index;
  (void)arg;
  size_t big = 4 * MIB;
  void *p, *q;
  SH_CHECK_EQ(weft_shm_alloc(big, &p), 0);
  memset(p, 0xCD, big);
  SH_CHECK_EQ(weft_shm_free(p), 0);
  SH_CHECK_EQ(weft__shm_purge(), 0);
  /* The purge went through the hooks' MADV_REMOVE: the pages are gone for
   * every process, and read zero. */
  SH_CHECK_EQ(nonzero(p, big), 0);
  /* jemalloc trusts that and hands the memory out as zeroed. */
  SH_CHECK_EQ(weft_shm_alloc(big, &q), 0);
  SH_CHECK_EQ(nonzero(q, big), 0);
  SH_CHECK_EQ(weft_shm_free(q), 0);
  return 0;
}

static void purge_sup(void *arg) {
  (void)arg;
  SH_CHECK_EQ(weft_shm_setup(2 * 64 * MIB, 2), 0);
  sh_wait_ok(sh_spawn(0, purge_worker, NULL), "worker 0");
}

Test(shm, purge_really_zeroes) {
  struct h_child res;
  sh_run(purge_sup, NULL, &res, 30);
}

/* ------------------------------------------------------------------------ */
/* Threads and green threads of one worker                                  */
/* ------------------------------------------------------------------------ */

#define T_THREADS 4
#define T_ROUNDS 20000

struct handoff {
  _Atomic(void *) slot[64];
};

struct tctx {
  struct handoff *h;
  int id;
};

/* Allocates, frees its own objects, and frees objects another thread
 * left in the handoff slots (and leaves its own there). */
static void *thread_body(void *arg) {
  struct tctx *c = arg;
  uint64_t rng = 0x1234 + (uint64_t)c->id;
  void *mine[16];
  for (int r = 0; r < T_ROUNDS; r++) {
    int n = 1 + (int)(h_rand(&rng) % 16);
    for (int i = 0; i < n; i++) {
      size_t sz = 1 + h_rand(&rng) % 2000;
      if (weft_shm_alloc(sz, &mine[i]) != 0) {
        SH_CHECK(!"alloc failed");
        return NULL;
      }
      memset(mine[i], c->id, sz < 64 ? sz : 64);
    }
    /* Swap one into a random handoff slot; free what was there. */
    void *old = atomic_exchange(&c->h->slot[h_rand(&rng) % 64], mine[0]);
    if (old)
      SH_CHECK_EQ(weft_shm_free(old), 0);
    for (int i = 1; i < n; i++)
      SH_CHECK_EQ(weft_shm_free(mine[i]), 0);
    if (r % 1000 == 0)
      weft_yield();
  }
  return NULL;
}

static void drain_handoff(struct handoff *h) {
  for (int i = 0; i < 64; i++) {
    void *p = atomic_exchange(&h->slot[i], NULL);
    if (p)
      SH_CHECK_EQ(weft_shm_free(p), 0);
  }
}

static int threads_worker(int index, void *arg) {
  (void)index;
  (void)arg;
  static struct handoff h;
  pthread_t t[T_THREADS];
  struct tctx c[T_THREADS];
  for (int i = 0; i < T_THREADS; i++) {
    c[i] = (struct tctx){&h, i};
    SH_CHECK_EQ(pthread_create(&t[i], NULL, thread_body, &c[i]), 0);
  }
  for (int i = 0; i < T_THREADS; i++)
    pthread_join(t[i], NULL);
  drain_handoff(&h);
  int64_t objs, bytes;
  SH_CHECK_EQ(weft__shm_live(&objs, &bytes), 0);
  SH_CHECK_EQ(objs, 0);
  SH_CHECK_EQ(bytes, 0);
  return 0;
}

static int green_worker(int index, void *arg) {
  (void)index;
  (void)arg;
  static struct handoff h;
  weft_config cfg = {.workers = 2};
  SH_CHECK_EQ(weft_init(&cfg), 0);
  weft_gthread g[8];
  struct tctx c[8];
  for (int i = 0; i < 8; i++) {
    c[i] = (struct tctx){&h, i};
    SH_CHECK_EQ(weft_spawn(&g[i], NULL, thread_body, &c[i]), 0);
  }
  for (int i = 0; i < 8; i++)
    SH_CHECK_EQ(weft_join(g[i], NULL), 0);
  SH_CHECK_EQ(weft_shutdown(), 0);
  drain_handoff(&h);
  int64_t objs, bytes;
  SH_CHECK_EQ(weft__shm_live(&objs, &bytes), 0);
  SH_CHECK_EQ(objs, 0);
  SH_CHECK_EQ(bytes, 0);
  return 0;
}

static void threads_sup(void *arg) {
  (void)arg;
  SH_CHECK_EQ(weft_shm_setup(2 * 256 * MIB, 2), 0);
  sh_pair(threads_worker, "worker 0 (threads)", green_worker,
          "worker 1 (green threads)", NULL);
}

Test(shm, threads_and_green_threads) {
  struct h_child res;
  sh_run(threads_sup, NULL, &res, 50);
}

/* ------------------------------------------------------------------------ */
/* Frees by another process go to the owner                                 */
/* ------------------------------------------------------------------------ */

#define F_OBJS 3000 /* more than fit in the mailbox at once */

struct fmsg {
  void *p;
  uint32_t size;
  uint32_t seq;
};

struct fstate {
  weft_pchan *to1, *ack;
  int64_t live_before_ack, live_after;
  uint64_t remote_frees;
};

static int foreign_owner(int index, void *arg) {
  struct fstate *f = arg;
  for (uint32_t i = 0; i < F_OBJS; i++) {
    struct fmsg m = {NULL, 1 + i % 700, i};
    SH_CHECK_EQ(weft_shm_alloc(m.size, &m.p), 0);
    memset(m.p, (int)(i & 0xff), m.size);
    SH_CHECK_EQ(weft_pchan_send(f->to1, &m, WEFT_FOREVER), 0);
  }
  int64_t objs, bytes;
  int ack;
  SH_CHECK_EQ(weft_pchan_recv(f->ack, &ack, WEFT_FOREVER), 0);
  /* The other worker freed everything; the last frees may still sit in
   * the mailbox: drain, then nothing is live. */
  SH_CHECK_EQ(weft_shm_free(NULL), 0);
  SH_CHECK_EQ(weft__shm_live(&objs, &bytes), 0);
  f->live_after = objs;
  f->remote_frees = atomic_load(&weft__shm->slots[index].remote_frees);
  SH_CHECK_EQ(bytes, 0);
  return 0;
}

static int foreign_freer(int index, void *arg) {
  struct fstate *f = arg;
  void *first = NULL;
  for (uint32_t i = 0; i < F_OBJS; i++) {
    struct fmsg m;
    SH_CHECK_EQ(weft_pchan_recv(f->to1, &m, WEFT_FOREVER), 0);
    SH_CHECK_EQ(m.seq, i);
    SH_CHECK_EQ(weft_shm_owner(m.p), 0);
    SH_CHECK(weft_shm_owner(m.p) != index);
    const unsigned char *c = m.p;
    size_t bad = 0;
    for (size_t k = 0; k < m.size; k++)
      bad += c[k] != (i & 0xff);
    SH_CHECK_EQ(bad, 0);
    if (i == 0) {
      first = m.p;
      continue; /* freed last, twice */
    }
    SH_CHECK_EQ(weft_shm_free(m.p), 0);
  }
  SH_CHECK_EQ(weft_shm_free(first), 0);
  /* The owner allocates nothing until the ack, so the object cannot have
   * been reused: the second free is refused. */
  SH_CHECK_EQ(weft_shm_free(first), -EINVAL);
  int64_t objs;
  SH_CHECK_EQ(weft__shm_live(&objs, NULL), 0);
  SH_CHECK_EQ(objs, 0); /* it allocated nothing */
  int ack = 1;
  SH_CHECK_EQ(weft_pchan_send(f->ack, &ack, WEFT_FOREVER), 0);
  return 0;
}

static void foreign_sup(void *arg) {
  struct fstate *f = arg;
  SH_CHECK_EQ(weft_shm_setup(2 * 64 * MIB, 2), 0);
  SH_CHECK_EQ(weft_pchan_open(&f->to1, sizeof(struct fmsg), 64), 0);
  SH_CHECK_EQ(weft_pchan_open(&f->ack, sizeof(int), 1), 0);
  sh_pair(foreign_owner, "worker 0", foreign_freer, "worker 1", f);
}

Test(shm, foreign_frees_go_to_the_owner) {
  struct fstate *f = sh_map(sizeof *f);
  f->live_after = -1;
  struct h_child res;
  sh_run(foreign_sup, f, &res, 30);
  cr_expect_eq(f->live_after, 0);
  cr_expect_eq(f->remote_frees, F_OBJS);
  cr_expect(strstr(res.err, "double free") != NULL, "stderr:\n%s", res.err);
}

/* ------------------------------------------------------------------------ */
/* A remote free is taken back at the owner's next call                     */
/* ------------------------------------------------------------------------ */

/* The owner allocates an object and sends it to the other worker, which
 * frees it; the owner's next allocation of that size takes it back from
 * the mailbox and hands it out again (its front cache gives the last
 * object put back first): a stream of messages reuses the buffer the
 * receiver has just read, not one it left long ago.  The owner waits for
 * the free on a flag, not in a process channel, whose waits drain. */
struct nstate {
  weft_pchan *to1;
  atomic_int freed;
  void *first, *next;
  uint64_t remote_frees;
};

static int next_owner(int index, void *arg) {
  struct nstate *n = arg;
  SH_CHECK_EQ(weft_shm_alloc(100, &n->first), 0);
  SH_CHECK_EQ(weft_pchan_send(n->to1, &n->first, WEFT_FOREVER), 0);
  if (!sh_await(&n->freed, 1))
    return 1;
  SH_CHECK_EQ(weft_shm_alloc(100, &n->next), 0);
  n->remote_frees = atomic_load(&weft__shm->slots[index].remote_frees);
  SH_CHECK_EQ(weft_shm_free(n->next), 0);
  return 0;
}

static int next_freer(int index, void *arg) {
  (void)index;
  struct nstate *n = arg;
  void *p;
  SH_CHECK_EQ(weft_pchan_recv(n->to1, &p, WEFT_FOREVER), 0);
  SH_CHECK_EQ(weft_shm_free(p), 0);
  atomic_store(&n->freed, 1);
  return 0;
}

static void next_sup(void *arg) {
  struct nstate *n = arg;
  SH_CHECK_EQ(weft_shm_setup(2 * 64 * MIB, 2), 0);
  SH_CHECK_EQ(weft_pchan_open(&n->to1, sizeof(void *), 1), 0);
  sh_pair(next_owner, "worker 0", next_freer, "worker 1", n);
}

Test(shm, a_remote_free_is_reused_by_the_next_alloc) {
  struct nstate *n = sh_map(sizeof *n);
  struct h_child res;
  sh_run(next_sup, n, &res, 30);
  cr_expect_eq(n->remote_frees, 1,
               "the owner had taken back %llu remote frees at its next call",
               (unsigned long long)n->remote_frees);
  cr_expect(n->next == n->first && n->first,
            "the next allocation was %p, not the object just freed (%p)",
            n->next, n->first);
}

/* ------------------------------------------------------------------------ */
/* Several threads of the owner drain its mailbox at once                   */
/* ------------------------------------------------------------------------ */

/* The owner's threads each send D_OBJS objects to the other worker, which
 * frees them (into the owner's mailbox), while every one of them drains
 * it, from its fast paths and explicitly after each object.  Each entry
 * must be taken by one of them: taken by two, it is counted twice and the
 * second is dropped as a double free, or one object goes to two front
 * caches and two later allocations share it (the freer finds another
 * message's pattern).  With the drain's claim of the head made a plain
 * store instead of its CAS, this fails 7 runs of 8. */
#define D_THREADS 8
#define D_OBJS 50000
#define D_SIZE 96

struct dmsg {
  uint32_t *p;
  uint32_t tag; /* thread << 24 | seq */
};

struct dstate {
  weft_pchan *ch, *done;
  int64_t live_after;
  uint64_t remote_frees;
  long bad;
};

struct dthread {
  struct dstate *d;
  uint32_t id;
};

static void *drainer_thread(void *arg) {
  struct dthread *t = arg;
  for (uint32_t i = 0; i < D_OBJS; i++) {
    struct dmsg m = {NULL, t->id << 24 | i};
    SH_CHECK_EQ(weft_shm_alloc(D_SIZE, (void **)&m.p), 0);
    for (size_t k = 0; k < D_SIZE / 4; k++)
      m.p[k] = m.tag;
    SH_CHECK_EQ(weft_pchan_send(t->d->ch, &m, WEFT_FOREVER), 0);
    SH_CHECK_EQ(weft_shm_free(NULL), 0);
  }
  return NULL;
}

static int drain_owner(int index, void *arg) {
  struct dstate *d = arg;
  pthread_t th[D_THREADS];
  struct dthread t[D_THREADS];
  for (uint32_t i = 0; i < D_THREADS; i++) {
    t[i] = (struct dthread){d, i};
    SH_CHECK_EQ(pthread_create(&th[i], NULL, drainer_thread, &t[i]), 0);
  }
  for (int i = 0; i < D_THREADS; i++)
    pthread_join(th[i], NULL);
  int done;
  SH_CHECK_EQ(weft_pchan_recv(d->done, &done, WEFT_FOREVER), 0);
  SH_CHECK_EQ(weft_shm_free(NULL), 0);
  int64_t objs;
  SH_CHECK_EQ(weft__shm_live(&objs, NULL), 0);
  d->live_after = objs;
  d->remote_frees = atomic_load(&weft__shm->slots[index].remote_frees);
  return 0;
}

static int drain_freer(int index, void *arg) {
  (void)index;
  struct dstate *d = arg;
  long bad = 0;
  for (long n = 0; n < (long)D_THREADS * D_OBJS; n++) {
    struct dmsg m;
    SH_CHECK_EQ(weft_pchan_recv(d->ch, &m, WEFT_FOREVER), 0);
    for (size_t k = 0; k < D_SIZE / 4; k++)
      bad += m.p[k] != m.tag;
    SH_CHECK_EQ(weft_shm_free(m.p), 0);
  }
  d->bad = bad;
  int done = 1;
  SH_CHECK_EQ(weft_pchan_send(d->done, &done, WEFT_FOREVER), 0);
  return 0;
}

static void drain_sup(void *arg) {
  struct dstate *d = arg;
  SH_CHECK_EQ(weft_shm_setup(2 * 64 * MIB, 2), 0);
  SH_CHECK_EQ(weft_pchan_open(&d->ch, sizeof(struct dmsg), 4096), 0);
  SH_CHECK_EQ(weft_pchan_open(&d->done, sizeof(int), 1), 0);
  sh_pair(drain_owner, "worker 0 (threads)", drain_freer, "worker 1", d);
}

Test(shm, owner_threads_drain_at_once) {
  struct dstate *d = sh_map(sizeof *d);
  d->live_after = -1;
  struct h_child res;
  sh_run(drain_sup, d, &res, 60);
  cr_expect_eq(d->bad, 0, "%ld words of objects held another message's",
               d->bad);
  cr_expect_eq(d->live_after, 0, "the owner counts %lld objects live",
               (long long)d->live_after);
  cr_expect_eq(d->remote_frees, (uint64_t)D_THREADS * D_OBJS,
               "%llu remote frees completed of %d",
               (unsigned long long)d->remote_frees, D_THREADS * D_OBJS);
  cr_expect(strstr(res.err, "dropped") == NULL, "stderr:\n%s", res.err);
}

/* ------------------------------------------------------------------------ */
/* A dead worker's partition is reclaimed                                   */
/* ------------------------------------------------------------------------ */

#define R_OBJS 64

struct rstate {
  atomic_int ready;
  void *p[R_OBJS];
  size_t size[R_OBJS];
  weft_shm_ref ref[R_OBJS];
  void *q[R_OBJS]; /* the replacement's */
  weft_shm_ref qref[R_OBJS];
  size_t nonzero_new;
  int same_addresses;
};

static size_t r_size(int i) { return i % 4 == 3 ? 70000 : 16 + 40 * (size_t)i; }

static int doomed_worker(int index, void *arg) {
  (void)index;
  struct rstate *r = arg;
  for (int i = 0; i < R_OBJS; i++) {
    r->size[i] = r_size(i);
    SH_CHECK_EQ(weft_shm_alloc(r->size[i], &r->p[i]), 0);
    memset(r->p[i], 0xAB, r->size[i]);
    r->ref[i] = weft_shm_ref_of(r->p[i]);
  }
  atomic_store(&r->ready, 1);
  sh_hang(); /* until killed */
}

static int replacement_worker(int index, void *arg) {
  (void)index;
  struct rstate *r = arg;
  size_t bad = 0;
  int same = 0;
  for (int i = 0; i < R_OBJS; i++) {
    SH_CHECK_EQ(weft_shm_alloc(r_size(i), &r->q[i]), 0);
    /* calloc-style: memory of a reclaimed partition reads zero */
    bad += nonzero(r->q[i], r_size(i));
    same += r->q[i] == r->p[i];
    r->qref[i] = weft_shm_ref_of(r->q[i]);
    SH_CHECK_EQ(r->qref[i].gen, 2);
    /* the dead worker's references stay stale, even where the memory is
     * one of our live objects now */
    SH_CHECK_EQ(weft_shm_ref_check(r->ref[i]), -ESTALE);
    SH_CHECK_EQ(weft_shm_ref_check(r->qref[i]), 0);
  }
  r->nonzero_new = bad;
  r->same_addresses = same;
  for (int i = 0; i < R_OBJS; i++)
    SH_CHECK_EQ(weft_shm_free(r->q[i]), 0);
  return 0;
}

static void reclaim_sup(void *arg) {
  struct rstate *r = arg;
  SH_CHECK_EQ(weft_shm_setup(2 * 64 * MIB, 2), 0);
  struct weft__shm_slot *s = &weft__shm->slots[0];
  pid_t w = sh_spawn(0, doomed_worker, r);
  if (!sh_await(&r->ready, 1))
    return;
  SH_CHECK_EQ(s->alive, 1);
  SH_CHECK_EQ(s->pid, w);
  SH_CHECK(s->used > 0);
  for (int i = 0; i < R_OBJS; i++) {
    SH_CHECK_EQ(r->ref[i].gen, 1);
    SH_CHECK_EQ(weft_shm_ref_check(r->ref[i]), 0);
    SH_CHECK_EQ(weft_shm_owner(r->p[i]), 0);
  }
  /* A free from another process before the owner is reclaimed: queued
   * (to be dropped with the partition). */
  SH_CHECK_EQ(weft_shm_free(r->p[0]), 0);

  kill(w, SIGKILL);
  int st = sh_wait(w);
  SH_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  weft__shm_reclaim(0);

  SH_CHECK_EQ(s->alive, 0);
  SH_CHECK_EQ(s->pid, 0);
  SH_CHECK_EQ(s->gen, 2);
  SH_CHECK_EQ(s->used, 0);
  SH_CHECK_EQ(s->mb_head, s->mb_tail);
  SH_CHECK(!weft__shm_slot_alive(0, 1));
  size_t bad = 0;
  for (int i = 0; i < R_OBJS; i++) {
    SH_CHECK_EQ(weft_shm_ref_check(r->ref[i]), -ESTALE);
    bad += nonzero(r->p[i], r->size[i]); /* the pages were discarded */
  }
  SH_CHECK_EQ(bad, 0);
  /* A stale pointer is refused, not freed (nothing lives there yet). */
  SH_CHECK_EQ(weft_shm_free(r->p[1]), -EINVAL);

  w = sh_spawn(0, replacement_worker, r);
  sh_wait_ok(w, "replacement worker 0");
  SH_CHECK_EQ(s->gen, 2);
  SH_CHECK(weft__shm_slot_alive(0, 2));
}

Test(shm, dead_worker_reclaimed) {
  struct rstate *r = sh_map(sizeof *r);
  struct h_child res;
  sh_run(reclaim_sup, r, &res, 30);
  cr_expect_eq(r->nonzero_new, 0, "reclaimed memory was not zero");
  /* As measured on this platform: the replacement's first objects land
   * where the dead worker's were (which is why refs carry generations). */
  cr_expect_eq(r->same_addresses, R_OBJS);
  cr_expect(strstr(res.err, "reclaimed") != NULL, "stderr:\n%s", res.err);
}

/* ------------------------------------------------------------------------ */
/* 1,000,000 objects between 4 processes                                    */
/* ------------------------------------------------------------------------ */

#define X_WORKERS 4
#define X_PER_WORKER 250000
#define X_INBOX 512

struct xmsg {
  void *p; /* NULL: the sender is done */
  uint32_t size;
  uint32_t from;
  uint64_t sum;
};

struct xworker {
  int64_t sent, received, bad_sum, bad_owner, errors;
  int64_t live_objs, live_bytes;
  uint64_t remote_frees;
  int64_t ms;
};

struct xstate {
  weft_pchan *inbox[X_WORKERS];
  struct xworker w[X_WORKERS];
};

static uint64_t checksum(const void *p, size_t n) {
  const unsigned char *c = p;
  uint64_t h = 0xcbf29ce484222325ull ^ n, w;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    memcpy(&w, c + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
  }
  for (; i < n; i++)
    h = (h ^ c[i]) * 0x100000001b3ull;
  return h;
}

static void fill(void *p, size_t n, uint64_t seed) {
  unsigned char *c = p;
  uint64_t x = seed | 1;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    memcpy(c + i, &x, 8);
  }
  for (; i < n; i++)
    c[i] = (unsigned char)(x >> (8 * (i & 7)));
}

/* 8 B to 64 KiB, mostly small: 90% up to 512 B, 9% up to 8 KiB. */
static uint32_t x_size(uint64_t *rng, long k) {
  if (k == 0)
    return 8;
  if (k == 1)
    return 65536;
  uint64_t r = h_rand(rng);
  unsigned pct = (unsigned)(r % 100);
  r >>= 8;
  if (pct < 90)
    return 8 + (uint32_t)(r % 505);
  if (pct < 99)
    return 513 + (uint32_t)(r % (8192 - 512));
  return 8193 + (uint32_t)(r % (65536 - 8192 + 1));
}

struct xsender {
  struct xstate *x;
  int index;
};

static void *x_send(void *arg) {
  struct xsender *s = arg;
  struct xstate *x = s->x;
  int i = s->index;
  uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
  for (long k = 0; k < X_PER_WORKER; k++) {
    struct xmsg m = {NULL, x_size(&rng, k), (uint32_t)i, 0};
    int rc = weft_shm_alloc(m.size, &m.p);
    if (rc) {
      SH_CHECK_EQ(rc, 0);
      x->w[i].errors++;
      break;
    }
    fill(m.p, m.size, h_rand(&rng));
    m.sum = checksum(m.p, m.size);
    int to = (i + 1 + (int)(k % (X_WORKERS - 1))) % X_WORKERS;
    rc = weft_pchan_send(x->inbox[to], &m, WEFT_FOREVER);
    if (rc) {
      SH_CHECK_EQ(rc, 0);
      x->w[i].errors++;
      break;
    }
    x->w[i].sent++;
  }
  for (int to = 0; to < X_WORKERS; to++) {
    struct xmsg end = {NULL, 0, (uint32_t)i, 0};
    if (to != i)
      SH_CHECK_EQ(weft_pchan_send(x->inbox[to], &end, WEFT_FOREVER), 0);
  }
  return NULL;
}

static int x_worker(int index, void *arg) {
  struct xstate *x = arg;
  struct xworker *me = &x->w[index];
  int64_t t0 = weft_now();
  struct xsender s = {x, index};
  pthread_t sender;
  SH_CHECK_EQ(pthread_create(&sender, NULL, x_send, &s), 0);

  /* This thread receives, checks and frees (each free goes back to the
   * object's owner). */
  int ends = 0;
  while (ends < X_WORKERS - 1) {
    struct xmsg m;
    int rc = weft_pchan_recv(x->inbox[index], &m, WEFT_FOREVER);
    if (rc) {
      SH_CHECK_EQ(rc, 0);
      me->errors++;
      break;
    }
    if (!m.p) {
      ends++;
      continue;
    }
    me->received++;
    if (weft_shm_owner(m.p) != (int)m.from || m.from == (uint32_t)index)
      me->bad_owner++;
    if (checksum(m.p, m.size) != m.sum)
      me->bad_sum++;
    if (weft_shm_free(m.p) != 0)
      me->errors++;
  }
  pthread_join(sender, NULL);

  /* Wait until every object this worker allocated came back. */
  int64_t objs = -1, bytes = -1;
  for (long i = 0; i < 200000; i++) {
    SH_CHECK_EQ(weft_shm_free(NULL), 0);
    weft__shm_live(&objs, &bytes);
    if (objs == 0)
      break;
    usleep(100);
  }
  me->live_objs = objs;
  me->live_bytes = bytes;
  me->remote_frees = atomic_load(&weft__shm->slots[index].remote_frees);
  me->ms = (weft_now() - t0) / 1000000;
  return 0;
}

static void x_sup(void *arg) {
  struct xstate *x = arg;
  SH_CHECK_EQ(weft_shm_setup((size_t)X_WORKERS * 256 * MIB, X_WORKERS), 0);
  for (int i = 0; i < X_WORKERS; i++)
    SH_CHECK_EQ(weft_pchan_open(&x->inbox[i], sizeof(struct xmsg), X_INBOX), 0);
  pid_t w[X_WORKERS];
  for (int i = 0; i < X_WORKERS; i++)
    w[i] = sh_spawn(i, x_worker, x);
  for (int i = 0; i < X_WORKERS; i++)
    sh_wait_ok(w[i], "exchange worker");
  for (int i = 0; i < X_WORKERS; i++) {
    SH_CHECK_EQ(weft__shm->slots[i].live_objs, 0);
    SH_CHECK_EQ(weft__shm->slots[i].live_bytes, 0);
  }
}

Test(shm, million_objects_between_four_processes, .timeout = 120) {
  struct xstate *x = sh_map(sizeof *x);
  struct h_child res;
  sh_run(x_sup, x, &res, 110);
  int64_t sent = 0, received = 0, remote = 0;
  for (int i = 0; i < X_WORKERS; i++) {
    struct xworker *w = &x->w[i];
    cr_expect_eq(w->sent, X_PER_WORKER, "worker %d sent %lld", i,
                 (long long)w->sent);
    cr_expect_eq(w->bad_sum, 0, "worker %d: %lld checksum errors", i,
                 (long long)w->bad_sum);
    cr_expect_eq(w->bad_owner, 0, "worker %d: %lld wrong owners", i,
                 (long long)w->bad_owner);
    cr_expect_eq(w->errors, 0, "worker %d: %lld errors", i,
                 (long long)w->errors);
    cr_expect_eq(w->live_objs, 0, "worker %d: %lld objects live", i,
                 (long long)w->live_objs);
    cr_expect_eq(w->live_bytes, 0, "worker %d: %lld bytes live", i,
                 (long long)w->live_bytes);
    /* Every object went to another worker, and every free came back. */
    cr_expect_eq(w->remote_frees, X_PER_WORKER, "worker %d: %llu remote frees",
                 i, (unsigned long long)w->remote_frees);
    sent += w->sent;
    received += w->received;
    remote += (int64_t)w->remote_frees;
    cr_log_info("worker %d: %lld ms", i, (long long)w->ms);
  }
  cr_expect_eq(sent, (int64_t)X_WORKERS * X_PER_WORKER);
  cr_expect_eq(received, sent);
  cr_expect_eq(remote, sent);
}
