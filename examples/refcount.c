/*
 * refcount.c - who frees shared memory, and a reference that outlived its
 * owner.
 *
 * 1. Threads of one process share the heap, so an object there can be
 *    used by several at once; the danger is a free while another still
 *    uses it.  Here main allocates an object with a reference count of 1
 *    (its own reference) and hands one more reference to each of four
 *    green threads, on two workers.  main then drops its reference at
 *    once; each holder reads the object later, drops its reference and
 *    says how many are left; the holder that drops the last one frees the
 *    object.  Nobody frees it while another can still read it, whoever
 *    finishes last.  The count is atomic (two workers may drop at the same
 *    moment) and a drop is a release, so the freeing thread sees every
 *    other holder's use of the object as finished (an acquire fence before
 *    the free).
 *
 * 2. Between processes the owner can die while another still holds a
 *    pointer.  Worker process 0 allocates an object in weft's shared heap
 *    and sends the pointer to worker 1, which takes a checkable reference
 *    (weft_shm_ref_of) and reads the object.  Then worker 0 is killed.
 *    The supervisor reclaims its partition (its pages are discarded and
 *    read as zero; its next worker would reuse them), and
 *    weft_shm_ref_check now answers -ESTALE: worker 1 learns the object is
 *    gone instead of reading whatever the address holds now.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

#define HOLDERS 4
#define WORKERS 2

static void die(const char *what, int rc) {
  fprintf(stderr, "refcount: %s: %s\n", what, weft_strerror(rc));
  exit(1);
}

/* ---- 1. a reference-counted object between green threads --------------- */

struct object {
  atomic_int refs;
  int value;
};

static atomic_int frees, good_reads;

/* Drops who's reference to o, and frees o if it was the last. */
static void drop(struct object *o, const char *who) {
  /* release: this holder's reads of o happen before the free, which the
   * last holder's acquire fence below pairs with. */
  int left = atomic_fetch_sub_explicit(&o->refs, 1, memory_order_release) - 1;

  if (left > 0) {
    printf("  %s drops its reference: %d left\n", who, left);
    return;
  }
  atomic_thread_fence(memory_order_acquire);
  /* Poison: a holder reading after the free would likely see -1.
   * (volatile: a plain store just before free() is dropped as dead.) */
  *(volatile int *)&o->value = -1;
  free(o);
  atomic_fetch_add(&frees, 1);
  printf("  %s drops the last reference and frees the object\n", who);
}

/* A holder: its index and its reference. */
struct hold {
  int k;
  struct object *o;
};

static void *holder(void *arg) {
  struct hold *h = arg;
  char who[32];

  snprintf(who, sizeof who, "holder %d", h->k);
  /* Each holder keeps its reference for a different time, so the drops
   * come in another order than the spawns. */
  weft_sleep(weft_ms(10 * (1 + (h->k * 3) % HOLDERS)));
  int v = h->o->value;
  printf("  %s (worker %d) reads %d\n", who, weft_worker_index(), v);
  if (v == 42)
    atomic_fetch_add(&good_reads, 1);
  drop(h->o, who);
  h->o = NULL; /* dropped: no more use */
  return NULL;
}

static bool counted(void) {
  weft_config cfg = {.workers = WORKERS};
  weft_gthread t[HOLDERS];
  struct hold h[HOLDERS];
  struct object *o = malloc(sizeof *o);
  int rc;

  if (!o)
    die("malloc", -ENOMEM);
  printf("1. one object, %d green threads on %d workers, a reference "
         "count\n",
         HOLDERS, WORKERS);
  atomic_init(&o->refs, 1); /* main's reference */
  o->value = 42;
  if ((rc = weft_init(&cfg)) < 0)
    die("weft_init", rc);
  for (int i = 0; i < HOLDERS; i++) {
    /* One reference per holder, taken before it starts (relaxed: the
     * spawn publishes the object to the new thread). */
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    h[i] = (struct hold){.k = i, .o = o};
    if ((rc = weft_spawn(&t[i], NULL, holder, &h[i])) < 0)
      die("weft_spawn", rc);
  }
  drop(o, "main");
  o = NULL; /* main's reference is gone: it must not touch the object */
  for (int i = 0; i < HOLDERS; i++)
    if ((rc = weft_join(t[i], NULL)) < 0)
      die("weft_join", rc);
  if ((rc = weft_shutdown()) < 0)
    die("weft_shutdown", rc);
  int n = atomic_load(&frees), reads = atomic_load(&good_reads);
  printf("  -> %d of %d holders read 42; the object was freed %s\n\n", reads,
         HOLDERS, n == 1 ? "once, by the last holder" : "MORE THAN ONCE");
  return n == 1 && reads == HOLDERS;
}

/* ---- 2. a stale reference into the shared heap ------------------------- */

static weft_pchan *to_reader, *to_owner, *result;

/* Worker 0: owns the object, hands it out, and dies. */
static int owner(void) {
  int *x, go, rc;

  if ((rc = weft_shm_alloc(sizeof *x, (void **)&x)) < 0)
    die("weft_shm_alloc", rc);
  *x = 42;
  printf("  worker 0 (pid %d): allocates an object at %p, value 42, and "
         "sends the pointer\n",
         (int)getpid(), (void *)x);
  fflush(stdout);
  if ((rc = weft_pchan_send(to_reader, &x, WEFT_FOREVER)) < 0 ||
      (rc = weft_pchan_recv(to_owner, &go, WEFT_FOREVER)) < 0)
    die("process channel", rc);
  printf("  worker 0: dies (SIGKILL) while worker 1 holds the reference\n");
  fflush(stdout);
  raise(SIGKILL);
  return 1;
}

/* Worker 1: holds a reference to worker 0's object, checks it before each
 * read. */
static int reader(void) {
  int *x, go = 1, rc, verdict = 0;

  if ((rc = weft_pchan_recv(to_reader, &x, WEFT_FOREVER)) < 0)
    die("weft_pchan_recv", rc);
  weft_shm_ref ref = weft_shm_ref_of(x);
  rc = weft_shm_ref_check(ref);
  printf("  worker 1 (pid %d): takes a reference to %p (owner: worker %d, "
         "generation %llu); check: %s; reads %d\n",
         (int)getpid(), ref.p, weft_shm_owner(x), (unsigned long long)ref.gen,
         rc == 0 ? "live" : weft_strerror(rc), rc == 0 ? *x : -1);
  fflush(stdout);
  if (rc != 0)
    goto out;
  if ((rc = weft_pchan_send(to_owner, &go, WEFT_FOREVER)) < 0)
    die("weft_pchan_send", rc);
  /* The supervisor reaps worker 0 and reclaims its partition a moment
   * after it dies; the reference stays good until then. */
  int64_t until = weft_deadline(weft_sec(10));
  while ((rc = weft_shm_ref_check(ref)) == 0 && weft_now() < until)
    weft_sleep(weft_ms(5));
  if (rc == -ESTALE) {
    printf("  worker 1: check: stale (%s): the object is gone, so it is not "
           "read\n",
           weft_strerror(rc));
    /* Only to show what the check saved it from: the address is still
     * mapped, but the page was discarded and reads zero (or, once the
     * slot's next worker allocates there, another object). */
    printf("  worker 1: (an unchecked read of %p would give %d, not 42)\n",
           (void *)x, *(volatile int *)x);
    verdict = 1;
  } else {
    printf("  worker 1: check after the owner died: %s, expected stale\n",
           rc == 0 ? "still live" : weft_strerror(rc));
  }
out:
  fflush(stdout);
  if ((rc = weft_pchan_send(result, &verdict, WEFT_FOREVER)) < 0)
    die("weft_pchan_send", rc);
  return 0;
}

static int worker(int index, void *arg) {
  (void)arg;
  int rc = index == 0 ? owner() : reader();
  fflush(stdout);
  return rc;
}

static bool stale(void) {
  int rc, verdict = 0;

  printf("2. a reference into the shared heap whose owner dies\n");
  fflush(stdout);
  if ((rc = weft_shm_setup((size_t)2 << 20, 2)) < 0)
    die("weft_shm_setup", rc);
  if ((rc = weft_pchan_open(&to_reader, sizeof(int *), 1)) < 0 ||
      (rc = weft_pchan_open(&to_owner, sizeof(int), 1)) < 0 ||
      (rc = weft_pchan_open(&result, sizeof(int), 1)) < 0)
    die("weft_pchan_open", rc);
  weft_procs_config cfg = {
      .procs = 2,
      .worker = worker,
      .listen_fd = -1,
      .max_restarts = -1, /* worker 0 stays dead */
  };
  /* -ECHILD: a worker failed, as worker 0 does on purpose. */
  rc = weft_procs_run(&cfg);
  if (rc < 0 && rc != -ECHILD)
    die("weft_procs_run", rc);
  /* The supervisor is no worker, but may receive on a channel. */
  if ((rc = weft_pchan_recv(result, &verdict, WEFT_NOWAIT)) < 0)
    printf("  supervisor: no word from worker 1 (%s)\n", weft_strerror(rc));
  printf("  -> %s\n", verdict ? "the stale reference was detected, not read"
                              : "the stale reference was NOT detected");
  return verdict == 1;
}

int main(void) {
  bool one_free = counted();
  bool detected = stale();

  if (one_free && detected)
    printf("verdict: freed once by its last holder; a reference whose "
           "owner died is reported stale\n");
  else
    printf("verdict: NOT AS EXPECTED:%s%s\n",
           one_free ? "" : " the object was not freed exactly once",
           detected ? "" : " the stale reference was not detected");
  return one_free && detected ? 0 : 1;
}
