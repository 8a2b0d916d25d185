/*
 * layout.c - the explainer's address-space diagram, drawn from the real
 * addresses of this running process.
 *
 * It finds: this program's code, data and bss (from the linker's symbols),
 * a block from malloc, the code of libc and of libweft, the stack and guard
 * of a few green threads (weft_stack_info_get, and the address of a local
 * inside each, which is where its stack pointer was), the kernel stack of
 * every worker (pthread_getattr_np, called from a green thread running on
 * that worker) and the main thread's stack.  Then it sorts them and draws
 * them highest address first, as the explainer does.
 *
 * What the real picture adds to the explainer's:
 *  - each stack's guard is BELOW it: stacks grow down, toward the guard;
 *  - green thread stacks are small (64 KiB) and sit in mappings the runtime
 *    made, far from the main stack, among the shared libraries;
 *  - the workers are ordinary kernel threads with their own (larger)
 *    stacks; a green thread runs on its own stack, whichever worker runs it;
 *  - with a malloc such as jemalloc the "heap" is not one region above the
 *    program but arenas mapped wherever the kernel put them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_getattr_np */
#endif
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

#define GREEN 3
#define MAX_WORKERS 64
#define MAX_REGIONS (16 + 2 * GREEN + 2 * MAX_WORKERS)
#define BOX 62 /* inner width of the box */

/* Linker-defined: start of the program image, ends of text, data, bss. */
extern char __executable_start[], etext[], __data_start[], edata[], end[];

int initialised_global = 42; /* lives in .data */
long zeroed_global;          /* lives in .bss */

struct region {
  uintptr_t lo, hi; /* [lo, hi); lo == hi for a single address */
  char label[2 * BOX]; /* cut to the box when drawn */
  char note[2 * BOX];
};

static struct region regions[MAX_REGIONS];
static int nregions;

static struct region *add(uintptr_t lo, uintptr_t hi, const char *label) {
  struct region *r;

  if (nregions == MAX_REGIONS)
    return NULL;
  r = &regions[nregions++];
  r->lo = lo;
  r->hi = hi;
  snprintf(r->label, sizeof(r->label), "%s", label);
  r->note[0] = '\0';
  return r;
}

static const char *human(uintptr_t bytes, char *buf, size_t len) {
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = (double)bytes;
  int u = 0;

  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  snprintf(buf, len, v < 10 && u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

/* ---- green threads ------------------------------------------------- */

struct green {
  weft_gthread t;
  uint64_t id;
  char name[WEFT_NAME_MAX];
  uintptr_t local; /* address of a local: where its stack pointer was */
  int worker;
};

static struct green greens[GREEN];
static weft_chan *release;

static void *green_main(void *arg) {
  struct green *g = arg;
  volatile int here = 0; /* a local, on this green thread's own stack */
  int v;

  g->id = weft_id();
  snprintf(g->name, sizeof(g->name), "%s", weft_name());
  g->worker = weft_worker_index();
  /* release: main reads the fields above once it sees this */
  __atomic_store_n(&g->local, (uintptr_t)&here, __ATOMIC_RELEASE);
  /* Stay alive (parked, stack intact) until main has looked. */
  weft_chan_recv(release, &v);
  return NULL;
}

/* ---- worker kernel stacks ------------------------------------------ */

struct worker {
  int seen;
  uintptr_t lo, hi;
  size_t guard;
};

static struct worker workers[MAX_WORKERS];
static weft_mutex workers_lock = WEFT_MUTEX_INIT;

/* Runs as a green thread: whichever worker runs it, pthread_self() is that
 * worker's kernel thread. */
static void record_worker(void) {
  int w = weft_worker_index();
  pthread_attr_t attr;
  void *addr;
  size_t size, guard = 0;

  if (w < 0 || w >= MAX_WORKERS)
    return;
  weft_mutex_lock(&workers_lock);
  if (!workers[w].seen && pthread_getattr_np(pthread_self(), &attr) == 0) {
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
      pthread_attr_getguardsize(&attr, &guard);
      workers[w].lo = (uintptr_t)addr;
      workers[w].hi = (uintptr_t)addr + size;
      workers[w].guard = guard;
      workers[w].seen = 1;
    }
    pthread_attr_destroy(&attr);
  }
  weft_mutex_unlock(&workers_lock);
}

static void *probe(void *arg) {
  (void)arg;
  for (int i = 0; i < 4; i++) {
    record_worker();
    weft_sleep(100 * 1000); /* wake up on whichever worker is free */
  }
  return NULL;
}

static int workers_seen(int n) {
  int seen = 0;

  weft_mutex_lock(&workers_lock);
  for (int i = 0; i < n; i++)
    seen += workers[i].seen;
  weft_mutex_unlock(&workers_lock);
  return seen;
}

/* Spawns probes in rounds until every worker has run one. */
static void find_workers(int n) {
  weft_gthread t[2 * MAX_WORKERS];

  for (int round = 0; round < 200 && workers_seen(n) < n; round++) {
    for (int i = 0; i < 2 * n; i++)
      if (weft_spawn(&t[i], NULL, probe, NULL) < 0)
        t[i].p = NULL;
    for (int i = 0; i < 2 * n; i++)
      if (t[i].p)
        weft_join(t[i], NULL);
  }
}

/* ---- drawing ------------------------------------------------------- */

static int by_address_desc(const void *a, const void *b) {
  const struct region *x = a, *y = b;

  if (x->hi != y->hi)
    return x->hi < y->hi ? 1 : -1;
  return (x->lo < y->lo) - (x->lo > y->lo);
}

static void border(uintptr_t addr, int show) {
  char line[BOX + 1];

  memset(line, '-', BOX);
  line[BOX] = '\0';
  if (show)
    printf("0x%012" PRIxPTR " +%s+\n", addr, line);
  else
    printf("%14s +%s+\n", "", line);
}

/* One line inside the box, cut to fit. */
static void text(const char *s) {
  printf("%14s | %-*.*s |\n", "", BOX - 2, BOX - 2, s);
}

static void draw(void) {
  uintptr_t prev_lo = 0, last_shown = 0;
  char gap[32], line[3 * BOX];

  qsort(regions, (size_t)nregions, sizeof(regions[0]), by_address_desc);
  printf("%14s  high addresses\n", "");
  for (int i = 0; i < nregions; i++) {
    struct region *r = &regions[i];

    if (i > 0 && r->hi < prev_lo) {
      /* Close the box above, say how much lies unshown between. */
      border(prev_lo, prev_lo != last_shown);
      snprintf(line, sizeof(line), "%*s... %s not shown ...", 16, "",
               human(prev_lo - r->hi, gap, sizeof(gap)));
      printf("%14s : %-*.*s :\n", "", BOX - 2, BOX - 2, line);
    } else if (i > 0 && r->hi > prev_lo) {
      text("(overlaps the region above)");
    }
    border(r->hi, 1);
    last_shown = r->hi;
    if (r->lo == r->hi) {
      snprintf(line, sizeof(line), "%s", r->label);
    } else {
      snprintf(line, sizeof(line), "%s [%s]", r->label,
               human(r->hi - r->lo, gap, sizeof(gap)));
    }
    text(line);
    if (r->note[0])
      text(r->note);
    prev_lo = r->lo;
  }
  border(prev_lo, prev_lo != last_shown);
  printf("%14s  low addresses\n", "");
}

/* ---- main ---------------------------------------------------------- */

static void die(const char *what, int rc) {
  fprintf(stderr, "layout: %s: %s\n", what, weft_strerror(rc));
  exit(1);
}

int main(void) {
  volatile int main_local = 0;
  char buf[32], label[2 * BOX];
  size_t green_stack = 0;
  pthread_attr_t attr;
  struct region *r;
  void *addr, *block;
  size_t size;
  int rc, nworkers;

  if ((rc = weft_init(NULL)) < 0)
    die("weft_init", rc);
  nworkers = weft_workers();
  if (nworkers > MAX_WORKERS)
    nworkers = MAX_WORKERS;

  /* Code, data, bss of this program. */
  r = add((uintptr_t)__executable_start, (uintptr_t)etext,
          "code: this program's text");
  snprintf(r->note, sizeof(r->note), "main() is at 0x%" PRIxPTR,
           (uintptr_t)main);
  r = add((uintptr_t)__data_start, (uintptr_t)edata,
          "data: initialised globals");
  snprintf(r->note, sizeof(r->note), "initialised_global (= %d) at 0x%" PRIxPTR,
           initialised_global, (uintptr_t)&initialised_global);
  r = add((uintptr_t)edata, (uintptr_t)end, "bss: zeroed globals");
  snprintf(r->note, sizeof(r->note), "zeroed_global at 0x%" PRIxPTR,
           (uintptr_t)&zeroed_global);

  /* The heap. */
  block = malloc(100);
  if (!block)
    return 1;
  memset(block, 0, 100);
  r = add((uintptr_t)block, (uintptr_t)block + 100,
          "heap: a block from malloc(100)");
  if ((uintptr_t)block >= (uintptr_t)end &&
      (uintptr_t)block < (uintptr_t)sbrk(0))
    snprintf(r->note, sizeof(r->note), "in the brk heap, above the bss");
  else
    snprintf(r->note, sizeof(r->note),
             "in an arena malloc mapped (not the brk heap)");

  /* Shared libraries: single addresses. */
  add((uintptr_t)printf, (uintptr_t)printf, "libc code: printf()");
  add((uintptr_t)weft_spawn, (uintptr_t)weft_spawn,
      "libweft code: weft_spawn()");

  /* Green threads, each parked on a channel with its stack intact. */
  if ((rc = weft_chan_open(&release, sizeof(int), 0)) < 0)
    die("weft_chan_open", rc);
  for (int i = 0; i < GREEN; i++) {
    char name[WEFT_NAME_MAX];
    weft_gthread_attr ga = {.name = name};

    snprintf(name, sizeof(name), "thread-%d", i + 1);
    if ((rc = weft_spawn(&greens[i].t, &ga, green_main, &greens[i])) < 0)
      die("weft_spawn", rc);
  }
  for (int i = 0; i < GREEN; i++) {
    weft_stack_info si;
    struct green *g = &greens[i];

    while (!__atomic_load_n(&g->local, __ATOMIC_ACQUIRE))
      weft_yield(); /* not started yet */
    if ((rc = weft_stack_info_get(g->t, &si)) < 0)
      die("weft_stack_info_get", rc);
    snprintf(label, sizeof(label), "green thread %" PRIu64 " \"%s\" stack",
             g->id, g->name);
    r = add((uintptr_t)si.stack_lo, (uintptr_t)si.stack_lo + si.stack_size,
            label);
    green_stack = si.stack_size;
    snprintf(r->note, sizeof(r->note), "RSP ~ 0x%" PRIxPTR
             " (a local); %s in use",
             g->local, human((uintptr_t)si.stack_lo + si.stack_size - g->local,
                             buf, sizeof(buf)));
    snprintf(label, sizeof(label), "guard of green thread %" PRIu64, g->id);
    r = add((uintptr_t)si.guard_lo, (uintptr_t)si.guard_lo + si.guard_size,
            label);
    snprintf(r->note, sizeof(r->note), "%s; touching it faults",
             si.kernel_guard ? "kernel guard (no mapping of its own)"
                             : "PROT_NONE");
  }

  /* Worker kernel stacks. */
  find_workers(nworkers);
  for (int w = 0; w < nworkers; w++) {
    if (!workers[w].seen) {
      printf("(worker %d never ran a probe; its stack is not shown)\n", w);
      continue;
    }
    snprintf(label, sizeof(label), "worker %d: kernel thread stack", w);
    r = add(workers[w].lo, workers[w].hi, label);
    snprintf(r->note, sizeof(r->note),
             "the worker's scheduler runs here (pthread stack)");
    if (workers[w].guard) {
      snprintf(label, sizeof(label), "guard of worker %d's stack", w);
      add(workers[w].lo - workers[w].guard, workers[w].lo, label);
    }
  }

  /* The main thread's stack. */
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
      r = add((uintptr_t)addr, (uintptr_t)addr + size,
              "main thread stack (may grow to this size)");
      snprintf(r->note, sizeof(r->note), "RSP ~ 0x%" PRIxPTR
               " (a local of main)", (uintptr_t)&main_local);
    }
    pthread_attr_destroy(&attr);
  }

  printf("The address space of this process (pid %d), %d workers, %d green "
         "threads:\n\n", (int)getpid(), weft_workers(), GREEN);
  draw();
  printf("\nEvery thread has its own stack; all of them share the code, the "
         "data and the heap.\n");
  printf("Green thread stacks are %s each, with the guard below: stacks grow "
         "down.\nThe top of each holds the green thread's descriptor; the "
         "\"in use\" figure\ncounts it.\n",
         human(green_stack, buf, sizeof(buf)));

  /* Let the green threads finish. */
  weft_chan_close(release);
  for (int i = 0; i < GREEN; i++)
    weft_join(greens[i].t, NULL);
  weft_chan_free(release);
  free(block);
  if ((rc = weft_shutdown()) < 0)
    die("weft_shutdown", rc);
  return 0;
}
