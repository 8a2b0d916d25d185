# tests/Makefile-kv.mk - the kv demo (tests).
#
# test_kv: the RESP parser and the store as units (their sources are built
# into the test), then demos/kv as a child process spoken to over TCP in
# each mode.

check_PROGRAMS += tests/test_kv
TESTS += tests/test_kv
tests_test_kv_SOURCES = tests/tsan_criterion.c tests/test_kv.c tests/helpers.h demos/resp.c \
	demos/resp.h demos/kv_store.c demos/kv_store.h
tests_test_kv_CPPFLAGS = $(tests_cppflags) -I$(top_srcdir)/demos
tests_test_kv_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_kv_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)
