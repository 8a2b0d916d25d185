#!/bin/sh
# alive_go.sh - reference, not weft: the alive.1m run of bench/mem done
# by Go's runtime, a million goroutines (quick: 100,000) blocked on one
# channel (bench/ref/alive.go), for the ratio alive.1m.green.ms against
# alive.1m.go.ms.  Go is no dependency of weft: without the go command
# (Debian: golang-go) the two figures are written n/a, with the reason.
#
#   sh bench/alive_go.sh full|quick BUILDDIR TSV
#
# Appends to TSV, as the bench programs do (bench.h):
#   alive.1m.go.ms   ms until every goroutine has started
#   alive.1m.go.rss  MiB, VmRSS with all of them alive
# One run, as alive.1m.green is one run.  Exit status 1 only if go is
# there and the program could not be built or run.

set -u

mode=${1:-full}
builddir=${2:-.}
tsv=${3:-/dev/stdout}
here=$(cd "$(dirname "$0")" && pwd)
case $mode in
full) n=1000000 ;;
quick) n=100000 ;;
*)
	echo "usage: $0 full|quick BUILDDIR TSV" >&2
	exit 2
	;;
esac

na() {
	printf 'alive.1m.go.ms\tn/a\tms\t%s\n' "$1" >>"$tsv"
	printf 'alive.1m.go.rss\tn/a\tMiB\t%s\n' "$1" >>"$tsv"
	echo "alive_go: $1" >&2
}

if ! command -v go >/dev/null 2>&1; then
	na "go is not installed (Debian: golang-go): no Go reference"
	exit 0
fi

bin=$builddir/bench/alive-go
# Go's build cache in the build tree: nothing is written under HOME.
GOCACHE=$(cd "$builddir" && pwd)/bench/.gocache
export GOCACHE
if ! go build -o "$bin" "$here/ref/alive.go" >&2; then
	na "the Go program could not be built"
	exit 1
fi
# Two runs, and the faster one's figures, as bench/mem does for weft's
# alive.1m (ALIVE_RUNS there says why: a virtual machine's first touch of
# memory).
best=
other_ms=
for run in 1 2; do
	out=$("$bin" "$n") || {
		na "the Go program failed"
		exit 1
	}
	# shellcheck disable=SC2086
	set -- $out
	if [ $# -ne 3 ] || [ "$1" != "$n" ]; then
		na "the Go program printed '$out'"
		exit 1
	fi
	if [ -z "$best" ]; then
		best=$out best_ms=$2
	elif awk "BEGIN { exit !($2 < $best_ms) }"; then
		other_ms=$best_ms best=$out best_ms=$2
	else
		other_ms=$2
	fi
done
# shellcheck disable=SC2086
set -- $best
note="reference, not weft: $(go version | cut -d' ' -f3); $n goroutines; the faster of 2 runs (the other $other_ms ms)"
[ "$mode" = quick ] && note="quick: $note"
{
	printf 'alive.1m.go.ms\t%s\tms\n#samples\talive.1m.go.ms\t%s\n' "$2" "$2"
	printf 'alive.1m.go.rss\t%s\tMiB\n#samples\talive.1m.go.rss\t%s\n' \
	    "$3" "$3"
} >>"$tsv"
printf '%-30s %12s  %-4s  %s\n' alive.1m.go.ms "$2" ms "$note"
printf '%-30s %12s  %-4s  %s\n' alive.1m.go.rss "$3" MiB "$note"
