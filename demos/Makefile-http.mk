# demos/Makefile-http.mk - demos/http, an HTTP/1.1 server on the shared
# server frame (demos/libsrv.la): GET|HEAD / and /bytes/N, keep-alive,
# pipelining, in the modes green, kthread and process.  Its request parser,
# demos/http_parse.c, is pure and is also built into tests/test_http.

noinst_PROGRAMS += demos/http

demos_http_SOURCES = demos/http.c demos/http_parse.c demos/http_parse.h
demos_http_CPPFLAGS = $(demos_cppflags)
demos_http_LDADD = demos/libsrv.la libweft.la $(JEMALLOC_LIBS)
