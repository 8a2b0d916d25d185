/*
 * kv_store.c - the kv demo's striped hash table (see kv_store.h).
 *
 * An entry is one allocation: the key, then room for the value.  A SET of
 * a small value over an existing key that has room rewrites it in place,
 * without allocating; otherwise the new entry is built before the stripe
 * is locked and swapped in, and the old one freed after the unlock, so
 * critical sections stay short.  Integers are kept as decimal strings, as
 * redis shows them.
 */
#include "kv_store.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "resp.h"
#include "weft.h"

#define STRIPE_BITS 8
#define STRIPES (1u << STRIPE_BITS)
#define BUCKETS_MIN 16
/* Values up to this size are rewritten in place when the entry has room
 * (and then the room is at most twice this, so little is wasted). */
#define INPLACE_MAX 512

struct entry {
  struct entry *next;
  uint64_t hash;
  int64_t expire; /* 0: none */
  uint32_t klen;
  uint32_t vlen;
  uint32_t vcap;
  char data[]; /* klen bytes of key, then vcap bytes of room for the value */
};

struct stripe {
  weft_mutex mu;
  struct entry **b;
  size_t mask; /* buckets - 1 */
  size_t count;
} __attribute__((aligned(64)));

struct kv_store {
  struct stripe st[STRIPES];
  uint64_t seed;
};

/* ------------------------------------------------------------------------ */
/* Hashing                                                                  */
/* ------------------------------------------------------------------------ */

static inline uint64_t fold_mul(uint64_t a, uint64_t b) {
  unsigned __int128 r = (unsigned __int128)a * b;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t load64(const char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static inline uint64_t load32(const char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

#define H0 0x9e3779b97f4a7c15ull
#define H1 0xbf58476d1ce4e5b9ull
#define H2 0x94d049bb133111ebull

/* 16 bytes per multiply; the tail is read with (overlapping) loads that
 * stay inside the key. */
static uint64_t hash_key(const char *p, size_t n, uint64_t seed) {
  uint64_t h = seed ^ ((uint64_t)n * H0);
  size_t left = n;
  while (left > 16) {
    h = fold_mul(load64(p) ^ H1 ^ h, load64(p + 8) ^ H2);
    p += 16;
    left -= 16;
  }
  uint64_t a = 0, b = 0;
  if (left >= 8) {
    a = load64(p);
    b = load64(p + left - 8);
  } else if (left >= 4) {
    a = load32(p);
    b = load32(p + left - 4);
  } else if (left > 0) {
    a = ((uint64_t)(unsigned char)p[0] << 16) |
        ((uint64_t)(unsigned char)p[left / 2] << 8) |
        (uint64_t)(unsigned char)p[left - 1];
  }
  h = fold_mul(a ^ H1 ^ h, b ^ H2 ^ left);
  return fold_mul(h ^ H0, H1);
}

/* ------------------------------------------------------------------------ */
/* Stripes                                                                  */
/* ------------------------------------------------------------------------ */

static inline struct stripe *stripe_of(kv_store *s, uint64_t h) {
  return &s->st[h >> (64 - STRIPE_BITS)];
}

static inline void lock(struct stripe *st) { weft_mutex_lock(&st->mu); }
static inline void unlock(struct stripe *st) { weft_mutex_unlock(&st->mu); }

static inline bool expired(const struct entry *e, int64_t now) {
  return e->expire != 0 && e->expire <= now;
}

/* The link that points at the key's live entry, or NULL; an expired entry
 * found on the way is removed. */
static struct entry **find(struct stripe *st, uint64_t h, const char *k,
                           size_t kn, int64_t now) {
  struct entry **pp = &st->b[h & st->mask];
  for (struct entry *e; (e = *pp); pp = &e->next) {
    if (e->hash != h || e->klen != kn || memcmp(e->data, k, kn) != 0)
      continue;
    if (expired(e, now)) {
      *pp = e->next;
      st->count--;
      free(e);
      return NULL;
    }
    return pp;
  }
  return NULL;
}

/* Doubles the buckets when there are more keys than buckets, dropping
 * expired keys on the way.  Without memory it keeps the old ones. */
static void maybe_grow(struct stripe *st, int64_t now) {
  if (st->count <= st->mask + 1)
    return;
  size_t nmask = st->mask * 2 + 1;
  struct entry **nb = calloc(nmask + 1, sizeof(*nb));
  if (!nb)
    return;
  for (size_t i = 0; i <= st->mask; i++) {
    struct entry *e = st->b[i];
    while (e) {
      struct entry *next = e->next;
      if (expired(e, now)) {
        st->count--;
        free(e);
      } else {
        e->next = nb[e->hash & nmask];
        nb[e->hash & nmask] = e;
      }
      e = next;
    }
  }
  free(st->b);
  st->b = nb;
  st->mask = nmask;
}

static void insert(struct stripe *st, struct entry *e, int64_t now) {
  struct entry **head = &st->b[e->hash & st->mask];
  e->next = *head;
  *head = e;
  st->count++;
  maybe_grow(st, now);
}

static struct entry *new_entry(uint64_t h, const char *k, size_t kn,
                               const char *v, size_t vn, size_t vcap,
                               int64_t expire) {
  struct entry *e = malloc(sizeof(*e) + kn + vcap);
  if (!e)
    return NULL;
  e->next = NULL;
  e->hash = h;
  e->expire = expire;
  e->klen = (uint32_t)kn;
  e->vlen = (uint32_t)vn;
  e->vcap = (uint32_t)vcap;
  memcpy(e->data, k, kn);
  if (vn)
    memcpy(e->data + kn, v, vn);
  return e;
}

/* ------------------------------------------------------------------------ */
/* The API                                                                  */
/* ------------------------------------------------------------------------ */

kv_store *kv_create(void) {
  kv_store *s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  if (getrandom(&s->seed, sizeof(s->seed), GRND_NONBLOCK) !=
      (ssize_t)sizeof(s->seed))
    s->seed = (uint64_t)weft_now() ^ (uint64_t)(uintptr_t)s;
  for (unsigned i = 0; i < STRIPES; i++) {
    struct stripe *st = &s->st[i];
    weft_mutex_init(&st->mu);
    st->b = calloc(BUCKETS_MIN, sizeof(*st->b));
    if (!st->b) {
      kv_destroy(s);
      return NULL;
    }
    st->mask = BUCKETS_MIN - 1;
  }
  return s;
}

void kv_destroy(kv_store *s) {
  if (!s)
    return;
  for (unsigned i = 0; i < STRIPES; i++) {
    struct stripe *st = &s->st[i];
    if (!st->b)
      continue;
    for (size_t j = 0; j <= st->mask; j++) {
      struct entry *e = st->b[j];
      while (e) {
        struct entry *next = e->next;
        free(e);
        e = next;
      }
    }
    free(st->b);
  }
  free(s);
}

int kv_get(kv_store *s, const char *k, size_t kn, int64_t now, kv_value_fn fn,
           void *arg) {
  uint64_t h = hash_key(k, kn, s->seed);
  struct stripe *st = stripe_of(s, h);
  lock(st);
  struct entry **pp = find(st, h, k, kn, now);
  if (pp)
    fn(arg, (*pp)->data + (*pp)->klen, (*pp)->vlen);
  unlock(st);
  return pp != NULL;
}

/* Room to leave for a small value, so that it can change in place. */
static size_t small_cap(size_t vn) {
  return vn <= INPLACE_MAX ? (vn + 15) & ~(size_t)15 : vn;
}

int kv_set(kv_store *s, const char *k, size_t kn, const char *v, size_t vn,
           int64_t expire_at, int flags, int64_t now) {
  if (kn > UINT32_MAX || vn > UINT32_MAX - 16)
    return -E2BIG;
  uint64_t h = hash_key(k, kn, s->seed);
  struct stripe *st = stripe_of(s, h);
  struct entry **pp;
  if (vn <= INPLACE_MAX) {
    lock(st);
    pp = find(st, h, k, kn, now);
    if (((flags & KV_NX) && pp) || ((flags & KV_XX) && !pp)) {
      unlock(st);
      return 0;
    }
    if (pp && (*pp)->vcap >= vn && (*pp)->vcap <= 2 * INPLACE_MAX) {
      struct entry *e = *pp;
      memcpy(e->data + e->klen, v, vn);
      e->vlen = (uint32_t)vn;
      e->expire = expire_at;
      unlock(st);
      return 1;
    }
    unlock(st);
  }
  struct entry *e = new_entry(h, k, kn, v, vn, small_cap(vn), expire_at);
  if (!e)
    return -ENOMEM;
  struct entry *old = NULL;
  lock(st);
  pp = find(st, h, k, kn, now);
  if (((flags & KV_NX) && pp) || ((flags & KV_XX) && !pp)) {
    unlock(st);
    free(e);
    return 0;
  }
  if (pp) {
    old = *pp;
    e->next = old->next;
    *pp = e;
  } else {
    insert(st, e, now);
  }
  unlock(st);
  free(old);
  return 1;
}

int kv_del(kv_store *s, const char *k, size_t kn, int64_t now) {
  uint64_t h = hash_key(k, kn, s->seed);
  struct stripe *st = stripe_of(s, h);
  struct entry *e = NULL;
  lock(st);
  struct entry **pp = find(st, h, k, kn, now);
  if (pp) {
    e = *pp;
    *pp = e->next;
    st->count--;
  }
  unlock(st);
  free(e);
  return e != NULL;
}

int kv_exists(kv_store *s, const char *k, size_t kn, int64_t now) {
  uint64_t h = hash_key(k, kn, s->seed);
  struct stripe *st = stripe_of(s, h);
  lock(st);
  struct entry **pp = find(st, h, k, kn, now);
  unlock(st);
  return pp != NULL;
}

int kv_incrby(kv_store *s, const char *k, size_t kn, int64_t delta, int64_t now,
              int64_t *out) {
  if (kn > UINT32_MAX)
    return -E2BIG;
  uint64_t h = hash_key(k, kn, s->seed);
  struct stripe *st = stripe_of(s, h);
  int rc = 0;
  lock(st);
  struct entry **pp = find(st, h, k, kn, now);
  int64_t cur = 0;
  if (pp) {
    struct entry *e = *pp;
    if (!resp_parse_int(e->data + e->klen, e->vlen, &cur)) {
      rc = -EINVAL;
      goto out;
    }
  }
  if ((delta > 0 && cur > INT64_MAX - delta) ||
      (delta < 0 && cur < INT64_MIN - delta)) {
    rc = -ERANGE;
    goto out;
  }
  cur += delta;
  char num[24];
  size_t len = resp_fmt_int(num, cur);
  if (pp && (*pp)->vcap >= len) {
    struct entry *e = *pp;
    memcpy(e->data + e->klen, num, len);
    e->vlen = (uint32_t)len;
  } else {
    /* Rare (a new key, or a short value that grew): allocating under the
     * lock keeps the update atomic. */
    struct entry *e = new_entry(h, k, kn, num, len, 24, pp ? (*pp)->expire : 0);
    if (!e) {
      rc = -ENOMEM;
      goto out;
    }
    if (pp) {
      struct entry *old = *pp;
      e->next = old->next;
      *pp = e;
      free(old);
    } else {
      insert(st, e, now);
    }
  }
  *out = cur;
out:
  unlock(st);
  return rc;
}

int64_t kv_ttl(kv_store *s, const char *k, size_t kn, int64_t now) {
  uint64_t h = hash_key(k, kn, s->seed);
  struct stripe *st = stripe_of(s, h);
  lock(st);
  struct entry **pp = find(st, h, k, kn, now);
  int64_t r = !pp ? -2 : (*pp)->expire ? (*pp)->expire - now : -1;
  unlock(st);
  return r;
}

size_t kv_count(kv_store *s) {
  size_t n = 0;
  for (unsigned i = 0; i < STRIPES; i++) {
    struct stripe *st = &s->st[i];
    lock(st);
    n += st->count;
    unlock(st);
  }
  return n;
}
