/*
 * channel.c - message passing instead of shared memory: a green thread
 * sends 42 on a channel and main receives it.
 *
 * The channel is unbuffered, so the send completes only when main takes the
 * value: the two meet.  main is an ordinary kernel thread, not a green
 * thread; weft_chan_recv works from either kind of thread.
 */
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

static void *sender(void *arg) {
  weft_chan *ch = arg;
  int answer = 42;
  int rc;

  printf("green thread %llu (worker %d): sending %d\n",
         (unsigned long long)weft_id(), weft_worker_index(), answer);
  rc = weft_chan_send(ch, &answer);
  return rc < 0 ? (void *)-1 : NULL;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "channel: %s: %s\n", what, weft_strerror(rc));
  exit(1);
}

int main(void) {
  weft_chan *ch;
  weft_gthread t;
  void *result;
  int value, rc;

  if ((rc = weft_init(NULL)) < 0)
    die("weft_init", rc);
  if ((rc = weft_chan_open(&ch, sizeof(int), 0)) < 0)
    die("weft_chan_open", rc);
  if ((rc = weft_spawn(&t, NULL, sender, ch)) < 0)
    die("weft_spawn", rc);
  if ((rc = weft_chan_recv(ch, &value)) < 0)
    die("weft_chan_recv", rc);
  printf("received %d\n", value);
  if ((rc = weft_join(t, &result)) < 0)
    die("weft_join", rc);
  if (result)
    die("weft_chan_send", -1);
  weft_chan_free(ch);
  if ((rc = weft_shutdown()) < 0)
    die("weft_shutdown", rc);
  return 0;
}
