/*
 * soak_client.h - what the three files of the soak client share: the
 * slots and their connections, the tallies, the connection layer of
 * soak_client.c (connect, read, find, consume, settle, pacing, messages)
 * and the entry points of the protocol checkers, http_check.c and
 * kv_check.c.  What the client does is told atop soak_client.c.
 */
#ifndef SOAK_CLIENT_H
#define SOAK_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MS ((int64_t)1000000)
#define SEC ((int64_t)1000000000)
/* The longest one read or write may wait. */
#define IO_TIMEOUT (10 * SEC)
/* How long a failed connection waits for news of a killed worker. */
#define KILL_GRACE (3 * SEC)
#define RBUF ((size_t)65536)
#define WBUF ((size_t)524288)
#define MAX_ERR_LOG 40

/* KV: keys per slot, shared counters, the longest value. */
#define KV_KEYS 16
#define KV_COUNTERS 8
#define KV_BIG_VALUE 49152 /* the longest value slow clients use */

enum srv { HTTP, KV, NSRV };
extern const char *const srv_name[NSRV];

/* Request types, per server.  CONN counts connections opened. */
enum { T_CONN, T_A, T_B, T_C, T_D, T_PIPE, T_SLOW, T_ABORT, NTYPES };
extern const char *const type_name[NSRV][NTYPES];

struct tally {
  _Atomic uint64_t sent, ok, lost, err;
};
extern struct tally tallies[NSRV][NTYPES];

/* Results of a step. */
enum { ST_OK = 0, ST_GONE = -1, ST_BAD = -2 };

enum kind { LONG, SHORT, SLOW };

enum key_state { K_UNSET, K_HAS, K_DELETED, K_UNKNOWN };

struct kv_key {
  enum key_state st;
  uint32_t seq, len;
};

struct conn {
  int fd;         /* -1: none */
  unsigned epoch; /* kill count before the last answered request was sent */
  bool drained;   /* a draining worker said "Connection: close" */
  int err;        /* last transport failure: 0 end of file, or -errno */
  char *buf;      /* RBUF bytes; unread input is buf[pos, len) */
  size_t pos, len;
  char diag[200]; /* after a timeout: where the bytes were */
  char text[300]; /* why(): the last failure in words */
};

struct slot {
  int index;
  enum srv srv;
  enum kind kind;
  uint64_t rng;
  struct conn c;
  char *wbuf;    /* WBUF bytes */
  char *scratch; /* KV_BIG_VALUE bytes: expected values */
  int64_t interval, next_at;
  struct kv_key keys[KV_KEYS];
  int64_t last_incr[KV_COUNTERS];
};

/* Set by signals (soak_client.c). */
extern atomic_uint kill_seq;
extern atomic_int stopping;

/* The run's KV keys begin with it: soak:LABEL:PID. */
extern char prefix[64];

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static inline void add(_Atomic uint64_t *v, uint64_t n) {
  atomic_fetch_add_explicit(v, n, memory_order_relaxed);
}

static inline uint64_t get(_Atomic uint64_t *v) {
  return atomic_load_explicit(v, memory_order_relaxed);
}

static inline unsigned kills(void) {
  return atomic_load_explicit(&kill_seq, memory_order_acquire);
}

static inline bool is_stopping(void) {
  return atomic_load_explicit(&stopping, memory_order_relaxed) != 0;
}

static inline uint64_t rnd(struct slot *s) {
  /* xorshift64* */
  uint64_t x = s->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  s->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* 0 .. n-1 */
static inline uint32_t below(struct slot *s, uint32_t n) {
  return n ? (uint32_t)((rnd(s) >> 32) % n) : 0;
}

/* true with probability pct percent */
static inline bool chance(struct slot *s, uint32_t pct) {
  return below(s, 100) < pct;
}

/* ------------------------------------------------------------------------ */
/* The connection layer (soak_client.c)                                     */
/* ------------------------------------------------------------------------ */

__attribute__((format(printf, 2, 3))) void complain(struct slot *s,
                                                    const char *fmt, ...);
const char *first_line(const char *p, size_t n, char *out, size_t cap);
const char *why(struct conn *c);
void pace(struct slot *s, int units);

void conn_close(struct slot *s, bool reset);
int conn_open(struct slot *s);
int send_all(struct slot *s, const char *p, size_t n);
int send_slowly(struct slot *s, const char *p, size_t n);

enum check { C_EXACT, C_XS, C_SKIP };
int consume(struct slot *s, uint64_t n, enum check how, const char *exp,
            size_t limit, int64_t pause, const char *what);
int find(struct slot *s, const char *pat, size_t plen, size_t *at,
         const char *what);
int expect_eof(struct slot *s, const char *what);
void settle(struct slot *s, int type, uint64_t n, int rc, const char *what);

/* A "check" line of the final report; a failed one fails the run. */
__attribute__((format(printf, 4, 5))) void
check_line(const char *srv, const char *what, bool ok, const char *fmt, ...);

/* ------------------------------------------------------------------------ */
/* The checkers                                                             */
/* ------------------------------------------------------------------------ */

/* http_check.c: one connection of the slot's kind to the HTTP server. */
void http_connection(struct slot *s);

/* kv_check.c: one connection of the slot's kind to the KV server, and the
 * final check of the counters (a green thread's body, on a slot of its
 * own). */
void kv_connection(struct slot *s);
void *kv_final(void *arg);

#endif /* SOAK_CLIENT_H */
