# docs/Makefile.mk - the reference report kept in the tree (docs/report).
#
# `make reference-report` runs the full bench (`make bench`, a few
# minutes, with nginx and redis-server beside weft's servers) and copies
# its REPORT.md, plots and figures into docs/report of the source tree,
# naming the commit they were made from (bench/reference_report.sh).

EXTRA_DIST += bench/reference_report.sh docs/report

reference-report: all
	$(MAKE) $(AM_MAKEFLAGS) bench
	$(SHELL) $(srcdir)/bench/reference_report.sh $(builddir)/bench/results \
	    $(srcdir)/docs/report $(srcdir)

.PHONY: reference-report
