# demos/Makefile-srv.mk - the server demos' shared frame and the echo
# server.
#
# libsrv.la: option parsing, the listening socket, green / kthread /
#            process connections and a clean shutdown (demos/srv.h); the
#            echo, http and kv demos link it.
# echo:      a TCP echo server on it.

noinst_LTLIBRARIES += demos/libsrv.la
demos_libsrv_la_SOURCES = demos/srv.c demos/srv.h
demos_libsrv_la_CPPFLAGS = $(demos_cppflags)

noinst_PROGRAMS += demos/echo
demos_echo_SOURCES = demos/echo.c
demos_echo_CPPFLAGS = $(demos_cppflags)
demos_echo_LDADD = demos/libsrv.la libweft.la $(JEMALLOC_LIBS)
