/*
 * kv_check.c - the soak client's KV side: RESP commands to servers/kv of
 * each slot kind (long connections of single commands and pipelined
 * batches, short ones, some cut in the middle or closed with replies
 * unread, slow writers and readers of big values), the checks of every
 * reply against what the slot knows of its keys and counters, and the
 * final check of the shared counters (see "Checks" atop soak_client.c).
 * The connection layer is soak_client.c's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "soak_client.h"

#define KV_VALUE_MAX 16384
#define KV_BATCH 20 /* most commands in a pipelined batch */

enum { K_SET = T_A, K_GET = T_B, K_INCR = T_C, K_DEL = T_D };

/* KV counters: INCRs answered, and INCRs whose answer never came. */
static _Atomic uint64_t incr_acked[KV_COUNTERS];
static _Atomic uint64_t incr_unknown[KV_COUNTERS];

/* A command as RESP: an array of bulk strings. */
static size_t resp_cmd(char *p, int argc, const char *const *argv,
                       const size_t *len) {
  size_t k = (size_t)sprintf(p, "*%d\r\n", argc);
  for (int i = 0; i < argc; i++) {
    k += (size_t)sprintf(p + k, "$%zu\r\n", len[i]);
    memcpy(p + k, argv[i], len[i]);
    k += len[i];
    memcpy(p + k, "\r\n", 2);
    k += 2;
  }
  return k;
}

static size_t key_name(char *p, const struct slot *s, int i) {
  return (size_t)sprintf(p, "%s:k:%d:%d", prefix, s->index, i);
}

static size_t counter_name(char *p, int j) {
  return (size_t)sprintf(p, "%s:c:%d", prefix, j);
}

static size_t abort_key(char *p) {
  return (size_t)sprintf(p, "%s:never", prefix);
}

/* The value of key i of slot s at sequence seq: its sequence number, then
 * letters that depend on all three. */
static void value_gen(char *dst, const struct slot *s, int i, uint32_t seq,
                      uint32_t len) {
  char head[16];
  int h = snprintf(head, sizeof head, "%08x:", seq);
  uint32_t x = (uint32_t)s->index * 2654435761u ^ (uint32_t)i * 40503u ^ seq;
  for (uint32_t k = 0; k < len; k++)
    dst[k] = k < (uint32_t)h ? head[k] : (char)('a' + (x + k * 7) % 26);
}

static uint32_t value_len(struct slot *s) {
  uint32_t d = below(s, 100);
  if (d < 70)
    return 9 + below(s, 120);
  if (d < 98)
    return 9 + below(s, 2048);
  return 9 + below(s, KV_VALUE_MAX - 9);
}

/* What a reply must be. */
enum exp_kind { E_OK, E_INT, E_INCR, E_VALUE, E_NIL, E_ANY };

struct expect {
  enum exp_kind kind;
  int type;      /* tally type */
  int key;       /* E_VALUE: key; E_INCR: counter */
  uint32_t seq, len;
  int64_t n;     /* E_INT */
};

/* Adds one command to the batch in s->wbuf at *off and its expectation,
 * updating the slot's idea of its keys as if it had run.  key: the key to
 * use (-1: one at random); vlen: the length of a SET's value (0: at
 * random). */
static void kv_add(struct slot *s, size_t *off, struct expect *e, int type,
                   int key, uint32_t vlen) {
  char name[96];
  const char *argv[3];
  size_t len[3];
  int i = key >= 0 ? key : (int)below(s, KV_KEYS);
  struct kv_key *k = &s->keys[i];
  memset(e, 0, sizeof *e);
  e->type = type;
  e->key = i;
  argv[1] = name;
  len[1] = key_name(name, s, i);
  switch (type) {
  case K_SET:
    k->seq++;
    k->len = vlen ? vlen : value_len(s);
    k->st = K_HAS;
    value_gen(s->scratch, s, i, k->seq, k->len);
    argv[0] = "SET", len[0] = 3;
    argv[2] = s->scratch, len[2] = k->len;
    *off += resp_cmd(s->wbuf + *off, 3, argv, len);
    e->kind = E_OK;
    break;
  case K_GET:
    argv[0] = "GET", len[0] = 3;
    *off += resp_cmd(s->wbuf + *off, 2, argv, len);
    e->kind = k->st == K_HAS ? E_VALUE : k->st == K_UNKNOWN ? E_ANY : E_NIL;
    e->seq = k->seq;
    e->len = k->len;
    break;
  case K_DEL:
    argv[0] = "DEL", len[0] = 3;
    *off += resp_cmd(s->wbuf + *off, 2, argv, len);
    e->kind = k->st == K_UNKNOWN ? E_ANY : E_INT;
    e->n = k->st == K_HAS ? 1 : 0;
    k->st = K_DELETED;
    break;
  case K_INCR:
  default:
    e->key = (int)below(s, KV_COUNTERS);
    argv[0] = "INCR", len[0] = 4;
    len[1] = counter_name(name, e->key);
    *off += resp_cmd(s->wbuf + *off, 2, argv, len);
    e->kind = E_INCR;
    break;
  }
}

/* Reads one reply line ("+OK", ":12", "$5", "-ERR ...") into out. */
static int kv_line(struct slot *s, char *out, size_t cap) {
  size_t at;
  int rc = find(s, "\r\n", 2, &at, "reply");
  if (rc < 0)
    return rc;
  size_t n = at < cap - 1 ? at : cap - 1;
  memcpy(out, s->c.buf + s->c.pos, n);
  out[n] = '\0';
  s->c.pos += at + 2;
  return ST_OK;
}

/* Reads and checks one reply.  A slow reader reads values in small bites
 * (limit, pause). */
static int kv_reply(struct slot *s, const struct expect *e, size_t limit,
                    int64_t pause) {
  char line[128];
  int rc = kv_line(s, line, sizeof line);
  if (rc < 0)
    return rc;
  const char *tn = type_name[KV][e->type];
  switch (e->kind) {
  case E_OK:
    if (strcmp(line, "+OK") != 0)
      goto wrong;
    return ST_OK;
  case E_INT: {
    char want[32];
    snprintf(want, sizeof want, ":%" PRId64, e->n);
    if (strcmp(line, want) != 0)
      goto wrong;
    return ST_OK;
  }
  case E_INCR: {
    char *end;
    if (line[0] != ':')
      goto wrong;
    long long v = strtoll(line + 1, &end, 10);
    if (*end || v <= s->last_incr[e->key]) {
      complain(s, "INCR counter %d: %lld after %" PRId64 " (must grow)",
               e->key, v, s->last_incr[e->key]);
      return ST_BAD;
    }
    s->last_incr[e->key] = v;
    add(&incr_acked[e->key], 1);
    return ST_OK;
  }
  case E_NIL:
    if (strcmp(line, "$-1") != 0)
      goto wrong;
    return ST_OK;
  case E_VALUE: {
    char want[32];
    snprintf(want, sizeof want, "$%" PRIu32, e->len);
    if (strcmp(line, want) != 0)
      goto wrong;
    value_gen(s->scratch, s, e->key, e->seq, e->len);
    rc = consume(s, e->len, C_EXACT, s->scratch, limit, pause, "GET value");
    if (rc == ST_OK)
      rc = consume(s, 2, C_EXACT, "\r\n", 0, 0, "GET value end");
    return rc;
  }
  case E_ANY:
  default:
    if (line[0] == '$' && line[1] != '-') {
      uint64_t n = strtoull(line + 1, NULL, 10);
      rc = consume(s, n + 2, C_SKIP, NULL, limit, pause, "GET value");
      return rc;
    }
    if (line[0] == ':' || line[0] == '+' || line[0] == '$')
      return ST_OK;
    goto wrong;
  }
wrong:
  complain(s, "%s: unexpected reply '%s'", tn, line);
  return ST_BAD;
}

/* After a failure the slot no longer knows its keys: accept anything once
 * and start over. */
static void kv_forget(struct slot *s) {
  for (int i = 0; i < KV_KEYS; i++)
    s->keys[i].st = K_UNKNOWN;
}

/* Runs a batch of n commands (pipelined when n > 1) on keys[] (NULL: at
 * random), booked under their own types, or all under `as` (T_PIPE,
 * T_SLOW) when as >= 0.  slow: written in pieces, values read in small
 * bites; vlen: the length of SET values (0: at random). */
static int kv_batch(struct slot *s, int n, const int *types, const int *keys,
                    int as, bool slow, uint32_t vlen) {
  struct expect es[KV_BATCH];
  size_t off = 0;
  for (int i = 0; i < n; i++)
    kv_add(s, &off, &es[i], types[i], keys ? keys[i] : -1, vlen);
  for (int i = 0; i < n; i++)
    add(&tallies[KV][as >= 0 ? as : es[i].type].sent, 1);
  int rc = slow ? send_slowly(s, s->wbuf, off) : send_all(s, s->wbuf, off);
  int done = 0;
  while (rc == ST_OK && done < n) {
    rc = slow ? kv_reply(s, &es[done], 1024, 2 * MS)
              : kv_reply(s, &es[done], 0, 0);
    if (rc == ST_OK) {
      add(&tallies[KV][as >= 0 ? as : es[done].type].ok, 1);
      done++;
    }
  }
  if (rc < 0) {
    /* The one that was wrong (ST_BAD, already reported) or the first that
     * got no answer (ST_GONE), and the rest: errors, as KV is never
     * killed. */
    for (int i = done; i < n; i++) {
      if (es[i].kind == E_INCR)
        add(&incr_unknown[es[i].key], 1);
      settle(s, as >= 0 ? as : es[i].type, 1, i == done ? rc : ST_BAD,
             "command");
    }
    kv_forget(s);
    return rc;
  }
  return ST_OK;
}

static int kv_type(struct slot *s) {
  uint32_t d = below(s, 100);
  return d < 35 ? K_SET : d < 65 ? K_GET : d < 95 ? K_INCR : K_DEL;
}

/* A batch of 3 to 20 commands, or one command (a SET is read back half
 * the time). */
static int kv_round(struct slot *s) {
  int types[KV_BATCH];
  if (chance(s, 15)) {
    int n = 3 + (int)below(s, KV_BATCH - 3);
    for (int i = 0; i < n; i++)
      types[i] = kv_type(s);
    int rc = kv_batch(s, n, types, NULL, T_PIPE, false, 0);
    pace(s, n / 2 + 1);
    return rc;
  }
  int key = (int)below(s, KV_KEYS);
  types[0] = kv_type(s);
  int rc = kv_batch(s, 1, types, &key, -1, false, 0);
  if (rc == ST_OK && types[0] == K_SET && chance(s, 50)) {
    types[0] = K_GET;
    rc = kv_batch(s, 1, types, &key, -1, false, 0);
  }
  pace(s, 1);
  return rc;
}

/* A command cut in the middle: an INCR of a key nothing else touches,
 * which must therefore never exist. */
static void kv_abort(struct slot *s) {
  struct tally *t = &tallies[KV][T_ABORT];
  char name[96];
  const char *argv[2] = {"INCR", name};
  size_t len[2] = {4, abort_key(name)};
  size_t n = resp_cmd(s->wbuf, 2, argv, len);
  add(&t->sent, 1);
  int rc = send_all(s, s->wbuf, 1 + below(s, (uint32_t)n - 2));
  if (rc < 0) {
    settle(s, T_ABORT, 1, rc, "cut command");
  } else {
    weft_sleep(below(s, 5) * MS);
    add(&t->ok, 1);
  }
  conn_close(s, chance(s, 50));
}

/* GETs pipelined, then a close without reading the replies. */
static void kv_unread(struct slot *s) {
  struct tally *t = &tallies[KV][T_ABORT];
  struct expect e;
  size_t off = 0;
  int n = 2 + (int)below(s, 10);
  for (int i = 0; i < n; i++)
    kv_add(s, &off, &e, K_GET, -1, 0);
  add(&t->sent, 1);
  if (send_all(s, s->wbuf, off) < 0)
    settle(s, T_ABORT, 1, ST_GONE, "pipelined GETs (abort)");
  else
    add(&t->ok, 1);
  conn_close(s, chance(s, 50));
}

static void kv_long(struct slot *s) {
  if (conn_open(s) < 0) {
    weft_sleep(100 * MS);
    return;
  }
  uint32_t rounds = 200 + below(s, 1800);
  for (uint32_t i = 0; i < rounds && !is_stopping(); i++)
    if (kv_round(s) < 0)
      break;
  conn_close(s, false);
}

static void kv_short(struct slot *s) {
  if (conn_open(s) < 0) {
    weft_sleep(100 * MS);
    return;
  }
  uint32_t v = below(s, 100);
  if (v < 12) {
    kv_abort(s);
    pace(s, 1);
    return;
  }
  if (v < 17) {
    kv_unread(s);
    pace(s, 1);
    return;
  }
  uint32_t n = 1 + below(s, 3);
  for (uint32_t i = 0; i < n; i++)
    if (kv_round(s) < 0)
      break;
  conn_close(s, false);
}

/* Slow writers and readers: a SET and a GET of one key written a few
 * bytes at a time, the value read back 1 KiB at a time; 40% of the time
 * a big value (24 to 48 KiB); idle gaps between. */
static void kv_slow(struct slot *s) {
  if (conn_open(s) < 0) {
    weft_sleep(100 * MS);
    return;
  }
  uint32_t n = 2 + below(s, 5);
  for (uint32_t i = 0; i < n && !is_stopping(); i++) {
    int types[2] = {K_SET, K_GET};
    int key = (int)below(s, KV_KEYS), keys[2] = {key, key};
    uint32_t big = chance(s, 40) ? KV_BIG_VALUE / 2 + below(s, KV_BIG_VALUE / 2)
                                 : 0;
    if (kv_batch(s, 2, types, keys, T_SLOW, true, big) < 0)
      break;
    weft_sleep((50 + below(s, 400)) * MS); /* an idle gap */
  }
  conn_close(s, false);
}

void kv_connection(struct slot *s) {
  if (s->kind == LONG)
    kv_long(s);
  else if (s->kind == SHORT)
    kv_short(s);
  else
    kv_slow(s);
}

/* The KV counters against the INCRs answered; the key only cut commands
 * named must not exist. */
void *kv_final(void *arg) {
  struct slot *s = arg;
  if (conn_open(s) < 0) {
    check_line("kv", "counters", false, "cannot connect for the final check");
    return NULL;
  }
  uint64_t total = 0;
  bool all = true;
  char detail[200] = "";
  for (int j = 0; j < KV_COUNTERS; j++) {
    char name[96], line[128];
    const char *argv[2] = {"GET", name};
    size_t len[2] = {3, counter_name(name, j)};
    size_t n = resp_cmd(s->wbuf, 2, argv, len);
    uint64_t acked = get(&incr_acked[j]), unknown = get(&incr_unknown[j]);
    uint64_t v = 0;
    if (send_all(s, s->wbuf, n) < 0 || kv_line(s, line, sizeof line) < 0) {
      check_line("kv", "counters", false, "final GET failed: %s", why(&s->c));
      return NULL;
    }
    if (line[0] == '$' && line[1] != '-') {
      size_t l = strtoull(line + 1, NULL, 10);
      char num[32];
      if (l >= sizeof num || kv_line(s, num, sizeof num) < 0) {
        all = false;
        break;
      }
      v = strtoull(num, NULL, 10);
    }
    total += v;
    if (v < acked || v > acked + unknown) {
      all = false;
      size_t k = strlen(detail);
      snprintf(detail + k, sizeof detail - k,
               "counter %d is %" PRIu64 ", expected %" PRIu64 "%s; ", j, v,
               acked, unknown ? " (+ unknown)" : "");
    }
  }
  if (all)
    check_line("kv", "counters", true,
               "%d counters total %" PRIu64 " = INCRs answered", KV_COUNTERS,
               total);
  else
    check_line("kv", "counters", false, "%s", detail);

  char name[96], line[128];
  const char *argv[2] = {"EXISTS", name};
  size_t len[2] = {6, abort_key(name)};
  size_t n = resp_cmd(s->wbuf, 2, argv, len);
  if (send_all(s, s->wbuf, n) < 0 || kv_line(s, line, sizeof line) < 0)
    check_line("kv", "cut-commands", false, "EXISTS failed: %s", why(&s->c));
  else
    check_line("kv", "cut-commands", strcmp(line, ":0") == 0,
               "key named only by cut commands: EXISTS %s", line);
  conn_close(s, false);
  return NULL;
}
