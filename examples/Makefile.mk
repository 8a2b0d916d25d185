# examples/Makefile.mk - the programs that make the threads-vs-processes
# explainer runnable (examples/README.md maps each to its section),
# included from the top-level Makefile.am.  Plain `make` builds them;
# `make run-examples` runs each and checks what it prints
# (examples/overflow is expected to die with SIGABRT; examples/server is
# asked one line and stopped with SIGTERM).
#
# The examples use only the public header.  Each is built from its name
# plus .c (automake's default source).
examples_cppflags = -D_GNU_SOURCE -I$(top_srcdir)/include
examples_ldadd = libweft.la $(JEMALLOC_LIBS)

noinst_PROGRAMS += examples/vector examples/channel examples/counter \
	examples/layout examples/overflow examples/shared_list examples/crash \
	examples/when examples/timeslice examples/server

examples_vector_CPPFLAGS = $(examples_cppflags)
examples_vector_LDADD = $(examples_ldadd)
examples_channel_CPPFLAGS = $(examples_cppflags)
examples_channel_LDADD = $(examples_ldadd)
examples_counter_CPPFLAGS = $(examples_cppflags)
examples_counter_LDADD = $(examples_ldadd)
examples_layout_CPPFLAGS = $(examples_cppflags)
examples_layout_LDADD = $(examples_ldadd)
examples_overflow_CPPFLAGS = $(examples_cppflags)
examples_overflow_LDADD = $(examples_ldadd)
examples_shared_list_CPPFLAGS = $(examples_cppflags)
examples_shared_list_LDADD = $(examples_ldadd)
examples_crash_CPPFLAGS = $(examples_cppflags)
examples_crash_LDADD = $(examples_ldadd)
examples_when_CPPFLAGS = $(examples_cppflags)
examples_when_LDADD = $(examples_ldadd)
examples_timeslice_CPPFLAGS = $(examples_cppflags)
examples_timeslice_LDADD = $(examples_ldadd)
examples_server_CPPFLAGS = $(examples_cppflags)
examples_server_LDADD = $(examples_ldadd)

# One address in two processes; reference counts and stale references.
noinst_PROGRAMS += examples/address examples/refcount
examples_address_CPPFLAGS = $(examples_cppflags)
examples_address_LDADD = $(examples_ldadd)
examples_refcount_CPPFLAGS = $(examples_cppflags)
examples_refcount_LDADD = $(examples_ldadd)

EXTRA_DIST += examples/run.sh examples/README.md

run-examples: all
	$(SHELL) $(srcdir)/examples/run.sh $(builddir)

.PHONY: run-examples
