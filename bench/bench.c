/*
 * bench.c - the shared part of the bench programs; see bench.h.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
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
          "  --tsv FILE  append name<TAB>value<TAB>unit lines to FILE\n",
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
  if (o->child)
    alarm(timeout_s);
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

int bench_child(const struct bench_opts *o, const char *name, double *out,
                int nout, const char *arg1, const char *arg2) {
  const char *args[3] = {arg1, arg1 ? arg2 : NULL, NULL};

  return bench_childv(o, name, out, nout, args);
}

int bench_childv(const struct bench_opts *o, const char *name, double *out,
                 int nout, const char *const *args) {
  char fdstr[16], buf[4096];
  size_t len = 0;
  int p[2], status, n = 0;
  pid_t pid;

  if (pipe(p) != 0) {
    perror("bench: pipe");
    return -1;
  }
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    perror("bench: fork");
    close(p[0]);
    close(p[1]);
    return -1;
  }
  if (pid == 0) {
    /* A fresh image, so that memory figures start from nothing and the
     * runtime's threads never meet fork. */
    const char *argv[16];
    int i = 0;

    close(p[0]);
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
  for (;;) {
    ssize_t r = read(p[0], buf + len, sizeof(buf) - 1 - len);

    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
    if (len == sizeof(buf) - 1)
      break;
  }
  close(p[0]);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "bench: %s: child died of signal %d (%s)%s\n", name,
            WTERMSIG(status), strsignal(WTERMSIG(status)),
            WTERMSIG(status) == SIGALRM ? ", it took too long" : "");
    return -1;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "bench: %s: child exited with status %d\n", name,
            WEXITSTATUS(status));
    return -1;
  }
  buf[len] = '\0';
  for (char *s = buf, *end; n < nout; s = end) {
    double v = strtod(s, &end);

    if (end == s)
      break;
    out[n++] = v;
  }
  return n;
}

void bench_put(const struct bench_opts *o, double v) {
  dprintf(o->child_fd, "%.17g\n", v);
}

void bench_table(const struct bench_opts *o, const char *title) {
  printf("\n%s%s\n", title, o->quick ? " (quick)" : "");
  printf("%-28s %12s %12s %12s  %-6s %4s  %s\n", "name", "median", "min",
         "max", "unit", "runs", "note");
}

void bench_row(const struct bench_opts *o, const char *name, double *samples,
               int n, const char *unit, const char *note) {
  double lo, hi, med;

  if (n <= 0) {
    printf("%-28s %12s %12s %12s  %-6s %4d  %s\n", name, "FAILED", "-", "-",
           unit, 0, note ? note : "");
    fflush(stdout);
    return;
  }
  med = bench_median(samples, n);
  lo = samples[0];
  hi = samples[n - 1];
  printf("%-28s %12.*f %12.*f %12.*f  %-6s %4d  %s\n", name,
         med < 100 ? 2 : 1, med, lo < 100 ? 2 : 1, lo, hi < 100 ? 2 : 1, hi,
         unit, n, note ? note : "");
  fflush(stdout);
  if (o->tsv) {
    FILE *f = fopen(o->tsv, "a");

    if (!f) {
      fprintf(stderr, "bench: %s: %s\n", o->tsv, strerror(errno));
      return;
    }
    fprintf(f, "%s\t%.6g\t%s\n", name, med, unit);
    fclose(f);
  }
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
