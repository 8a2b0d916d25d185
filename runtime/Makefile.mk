# runtime/Makefile.mk - libweft, included from the top-level Makefile.am.

lib_LTLIBRARIES += libweft.la
include_HEADERS += include/weft.h include/weft_testing.h

libweft_la_SOURCES = \
	runtime/arch/switch_x86_64_sysv_elf.S runtime/arch/frame_x86_64.h \
	runtime/arch/switch_ucontext.c \
	runtime/ctx.h \
	runtime/util.h \
	runtime/misc.c \
	runtime/stack.c runtime/stack.h \
	runtime/fault.c runtime/fault.h \
	runtime/runq.c runtime/runq.h \
	runtime/worker.h \
	runtime/sched.c runtime/sched.h \
	runtime/rt.c runtime/rt.h \
	runtime/timer.c runtime/timer.h \
	runtime/wait.c runtime/wait.h \
	runtime/gthread.c runtime/gthread.h \
	runtime/local.c \
	runtime/sync.c \
	runtime/rwlock.c \
	runtime/chan.c \
	runtime/shm.c runtime/shm.h runtime/shm_internal.h runtime/shm_test.h \
	runtime/shm_arena.c runtime/shm_cache.c runtime/shm_mailbox.c \
	runtime/shm_heap.c \
	runtime/shm_chan.c \
	runtime/proc.c \
	runtime/task.c \
	runtime/netpoll.c runtime/netpoll.h \
	runtime/netpoll_epoll.c \
	runtime/io.c \
	runtime/blocking.c \
	runtime/monitor.c runtime/monitor.h runtime/preempt.c runtime/preempt.h \
	runtime/inject.c runtime/inject.h

libweft_la_CFLAGS = $(AM_CFLAGS) -fvisibility=hidden $(JEMALLOC_CFLAGS)
libweft_la_CCASFLAGS = $(AM_CCASFLAGS)
libweft_la_LIBADD = $(JEMALLOC_LIBS) $(PTHREAD_LIBS)
# -version-info current:revision:age.  Bump revision for any release;
# on an interface change bump current and zero revision; if the change only
# added interfaces bump age too, if it removed or changed any, zero age.
# Only weft_* leaves the library: everything else is hidden at compile
# time, and the linker's own __start_/__stop_ symbols of the entry code's
# section (runtime/util.h, WEFT_ENTRY_TEXT) are kept in by the regex.
libweft_la_LDFLAGS = -version-info 0:0:0 -no-undefined \
	-export-symbols-regex '^weft_'
