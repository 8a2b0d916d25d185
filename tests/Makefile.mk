# tests/Makefile.mk - the Criterion test programs, included from the
# top-level Makefile.am.  One program per concern; each runs through the TAP
# driver set up there.
#
# test_switch checks the raw context switch of both back ends, so it builds
# them into itself and does not need libweft.
#
# The tests use their own preprocessor flags instead of AM_CPPFLAGS: the
# runtime's internal headers are reachable only with #include "..."
# (-iquote), so that runtime/sched.h cannot stand in for the system's
# <sched.h>, which <pthread.h> and Criterion's headers include.
tests_cppflags = -D_GNU_SOURCE -I$(top_srcdir)/include \
	-iquote $(top_srcdir)/runtime -I$(top_builddir)

check_PROGRAMS += tests/test_switch
TESTS += tests/test_switch
tests_test_switch_SOURCES = tests/tsan_criterion.c tests/test_switch.c \
	runtime/arch/switch_x86_64_sysv_elf.S runtime/arch/switch_ucontext.c
tests_test_switch_CPPFLAGS = $(tests_cppflags)
tests_test_switch_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_switch_LDADD = $(CRITERION_LIBS) -lm

check_PROGRAMS += tests/test_stack
TESTS += tests/test_stack
tests_test_stack_SOURCES = tests/tsan_criterion.c tests/test_stack.c tests/helpers.h
tests_test_stack_CPPFLAGS = $(tests_cppflags)
tests_test_stack_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_stack_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

# One source, two programs: with and without stack clash protection.
check_PROGRAMS += tests/test_guard_scp tests/test_guard_noscp
TESTS += tests/test_guard_scp tests/test_guard_noscp
tests_test_guard_scp_SOURCES = tests/tsan_criterion.c tests/test_guard.c tests/helpers.h
tests_test_guard_scp_CPPFLAGS = $(tests_cppflags)
tests_test_guard_scp_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(WEFT_SCP_CFLAGS)
tests_test_guard_scp_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)
tests_test_guard_noscp_SOURCES = tests/tsan_criterion.c tests/test_guard.c tests/helpers.h
tests_test_guard_noscp_CPPFLAGS = $(tests_cppflags)
tests_test_guard_noscp_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(WEFT_NO_SCP_CFLAGS)
tests_test_guard_noscp_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_gthread
TESTS += tests/test_gthread
tests_test_gthread_SOURCES = tests/tsan_criterion.c tests/test_gthread.c tests/helpers.h
tests_test_gthread_CPPFLAGS = $(tests_cppflags)
tests_test_gthread_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_gthread_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_migrate
TESTS += tests/test_migrate
tests_test_migrate_SOURCES = tests/tsan_criterion.c tests/test_migrate.c tests/helpers.h
tests_test_migrate_CPPFLAGS = $(tests_cppflags)
tests_test_migrate_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_migrate_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_sync
TESTS += tests/test_sync
tests_test_sync_SOURCES = tests/tsan_criterion.c tests/test_sync.c tests/helpers.h
tests_test_sync_CPPFLAGS = $(tests_cppflags)
tests_test_sync_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_sync_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_rwlock
TESTS += tests/test_rwlock
tests_test_rwlock_SOURCES = tests/tsan_criterion.c tests/test_rwlock.c tests/helpers.h
tests_test_rwlock_CPPFLAGS = $(tests_cppflags)
tests_test_rwlock_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_rwlock_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_chan
TESTS += tests/test_chan
tests_test_chan_SOURCES = tests/tsan_criterion.c tests/test_chan.c tests/helpers.h
tests_test_chan_CPPFLAGS = $(tests_cppflags)
tests_test_chan_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_chan_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_timer
TESTS += tests/test_timer
tests_test_timer_SOURCES = tests/tsan_criterion.c tests/test_timer.c tests/helpers.h
tests_test_timer_CPPFLAGS = $(tests_cppflags)
tests_test_timer_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_timer_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_monitor
TESTS += tests/test_monitor
tests_test_monitor_SOURCES = tests/tsan_criterion.c tests/test_monitor.c tests/helpers.h
tests_test_monitor_CPPFLAGS = $(tests_cppflags)
tests_test_monitor_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_monitor_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_inject
TESTS += tests/test_inject
tests_test_inject_SOURCES = tests/tsan_criterion.c tests/test_inject.c tests/helpers.h
tests_test_inject_CPPFLAGS = $(tests_cppflags)
tests_test_inject_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_inject_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_shutdown
TESTS += tests/test_shutdown
tests_test_shutdown_SOURCES = tests/tsan_criterion.c tests/test_shutdown.c tests/helpers.h
tests_test_shutdown_CPPFLAGS = $(tests_cppflags)
tests_test_shutdown_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_shutdown_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_misuse
TESTS += tests/test_misuse
tests_test_misuse_SOURCES = tests/tsan_criterion.c tests/test_misuse.c tests/helpers.h
tests_test_misuse_CPPFLAGS = $(tests_cppflags)
tests_test_misuse_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_misuse_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_reset
TESTS += tests/test_reset
tests_test_reset_SOURCES = tests/tsan_criterion.c tests/test_reset.c tests/helpers.h
tests_test_reset_CPPFLAGS = $(tests_cppflags)
tests_test_reset_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_reset_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

# tests/headers_check.sh: every header of runtime/ compiles on its own.
TESTS += tests/headers_check.sh
EXTRA_DIST += tests/headers_check.sh
AM_TESTS_ENVIRONMENT = CC='$(CC)' WEFT_HDR_CFLAGS='$(AM_CFLAGS)'; \
	export CC WEFT_HDR_CFLAGS;
