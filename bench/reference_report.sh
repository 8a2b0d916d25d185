#!/bin/sh
# reference_report.sh RESULTS DEST SRCDIR - keeps a full bench run's report
# in the source tree, so that its verdicts can be read without running it.
#
# Copies RESULTS/REPORT.md (with a first paragraph naming the commit it was
# made from), its plots and its figures (latest.tsv, latest.txt) into DEST,
# replacing what DEST held.  Refuses a quick run's report, and a plot over
# MAX_PNG bytes (the tree keeps small files).  "make reference-report" runs
# "make bench" and then this, into docs/report of the source tree.

set -eu

MAX_PNG=102400

if [ $# -ne 3 ]; then
	echo "usage: $0 RESULTS DEST SRCDIR" >&2
	exit 2
fi
results=$1
dest=$2
srcdir=$3
report=$results/REPORT.md

die() {
	echo "reference_report: $*" >&2
	exit 1
}

[ -r "$report" ] || die "$report: no report (run make bench first)"
# The run line, the report's third: "full run, DATE, SECS s.  Machine: ..."
run=$(sed -n '3p' "$report")
case $run in
full\ run,*) ;;
*) die "$report is not a full run's ('${run%%,*}'): run make bench" ;;
esac
for f in latest.tsv latest.txt; do
	[ -r "$results/$f" ] || die "$results/$f is missing"
done
for png in "$results"/*.png; do
	[ -e "$png" ] || continue
	size=$(wc -c <"$png")
	[ "$size" -le "$MAX_PNG" ] ||
		die "$png is $size bytes, over $MAX_PNG: make the plot smaller"
done

# The commit the run was made from: the tree's HEAD, flagged when the
# tree had changes.
commit=unknown
if command -v git >/dev/null 2>&1 &&
    git -C "$srcdir" rev-parse --git-dir >/dev/null 2>&1; then
	commit=$(git -C "$srcdir" rev-parse --short=12 HEAD)
	git -C "$srcdir" diff --quiet HEAD -- . ':!docs/report' ||
		commit="$commit (with local changes)"
fi

mkdir -p "$dest"
rm -f "$dest"/*.png "$dest/REPORT.md" "$dest/latest.tsv" "$dest/latest.txt"
{
	sed -n '1,2p' "$report"
	echo "A reference run kept in the tree: \`make bench\` on commit"
	echo "$commit, on the machine named below.  Figures from another"
	echo "machine, or another day, differ; the verdicts are what to read."
	echo "\`make reference-report\` runs the bench again and replaces this"
	echo "directory."
	echo
	sed -n '3,$p' "$report"
} >"$dest/REPORT.md"
for f in "$results"/*.png "$results/latest.tsv" "$results/latest.txt"; do
	[ -e "$f" ] && cp "$f" "$dest/"
done
echo "reference_report: $dest/REPORT.md (commit $commit)"
