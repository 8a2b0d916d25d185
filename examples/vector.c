/*
 * vector.c - the explainer's shared vector behind a mutex, in C.
 *
 * A vector [1, 2, 3] lives on the heap.  Two green threads, each on its own
 * stack, push 4 and 5 into it under a weft_mutex; main then prints it.
 * They share the vector because they share the address space: each thread
 * holds only a pointer (on its own stack) to the one vector on the heap.
 *
 * The mutex makes each push whole; it does not decide who goes first.  To
 * get [1, 2, 3, 4, 5] every time, the second pusher waits for a message
 * from the first on a channel before it takes the mutex.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

struct vec {
  int *data;
  size_t len, cap;
};

static int vec_push(struct vec *v, int x) {
  if (v->len == v->cap) {
    size_t cap = v->cap ? 2 * v->cap : 4;
    int *d = realloc(v->data, cap * sizeof(*d));

    if (!d)
      return -1;
    v->data = d;
    v->cap = cap;
  }
  v->data[v->len++] = x;
  return 0;
}

static void vec_print(const struct vec *v) {
  printf("[");
  for (size_t i = 0; i < v->len; i++)
    printf("%s%d", i ? ", " : "", v->data[i]);
  printf("]\n");
}

/* What both threads share: the vector and the mutex that guards it. */
struct shared {
  weft_mutex lock;
  struct vec *vec;
};

struct pusher {
  struct shared *sh;
  int value;
  weft_chan *wait_for; /* NULL, or a turn to wait for before pushing */
  weft_chan *then_tell; /* NULL, or whom to tell after pushing */
};

static void *push(void *arg) {
  struct pusher *p = arg;
  struct shared *sh = p->sh; /* a local: lives on this green thread's stack */
  int token = 0;

  if (p->wait_for)
    weft_chan_recv(p->wait_for, &token);
  weft_mutex_lock(&sh->lock);
  if (vec_push(sh->vec, p->value) != 0) {
    weft_mutex_unlock(&sh->lock);
    return (void *)-1;
  }
  weft_mutex_unlock(&sh->lock);
  printf("  green thread %llu: my stack holds the pointer at %p; "
         "pushed %d into the vector at %p\n",
         (unsigned long long)weft_id(), (void *)&sh, p->value,
         (void *)sh->vec);
  if (p->then_tell)
    weft_chan_send(p->then_tell, &token);
  return NULL;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "vector: %s: %s\n", what, weft_strerror(rc));
  exit(1);
}

int main(void) {
  static struct shared sh = {.lock = WEFT_MUTEX_INIT};
  struct pusher p1, p2;
  weft_gthread t1, t2;
  weft_chan *turn;
  void *r1, *r2;
  int rc;

  if ((rc = weft_init(NULL)) < 0)
    die("weft_init", rc);
  sh.vec = calloc(1, sizeof(*sh.vec));
  if (!sh.vec || vec_push(sh.vec, 1) || vec_push(sh.vec, 2) ||
      vec_push(sh.vec, 3)) {
    fprintf(stderr, "vector: out of memory\n");
    return 1;
  }
  printf("main: a vector on the heap at %p: ", (void *)sh.vec);
  vec_print(sh.vec);

  if ((rc = weft_chan_open(&turn, sizeof(int), 0)) < 0)
    die("weft_chan_open", rc);
  p1 = (struct pusher){.sh = &sh, .value = 4, .then_tell = turn};
  p2 = (struct pusher){.sh = &sh, .value = 5, .wait_for = turn};
  /* Spawned in the "wrong" order on purpose: the channel, not the order of
   * the spawns, decides that 4 goes before 5. */
  if ((rc = weft_spawn(&t2, NULL, push, &p2)) < 0)
    die("weft_spawn", rc);
  if ((rc = weft_spawn(&t1, NULL, push, &p1)) < 0)
    die("weft_spawn", rc);
  if ((rc = weft_join(t1, &r1)) < 0 || (rc = weft_join(t2, &r2)) < 0)
    die("weft_join", rc);
  if (r1 || r2) {
    fprintf(stderr, "vector: out of memory\n");
    return 1;
  }

  printf("main: both joined; the vector they both changed:\n");
  weft_mutex_lock(&sh.lock);
  vec_print(sh.vec);
  weft_mutex_unlock(&sh.lock);

  weft_chan_free(turn);
  free(sh.vec->data);
  free(sh.vec);
  if ((rc = weft_shutdown()) < 0)
    die("weft_shutdown", rc);
  return 0;
}
