/*
 * shared_list.c - a linked list shared by pointer between two worker
 * processes.
 *
 * Worker 0 builds a list in the shared heap (each node allocated from its
 * own partition) and sends the head pointer through a process channel.
 * Worker 1 walks the list by following the pointers, which mean the same
 * thing in both processes because the region is mapped at the same
 * address in every worker, prints the values and the addresses, and frees
 * the nodes.  Worker 1 does not own them, so each free is queued back to
 * worker 0, which returns them to its arena; its next allocations reuse
 * the same addresses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "weft.h"

#define NODES 8

struct node {
  struct node *next;
  int value;
};

static weft_pchan *heads, *acks;

static int fail(const char *what, int rc) {
  fprintf(stderr, "shared_list: %s: %s\n", what, weft_strerror(rc));
  return 1;
}

static int builder(void) {
  struct node *head = NULL, *old[NODES];
  int rc;

  /* Built back to front, so that the list reads 1, 4, 9, ... */
  for (int i = NODES - 1; i >= 0; i--) {
    struct node *n;
    if ((rc = weft_shm_alloc(sizeof *n, (void **)&n)) < 0)
      return fail("weft_shm_alloc", rc);
    n->value = (i + 1) * (i + 1);
    n->next = head;
    head = old[i] = n;
  }
  printf("worker 0 (pid %d): built %d nodes in its partition\n", (int)getpid(),
         NODES);
  for (struct node *n = head; n; n = n->next)
    printf("  worker 0: node at %p  value %2d\n", (void *)n, n->value);
  fflush(stdout);
  if ((rc = weft_pchan_send(heads, &head, WEFT_FOREVER)) < 0)
    return fail("weft_pchan_send", rc);

  int ack;
  if ((rc = weft_pchan_recv(acks, &ack, WEFT_FOREVER)) < 0)
    return fail("weft_pchan_recv", rc);
  /* The frees worker 1 queued to us are done on our next shared-heap call
   * (weft_shm_free(NULL) does only that).  Allocating again shows the
   * memory came back. */
  weft_shm_free(NULL);
  struct node *again[NODES];
  int reused = 0;
  for (int i = 0; i < NODES; i++) {
    if ((rc = weft_shm_alloc(sizeof(struct node), (void **)&again[i])) < 0)
      return fail("weft_shm_alloc", rc);
    for (int k = 0; k < NODES; k++)
      reused += again[i] == old[k];
  }
  printf("worker 0: %d of %d new nodes reuse the addresses worker 1 freed\n",
         reused, NODES);
  for (int i = 0; i < NODES; i++)
    weft_shm_free(again[i]);
  return reused == NODES ? 0 : 1;
}

static int walker(void) {
  struct node *head;
  int rc, count = 0, sum = 0;

  if ((rc = weft_pchan_recv(heads, &head, WEFT_FOREVER)) < 0)
    return fail("weft_pchan_recv", rc);
  printf("worker 1 (pid %d): received head %p, walking the list\n",
         (int)getpid(), (void *)head);
  for (struct node *n = head; n; n = n->next) {
    printf("  worker 1: node at %p  value %2d  (owner: worker %d)\n", (void *)n,
           n->value, weft_shm_owner(n));
    count++;
    sum += n->value;
  }
  printf("worker 1: %d nodes, sum %d\n", count, sum);
  /* Free them: not ours, so each free is queued to worker 0. */
  int freed = 0;
  for (struct node *n = head, *next; n; n = next) {
    next = n->next; /* read before the free */
    if (weft_shm_free(n) == 0)
      freed++;
  }
  printf("worker 1: freed %d nodes (queued back to worker 0)\n", freed);
  fflush(stdout);
  int ack = 1;
  if ((rc = weft_pchan_send(acks, &ack, WEFT_FOREVER)) < 0)
    return fail("weft_pchan_send", rc);
  return freed == NODES && count == NODES ? 0 : 1;
}

static int worker(int index, void *arg) {
  (void)arg;
  int rc = index == 0 ? builder() : walker();
  fflush(stdout);
  return rc;
}

int main(void) {
  int rc;

  /* The region and the channels exist before the workers are forked, so
   * every worker inherits them at the same addresses. */
  if ((rc = weft_shm_setup((size_t)2 * 64 << 20, 2)) < 0)
    return fail("weft_shm_setup", rc);
  if ((rc = weft_pchan_open(&heads, sizeof(struct node *), 1)) < 0 ||
      (rc = weft_pchan_open(&acks, sizeof(int), 1)) < 0)
    return fail("weft_pchan_open", rc);

  weft_procs_config cfg = {
      .procs = 2,
      .worker = worker,
      .listen_fd = -1,
      .max_restarts = -1, /* a fresh worker cannot rejoin the list */
  };
  rc = weft_procs_run(&cfg);
  if (rc < 0 && rc != -ECHILD) /* -ECHILD: a worker failed (logged) */
    return fail("weft_procs_run", rc);
  printf("supervisor: workers done (%s)\n", rc == 0 ? "ok" : "failed");
  return rc == 0 ? 0 : 1;
}
