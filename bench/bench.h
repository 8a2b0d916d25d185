/*
 * bench.h - what every bench program shares: options, clocks, medians,
 * memory readings, the report (a table for people, TSV lines for run.sh),
 * and running one measurement in a fresh process.
 *
 * Every program accepts
 *   --quick        smaller counts and fewer repetitions (the CI run)
 *   --reps N       repetitions per figure (default 5, quick 3)
 *   --tsv FILE     also append the figures to FILE (the lines below)
 * and prints a table: median, min and max over the repetitions.
 *
 * Measurements that start the runtime, or whose memory must be their own,
 * run in a fresh process: the program executes itself again as
 * "PROG --child NAME FD ARG..." and the child writes its numbers, one per
 * line, to FD.  The parent never starts the runtime itself, so forking it
 * is safe, and a child that crashes or hangs (each has an alarm) costs one
 * sample, not the run.
 *
 * A sample whose child fails (non-zero exit, a signal, the alarm, fewer
 * numbers than asked for) is run once more in a fresh process: one bad
 * run on a loaded machine should not cost the figure.  A sample that fails
 * twice has stalled: the figure is the median of the samples that did not,
 * and says how many stalled; a figure with no sample left is reported as
 * stalled instead of a value.  Neither fails the program.  The program
 * fails (bench_status()) only when it cannot run at all: a child could not
 * be started (pipe, fork, exec), a row has no figure and no stall to
 * explain it, or every figure it reports stalled.
 *
 * The TSV lines, for run.sh and report.sh:
 *   name<TAB>median<TAB>unit
 *   #samples<TAB>name<TAB>v1,v2,...        every sample, in the order run
 *   #retried<TAB>name<TAB>K of N samples<TAB>why   (failed once, then ran)
 *   #stalled<TAB>name<TAB>K of N samples<TAB>why   (some samples stalled)
 *   name<TAB>stalled<TAB>unit<TAB>why               (every sample stalled)
 *   name<TAB>n/a<TAB>unit<TAB>why                   (cannot be measured here)
 *
 * For testing all this without waiting for a real stall,
 * BENCH_FAIL_SAMPLE="NAME:K[:N],..." makes the K-th sample of figure NAME
 * (counted from 1; "*": every sample) fail in the child its first N times
 * (default 1, retried and recovered; 2: stalled).
 */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_MAX_REPS 64
#define BENCH_MAX_OUT 16

struct bench_opts {
  bool quick;
  int reps;
  const char *tsv;   /* NULL: no machine-readable output */
  const char *prog;  /* argv[0], for messages */
  /* Set when this process is a child run by bench_child(). */
  const char *child; /* the measurement's name */
  int child_fd;      /* where bench_put() writes */
  int child_argc;
  char **child_argv; /* arguments after the fd */
};

/* Parses the options; prints usage and exits on a bad one.  In a child it
 * also arms an alarm of timeout_s seconds so that a hang ends the child. */
void bench_init(struct bench_opts *o, int argc, char **argv,
                const char *what, unsigned timeout_s);

/* Monotonic time in nanoseconds. */
int64_t bench_now(void);

/* Median of v[0..n) (sorts v); NaN if n == 0. */
double bench_median(double *v, int n);

/* Resident set now, and its peak (VmHWM), in KiB; -1 if unknown. */
long bench_rss_kib(void);
long bench_peak_rss_kib(void);
/* User + system CPU time of the process so far, in nanoseconds. */
int64_t bench_cpu_ns(void);

/*
 * What became of the samples of one figure, or of the figures that one
 * child measures together: bench_child() counts, bench_row() reports.
 * Start it zeroed with the figure's name, e.g. {.name = "yield.green"}.
 */
struct bench_tally {
  char name[64];       /* the figure: messages, BENCH_FAIL_SAMPLE */
  int runs;            /* samples asked for */
  int retried;         /* failed once, then measured on the second try */
  int stalled;         /* failed twice: no value */
  char retry_why[160]; /* how the last retried sample failed */
  char stall_why[320]; /* how the last stalled sample failed, twice */
};

/*
 * Runs "--child name FD args..." in a fresh process, waits for it and
 * stores the nout numbers it wrote in out, counting the sample in t (which
 * may be NULL).  A failed child (see above) is run once more.  Returns
 * nout, or -1 if the sample stalled or could not be run (with a message on
 * stderr either way).  The child's standard error is passed through.
 */
int bench_child(const struct bench_opts *o, struct bench_tally *t,
                const char *name, double *out, int nout, const char *arg1,
                const char *arg2);
/* The same with up to 6 arguments, args ending with NULL. */
int bench_childv(const struct bench_opts *o, struct bench_tally *t,
                 const char *name, double *out, int nout,
                 const char *const *args);

/* In a child: writes one number for the parent. */
void bench_put(const struct bench_opts *o, double v);

/* Prints the table header once, with a title line. */
void bench_table(const struct bench_opts *o, const char *title);

/*
 * One row: the median, min and max of samples[0..n) (in the order run) in
 * unit, and a note (may be NULL); t (may be NULL: the samples were taken
 * in this process) says how many of them were retried or stalled, and the
 * note says so too.  Writes the TSV lines above.  With n == 0 and stalled
 * samples in t it prints a STALLED row and writes the stalled line; with
 * n == 0 and none it prints a FAILED row and writes nothing, so run.sh
 * sees the name missing (and bench_status() fails).
 */
void bench_row(const struct bench_opts *o, const char *name,
               const struct bench_tally *t, const double *samples, int n,
               const char *unit, const char *note);

/*
 * A figure that cannot be measured in this run (what it needs is missing,
 * or there was nothing to measure): a row saying why, and
 * "name<TAB>n/a<TAB>unit<TAB>why" in the TSV, which the report shows as
 * n/a and does not count as missing.  It neither fails the program nor
 * counts as a figure measured.
 */
void bench_na_row(const struct bench_opts *o, const char *name,
                  const char *unit, const char *why);

/* What main() returns once every row is written: 0, or 1 when the program
 * could not run at all (see above).  Stalled figures do not count. */
int bench_status(void);

/* One progress line on stderr, "PROG: ...", for the runs that take long. */
void bench_progress(const struct bench_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * CPUs.  bench_cpu(k) is the k-th CPU this process may run on (wrapping
 * around, so with one CPU every k names it); bench_pin(k) pins the calling
 * thread (in a single-threaded process: the process) to it.  Pinning makes
 * "two CPUs" and "one CPU" mean what they say whatever the scheduler
 * prefers.
 */
int bench_ncpus(void);
int bench_cpu(int k);
bool bench_pin(int k);

/* n bytes of zeroed memory shared with every process forked afterwards
 * (MAP_SHARED): how workers hand their figures back.  Exits on failure. */
void *bench_shared(size_t n);

/* The "Field:   123 kB" line of a /proc file (/proc/meminfo,
 * /proc/PID/status, /proc/PID/smaps_rollup), in KiB; -1 if absent. */
long bench_file_kib(const char *path, const char *field);

/* Keeps the compiler from deleting a computation whose result is unused. */
#define bench_keep(x) __asm__ volatile("" : : "g"(x) : "memory")

#endif /* WEFT_BENCH_H */
