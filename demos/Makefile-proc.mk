# demos/Makefile-proc.mk - demos of worker processes and modes.
#
# crash: a crash in a green thread ends its process; a crash in a worker
#        process is restarted by the supervisor while the others work on.
# when:  one job run as green threads, kernel threads and processes, timed,
#        with what each mode shares and isolates.

noinst_PROGRAMS += demos/crash demos/when

demos_crash_SOURCES = demos/crash.c
demos_crash_CPPFLAGS = $(demos_cppflags)
demos_crash_LDADD = libweft.la $(JEMALLOC_LIBS)
demos_when_SOURCES = demos/when.c
demos_when_CPPFLAGS = $(demos_cppflags)
demos_when_LDADD = libweft.la $(JEMALLOC_LIBS)
