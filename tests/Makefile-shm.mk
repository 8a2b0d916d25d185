# tests/Makefile-shm.mk - shared heap and process channels (tests).
#
# These tests drive the shared heap's internal calls (runtime/shheap.h:
# weft__shm_attach, weft__shm_reclaim, ...), playing the supervisor
# themselves, so they link libweft statically: its internal symbols are
# hidden in the shared library.  (-static here is libtool's: only libweft
# is linked statically.)

check_PROGRAMS += tests/test_shheap
TESTS += tests/test_shheap
tests_test_shheap_SOURCES = tests/tsan_criterion.c tests/test_shheap.c tests/shm_helpers.h \
	tests/helpers.h
tests_test_shheap_CPPFLAGS = $(tests_cppflags)
tests_test_shheap_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(JEMALLOC_CFLAGS)
tests_test_shheap_LDFLAGS = $(AM_LDFLAGS) -static
tests_test_shheap_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_pchan
TESTS += tests/test_pchan
tests_test_pchan_SOURCES = tests/tsan_criterion.c tests/test_pchan.c tests/shm_helpers.h \
	tests/helpers.h
tests_test_pchan_CPPFLAGS = $(tests_cppflags)
tests_test_pchan_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_pchan_LDFLAGS = $(AM_LDFLAGS) -static
tests_test_pchan_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)
