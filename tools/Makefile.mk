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
# make check-install runs tools/install-check.sh: it installs into a
# scratch directory (DESTDIR), builds examples/channel.c against the installed
# library with pkg-config, runs it, and checks what the shared library
# exports.

weft_gdb_autoloaddir = $(datadir)/gdb/auto-load$(libdir)
weft_gdb_script = $(srcdir)/tools/weft-gdb.py

dist_man3_MANS = docs/weft.3
weftdatadir = $(datadir)/weft
dist_weftdata_DATA = tools/weft-gdb.py
EXTRA_DIST += tools/install-check.sh

# The file name libtool gives the installed shared library, e.g.
# libweft.so.0.0.0; empty without a shared library.
weft_gdb_libfile = \
	`sed -n "s/^library_names='\([^ ']*\).*/\1/p" libweft.la 2>/dev/null`

install-data-local: install-weft-gdb
uninstall-local: uninstall-weft-gdb

install-weft-gdb: libweft.la
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
