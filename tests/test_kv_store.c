/*
 * test_kv_store.c - the kv demo's store (servers/kv_store.c, compiled into
 * this program), as a unit, with the time passed in so that expiry needs
 * no sleeping; and one store shared by kernel threads and green threads.
 */
#include "helpers.h"

#include "kv_store.h"

#define TMO .timeout = 20

/* ------------------------------------------------------------------------ */
/* Store                                                                    */
/* ------------------------------------------------------------------------ */

static char got[256];
static size_t got_len;
static void copy_value(void *arg, const char *v, size_t n) {
  (void)arg;
  got_len = n < sizeof(got) ? n : sizeof(got);
  memcpy(got, v, got_len);
}

static bool get_is(kv_store *s, const char *k, const char *want, int64_t now) {
  got_len = 0;
  if (!kv_get(s, k, strlen(k), now, copy_value, NULL))
    return want == NULL;
  return want && got_len == strlen(want) && memcmp(got, want, got_len) == 0;
}

#define SET(s, k, v, exp, fl, now)                                             \
  kv_set((s), (k), strlen(k), (v), strlen(v), (exp), (fl), (now))

Test(store, set_get_del_exists) {
  kv_store *s = kv_create();
  cr_assert(s);
  cr_assert(get_is(s, "a", NULL, 1));
  cr_assert_eq(SET(s, "a", "1", 0, 0, 1), 1);
  cr_assert(get_is(s, "a", "1", 1));
  cr_assert_eq(SET(s, "a", "a longer value", 0, 0, 1), 1);
  cr_assert(get_is(s, "a", "a longer value", 1));
  cr_assert_eq(SET(s, "a", "", 0, 0, 1), 1);
  cr_assert(get_is(s, "a", "", 1));
  cr_assert_eq(kv_exists(s, "a", 1, 1), 1);
  cr_assert_eq(kv_exists(s, "b", 1, 1), 0);
  cr_assert_eq(kv_del(s, "a", 1, 1), 1);
  cr_assert_eq(kv_del(s, "a", 1, 1), 0);
  cr_assert(get_is(s, "a", NULL, 1));
  cr_assert_eq(kv_count(s), 0);
  /* Binary keys: "k\0x" and "k\0y" differ. */
  cr_assert_eq(kv_set(s, "k\0x", 3, "1", 1, 0, 0, 1), 1);
  cr_assert_eq(kv_exists(s, "k\0y", 3, 1), 0);
  cr_assert_eq(kv_exists(s, "k", 1, 1), 0);
  kv_destroy(s);
}

Test(store, nx_xx) {
  kv_store *s = kv_create();
  cr_assert_eq(SET(s, "k", "v", 0, KV_XX, 1), 0);
  cr_assert(get_is(s, "k", NULL, 1));
  cr_assert_eq(SET(s, "k", "v", 0, KV_NX, 1), 1);
  cr_assert_eq(SET(s, "k", "w", 0, KV_NX, 1), 0);
  cr_assert(get_is(s, "k", "v", 1));
  cr_assert_eq(SET(s, "k", "w", 0, KV_XX, 1), 1);
  cr_assert(get_is(s, "k", "w", 1));
  kv_destroy(s);
}

Test(store, expiry) {
  kv_store *s = kv_create();
  cr_assert_eq(SET(s, "k", "v", 1100, 0, 1000), 1);
  cr_assert_eq(kv_ttl(s, "k", 1, 1000), 100);
  cr_assert(get_is(s, "k", "v", 1099));
  cr_assert(get_is(s, "k", NULL, 1100));
  cr_assert_eq(kv_ttl(s, "k", 1, 1100), -2);
  cr_assert_eq(kv_count(s), 0); /* removed when touched */
  /* An expired key is absent for NX, EXISTS, DEL and INCR. */
  cr_assert_eq(SET(s, "k", "5", 2000, 0, 1000), 1);
  cr_assert_eq(SET(s, "k", "v", 0, KV_NX, 2000), 1);
  cr_assert_eq(kv_ttl(s, "k", 1, 2000), -1);
  cr_assert_eq(SET(s, "k", "5", 3000, 0, 2000), 1);
  cr_assert_eq(kv_exists(s, "k", 1, 3000), 0);
  cr_assert_eq(SET(s, "k", "5", 4000, 0, 3000), 1);
  cr_assert_eq(kv_del(s, "k", 1, 4000), 0);
  cr_assert_eq(SET(s, "k", "5", 5000, 0, 4000), 1);
  int64_t v;
  cr_assert_eq(kv_incrby(s, "k", 1, 1, 5000, &v), 0);
  cr_assert_eq(v, 1);
  /* INCR keeps the expiry; SET without one drops it. */
  cr_assert_eq(SET(s, "k", "5", 6000, 0, 5000), 1);
  cr_assert_eq(kv_incrby(s, "k", 1, 1, 5000, &v), 0);
  cr_assert_eq(v, 6);
  cr_assert_eq(kv_ttl(s, "k", 1, 5000), 1000);
  cr_assert_eq(SET(s, "k", "5", 0, 0, 5000), 1);
  cr_assert_eq(kv_ttl(s, "k", 1, 5000), -1);
  kv_destroy(s);
}

Test(store, incr) {
  kv_store *s = kv_create();
  int64_t v;
  cr_assert_eq(kv_incrby(s, "n", 1, 1, 1, &v), 0);
  cr_assert_eq(v, 1);
  cr_assert_eq(kv_incrby(s, "n", 1, -3, 1, &v), 0);
  cr_assert_eq(v, -2);
  cr_assert(get_is(s, "n", "-2", 1));
  cr_assert_eq(SET(s, "n", "9223372036854775806", 0, 0, 1), 1);
  cr_assert_eq(kv_incrby(s, "n", 1, 1, 1, &v), 0);
  cr_assert_eq(v, INT64_MAX);
  cr_assert_eq(kv_incrby(s, "n", 1, 1, 1, &v), -ERANGE);
  cr_assert(get_is(s, "n", "9223372036854775807", 1));
  cr_assert_eq(SET(s, "n", "-9223372036854775808", 0, 0, 1), 1);
  cr_assert_eq(kv_incrby(s, "n", 1, -1, 1, &v), -ERANGE);
  cr_assert_eq(SET(s, "n", "abc", 0, 0, 1), 1);
  cr_assert_eq(kv_incrby(s, "n", 1, 1, 1, &v), -EINVAL);
  cr_assert_eq(SET(s, "n", " 1", 0, 0, 1), 1);
  cr_assert_eq(kv_incrby(s, "n", 1, 1, 1, &v), -EINVAL);
  cr_assert_eq(SET(s, "n", "", 0, 0, 1), 1);
  cr_assert_eq(kv_incrby(s, "n", 1, 1, 1, &v), -EINVAL);
  /* A one-byte value grows to many digits. */
  cr_assert_eq(SET(s, "n", "9", 0, 0, 1), 1);
  cr_assert_eq(kv_incrby(s, "n", 1, 1000000000000, 1, &v), 0);
  cr_assert(get_is(s, "n", "1000000000009", 1));
  kv_destroy(s);
}

Test(store, many_keys) {
  kv_store *s = kv_create();
  char k[32], v[32];
  for (int i = 0; i < 100000; i++) {
    snprintf(k, sizeof(k), "key:%d", i);
    snprintf(v, sizeof(v), "value %d", i * 7);
    cr_assert_eq(SET(s, k, v, i % 2 ? 50 : 0, 0, 1), 1);
  }
  cr_assert_eq(kv_count(s), 100000);
  for (int i = 0; i < 100000; i += 37) {
    snprintf(k, sizeof(k), "key:%d", i);
    snprintf(v, sizeof(v), "value %d", i * 7);
    cr_assert(get_is(s, k, v, 10), "%s", k);
    cr_assert(get_is(s, k, i % 2 ? NULL : v, 50), "%s", k);
  }
  /* A big value, replaced by a small one and back. */
  size_t big = (size_t)1 << 20;
  char *b = malloc(big);
  memset(b, 'q', big);
  cr_assert_eq(kv_set(s, "big", 3, b, big, 0, 0, 1), 1);
  cr_assert_eq(SET(s, "big", "small", 0, 0, 1), 1);
  cr_assert(get_is(s, "big", "small", 1));
  cr_assert_eq(kv_set(s, "big", 3, b, big, 0, 0, 1), 1);
  got_len = 0;
  cr_assert_eq(kv_get(s, "big", 3, 1, copy_value, NULL), 1);
  cr_assert_eq(got_len, sizeof(got));
  free(b);
  kv_destroy(s);
}

struct incr_arg {
  kv_store *s;
  int n;
};

static void *incr_many(void *p) {
  struct incr_arg *a = p;
  int64_t v;
  for (int i = 0; i < a->n; i++) {
    TCHECK_EQ(kv_incrby(a->s, "c", 1, 1, 1, &v), 0);
    char k[16];
    snprintf(k, sizeof(k), "t%d", i % 64);
    TCHECK(kv_set(a->s, k, strlen(k), "v", 1, 0, 0, 1) == 1);
  }
  return NULL;
}

/* Kernel threads and green threads share one store. */
Test(store, concurrent, TMO) {
  kv_store *s = kv_create();
  struct incr_arg a = {s, 20000};
  cr_assert_eq(weft_init(&(weft_config){.workers = 2}), 0);
  pthread_t t[2];
  weft_gthread g[4];
  for (int i = 0; i < 2; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, incr_many, &a), 0);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(weft_spawn(&g[i], NULL, incr_many, &a), 0);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(weft_join(g[i], NULL), 0);
  weft_shutdown();
  EXPECT_NO_THREAD_FAILURES();
  char want[32];
  snprintf(want, sizeof(want), "%d", 6 * a.n);
  cr_assert(get_is(s, "c", want, 1));
  kv_destroy(s);
}
