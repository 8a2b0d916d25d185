/*
 * kv_store.h - the kv demo's store: byte-string keys to byte-string values,
 * with an optional expiry time per key.
 *
 * The table is split into stripes by key hash, each a chained hash table
 * under its own weft_mutex, so green threads, kernel threads and the
 * threads of a worker process can all use one store, and operations on
 * different stripes do not wait for each other.  Every operation is atomic
 * for its key; a multi-key operation (MGET, MSET, DEL k1 k2) is a sequence
 * of them.
 *
 * Time is the caller's: every call takes "now" in milliseconds on any
 * clock that does not go back (the server passes weft_now() / 1000000), and
 * expiry times are on the same clock.  A key whose expiry time is <= now is
 * gone; it is removed when it is next touched (lazily), or when its stripe
 * grows.
 */
#ifndef DEMOS_KV_STORE_H
#define DEMOS_KV_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct kv_store kv_store;

/* NULL when out of memory. */
kv_store *kv_create(void);
void kv_destroy(kv_store *s);

/* Called with the value while its stripe is locked: copy it and return. */
typedef void (*kv_value_fn)(void *arg, const char *v, size_t n);

/* 1 and fn(arg, value) when the key is there, else 0. */
int kv_get(kv_store *s, const char *k, size_t kn, int64_t now, kv_value_fn fn,
           void *arg);

enum {
  KV_NX = 1, /* set only if the key is absent */
  KV_XX = 2, /* set only if the key is present */
};
/* Sets the value and its expiry time (expire_at 0: none; any previous one
 * is dropped).  1 when set, 0 when KV_NX or KV_XX said no, -ENOMEM, or
 * -E2BIG for a key or value of 4 GiB or more. */
int kv_set(kv_store *s, const char *k, size_t kn, const char *v, size_t vn,
           int64_t expire_at, int flags, int64_t now);

/* 1 when the key was there (and is now removed), else 0. */
int kv_del(kv_store *s, const char *k, size_t kn, int64_t now);
/* 1 when the key is there, else 0. */
int kv_exists(kv_store *s, const char *k, size_t kn, int64_t now);

/* Adds delta to the value read as a decimal int64 (an absent key reads
 * 0, and gets no expiry; a present one keeps its own).  0 and the new
 * value in *out; -EINVAL when the value is not an integer, -ERANGE when the
 * result would overflow, -ENOMEM. */
int kv_incrby(kv_store *s, const char *k, size_t kn, int64_t delta, int64_t now,
              int64_t *out);

/* Milliseconds the key has left: -2 when absent, -1 without expiry. */
int64_t kv_ttl(kv_store *s, const char *k, size_t kn, int64_t now);

/* Keys stored, counting expired ones not yet removed. */
size_t kv_count(kv_store *s);

#endif /* DEMOS_KV_STORE_H */
