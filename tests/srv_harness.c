/*
 * srv_harness.c - the functions of srv_harness.h, in tests/libcheck.la.
 */
#include "srv_harness.h"

struct srvh_server srvh = {.pid = -1, .out = -1};

int64_t srvh_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void srvh_sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

void srvh_start(const char *const *argv, int nofile) {
  int p[2];
  cr_assert_eq(pipe2(p, O_CLOEXEC), 0, "pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the test died: no leftovers */
    if (getppid() != parent || dup2(p[1], STDOUT_FILENO) < 0)
      _exit(127);
    if (nofile > 0) {
      struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
      if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        _exit(126);
    }
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid); /* also here, so that kill(-pid) works at once */
  prctl(PR_SET_CHILD_SUBREAPER, 1); /* see srvh_wait */
  close(p[1]);
  srvh.pid = pid;
  srvh.left = 0;
  srvh.out = p[0];

  char line[256];
  size_t len = 0;
  int64_t end = srvh_now_ms() + 10000;
  while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
    struct pollfd pfd = {.fd = srvh.out, .events = POLLIN};
    int64_t left = end - srvh_now_ms();
    cr_assert(left > 0, "no \"listening on\" line from %s within 10 s",
              argv[0]);
    if (poll(&pfd, 1, (int)left) <= 0)
      continue;
    ssize_t n = read(srvh.out, line + len, sizeof line - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    cr_assert(n > 0, "%s exited before it listened", argv[0]);
    len += (size_t)n;
  }
  line[len] = '\0';
  char *colon = strrchr(line, ':');
  cr_assert(strncmp(line, "listening on ", 13) == 0 && colon,
            "unexpected first line from %s: '%s'", argv[0], line);
  srvh.port = atoi(colon + 1);
  cr_assert(srvh.port > 0 && srvh.port < 65536, "bad port in '%s'", line);
}

void srvh_reaped(void) {
  kill(-srvh.pid, SIGKILL);
  /* Its orphans are ours (a subreaper): collect them. */
  while (waitpid(-srvh.pid, NULL, 0) > 0 || errno == EINTR)
    ;
  srvh.pid = -1;
  if (srvh.out >= 0)
    close(srvh.out);
  srvh.out = -1;
}

int srvh_wait(int ms) {
  if (srvh.pid <= 0)
    return -1;
  int64_t end = srvh_now_ms() + ms;
  for (;;) {
    int status;
    pid_t r = waitpid(srvh.pid, &status, WNOHANG);
    if (r == srvh.pid) {
      /* Its group: anything in it is still running, or has exited
       * without being reaped (a zombie, now the test's child). */
      int64_t grace = srvh_now_ms() + 200;
      while (kill(-srvh.pid, 0) == 0 && srvh_now_ms() < grace)
        srvh_sleep_ms(10);
      srvh.left = kill(-srvh.pid, 0) == 0;
      srvh_reaped();
      return status;
    }
    cr_assert(r == 0, "waitpid: %s", strerror(errno));
    if (srvh_now_ms() >= end)
      return -1;
    srvh_sleep_ms(2);
  }
}

int srvh_stop(int ms) {
  if (srvh.pid <= 0)
    return -1;
  kill(srvh.pid, SIGTERM);
  int status = srvh_wait(ms);
  if (status == -1 && srvh.pid > 0) {
    kill(-srvh.pid, SIGKILL);
    while (waitpid(srvh.pid, NULL, 0) < 0 && errno == EINTR)
      ;
    srvh_reaped();
  }
  return status;
}

void srvh_kill(void) {
  if (srvh.pid > 0) {
    kill(-srvh.pid, SIGKILL);
    while (waitpid(srvh.pid, NULL, 0) < 0 && errno == EINTR)
      ;
    srvh_reaped();
  }
}

bool srvh_alive(void) {
  return srvh.pid > 0 && waitpid(srvh.pid, NULL, WNOHANG) == 0;
}

int srvh_try_connect(void) {
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)srvh.port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

int srvh_connect(void) {
  int fd = srvh_try_connect();
  cr_assert_geq(fd, 0, "connect to port %d: %s", srvh.port, strerror(-fd));
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void srvh_send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR)
      continue;
    cr_assert_gt(k, 0, "send: %s", strerror(errno));
    c += k;
    n -= (size_t)k;
  }
}
