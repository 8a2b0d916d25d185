/*
 * address.c - one virtual address in two processes: private memory after
 * fork, and weft's shared heap.
 *
 * 1. A global variable holds 1.  The process forks; the child prints the
 *    variable's address, writes 2 into it and prints it again; then the
 *    parent prints it.  Both print the same address, yet the parent still
 *    reads 1: each process has its own page tables, and the same virtual
 *    address leads each to a physical page of its own.  fork copies the
 *    page tables, not the memory: the child first shares the parent's
 *    page, read-only, and its first write gets it a copy (copy-on-write).
 *
 * 2. weft's shared heap is one region mapped before fork at the same
 *    address in every worker process.  Worker 0 allocates an int in it
 *    and sends the pointer to worker 1 through a process channel; worker 1
 *    reads it and writes 2; worker 0 then reads 2 through its own pointer.
 *    The same address now leads both processes to one physical page.
 *
 * Next to each address it prints the physical frame behind it, from
 * /proc/self/pagemap.  The kernel shows frame numbers only to a process
 * with CAP_SYS_ADMIN (root); to others it says 0, and the program says
 * they are hidden.  The last line is the verdict: same address in both
 * parts, two values after fork, one value in the shared heap (and, where
 * the frames are shown, two frames against one).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weft.h"

/* The variable of part 1 fills a page of its own, so that no other write
 * to that page (stdio's, the runtime's) makes either process copy it.
 * 4096 is the x86-64 page size; a larger page only holds more. */
static union {
  volatile int value;
  char page[4096];
} box __attribute__((aligned(4096)));

/* What one process saw of an address. */
struct seen {
  const void *addr;
  int value;
  int frame_rc; /* 0: frame is the physical frame number; else -errno */
  uint64_t frame;
};

/*
 * The physical frame behind p in this process: 0 and *frame, or -ENOENT
 * if the page is not in memory, -EPERM if the kernel hides frame numbers
 * from this process, or the error of reading /proc/self/pagemap.  Each
 * 8-byte entry of pagemap describes one virtual page: bit 63 says the
 * page is present, bits 0-54 hold its frame number.
 */
static int frame_of(const void *p, uint64_t *frame) {
  long page = sysconf(_SC_PAGESIZE);
  uint64_t e;
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return -errno;
  ssize_t r = pread(fd, &e, sizeof e,
                    (off_t)((uintptr_t)p / (uintptr_t)page * sizeof e));
  int err = r < 0 ? errno : EIO;
  close(fd);
  if (r != (ssize_t)sizeof e)
    return -err;
  if (!(e >> 63))
    return -ENOENT;
  *frame = e & ((UINT64_C(1) << 55) - 1);
  return *frame ? 0 : -EPERM;
}

/* Reads the int at p and notes what this process sees there. */
static struct seen look(const volatile int *p) {
  struct seen s = {.addr = (const void *)p, .value = *p};

  s.frame_rc = frame_of((const void *)p, &s.frame);
  return s;
}

static void show(const char *who, const struct seen *s, const char *note) {
  char frame[64];

  if (s->frame_rc == 0)
    snprintf(frame, sizeof frame, "frame %#" PRIx64, s->frame);
  else if (s->frame_rc == -EPERM)
    snprintf(frame, sizeof frame, "frame hidden");
  else
    snprintf(frame, sizeof frame, "frame unknown (%s)", strerror(-s->frame_rc));
  printf("  %-25s address %p  value %d  %s%s%s\n", who, s->addr, s->value,
         frame, note ? "  " : "", note ? note : "");
}

static bool frames_shown(const struct seen *a, const struct seen *b) {
  return a->frame_rc == 0 && b->frame_rc == 0;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "address: %s: %s\n", what, weft_strerror(rc));
  exit(1);
}

/* ---- 1. fork: private pages ------------------------------------------- */

/* Part 1's result: true when both processes used one address and the
 * child's write stayed its own (on a frame of its own, if shown). */
static bool private_pages(void) {
  int fds[2];
  struct seen parent, before, after, parent_after;

  printf("1. fork: a global variable, private to each process\n");
  box.value = 1;
  parent = look(&box.value);
  show("parent:", &parent, NULL);
  if (pipe(fds) != 0)
    die("pipe", -errno);
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    die("fork", -errno);
  if (pid == 0) {
    before = look(&box.value);
    show("child, before writing:", &before,
         frames_shown(&parent, &before) && before.frame == parent.frame
             ? "(the parent's page, shared until a write)"
             : NULL);
    box.value = 2;
    after = look(&box.value);
    show("child, after writing 2:", &after,
         frames_shown(&parent, &after) && after.frame != parent.frame
             ? "(a copy of its own)"
             : NULL);
    fflush(stdout);
    ssize_t w = write(fds[1], &after, sizeof after);
    _exit(w == (ssize_t)sizeof after ? 0 : 1);
  }
  close(fds[1]);
  ssize_t r = read(fds[0], &after, sizeof after);
  close(fds[0]);
  int status;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0 || r != (ssize_t)sizeof after) {
    fprintf(stderr, "address: the child did not report back\n");
    exit(1);
  }
  parent_after = look(&box.value);
  show("parent, afterwards:", &parent_after, NULL);

  bool ok = after.addr == parent_after.addr && after.value == 2 &&
            parent_after.value == 1;
  if (frames_shown(&after, &parent_after))
    ok = ok && after.frame != parent_after.frame;
  printf("  -> same address, two values (%d and %d)%s\n\n", parent_after.value,
         after.value,
         !frames_shown(&after, &parent_after)
             ? "; frames hidden (shown to root)"
         : after.frame != parent_after.frame ? " on two physical pages"
                                             : " on ONE physical page?");
  return ok;
}

/* ---- 2. the shared heap ------------------------------------------------ */

static weft_pchan *to_reader, *to_owner;

/* What worker 1 sends back to worker 0 after its write. */
struct reply {
  struct seen before, after;
};

static int owner(void) {
  volatile int *x;
  struct reply rep;
  int rc;

  if ((rc = weft_shm_alloc(sizeof *x, (void **)&x)) < 0)
    die("weft_shm_alloc", rc);
  *x = 1;
  struct seen mine = look(x);
  printf("  worker 0 (pid %d) allocates an int in its partition:\n",
         (int)getpid());
  show("worker 0:", &mine, NULL);
  fflush(stdout);
  if ((rc = weft_pchan_send(to_reader, &x, WEFT_FOREVER)) < 0 ||
      (rc = weft_pchan_recv(to_owner, &rep, WEFT_FOREVER)) < 0)
    die("process channel", rc);
  struct seen now = look(x);
  show("worker 0, afterwards:", &now, "(written by worker 1)");

  bool ok =
      now.addr == rep.after.addr && now.value == 2 && rep.after.value == 2;
  if (frames_shown(&now, &rep.after))
    ok = ok && now.frame == rep.after.frame;
  printf("  -> same address, one value (%d) seen by both%s\n\n", now.value,
         !frames_shown(&now, &rep.after) ? "; frames hidden (shown to root)"
         : now.frame == rep.after.frame  ? ", on one physical page"
                                         : " on TWO physical pages?");
  weft_shm_free((void *)x);
  fflush(stdout);
  return ok ? 0 : 1;
}

static int reader(void) {
  volatile int *x;
  struct reply rep;
  int rc;

  if ((rc = weft_pchan_recv(to_reader, &x, WEFT_FOREVER)) < 0)
    die("weft_pchan_recv", rc);
  printf("  worker 1 (pid %d) receives the pointer, reads, writes 2:\n",
         (int)getpid());
  rep.before = look(x);
  show("worker 1:", &rep.before, NULL);
  *x = 2;
  rep.after = look(x);
  show("worker 1, after writing:", &rep.after, NULL);
  fflush(stdout);
  if ((rc = weft_pchan_send(to_owner, &rep, WEFT_FOREVER)) < 0)
    die("weft_pchan_send", rc);
  return 0;
}

static int worker(int index, void *arg) {
  (void)arg;
  int rc = index == 0 ? owner() : reader();
  fflush(stdout);
  return rc;
}

static bool shared_page(void) {
  int rc;

  printf("2. weft's shared heap: one object, two worker processes\n");
  fflush(stdout);
  /* The region and the channels exist before the workers are forked, so
   * both inherit them at the same addresses. */
  if ((rc = weft_shm_setup((size_t)2 << 20, 2)) < 0)
    die("weft_shm_setup", rc);
  if ((rc = weft_pchan_open(&to_reader, sizeof(int *), 1)) < 0 ||
      (rc = weft_pchan_open(&to_owner, sizeof(struct reply), 1)) < 0)
    die("weft_pchan_open", rc);
  weft_procs_config cfg = {
      .procs = 2,
      .worker = worker,
      .listen_fd = -1,
      .max_restarts = -1, /* a fresh worker would not know the object */
  };
  rc = weft_procs_run(&cfg);
  if (rc < 0 && rc != -ECHILD) /* -ECHILD: a worker failed (logged) */
    die("weft_procs_run", rc);
  return rc == 0;
}

int main(void) {
  bool priv = private_pages();
  bool shared = shared_page();

  if (priv && shared)
    printf("verdict: one address, two processes: private after fork "
           "(two values), shared in the shared heap (one value)\n");
  else
    printf("verdict: NOT AS EXPECTED:%s%s\n",
           priv ? "" : " the fork's copies were not private",
           shared ? "" : " the shared heap's object was not shared");
  return priv && shared ? 0 : 1;
}
