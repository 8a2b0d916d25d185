#!/bin/sh
# ab.sh - the bench programs with two builds of libweft in turns (A, B, A,
# B, ...), to tell a change's effect from this machine's drift: a figure
# measured a minute apart moves by more than most changes do.
#
#   sh bench/ab.sh BASE_LIBDIR [ROUNDS [PROGRAM...]]
#
# BASE_LIBDIR holds the other libweft.so.0 (A: `make bench-ab BASE=REV`
# builds one from a revision); B is this build's (.libs).  Each round runs
# each PROGRAM (default: the programs that link libweft, but mem and the
# server bench) once with A and once with B, in quick mode, so ROUNDS
# (default 5) samples of every figure on each side.  Prints, per figure,
# the medians, B/A, and a verdict: "B better" or "B worse" when B/A is
# beyond 5% either way and every B sample lies beyond every A sample the
# same way; "same" otherwise.  With two equal libraries the samples of a
# figure separate by chance once in 2 * ROUNDS! * ROUNDS! / (2 * ROUNDS)!
# figures: 1 in 10 with 3 rounds, 1 in 126 with 5, and there are about 55
# figures; noisy ones (a maximum latency) are to be read with that in mind.
# Which way is better: a figure's target says, else lower is better, but
# for rates (/s) and speedups.
# Exit status 0; 2 for bad usage.

set -u

if [ $# -lt 1 ] || [ ! -e "$1/libweft.so.0" ]; then
	echo "usage: $0 BASE_LIBDIR [ROUNDS [PROGRAM...]]" >&2
	echo "  (BASE_LIBDIR/libweft.so.0: the library to compare with)" >&2
	exit 2
fi
base=$(cd "$1" && pwd)
shift
rounds=${1:-5}
[ $# -gt 0 ] && shift
case $rounds in
'' | *[!0-9]*)
	echo "$0: ROUNDS must be a number" >&2
	exit 2
	;;
esac
here=$(cd "$(dirname "$0")" && pwd)
builddir=$(pwd)
new=$builddir/.libs
bin=$builddir/bench/.libs
if [ ! -e "$new/libweft.so.0" ] || [ ! -d "$bin" ]; then
	echo "$0: run it from a built tree (make first)" >&2
	exit 2
fi
programs=${*:-yield chan deadline spawn task handoff msg shm idle preempt \
parallel}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-ab.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

r=1
while [ "$r" -le "$rounds" ]; do
	for p in $programs; do
		for side in A B; do
			lib=$base
			[ "$side" = B ] && lib=$new
			echo "ab: round $r/$rounds: $p ($side)" >&2
			LD_LIBRARY_PATH=$lib "$bin/$p" --quick \
			    --tsv "$tmp/$side.tsv" </dev/null >/dev/null 2>&1 ||
				echo "ab: $p ($side) failed in round $r" >&2
		done
	done
	r=$((r + 1))
done

# name<TAB>value<TAB>unit lines (not #samples, not n/a) of both sides, with
# the catalogue's comparison (figures.txt) for the direction.
awk -F'\t' -v figs="$here/figures.txt" '
BEGIN {
	while ((getline line < figs) > 0) {
		if (line ~ /^#/) continue
		split(line, f, "|")
		cmp[f[1]] = f[3]
	}
}
FNR == 1 { side = FILENAME ~ /A\.tsv$/ ? "A" : "B" }
$1 !~ /^#/ && $2 ~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/ {
	k = $1
	if (!(k in unit)) { order[++n] = k; unit[k] = $3 }
	v[side, k, ++c[side, k]] = $2 + 0
}
function med(s, k,    i, j, m, t, a) {
	m = c[s, k]
	for (i = 1; i <= m; i++) a[i] = v[s, k, i]
	for (i = 2; i <= m; i++)
		for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
			t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
		}
	return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
function lo(s, k,    i, x) {
	x = v[s, k, 1]
	for (i = 2; i <= c[s, k]; i++) if (v[s, k, i] < x) x = v[s, k, i]
	return x
}
function hi(s, k,    i, x) {
	x = v[s, k, 1]
	for (i = 2; i <= c[s, k]; i++) if (v[s, k, i] > x) x = v[s, k, i]
	return x
}
END {
	printf "%-40s %12s %12s %7s  %s\n", "figure", "A (median)", \
	    "B (median)", "B/A", "verdict"
	for (i = 1; i <= n; i++) {
		k = order[i]
		if (!c["A", k] || !c["B", k]) continue
		a = med("A", k); b = med("B", k)
		if (a == 0) continue
		x = b / a
		up = cmp[k] == ">=" || cmp[k] == ">" || unit[k] ~ /\/s$/ ||
		    k ~ /speedup/
		verdict = "same"
		if (x > 1.05 && lo("B", k) > hi("A", k))
			verdict = up ? "B better" : "B worse"
		else if (x < 0.95 && hi("B", k) < lo("A", k))
			verdict = up ? "B worse" : "B better"
		printf "%-40s %12.4g %12.4g %7.3f  %s\n", k, a, b, x, verdict
	}
}' "$tmp/A.tsv" "$tmp/B.tsv"
