# servers/Makefile.mk - the servers people embed weft into, included from
# the top-level Makefile.am: one frame and three protocols on it.
#
# libsrv.la  option parsing, the listening socket, green / kthread /
#            process connections and a clean shutdown (servers/srv.h);
#            the three servers link it.  srv.c is the frame, with one
#            file per mode: srv_green.c (and --procs), srv_kthread.c,
#            srv_process.c; srv_internal.h is what they share.
# echo       a TCP echo server.
# http       an HTTP/1.1 server (GET|HEAD / and /bytes/N, keep-alive,
#            pipelining, chunked request bodies); its request parser,
#            servers/http_parse.c, is pure and is also built into the tests
#            and the fuzz targets.
# kv         a key-value server that speaks RESP (redis-benchmark works);
#            resp.c and kv_store.c are also built into the tests.
#
# They use only the public header.
servers_cppflags = -D_GNU_SOURCE -I$(top_srcdir)/include
servers_ldadd = servers/libsrv.la libweft.la $(JEMALLOC_LIBS)

noinst_LTLIBRARIES += servers/libsrv.la
servers_libsrv_la_SOURCES = servers/srv.c servers/srv.h \
	servers/srv_internal.h servers/srv_green.c servers/srv_kthread.c \
	servers/srv_process.c
servers_libsrv_la_CPPFLAGS = $(servers_cppflags)

noinst_PROGRAMS += servers/echo servers/http servers/kv

servers_echo_SOURCES = servers/echo.c
servers_echo_CPPFLAGS = $(servers_cppflags)
servers_echo_LDADD = $(servers_ldadd)

servers_http_SOURCES = servers/http.c servers/http_parse.c \
	servers/http_parse.h
servers_http_CPPFLAGS = $(servers_cppflags)
servers_http_LDADD = $(servers_ldadd)

servers_kv_SOURCES = servers/kv.c servers/resp.c servers/resp.h \
	servers/kv_store.c servers/kv_store.h
servers_kv_CPPFLAGS = $(servers_cppflags)
servers_kv_LDADD = $(servers_ldadd)
