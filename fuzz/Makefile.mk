# fuzz/Makefile.mk - libFuzzer targets, included from the top-level
# Makefile.am.  Nothing here is part of all or check: fuzz/run.sh builds the
# targets with clang (whatever CC is) into fuzz/build of the build tree and
# runs them (see fuzz/README.md).  It exits 77 when clang or libFuzzer is
# missing.  The saved inputs are replayed by make check
# (tests/Makefile.mk).
#
#   make fuzz          each target for FUZZ_SECONDS (600)
#   make fuzz-short    each target for FUZZ_SHORT_SECONDS (20), for CI
#   make fuzz-clean    removes fuzz/build

FUZZ_SECONDS = 600
FUZZ_SHORT_SECONDS = 20
FUZZ_BUILDDIR = $(abs_top_builddir)/fuzz/build
FUZZ_RUN = $(SHELL) $(srcdir)/fuzz/run.sh -b '$(FUZZ_BUILDDIR)' \
	-c '$(abs_top_builddir)/config.h'

EXTRA_DIST += fuzz/README.md fuzz/run.sh fuzz/http_parse.dict \
	fuzz/resp.dict fuzz/corpus fuzz/regress

fuzz:
	$(FUZZ_RUN) -t $(FUZZ_SECONDS)

fuzz-short:
	$(FUZZ_RUN) -t $(FUZZ_SHORT_SECONDS)

fuzz-clean:
	rm -rf '$(FUZZ_BUILDDIR)'

.PHONY: fuzz fuzz-short fuzz-clean
