/*
 * test_fuzz_regress.c - replays the fuzz targets' saved inputs.
 *
 * Every file in fuzz/corpus/<target>/ (the seeds) and fuzz/regress/<target>/
 * (inputs that once made a target fail; README files aside) goes through
 * the target's own checking function, built here with the ordinary
 * compiler and -DFUZZ_NO_MAIN (see fuzz/fuzz.h).  A checking function
 * aborts on a broken invariant, after printing which one; the name of the
 * input being replayed is printed before it runs, so the log names the
 * file.  FUZZ_DIR is the source tree's fuzz/ directory.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "weft.h"

#ifndef FUZZ_DIR
#error "FUZZ_DIR must name the fuzz/ directory of the source tree"
#endif

typedef void (*check_fn)(const uint8_t *data, size_t size);

static int wanted(const struct dirent *d) {
  return d->d_name[0] != '.' && strncmp(d->d_name, "README", 6) != 0;
}

/* Replays the files of FUZZ_DIR/<kind>/<target>; returns their number. */
static size_t replay_dir(const char *kind, const char *target, check_fn fn) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s/%s", FUZZ_DIR, kind, target);
  struct dirent **names;
  int n = scandir(dir, &names, wanted, alphasort);
  cr_assert_geq(n, 0, "cannot read %s", dir);
  size_t done = 0;
  for (int i = 0; i < n; i++) {
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
    free(names[i]);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t size = (size_t)st.st_size;
    /* Exactly size bytes, as libFuzzer hands them to a target. */
    uint8_t *data = malloc(size ? size : 1);
    cr_assert_not_null(data);
    cr_assert_eq(fread(data, 1, size, f), size, "cannot read %s", path);
    fclose(f);
    fprintf(stderr, "replaying %s (%zu bytes)\n", path, size);
    fn(data, size);
    free(data);
    done++;
  }
  free(names);
  return done;
}

static void replay(const char *target, check_fn fn) {
  size_t seeds = replay_dir("corpus", target, fn);
  size_t regress = replay_dir("regress", target, fn);
  cr_expect_gt(seeds, 0, "no seed inputs in %s/corpus/%s", FUZZ_DIR, target);
  fprintf(stderr, "%s: %zu seed(s), %zu regression input(s) passed\n",
          target, seeds, regress);
}

Test(fuzz_regress, http_parse) {
  replay("http_parse", fuzz_http_parse_check);
}

Test(fuzz_regress, resp) { replay("resp", fuzz_resp_check); }

Test(fuzz_regress, sync) {
  fuzz_sync_setup();
  replay("sync", fuzz_sync_check);
  cr_expect_eq(weft_shutdown(), 0);
}
