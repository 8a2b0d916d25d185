# tests/Makefile-http.mk - the HTTP demo (tests).
#
# test_http_parse: unit tests of the request parser and the chunked-body
# decoder (compiled in from servers/http_parse.c).  test_http: tests that
# run servers/http as a child process in each mode and talk to it over TCP
# (make check builds servers/http first).

check_PROGRAMS += tests/test_http_parse
TESTS += tests/test_http_parse
tests_test_http_parse_SOURCES = tests/tsan_criterion.c tests/test_http_parse.c \
	tests/helpers.h servers/http_parse.c servers/http_parse.h
tests_test_http_parse_CPPFLAGS = $(tests_cppflags) -I$(top_srcdir)/servers
tests_test_http_parse_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_http_parse_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_http
TESTS += tests/test_http
tests_test_http_SOURCES = tests/tsan_criterion.c tests/test_http.c tests/helpers.h tests/srv_harness.h \
	servers/http_parse.c servers/http_parse.h
tests_test_http_CPPFLAGS = $(tests_cppflags) -I$(top_srcdir)/servers
tests_test_http_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_http_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)
