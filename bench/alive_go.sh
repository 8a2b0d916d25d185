#!/bin/sh
# alive_go.sh - builds the reference of the alive.1m run, not weft: Go's
# runtime with a million goroutines (quick: 100,000) blocked on one
# channel (bench/ref/alive.go), for the ratio alive.1m.green.ms against
# alive.1m.go.ms.  bench/mem runs it in turns with weft's own runs (the
# two meet the machine in the same state: see "Against Go" in
# bench/README.md).  Go is no dependency of weft: without the go command
# (Debian: golang-go) the two figures are written n/a, with the reason.
#
#   sh bench/alive_go.sh full|quick BUILDDIR TSV
#
# Prints the built program's path and, on a second line, the Go version;
# or nothing, having appended n/a lines for alive.1m.go.ms and .rss to TSV.
# Exit status 1 only if go is there and the program could not be built.

set -u

mode=${1:-full}
builddir=${2:-.}
tsv=${3:-/dev/stdout}
here=$(cd "$(dirname "$0")" && pwd)
case $mode in
full | quick) ;;
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

bin=$(cd "$builddir" && pwd)/bench/alive-go
# Go's build cache in the build tree: nothing is written under HOME.
GOCACHE=$(cd "$builddir" && pwd)/bench/.gocache
export GOCACHE
if ! go build -o "$bin" "$here/ref/alive.go" >&2; then
	na "the Go program could not be built"
	exit 1
fi
echo "$bin"
go version | cut -d' ' -f3
