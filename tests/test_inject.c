/*
 * test_inject.c - fault injection: each injected failure surfaces as a
 * clean error from the public call that hit it, leaves nothing behind
 * (fds, threads, children, mappings counted where they can be), and the
 * next call works.
 */
#include "helpers.h"
#include <weft_testing.h>

#include <sys/socket.h>

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  cr_assert(d);
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

static int count_threads(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/task");
  cr_assert(d);
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

static void *ret_arg(void *arg) { return arg; }

Test(inject, bad_specs_are_refused) {
  cr_assert_eq(weft_fail_inject("nosuch"), -EINVAL);
  cr_assert_eq(weft_fail_inject("mmap:x"), -EINVAL);
  cr_assert_eq(weft_fail_inject("mmap:1:2:3"), -EINVAL);
  cr_assert_eq(weft_fail_inject("mmap:-1"), -EINVAL);
  cr_assert_eq(weft_fail_inject(",,"), -EINVAL);
  cr_assert_eq(weft_fail_inject("mmap:0:1,fork"), 0);
  cr_assert_eq(weft_fail_inject(NULL), 0);
  cr_assert_eq(weft_fail_inject(""), 0);
}

Test(inject, pthread_create_in_init) {
  int threads = count_threads(), fds = count_fds();
  cr_assert_eq(weft_fail_inject("pthread_create:1:1"), 0);
  cr_assert_eq(weft_init(&(weft_config){.workers = 3}), -EAGAIN);
  cr_assert_not(weft_running());
  cr_assert_eq(count_threads(), threads, "workers left running");
  cr_assert_eq(count_fds(), fds);
  cr_assert_eq(weft_init(&(weft_config){.workers = 3}), 0);
  weft_gthread t = h_spawn(ret_arg, (void *)7);
  cr_assert_eq((intptr_t)h_join(t), 7);
  cr_assert_eq(weft_shutdown(), 0);
}

Test(inject, mmap_of_a_stack, .init = h_start2, .fini = h_stop) {
  weft_worker_stats before[2], after[2];
  weft_stats(before, 2);
  weft_gthread t;
  /* 1 MiB: a size class no cache holds yet, so spawn must map. */
  weft_gthread_attr big = {.stack_size = 1 << 20};
  cr_assert_eq(weft_fail_inject("mmap:0:1"), 0);
  cr_assert_eq(weft_spawn(&t, &big, ret_arg, NULL), -ENOMEM);
  weft_stats(after, 2);
  cr_assert_eq(after[0].stack_maps + after[1].stack_maps,
               before[0].stack_maps + before[1].stack_maps);
  cr_assert_eq(weft_spawn(&t, &big, ret_arg, (void *)3), 0);
  cr_assert_eq((intptr_t)h_join(t), 3);
}

Test(inject, pthread_create_of_a_kthread_task, .init = h_start1,
     .fini = h_stop) {
  int threads = count_threads();
  weft_task task;
  cr_assert_eq(weft_fail_inject("pthread_create:0:1"), 0);
  cr_assert_eq(weft_task_start(&task, WEFT_MODE_KTHREAD, ret_arg, NULL),
               -EAGAIN);
  cr_assert_eq(count_threads(), threads);
  void *r;
  cr_assert_eq(weft_task_start(&task, WEFT_MODE_KTHREAD, ret_arg, (void *)5),
               0);
  cr_assert_eq(weft_task_wait(&task, &r), 0);
  cr_assert_eq((intptr_t)r, 5);
}

static void *in_pool(void *arg) { return arg; }

static void *blocking_from_green(void *arg) {
  (void)arg;
  void *r = NULL;
  int rc = weft_blocking(in_pool, (void *)9, &r);
  TCHECK_EQ(rc, -EAGAIN);
  weft_fail_inject(NULL);
  rc = weft_blocking(in_pool, (void *)9, &r);
  TCHECK_EQ(rc, 0);
  TCHECK_EQ((intptr_t)r, 9);
  return NULL;
}

Test(inject, pthread_create_in_the_blocking_pool, .init = h_start1,
     .fini = h_stop) {
  cr_assert_eq(weft_fail_inject("pthread_create:0:1"), 0);
  h_join(h_spawn(blocking_from_green, NULL));
  EXPECT_NO_THREAD_FAILURES();
}

Test(inject, fork_of_a_process_task, .init = h_start1, .fini = h_stop) {
  weft_task task;
  cr_assert_eq(weft_fail_inject("fork:0:1"), 0);
  cr_assert_eq(weft_task_start(&task, WEFT_MODE_PROCESS, ret_arg, NULL),
               -EAGAIN);
  cr_assert_not(h_has_zombie_child(getpid()));
  void *r;
  cr_assert_eq(weft_task_start(&task, WEFT_MODE_PROCESS, ret_arg, (void *)4),
               0);
  cr_assert_eq(weft_task_wait(&task, &r), 0);
  cr_assert_eq((intptr_t)r, 4);
}

static int worker_ok(int index, void *arg) {
  (void)index, (void)arg;
  return 0;
}

Test(inject, fork_of_a_worker_process) {
  int fds = count_fds();
  weft_procs_config cfg = {.procs = 3, .worker = worker_ok, .listen_fd = -1};
  cr_assert_eq(weft_fail_inject("fork:1:1"), 0);
  cr_assert_eq(weft_procs_run(&cfg), -EAGAIN);
  cr_assert_not(h_has_zombie_child(getpid()));
  cr_assert_eq(count_fds(), fds, "the supervisor leaked fds");
  cr_assert_eq(weft_procs_run(&cfg), 0);
}

static int sv[2];

static void *read_one(void *arg) {
  (void)arg;
  char c;
  return (void *)(intptr_t)weft_read(sv[0], &c, 1, weft_deadline(MS(2000)));
}

Test(inject, epoll_ctl_of_a_wait, .init = h_start1, .fini = h_stop) {
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  cr_assert_eq(weft_fail_inject("epoll_ctl:0:0"), 0);
  cr_assert_eq((intptr_t)h_join(h_spawn(read_one, NULL)), -ENOMEM);
  weft_fail_inject(NULL);
  cr_assert_eq(write(sv[1], "x", 1), 1);
  cr_assert_eq((intptr_t)h_join(h_spawn(read_one, NULL)), 1);
  weft_close(sv[0]);
  weft_close(sv[1]);
}

/* weft_init's first allocation makes the workers' allocator arenas, where
 * an address-space limit (ulimit -v) strikes first: a clean -ENOMEM with a
 * message, nothing left running, and the next weft_init works. */
Test(inject, alloc_of_the_arenas_in_init) {
  cr_assert_eq(weft_fail_inject("alloc:0:1"), 0);
  weft_config cfg = {.workers = 2};
  cr_assert_eq(weft_init(&cfg), -ENOMEM);
  cr_assert_not(weft_running());
  cr_assert_eq(weft_init(&cfg), 0);
  cr_assert_eq(weft_shutdown(), 0);
  weft_fail_inject(NULL);
}

Test(inject, allocations, .init = h_start1, .fini = h_stop) {
  weft_chan *ch;
  cr_assert_eq(weft_fail_inject("alloc:0:1"), 0);
  cr_assert_eq(weft_chan_open(&ch, 8, 4), -ENOMEM);
  cr_assert_eq(weft_fail_inject("alloc:1:1"), 0); /* the buffer this time */
  cr_assert_eq(weft_chan_open(&ch, 8, 4), -ENOMEM);
  cr_assert_eq(weft_chan_open(&ch, 8, 4), 0);
  cr_assert_eq(weft_chan_free(ch), 0);
}
