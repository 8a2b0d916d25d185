# tests/Makefile-fuzz.mk - replays the fuzz targets' saved inputs.
#
# test_fuzz_regress runs every file of fuzz/corpus/<target>/ and
# fuzz/regress/<target>/ through the checking functions of the fuzz targets
# (fuzz/*_fuzz.c, built here with the ordinary compiler and -DFUZZ_NO_MAIN,
# so without libFuzzer).  It reads them from the source tree, found through
# FUZZ_DIR, so out-of-tree builds and distcheck work.  Fuzzing itself is
# make fuzz / make fuzz-short (fuzz/Makefile.mk).

check_PROGRAMS += tests/test_fuzz_regress
TESTS += tests/test_fuzz_regress
tests_test_fuzz_regress_SOURCES = tests/tsan_criterion.c tests/test_fuzz_regress.c fuzz/fuzz.h \
	fuzz/http_parse_fuzz.c fuzz/resp_fuzz.c fuzz/sync_fuzz.c \
	servers/http_parse.c servers/http_parse.h servers/resp.c servers/resp.h
tests_test_fuzz_regress_CPPFLAGS = $(tests_cppflags) -I$(top_srcdir)/servers \
	-I$(top_srcdir)/fuzz -DFUZZ_NO_MAIN -DFUZZ_DIR='"$(abs_top_srcdir)/fuzz"'
tests_test_fuzz_regress_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_fuzz_regress_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)
