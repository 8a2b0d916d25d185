# demos/Makefile-kv.mk - kv, a key-value server speaking the Redis protocol
# (RESP2) on the server frame (demos/libsrv.la): redis-cli and
# redis-benchmark can talk to it.  resp.c is its request parser and reply
# writer, kv_store.c its striped hash table.

noinst_PROGRAMS += demos/kv
demos_kv_SOURCES = demos/kv.c demos/resp.c demos/resp.h demos/kv_store.c \
	demos/kv_store.h
demos_kv_CPPFLAGS = $(demos_cppflags)
demos_kv_LDADD = demos/libsrv.la libweft.la $(JEMALLOC_LIBS)
