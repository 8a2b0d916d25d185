/*
 * fuzz.h - the checking functions of weft's fuzz targets.
 *
 * Each fuzz/<target>_fuzz.c holds one checking function that runs one input
 * and aborts (with a message on stderr naming the broken invariant) when
 * something is wrong.  Built with libFuzzer, the file also defines
 * LLVMFuzzerTestOneInput; built with -DFUZZ_NO_MAIN it does not, so that
 * tests/test_fuzz_regress.c can link all three and replay the saved inputs
 * (fuzz/corpus/<target>/ and fuzz/regress/<target>/) with the ordinary
 * compiler.
 */
#ifndef FUZZ_FUZZ_H
#define FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Prints "fuzz: <target>: <message>" and aborts. */
#define FUZZ_FAIL(target, ...)                                                 \
  do {                                                                         \
    fprintf(stderr, "fuzz: %s: ", target);                                     \
    fprintf(stderr, __VA_ARGS__);                                              \
    fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);                         \
    fflush(stderr);                                                            \
    abort();                                                                   \
  } while (0)

/* servers/http_parse.c: whole input against split and byte-by-byte feeding,
 * every reported offset and length inside the input. */
void fuzz_http_parse_check(const uint8_t *data, size_t size);

/* servers/resp.c: the input as a pipeline of commands, parsed whole and in
 * pieces; argv slices inside the buffer; replies built from the arguments
 * and parsed back. */
void fuzz_resp_check(const uint8_t *data, size_t size);

/* The runtime's channels, select and mutexes: the input is a program for a
 * few green threads.  fuzz_sync_setup() starts the runtime (2 workers) if it
 * is not running; call it once before fuzz_sync_check(). */
void fuzz_sync_setup(void);
void fuzz_sync_check(const uint8_t *data, size_t size);

#endif /* FUZZ_FUZZ_H */
