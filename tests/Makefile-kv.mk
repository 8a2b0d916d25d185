# tests/Makefile-kv.mk - the kv demo (tests).
#
# test_resp and test_kv_store: the RESP parser and the store as units
# (their sources are built into the tests; the store formats integers
# with resp.c).  test_kv: servers/kv as a child
# process spoken to over TCP in each mode.

check_PROGRAMS += tests/test_resp
TESTS += tests/test_resp
tests_test_resp_SOURCES = tests/tsan_criterion.c tests/test_resp.c tests/helpers.h \
	servers/resp.c servers/resp.h
tests_test_resp_CPPFLAGS = $(tests_cppflags) -I$(top_srcdir)/servers
tests_test_resp_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_resp_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_kv_store
TESTS += tests/test_kv_store
tests_test_kv_store_SOURCES = tests/tsan_criterion.c tests/test_kv_store.c \
	tests/helpers.h servers/kv_store.c servers/kv_store.h servers/resp.c servers/resp.h
tests_test_kv_store_CPPFLAGS = $(tests_cppflags) -I$(top_srcdir)/servers
tests_test_kv_store_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_kv_store_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_kv
TESTS += tests/test_kv
tests_test_kv_SOURCES = tests/tsan_criterion.c tests/test_kv.c tests/helpers.h tests/srv_harness.h
tests_test_kv_CPPFLAGS = $(tests_cppflags) -I$(top_srcdir)/servers
tests_test_kv_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_kv_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)
