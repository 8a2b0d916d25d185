/*
 * kv.c - a key-value server that speaks the Redis protocol (RESP2), on the
 * server frame of servers/srv.h: try it with redis-cli or redis-benchmark.
 *
 * Commands: PING [msg], ECHO msg, GET k, SET k v [EX s|PX ms] [NX|XX],
 * DEL k..., EXISTS k..., INCR k, DECR k, MGET k..., MSET k v [k v ...],
 * CONFIG GET param... (only what redis-benchmark and redis-cli ask: "save"
 * is "", "appendonly" is "no"; other names give nothing), COMMAND (an
 * empty array: no command table is published) and QUIT.
 *
 * A connection reads what has arrived into one buffer, runs every complete
 * command in it, appends the replies to one output buffer and writes them
 * with one call, so a pipeline of N commands costs one read and one write.
 * Between batches an idle connection holds no heap buffers: it waits in
 * weft_read on a small buffer on its stack (see serve()).
 *
 * Where the data lives depends on the mode: green and kthread connections
 * share one store; --mode process serves each connection in a process of
 * its own, with a store of its own that ends with it (what one client sets,
 * another never sees: the isolation processes give), and --procs N gives
 * each worker process its own store.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_store.h"
#include "resp.h"
#include "srv.h"
#include "weft.h"

/* Input and output buffers on a connection's stack, for the common case of
 * small requests and replies. */
#define STACK_IN 1024
#define STACK_OUT 1024
/* First size of a connection's input buffer on the heap, used when a
 * command does not arrive whole. */
#define IN_MIN ((size_t)16 << 10)
/* Replies are written out once this many bytes are waiting, even in the
 * middle of a batch. */
#define OUT_FLUSH ((size_t)64 << 10)

static kv_store *store;

struct conn {
  int fd;
  bool quit;
  char *in;
  size_t in_len;
  size_t in_cap;
  resp_buf out;
  resp_parser ps;
  int64_t now; /* ms, taken once per batch; 0: not yet */
};

static int64_t now_ms(struct conn *c) {
  if (!c->now)
    c->now = weft_now() / 1000000;
  return c->now;
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                 */
/* ------------------------------------------------------------------------ */

/* Compares an argument with a name in lower-case letters, ignoring case:
 * for letters, b | 0x20 is the lower case, and no other byte maps to one. */
static inline bool arg_is(const resp_arg *a, const char *lit, size_t n) {
  if (a->len != n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)a->p[i] | 0x20) != (unsigned char)lit[i])
      return false;
  return true;
}
#define ARG_IS(a, lit) arg_is((a), (lit), sizeof(lit) - 1)

static void arity_error(resp_buf *o, const char *name) {
  char msg[96];
  int n = snprintf(msg, sizeof(msg),
                   "ERR wrong number of arguments for '%s' command", name);
  resp_put_error(o, msg, (size_t)n);
}

/* "ERR unknown command 'foo', with args beginning with: 'a' 'b' ", with
 * the name cut at 128 bytes and the arguments at about 128, as redis. */
static void unknown_command(resp_buf *o, const resp_arg *argv, size_t argc) {
  static const char head[] = "ERR unknown command '";
  static const char mid[] = "', with args beginning with: ";
  size_t name = argv[0].len < 128 ? argv[0].len : 128;
  size_t args = 0;
  for (size_t i = 1; i < argc && args < 128; i++) {
    size_t n = argv[i].len < 128 - args ? argv[i].len : 128 - args;
    args += n + 3;
  }
  char *m = malloc(sizeof(head) + name + sizeof(mid) + args);
  if (!m) {
    o->failed = true;
    return;
  }
  size_t k = 0;
  memcpy(m + k, head, sizeof(head) - 1);
  k += sizeof(head) - 1;
  memcpy(m + k, argv[0].p, name);
  k += name;
  memcpy(m + k, mid, sizeof(mid) - 1);
  k += sizeof(mid) - 1;
  args = 0;
  for (size_t i = 1; i < argc && args < 128; i++) {
    size_t n = argv[i].len < 128 - args ? argv[i].len : 128 - args;
    m[k++] = '\'';
    memcpy(m + k, argv[i].p, n);
    k += n;
    m[k++] = '\'';
    m[k++] = ' ';
    args += n + 3;
  }
  resp_put_error(o, m, k);
  free(m);
}

static void put_value(void *arg, const char *v, size_t n) {
  resp_put_bulk(arg, v, n);
}

static const char not_int[] = "ERR value is not an integer or out of range";

static void cmd_get(struct conn *c, const resp_arg *a) {
  if (!kv_get(store, a[1].p, a[1].len, now_ms(c), put_value, &c->out))
    resp_put_null(&c->out);
}

static void cmd_set(struct conn *c, const resp_arg *a, size_t argc) {
  int flags = 0;
  int64_t expire = 0;
  bool have_expire = false;
  for (size_t i = 3; i < argc; i++) {
    if (ARG_IS(&a[i], "nx") && !(flags & KV_XX)) {
      flags |= KV_NX;
    } else if (ARG_IS(&a[i], "xx") && !(flags & KV_NX)) {
      flags |= KV_XX;
    } else if ((ARG_IS(&a[i], "ex") || ARG_IS(&a[i], "px")) && !have_expire &&
               i + 1 < argc) {
      bool sec = a[i].p[0] == 'e' || a[i].p[0] == 'E';
      int64_t v;
      i++;
      if (!resp_parse_int(a[i].p, a[i].len, &v)) {
        resp_put_lit(&c->out, "-ERR value is not an integer or out of "
                              "range\r\n");
        return;
      }
      int64_t now = now_ms(c);
      if (v <= 0 || (sec && v > INT64_MAX / 1000) ||
          (sec ? v * 1000 : v) > INT64_MAX - now) {
        resp_put_lit(&c->out, "-ERR invalid expire time in 'set' command\r\n");
        return;
      }
      expire = now + (sec ? v * 1000 : v);
      have_expire = true;
    } else {
      resp_put_lit(&c->out, "-ERR syntax error\r\n");
      return;
    }
  }
  int r = kv_set(store, a[1].p, a[1].len, a[2].p, a[2].len, expire, flags,
                 now_ms(c));
  if (r > 0)
    resp_put_lit(&c->out, "+OK\r\n");
  else if (r == 0)
    resp_put_null(&c->out);
  else
    resp_put_lit(&c->out, "-OOM command not allowed when used memory is "
                          "too high\r\n");
}

static void cmd_incr(struct conn *c, const resp_arg *a, int64_t delta) {
  int64_t v;
  int r = kv_incrby(store, a[1].p, a[1].len, delta, now_ms(c), &v);
  if (r == 0)
    resp_put_int(&c->out, v);
  else if (r == -EINVAL)
    resp_put_errorz(&c->out, not_int);
  else if (r == -ERANGE)
    resp_put_lit(&c->out, "-ERR increment or decrement would overflow\r\n");
  else
    resp_put_lit(&c->out, "-OOM command not allowed when used memory is "
                          "too high\r\n");
}

static void cmd_config(struct conn *c, const resp_arg *a, size_t argc) {
  if (!ARG_IS(&a[1], "get")) {
    char msg[96];
    int n = snprintf(msg, sizeof(msg),
                     "ERR unknown subcommand '%.*s'. Try CONFIG HELP.",
                     (int)(a[1].len < 32 ? a[1].len : 32), a[1].p);
    resp_put_error(&c->out, msg, (size_t)n);
    return;
  }
  if (argc < 3) {
    arity_error(&c->out, "config|get");
    return;
  }
  size_t found = 0;
  for (size_t i = 2; i < argc; i++)
    found += ARG_IS(&a[i], "save") || ARG_IS(&a[i], "appendonly");
  resp_put_array(&c->out, found * 2);
  for (size_t i = 2; i < argc; i++) {
    if (ARG_IS(&a[i], "save")) {
      resp_put_lit(&c->out, "$4\r\nsave\r\n$0\r\n\r\n");
    } else if (ARG_IS(&a[i], "appendonly")) {
      resp_put_lit(&c->out, "$10\r\nappendonly\r\n$2\r\nno\r\n");
    }
  }
}

/* Runs one command and appends its reply. */
/* Appends a reply and ends the command. */
#define REPLY(call)                                                            \
  do {                                                                         \
    call;                                                                      \
    return;                                                                    \
  } while (0)

static bool flush(struct conn *c);

static void execute(struct conn *c, const resp_arg *a, size_t argc) {
  resp_buf *o = &c->out;
  const resp_arg *cmd = &a[0];
  int64_t n;

  switch (cmd->len) {
  case 3:
    if (ARG_IS(cmd, "get")) {
      if (argc != 2)
        REPLY(arity_error(o, "get"));
      REPLY(cmd_get(c, a));
    }
    if (ARG_IS(cmd, "set")) {
      if (argc < 3)
        REPLY(arity_error(o, "set"));
      REPLY(cmd_set(c, a, argc));
    }
    if (ARG_IS(cmd, "del")) {
      if (argc < 2)
        REPLY(arity_error(o, "del"));
      n = 0;
      for (size_t i = 1; i < argc; i++)
        n += kv_del(store, a[i].p, a[i].len, now_ms(c));
      REPLY(resp_put_int(o, n));
    }
    break;
  case 4:
    if (ARG_IS(cmd, "ping")) {
      if (argc > 2)
        REPLY(arity_error(o, "ping"));
      if (argc == 2)
        REPLY(resp_put_bulk(o, a[1].p, a[1].len));
      REPLY(resp_put_lit(o, "+PONG\r\n"));
    }
    if (ARG_IS(cmd, "echo")) {
      if (argc != 2)
        REPLY(arity_error(o, "echo"));
      REPLY(resp_put_bulk(o, a[1].p, a[1].len));
    }
    if (ARG_IS(cmd, "incr")) {
      if (argc != 2)
        REPLY(arity_error(o, "incr"));
      REPLY(cmd_incr(c, a, 1));
    }
    if (ARG_IS(cmd, "decr")) {
      if (argc != 2)
        REPLY(arity_error(o, "decr"));
      REPLY(cmd_incr(c, a, -1));
    }
    if (ARG_IS(cmd, "mget")) {
      if (argc < 2)
        REPLY(arity_error(o, "mget"));
      /* A reply of many large values goes out as it is built, so that
       * its buffer stays small and the write starts before the last copy
       * (the write itself lets others run: weft.h, I/O budget). */
      resp_put_array(o, argc - 1);
      for (size_t i = 1; i < argc; i++) {
        if (!kv_get(store, a[i].p, a[i].len, now_ms(c), put_value, o))
          resp_put_null(o);
        if (o->len >= OUT_FLUSH && !flush(c)) {
          o->failed = true;
          return;
        }
      }
      return;
    }
    if (ARG_IS(cmd, "mset")) {
      if (argc < 3 || argc % 2 == 0)
        REPLY(arity_error(o, "mset"));
      for (size_t i = 1; i < argc; i += 2) {
        if (kv_set(store, a[i].p, a[i].len, a[i + 1].p, a[i + 1].len, 0, 0,
                   now_ms(c)) < 0)
          REPLY(resp_put_lit(o, "-OOM command not allowed when used "
                                "memory is too high\r\n"));
      }
      REPLY(resp_put_lit(o, "+OK\r\n"));
    }
    if (ARG_IS(cmd, "quit")) {
      c->quit = true;
      REPLY(resp_put_lit(o, "+OK\r\n"));
    }
    break;
  case 6:
    if (ARG_IS(cmd, "exists")) {
      if (argc < 2)
        REPLY(arity_error(o, "exists"));
      n = 0;
      for (size_t i = 1; i < argc; i++)
        n += kv_exists(store, a[i].p, a[i].len, now_ms(c));
      REPLY(resp_put_int(o, n));
    }
    if (ARG_IS(cmd, "config")) {
      if (argc < 2)
        REPLY(arity_error(o, "config"));
      REPLY(cmd_config(c, a, argc));
    }
    break;
  case 7:
    if (ARG_IS(cmd, "command"))
      REPLY(resp_put_lit(o, "*0\r\n"));
    break;
  }
  unknown_command(o, a, argc);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

/* Writes the waiting replies; false when the connection is done for. */
static bool flush(struct conn *c) {
  if (c->out.failed)
    return false;
  if (c->out.len == 0)
    return true;
  ssize_t n = weft_write(c->fd, c->out.data, c->out.len, srv_idle_deadline());
  if (n < 0 || (size_t)n != c->out.len)
    return false;
  c->out.len = 0;
  return true;
}

/* Runs the complete commands in data[0, len) and returns how many bytes
 * they took; *go_on turns false when the connection should end (after its
 * replies are written). */
static size_t run_batch(struct conn *c, const char *data, size_t len,
                        bool *go_on) {
  size_t off = 0;
  c->now = 0;
  while (off < len) {
    size_t used;
    int r = resp_parse(&c->ps, data + off, len - off, &used);
    if (r == RESP_AGAIN)
      break;
    if (r == RESP_ERR) {
      resp_put_errorz(&c->out, c->ps.error);
      *go_on = false;
      break;
    }
    off += used;
    if (c->ps.argc)
      execute(c, c->ps.argv, c->ps.argc);
    if (c->quit || c->out.failed) {
      *go_on = false;
      break;
    }
    if (c->out.len >= OUT_FLUSH && !flush(c)) {
      *go_on = false;
      break;
    }
  }
  return off;
}

/* Keeps the start of an incomplete command: in the heap buffer, sized for
 * what the parser says it needs. */
static bool keep_rest(struct conn *c, const char *rest, size_t n) {
  size_t cap = c->ps.need > IN_MIN ? c->ps.need : IN_MIN;
  if (cap < n + 1)
    cap = n + 1;
  c->in = malloc(cap);
  if (!c->in)
    return false;
  memcpy(c->in, rest, n);
  c->in_len = n;
  c->in_cap = cap;
  return true;
}

/* Makes room to read into the heap buffer: the parser's need for a big
 * command at once, else double. */
static bool in_room(struct conn *c) {
  if (c->in_len < c->in_cap)
    return true;
  size_t want = c->ps.need > c->in_len ? c->ps.need : c->in_len + 1;
  size_t ncap = c->in_cap * 2;
  if (ncap < want)
    ncap = want;
  char *p = realloc(c->in, ncap);
  if (!p)
    return false;
  c->in = p;
  c->in_cap = ncap;
  return true;
}

/*
 * A connection reads into a small buffer on its stack while no command is
 * incomplete, so that waiting for the next request (weft_read parks the
 * green thread) holds no heap memory and costs no extra system call; only
 * the start of a command that did not fit is copied to the heap, which is
 * freed again once it has run.  Replies go to a stack buffer too, moved to
 * the heap when they outgrow it.
 */
static void serve(int fd, uint64_t conn_id) {
  (void)conn_id;
  char stack_in[STACK_IN];
  char stack_out[STACK_OUT];
  struct conn c = {.fd = fd};
  resp_parser_init(&c.ps);
  resp_buf_use(&c.out, stack_out, sizeof(stack_out));
  bool go_on = true;
  /* The deadline of the command being read, set when its first bytes
   * arrive: --idle-ms bounds a whole command, so that a client trickling
   * a byte at a time cannot hold the connection forever. */
  int64_t cmd_deadline = WEFT_FOREVER;
  while (go_on) {
    ssize_t n;
    if (c.in_len == 0) {
      if (!srv_idle(true)) /* stopping: nothing half-read to finish */
        break;
      n = weft_read(fd, stack_in, sizeof(stack_in), srv_idle_deadline());
      srv_idle(false);
      if (n <= 0)
        break;
      size_t used = run_batch(&c, stack_in, (size_t)n, &go_on);
      if (go_on && used < (size_t)n &&
          !keep_rest(&c, stack_in + used, (size_t)n - used))
        break;
      cmd_deadline = srv_idle_deadline();
    } else {
      if (!in_room(&c))
        break;
      n = weft_read(fd, c.in + c.in_len, c.in_cap - c.in_len, cmd_deadline);
      if (n <= 0)
        break;
      c.in_len += (size_t)n;
      size_t used = run_batch(&c, c.in, c.in_len, &go_on);
      if (used) {
        /* A command completed: what is left began in this read. */
        cmd_deadline = srv_idle_deadline();
        memmove(c.in, c.in + used, c.in_len - used);
        c.in_len -= used;
      }
      if (c.in_len == 0) {
        free(c.in);
        c.in = NULL;
        c.in_cap = 0;
      }
    }
    if (!flush(&c))
      break;
    if (c.out.owned)
      resp_buf_use(&c.out, stack_out, sizeof(stack_out));
    if (c.in_len == 0 && c.ps.argv != c.ps.small)
      resp_parser_reset(&c.ps);
  }
  free(c.in);
  resp_buf_free(&c.out);
  resp_parser_free(&c.ps);
}

static int setup(void) {
  if (!store)
    store = kv_create();
  return store ? 0 : -ENOMEM;
}

static const srv_app kv_app = {
    .name = "kv",
    .default_port = 6379,
    .setup = setup,
    .serve = serve,
    .usage =
        "A key-value server speaking the Redis protocol (RESP2): PING, ECHO,\n"
        "GET, SET [EX|PX] [NX|XX], DEL, EXISTS, INCR, DECR, MGET, MSET,\n"
        "CONFIG GET, COMMAND, QUIT.  Green and kthread connections share one\n"
        "store.  --mode process runs each connection in its own process with\n"
        "its own store, gone when the connection ends (isolation: no client\n"
        "sees another's keys); with --procs N each worker process has its\n"
        "own store, and a client sees the keys of the process it reached.\n",
};

int main(int argc, char **argv) { return srv_main(argc, argv, &kv_app); }
