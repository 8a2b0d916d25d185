/*
 * helpers.c - the functions of helpers.h, in tests/libcheck.la.
 */
#include "helpers.h"

/* ------------------------------------------------------------------------ */
/* Failures seen off the test's thread                                      */
/* ------------------------------------------------------------------------ */

static struct h_report h_local_report;
struct h_report *h_rep = &h_local_report;

void h_share_report(void) {
  void *p = mmap(NULL, sizeof *h_rep, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("h_share_report: mmap");
    abort();
  }
  h_rep = p; /* zeroed: no failure yet */
}

void h_fail(const char *file, int line, const char *what, long long a,
            long long b, int with_values) {
  atomic_fetch_add(&h_rep->failures, 1);
  if (atomic_exchange(&h_rep->taken, 1))
    return;
  if (with_values)
    snprintf(h_rep->first, sizeof h_rep->first,
             "%s:%d (pid %d): %s (%lld vs %lld)", file, line, (int)getpid(),
             what, a, b);
  else
    snprintf(h_rep->first, sizeof h_rep->first, "%s:%d (pid %d): %s", file,
             line, (int)getpid(), what);
}

/* ------------------------------------------------------------------------ */
/* Runtime lifecycle for fixtures                                           */
/* ------------------------------------------------------------------------ */

void h_start(int workers) {
  weft_config cfg = {.workers = workers};
  int rc = weft_init(&cfg);
  cr_assert_eq(rc, 0, "weft_init(workers=%d): %s", workers,
               weft_strerror(rc));
  cr_assert_eq(weft_workers(), workers);
}

void h_start1(void) { h_start(1); }
void h_start2(void) { h_start(2); }
void h_start4(void) { h_start(4); }

void h_stop(void) {
  if (weft_running()) {
    int rc = weft_shutdown();
    cr_expect_eq(rc, 0, "weft_shutdown: %s", weft_strerror(rc));
  }
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */
/* ------------------------------------------------------------------------ */

weft_gthread h_spawn(weft_fn fn, void *arg) {
  weft_gthread t;
  int rc = weft_spawn(&t, NULL, fn, arg);
  cr_assert_eq(rc, 0, "weft_spawn: %s", weft_strerror(rc));
  return t;
}

void *h_join(weft_gthread t) {
  void *res = NULL;
  int rc = weft_join(t, &res);
  cr_assert_eq(rc, 0, "weft_join: %s", weft_strerror(rc));
  return res;
}

weft_gthread h_tspawn(weft_fn fn, void *arg) {
  weft_gthread t = {0};
  int rc = weft_spawn(&t, NULL, fn, arg);
  TCHECK_EQ(rc, 0);
  return t;
}

void *h_tjoin(weft_gthread t) {
  void *res = NULL;
  int rc = weft_join(t, &res);
  TCHECK_EQ(rc, 0);
  return res;
}

pthread_t h_pthread(void *(*fn)(void *), void *arg) {
  pthread_t t;
  int rc = pthread_create(&t, NULL, fn, arg);
  cr_assert_eq(rc, 0, "pthread_create: %s", strerror(rc));
  return t;
}

void *h_pjoin(pthread_t t) {
  void *res = NULL;
  int rc = pthread_join(t, &res);
  cr_assert_eq(rc, 0, "pthread_join: %s", strerror(rc));
  return res;
}

/* ------------------------------------------------------------------------ */
/* errno without caching                                                    */
/* ------------------------------------------------------------------------ */

H_OPAQUE int h_errno_get(void) { return errno; }
H_OPAQUE void h_errno_set(int v) { errno = v; }

/* ------------------------------------------------------------------------ */
/* Small deterministic random numbers (xorshift64*)                         */
/* ------------------------------------------------------------------------ */

uint64_t h_rand(uint64_t *state) {
  uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* ------------------------------------------------------------------------ */
/* Fork and capture stderr                                                  */
/* ------------------------------------------------------------------------ */

void h_fork_capture(void (*fn)(void *), void *arg, struct h_child *res) {
  int p[2];
  cr_assert_eq(pipe(p), 0, "pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  cr_assert(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    struct rlimit nocore = {0, 0};
    close(p[0]);
    if (dup2(p[1], STDERR_FILENO) < 0)
      _exit(100);
    close(p[1]);
    setvbuf(stderr, NULL, _IONBF, 0);
    setrlimit(RLIMIT_CORE, &nocore);
    alarm(30);
    fn(arg);
    fflush(NULL);
    _exit(0);
  }
  close(p[1]);
  res->len = 0;
  for (;;) {
    ssize_t n = read(p[0], res->err + res->len, sizeof res->err - 1 - res->len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    res->len += (size_t)n;
    if (res->len == sizeof res->err - 1) {
      char sink[512]; /* keep draining so the child never blocks */
      while (read(p[0], sink, sizeof sink) > 0)
        ;
      break;
    }
  }
  res->err[res->len] = '\0';
  close(p[0]);
  while (waitpid(pid, &res->status, 0) < 0)
    cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
}

void h_no_core(void) {
  struct rlimit nocore = {0, 0};
  setrlimit(RLIMIT_CORE, &nocore);
}

bool h_has_zombie_child(pid_t parent) {
  DIR *d = opendir("/proc");
  if (!d)
    return false;
  bool found = false;
  struct dirent *e;
  while (!found && (e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
      continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
      continue;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    char state;
    int ppid;
    if (p && sscanf(p + 1, " %c %d", &state, &ppid) == 2 &&
        ppid == (int)parent && state == 'Z')
      found = true;
  }
  closedir(d);
  return found;
}
