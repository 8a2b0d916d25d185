# tests/Makefile-gdb.mk - the check of the gdb extension (tools/weft-gdb.py),
# included from the top-level Makefile.am.
#
# tests/gdb_check.sh debugs tests/gdb_target twice: linked with libweft.la
# as the other programs are (libtool may link it shared: the script runs gdb
# through "libtool --mode=execute", which debugs the real binary rather
# than libtool's wrapper) and linked statically (tests/gdb_target_static).
# It is a plain shell test, not TAP: the Criterion wrapper in LOG_COMPILER
# does not apply to it.  Tests ending in .sh go through automake's default
# driver (SH_LOG_DRIVER is left to automake: build-aux/test-driver, which
# automake then also puts in the tarball): exit 0 passes, 77 skips (no gdb,
# or ptrace not allowed), anything else fails; the output is in
# tests/gdb_check.log.  Tests without an extension keep LOG_DRIVER and
# LOG_COMPILER.

TEST_EXTENSIONS = .sh
SH_LOG_COMPILER = $(SHELL)

check_PROGRAMS += tests/gdb_target tests/gdb_target_static
TESTS += tests/gdb_check.sh
EXTRA_DIST += tests/gdb_check.sh

tests_gdb_target_SOURCES = tests/gdb_target.c
tests_gdb_target_CPPFLAGS = -D_GNU_SOURCE -I$(top_srcdir)/include
tests_gdb_target_LDADD = libweft.la $(JEMALLOC_LIBS)

tests_gdb_target_static_SOURCES = tests/gdb_target.c
tests_gdb_target_static_CPPFLAGS = -D_GNU_SOURCE -I$(top_srcdir)/include
tests_gdb_target_static_LDADD = libweft.la $(JEMALLOC_LIBS)
# libtool's -static: link the uninstalled libweft.la statically.
tests_gdb_target_static_LDFLAGS = $(AM_LDFLAGS) -static
