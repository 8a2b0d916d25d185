# demos/Makefile.mk - small programs that make the threads-vs-processes
# explainer runnable, included from the top-level Makefile.am.  Plain
# `make` builds them; `make run-demos` runs each and checks what it prints
# (demos/overflow is expected to die with SIGABRT).
#
# The demos use only the public header.
demos_cppflags = -D_GNU_SOURCE -I$(top_srcdir)/include
demos_ldadd = libweft.la $(JEMALLOC_LIBS)

noinst_PROGRAMS += \
	demos/vector \
	demos/channel \
	demos/counter \
	demos/layout \
	demos/overflow

demos_vector_SOURCES = demos/vector.c
demos_vector_CPPFLAGS = $(demos_cppflags)
demos_vector_LDADD = $(demos_ldadd)
demos_channel_SOURCES = demos/channel.c
demos_channel_CPPFLAGS = $(demos_cppflags)
demos_channel_LDADD = $(demos_ldadd)
demos_counter_SOURCES = demos/counter.c
demos_counter_CPPFLAGS = $(demos_cppflags)
demos_counter_LDADD = $(demos_ldadd)
demos_layout_SOURCES = demos/layout.c
demos_layout_CPPFLAGS = $(demos_cppflags)
demos_layout_LDADD = $(demos_ldadd)
demos_overflow_SOURCES = demos/overflow.c
demos_overflow_CPPFLAGS = $(demos_cppflags)
demos_overflow_LDADD = $(demos_ldadd)

EXTRA_DIST += demos/run.sh

run-demos: all
	$(SHELL) $(srcdir)/demos/run.sh $(builddir)

.PHONY: run-demos
