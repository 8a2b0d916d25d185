# tests/Makefile-proc.mk - worker processes and modes (tests).
#
# test_task: weft_task_start/weft_task_wait in the three modes.
# test_proc: the supervisor of worker processes; each test runs it in a
# child of its own, so that Criterion's process never supervises.

check_PROGRAMS += tests/test_task
TESTS += tests/test_task
tests_test_task_SOURCES = tests/tsan_criterion.c tests/test_task.c tests/helpers.h
tests_test_task_CPPFLAGS = $(tests_cppflags)
tests_test_task_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_task_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)

check_PROGRAMS += tests/test_proc
TESTS += tests/test_proc
tests_test_proc_SOURCES = tests/tsan_criterion.c tests/test_proc.c tests/helpers.h
tests_test_proc_CPPFLAGS = $(tests_cppflags)
tests_test_proc_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_test_proc_LDADD = libweft.la $(CRITERION_LIBS) $(JEMALLOC_LIBS)
