# tests/Makefile-echo.mk - the echo demo, end to end (tests).
#
# test_echo starts servers/echo in each of its modes and talks to it over
# TCP (make check builds the servers first, with everything else).

check_PROGRAMS += tests/test_echo
TESTS += tests/test_echo
tests_test_echo_SOURCES = tests/tsan_criterion.c tests/test_echo.c tests/helpers.h \
	tests/srv_harness.h
tests_test_echo_CPPFLAGS = $(tests_cppflags)
tests_test_echo_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_echo_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)
