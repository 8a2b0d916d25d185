# tools/Makefile.mk - the gdb extension, the manual pages and the install
# check, included from the top-level Makefile.am (after runtime/Makefile.mk).
#
# make install puts the gdb extension where gdb looks for the auto-load
# script of the shared library:
#   $(datadir)/gdb/auto-load$(libdir)/<real file of libweft.so>-gdb.py
# (libweft.so.0.0.0-gdb.py for -version-info 0:0:0).  The real file name
# is read from libweft.la (its first library name), so it follows the
# -version-info in runtime/Makefile.mk; a build without shared libraries
# installs no auto-load script.  Load it by hand in other cases (a program
# linked statically): source $(datadir)/weft/weft-gdb.py, which is also
# installed.
#
# tools/weft-gdb.py is made in the build tree from tools/weft-gdb.py.in:
# each @WEFT_NAME@ there becomes the value of "#define WEFT_NAME 0x..." in
# runtime/arch/frame_x86_64.h, the offsets of the saved frame that the
# assembly switch uses too.  A name the header does not define stops the
# build.
#
# The manual: docs/weft.3 is the overview, weft(3); every call has a page
# of its own, weft_spawn(3) and the others, made at build time from the
# comments of include/weft.h (and include/weft_testing.h, for
# weft_fail_inject(3)) by tools/weft-man.pl into docs/man3/ of the build
# tree (a page per family of calls that share a comment, and a one-line
# ".so" page for each other call of a family), and installed beside
# weft.3.  The headers are their only source, so they are made rather than
# kept: there is nothing to keep up to date by hand.  The generator and the
# header are in the tarball, so out-of-tree builds and make distcheck make
# them too; it needs only perl (perl-base).  make uninstall removes the
# pages the header names (tools/weft-man.pl --list).  make check runs
# tests/man_check.sh, which checks that every call, field and public macro
# has its comment.
#
# make check-install runs tools/install-check.sh: it installs into a
# scratch directory (DESTDIR), checks that man finds a page for every call,
# builds examples/channel.c, examples/server.c and README.md's hello
# against the installed library with pkg-config and runs them, and checks
# what the shared library exports.

weft_gdb_autoloaddir = $(datadir)/gdb/auto-load$(libdir)
weft_gdb_script = tools/weft-gdb.py
weft_frame_h = $(srcdir)/runtime/arch/frame_x86_64.h

dist_man3_MANS = docs/weft.3
weft_perl = perl
weft_man_gen = $(srcdir)/tools/weft-man.pl
weft_man_hdr = $(srcdir)/include/weft.h $(srcdir)/include/weft_testing.h
EXTRA_DIST += tools/weft-man.pl
weftdatadir = $(datadir)/weft
weftdata_DATA = tools/weft-gdb.py
EXTRA_DIST += tools/weft-gdb.py.in tools/install-check.sh
CLEANFILES += tools/weft-gdb.py

# The header's #define lines become a sed script of s|@NAME@|VALUE|g.
tools/weft-gdb.py: $(srcdir)/tools/weft-gdb.py.in $(weft_frame_h)
	$(AM_V_GEN)$(MKDIR_P) tools && \
	sed -n 's/^#define[ 	]\{1,\}\(WEFT_[A-Z0-9_]\{1,\}\)[ 	]\{1,\}\(0x[0-9a-fA-F]\{1,\}\).*/s|@\1@|\2|g/p' \
	  $(weft_frame_h) >$@.sed && \
	sed -f $@.sed $(srcdir)/tools/weft-gdb.py.in >$@.tmp && \
	rm -f $@.sed && \
	if grep -n '@WEFT_[A-Z0-9_]*@' $@.tmp >&2; then \
	  echo "$@: $(weft_frame_h) defines no such name" >&2; \
	  rm -f $@.tmp; exit 1; \
	fi && \
	mv -f $@.tmp $@

# The file name libtool gives the installed shared library, e.g.
# libweft.so.0.0.0; empty without a shared library.
weft_gdb_libfile = \
	`sed -n "s/^library_names='\([^ ']*\).*/\1/p" libweft.la 2>/dev/null`

install-data-local: install-weft-gdb install-weft-man
uninstall-local: uninstall-weft-gdb uninstall-weft-man
all-local: docs/man3/stamp
clean-local: clean-weft-man

# The pages of the calls, made afresh whenever weft.h or the generator
# changes (a call removed from weft.h leaves no page behind).
docs/man3/stamp: $(weft_man_gen) $(weft_man_hdr)
	$(AM_V_GEN)rm -rf docs/man3 && $(MKDIR_P) docs/man3 && \
	for h in $(weft_man_hdr); do \
	  $(weft_perl) $(weft_man_gen) --version $(PACKAGE_VERSION) \
	    -o docs/man3 $$h || exit 1; \
	done && \
	touch $@

install-weft-man: docs/man3/stamp
	@$(NORMAL_INSTALL)
	$(MKDIR_P) '$(DESTDIR)$(man3dir)'
	$(INSTALL_DATA) docs/man3/*.3 '$(DESTDIR)$(man3dir)'

uninstall-weft-man:
	@$(NORMAL_UNINSTALL)
	@pages=`for h in $(weft_man_hdr); do \
	  $(weft_perl) $(weft_man_gen) --list $$h || exit 1; done` || exit 1; \
	for p in $$pages; do \
	  echo " rm -f '$(DESTDIR)$(mandir)/$$p'"; \
	  rm -f "$(DESTDIR)$(mandir)/$$p"; \
	done

clean-weft-man:
	rm -rf docs/man3

install-weft-gdb: libweft.la $(weft_gdb_script)
	@f=$(weft_gdb_libfile); \
	if test -n "$$f"; then \
	  echo " $(MKDIR_P) '$(DESTDIR)$(weft_gdb_autoloaddir)'"; \
	  $(MKDIR_P) "$(DESTDIR)$(weft_gdb_autoloaddir)" || exit 1; \
	  echo " $(INSTALL_DATA) $(weft_gdb_script) '$(DESTDIR)$(weft_gdb_autoloaddir)/$$f-gdb.py'"; \
	  $(INSTALL_DATA) $(weft_gdb_script) \
	    "$(DESTDIR)$(weft_gdb_autoloaddir)/$$f-gdb.py" || exit 1; \
	fi

uninstall-weft-gdb:
	@f=$(weft_gdb_libfile); \
	if test -n "$$f"; then \
	  echo " rm -f '$(DESTDIR)$(weft_gdb_autoloaddir)/$$f-gdb.py'"; \
	  rm -f "$(DESTDIR)$(weft_gdb_autoloaddir)/$$f-gdb.py"; \
	fi

check-install: all
	$(SHELL) $(srcdir)/tools/install-check.sh $(abs_builddir)

.PHONY: install-weft-gdb uninstall-weft-gdb check-install install-weft-man \
	uninstall-weft-man clean-weft-man
