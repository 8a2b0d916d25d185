# tests/Makefile-io.mk - I/O that parks green threads, cancellation and the
# blocking-call pool (tests), included from the top-level Makefile.am.
#
# test_io: weft_read/write/readv/writev/recv/send/accept/connect/wait_fd,
# weft_close, weft_fd_adopt/forget and weft_cancel, from green threads and
# from plain kernel threads.
# test_blocking: weft_blocking and the calls built on it (weft_open,
# weft_pread, weft_pwrite, weft_fsync, weft_getaddrinfo).

check_PROGRAMS += tests/test_io
TESTS += tests/test_io
tests_test_io_SOURCES = tests/tsan_criterion.c tests/test_io.c tests/helpers.h tests/io_helpers.h
tests_test_io_CPPFLAGS = $(tests_cppflags)
tests_test_io_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_io_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_blocking
TESTS += tests/test_blocking
tests_test_blocking_SOURCES = tests/tsan_criterion.c tests/test_blocking.c tests/helpers.h \
	tests/io_helpers.h
tests_test_blocking_CPPFLAGS = $(tests_cppflags)
tests_test_blocking_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_blocking_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

# test_cancel: weft_cancel of a green thread blocked in each call that parks.
check_PROGRAMS += tests/test_cancel
TESTS += tests/test_cancel
tests_test_cancel_SOURCES = tests/tsan_criterion.c tests/test_cancel.c tests/helpers.h \
	tests/io_helpers.h
tests_test_cancel_CPPFLAGS = $(tests_cppflags)
tests_test_cancel_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_cancel_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)
