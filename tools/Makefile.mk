# tools/Makefile.mk - the gdb extension, the manual page and the install
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
# make check-install runs tools/install-check.sh: it installs into a
# scratch directory (DESTDIR), builds examples/channel.c against the installed
# library with pkg-config, runs it, and checks what the shared library
# exports.

weft_gdb_autoloaddir = $(datadir)/gdb/auto-load$(libdir)
weft_gdb_script = tools/weft-gdb.py
weft_frame_h = $(srcdir)/runtime/arch/frame_x86_64.h

dist_man3_MANS = docs/weft.3
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

install-data-local: install-weft-gdb
uninstall-local: uninstall-weft-gdb

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

.PHONY: install-weft-gdb uninstall-weft-gdb check-install
