/*
 * bench.c - the shared part of the bench programs; see bench.h.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void usage(const char *prog, const char *what) {
  fprintf(stderr,
          "usage: %s [--quick] [--reps N] [--tsv FILE]\n"
          "Measures %s and prints a table (median, min, max).\n"
          "  --quick     smaller counts, 3 repetitions\n"
          "  --reps N    repetitions per figure (default 5)\n"
          "  --tsv FILE  append name<TAB>value<TAB>unit lines to FILE\n"
          "BENCH_FAIL_SAMPLE=NAME:K[:N] fails the K-th sample of figure NAME\n"
          "N times (see bench.h).\n",
          prog, what);
  exit(2);
}

void bench_init(struct bench_opts *o, int argc, char **argv,
                const char *what, unsigned timeout_s) {
  int reps = 0;

  memset(o, 0, sizeof(*o));
  o->prog = argv[0];
  o->child_fd = -1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      o->quick = true;
    } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = atoi(argv[++i]);
      if (reps < 1 || reps > BENCH_MAX_REPS)
        usage(argv[0], what);
    } else if (strcmp(argv[i], "--tsv") == 0 && i + 1 < argc) {
      o->tsv = argv[++i];
    } else if (strcmp(argv[i], "--child") == 0 && i + 2 < argc) {
      o->child = argv[i + 1];
      o->child_fd = atoi(argv[i + 2]);
      o->child_argc = argc - (i + 3);
      o->child_argv = argv + i + 3;
      break;
    } else {
      usage(argv[0], what);
    }
  }
  o->reps = reps ? reps : o->quick ? 3 : 5;
  if (o->child) {
    /* Set by the parent for a run BENCH_FAIL_SAMPLE picked: fail as a
     * real measurement would, after the exec, with a non-zero status. */
    if (getenv("BENCH_FAIL_CHILD")) {
      fprintf(stderr, "bench: %s: this run fails (BENCH_FAIL_SAMPLE)\n",
              o->child);
      exit(1);
    }
    alarm(timeout_s);
  }
}

int64_t bench_now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
  if (n <= 0)
    return NAN;
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

long bench_rss_kib(void) {
  long size, resident;
  FILE *f = fopen("/proc/self/statm", "r");

  if (!f)
    return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2)
    resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

long bench_peak_rss_kib(void) {
  char line[256];
  long kib = -1;
  FILE *f = fopen("/proc/self/status", "r");

  if (f) {
    while (fgets(line, sizeof(line), f))
      if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
        break;
    fclose(f);
  }
  if (kib < 0) {
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) == 0)
      kib = ru.ru_maxrss;
  }
  return kib;
}

int64_t bench_cpu_ns(void) {
  struct rusage ru;

  getrusage(RUSAGE_SELF, &ru);
  return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
         ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* snprintf for messages that may be cut short: they are only read. */
static void text(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void text(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(buf, size, fmt, ap);
  va_end(ap);
}

/* The same, appending to what buf holds. */
#define text_add(buf, size, ...)                                               \
  text((buf) + strlen(buf), (size) - strlen(buf), __VA_ARGS__)

/* Failures that are no sample's own: a child that could not be started,
 * a row with nothing to show for it.  They fail the program. */
static bool broken;
/* Rows written with a figure, and rows whose every sample stalled. */
static int rows_ok, rows_stalled;

/* Whether run `attempt` (1 or 2) of the k-th sample of t must fail, as
 * BENCH_FAIL_SAMPLE="NAME:K[:N],..." asks (see bench.h). */
static bool fail_asked(const struct bench_tally *t, int k, int attempt) {
  const char *s = getenv("BENCH_FAIL_SAMPLE");
  size_t len;

  if (!s || !t)
    return false;
  len = strlen(t->name);
  while (*s) {
    size_t n = strcspn(s, ",");

    if (n > len && strncmp(s, t->name, len) == 0 && s[len] == ':') {
      const char *p = s + len + 1;
      char *end;
      long want = 0, times = 1;
      bool every = *p == '*';

      if (every)
        end = (char *)p + 1;
      else
        want = strtol(p, &end, 10);
      if (*end == ':')
        times = strtol(end + 1, &end, 10);
      if ((every || want == k) && attempt <= times)
        return true;
    }
    s += n;
    if (*s == ',')
      s++;
  }
  return false;
}

/* The last line a child wrote on standard error, kept while passing it
 * through: it usually says why the child failed. */
struct last_line {
  char done[160], cur[160];
  size_t len;
};

static void last_line_add(struct last_line *l, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (b[i] == '\n') {
      if (l->len) {
        memcpy(l->done, l->cur, l->len);
        l->done[l->len] = '\0';
      }
      l->len = 0;
    } else if (l->len < sizeof(l->cur) - 1) {
      l->cur[l->len++] = b[i] == '\t' ? ' ' : b[i];
    }
  }
}

/*
 * One run of the child.  Returns nout with out filled; -1 if the child
 * failed (why says how); -2 if it could not be started at all.
 */
static int run_child(const struct bench_opts *o, const char *name, double *out,
                     int nout, const char *const *args, bool fail, char *why,
                     size_t whylen) {
  char fdstr[16], buf[4096], ebuf[1024];
  struct last_line last = {.len = 0};
  struct pollfd pf[2];
  size_t len = 0;
  int p[2], e[2], status, n = 0, open_fds = 2;
  pid_t pid;

  if (pipe(p) != 0) {
    perror("bench: pipe");
    return -2;
  }
  if (pipe(e) != 0) {
    perror("bench: pipe");
    close(p[0]);
    close(p[1]);
    return -2;
  }
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    perror("bench: fork");
    close(p[0]);
    close(p[1]);
    close(e[0]);
    close(e[1]);
    return -2;
  }
  if (pid == 0) {
    /* A fresh image, so that memory figures start from nothing and the
     * runtime's threads never meet fork. */
    const char *argv[16];
    int i = 0;

    close(p[0]);
    close(e[0]);
    dup2(e[1], 2);
    close(e[1]);
    if (fail)
      setenv("BENCH_FAIL_CHILD", "1", 1);
    else
      unsetenv("BENCH_FAIL_CHILD");
    snprintf(fdstr, sizeof(fdstr), "%d", p[1]);
    argv[i++] = o->prog;
    if (o->quick)
      argv[i++] = "--quick";
    argv[i++] = "--child";
    argv[i++] = name;
    argv[i++] = fdstr;
    for (int k = 0; args && args[k] && k < 6; k++)
      argv[i++] = args[k];
    argv[i] = NULL;
    execv("/proc/self/exe", (char *const *)argv);
    perror("bench: exec /proc/self/exe");
    _exit(127);
  }
  close(p[1]);
  close(e[1]);
  /* Both pipes until both end: the numbers, and standard error passed
   * through line by line as it comes. */
  pf[0] = (struct pollfd){.fd = p[0], .events = POLLIN};
  pf[1] = (struct pollfd){.fd = e[0], .events = POLLIN};
  while (open_fds > 0) {
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      perror("bench: poll");
      break;
    }
    for (int i = 0; i < 2; i++) {
      ssize_t r;

      if (pf[i].fd < 0 || !pf[i].revents)
        continue;
      if (i == 0) /* past the buffer: read and dropped */
        r = read(p[0], len < sizeof(buf) - 1 ? buf + len : ebuf,
                 len < sizeof(buf) - 1 ? sizeof(buf) - 1 - len : sizeof(ebuf));
      else
        r = read(e[0], ebuf, sizeof(ebuf));
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0) {
        close(pf[i].fd);
        pf[i].fd = -1;
        open_fds--;
      } else if (i == 0) {
        if (len < sizeof(buf) - 1)
          len += (size_t)r;
      } else {
        fwrite(ebuf, 1, (size_t)r, stderr);
        last_line_add(&last, ebuf, (size_t)r);
      }
    }
  }
  for (int i = 0; i < 2; i++)
    if (pf[i].fd >= 0)
      close(pf[i].fd);
  last_line_add(&last, "\n", 1);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);

    text(why, whylen, "died of signal %d (%s)%s%s%s", sig, strsignal(sig),
         sig == SIGALRM ? ", it took too long" : "", last.done[0] ? ": " : "",
         last.done);
    return -1;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    fprintf(stderr, "bench: %s: the child could not be started\n", name);
    return -2;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    text(why, whylen, "exited with status %d%s%s", WEXITSTATUS(status),
         last.done[0] ? ": " : "", last.done);
    return -1;
  }
  buf[len] = '\0';
  for (char *s = buf, *end; n < nout; s = end) {
    double v = strtod(s, &end);

    if (end == s)
      break;
    out[n++] = v;
  }
  if (n < nout) {
    text(why, whylen, "wrote %d of %d numbers", n, nout);
    return -1;
  }
  return n;
}

int bench_child(const struct bench_opts *o, struct bench_tally *t,
                const char *name, double *out, int nout, const char *arg1,
                const char *arg2) {
  const char *args[3] = {arg1, arg1 ? arg2 : NULL, NULL};

  return bench_childv(o, t, name, out, nout, args);
}

int bench_childv(const struct bench_opts *o, struct bench_tally *t,
                 const char *name, double *out, int nout,
                 const char *const *args) {
  const char *fig = t ? t->name : name;
  char why1[160], why2[160];
  int k = t ? ++t->runs : 0, n;

  n = run_child(o, name, out, nout, args, fail_asked(t, k, 1), why1,
                sizeof(why1));
  if (n == -2)
    broken = true;
  if (n != -1)
    return n < 0 ? -1 : n;
  /* One failure is retried: on a shared machine a run can be starved or
   * preempted past its deadline without anything being wrong with what it
   * measures.  The retry is a fresh process, as every sample is. */
  fprintf(stderr, "bench: %s: sample failed (%s); retrying once\n", fig, why1);
  n = run_child(o, name, out, nout, args, fail_asked(t, k, 2), why2,
                sizeof(why2));
  if (n == -2)
    broken = true;
  if (n >= 0) {
    if (t) {
      t->retried++;
      text(t->retry_why, sizeof(t->retry_why), "%s", why1);
    }
    return n;
  }
  if (n == -1) {
    fprintf(stderr, "bench: %s: sample failed again (%s): stalled\n", fig,
            why2);
    if (t) {
      t->stalled++;
      if (strcmp(why1, why2) == 0)
        text(t->stall_why, sizeof(t->stall_why), "%s, twice", why1);
      else
        text(t->stall_why, sizeof(t->stall_why), "%s; then %s", why1, why2);
    }
  }
  return -1;
}

void bench_put(const struct bench_opts *o, double v) {
  dprintf(o->child_fd, "%.17g\n", v);
}

void bench_table(const struct bench_opts *o, const char *title) {
  printf("\n%s%s\n", title, o->quick ? " (quick)" : "");
  printf("%-28s %12s %12s %12s  %-6s %4s  %s\n", "name", "median", "min",
         "max", "unit", "runs", "note");
}

void bench_row(const struct bench_opts *o, const char *name,
               const struct bench_tally *t, const double *samples, int n,
               const char *unit, const char *note) {
  double v[BENCH_MAX_REPS], lo, hi, med;
  char full[640] = "";
  int stalled = t ? t->stalled : 0, retried = t ? t->retried : 0;
  int asked = t ? t->runs : n;
  FILE *f = NULL;

  if (n > BENCH_MAX_REPS)
    n = BENCH_MAX_REPS;
  /* A row with no sample has no medians to describe (they read "nan"). */
  if (n > 0 || !stalled)
    text_add(full, sizeof(full), "%s", note ? note : "");
  if (retried)
    text_add(full, sizeof(full), "%s%d sample%s retried", full[0] ? "; " : "",
             retried, retried == 1 ? "" : "s");
  if (stalled)
    text_add(full, sizeof(full), "%s%d of %d samples stalled: %s",
             full[0] ? "; " : "", stalled, asked, t->stall_why);
  if (o->tsv) {
    f = fopen(o->tsv, "a");
    if (!f)
      fprintf(stderr, "bench: %s: %s\n", o->tsv, strerror(errno));
  }
  if (n <= 0) {
    printf("%-28s %12s %12s %12s  %-6s %4d  %s\n", name,
           stalled ? "STALLED" : "FAILED", "-", "-", unit, 0, full);
    fflush(stdout);
    if (stalled) {
      rows_stalled++;
      if (f)
        fprintf(f, "%s\tstalled\t%s\t%d of %d samples stalled: %s\n", name,
                unit, stalled, asked, t->stall_why);
    } else {
      broken = true;
    }
    if (f)
      fclose(f);
    return;
  }
  rows_ok++;
  memcpy(v, samples, sizeof(*v) * (size_t)n);
  med = bench_median(v, n); /* sorts the copy: samples stay in order */
  lo = v[0];
  hi = v[n - 1];
  printf("%-28s %12.*f %12.*f %12.*f  %-6s %4d  %s\n", name,
         med < 100 ? 2 : 1, med, lo < 100 ? 2 : 1, lo, hi < 100 ? 2 : 1, hi,
         unit, n, full);
  fflush(stdout);
  if (!f)
    return;
  fprintf(f, "%s\t%.6g\t%s\n", name, med, unit);
  fprintf(f, "#samples\t%s\t", name);
  for (int i = 0; i < n; i++)
    fprintf(f, "%s%.6g", i ? "," : "", samples[i]);
  fputc('\n', f);
  if (retried)
    fprintf(f, "#retried\t%s\t%d of %d samples\t%s\n", name, retried, asked,
            t->retry_why);
  if (stalled)
    fprintf(f, "#stalled\t%s\t%d of %d samples\t%s\n", name, stalled, asked,
            t->stall_why);
  fclose(f);
}

void bench_na_row(const struct bench_opts *o, const char *name,
                  const char *unit, const char *why) {
  printf("%-28s %12s %12s %12s  %-6s %4d  %s\n", name, "n/a", "-", "-", unit, 0,
         why);
  fflush(stdout);
  if (o->tsv) {
    FILE *f = fopen(o->tsv, "a");

    if (!f) {
      fprintf(stderr, "bench: %s: %s\n", o->tsv, strerror(errno));
      return;
    }
    fprintf(f, "%s\tn/a\t%s\t%s\n", name, unit, why);
    fclose(f);
  }
}

int bench_status(void) {
  return broken || (rows_stalled > 0 && rows_ok == 0) ? 1 : 0;
}

void bench_progress(const struct bench_opts *o, const char *fmt, ...) {
  const char *name = strrchr(o->prog, '/');
  va_list ap;

  fprintf(stderr, "  %s: ", name ? name + 1 : o->prog);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* The CPUs this process may run on, in order; read once. */
static int cpus[CPU_SETSIZE], ncpus = -1;

static void read_cpus(void) {
  cpu_set_t set;

  ncpus = 0;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; c++)
      if (CPU_ISSET(c, &set))
        cpus[ncpus++] = c;
}

int bench_ncpus(void) {
  if (ncpus < 0)
    read_cpus();
  return ncpus;
}

int bench_cpu(int k) {
  if (bench_ncpus() == 0)
    return -1;
  return cpus[k % ncpus];
}

bool bench_pin(int k) {
  cpu_set_t set;
  int c = bench_cpu(k);

  if (c < 0)
    return false;
  CPU_ZERO(&set);
  CPU_SET(c, &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0;
}

void *bench_shared(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);

  if (p == MAP_FAILED) {
    perror("bench: mmap shared");
    exit(1);
  }
  return p;
}

long bench_file_kib(const char *path, const char *field) {
  char line[256];
  size_t len = strlen(field);
  long kib = -1;
  FILE *f = fopen(path, "r");

  if (!f)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, field, len) == 0 && line[len] == ':') {
      kib = strtol(line + len + 1, NULL, 10);
      break;
    }
  fclose(f);
  return kib;
}
