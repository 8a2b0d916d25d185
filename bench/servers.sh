#!/bin/sh
# servers.sh - the server bench: weft's servers (servers/http, servers/kv,
# servers/echo) under load in each mode, with nginx and redis-server as
# references when they are installed.
#
#   sh bench/servers.sh full|quick [BUILDDIR [TSV]]
#
# For each server and mode: start it on an ephemeral port (--port 0; the
# port is read back from its "listening on HOST:PORT" line), load it,
# record the figures, stop it with SIGTERM and check that it exits 0 and
# leaves no process behind (SIGKILL of its whole session as a last resort).
# Every server runs in a session of its own, and an EXIT/INT/TERM trap stops
# whatever is still running, so an interrupted run leaves nothing behind.
#
#   HTTP   wrk -t2 -c100 (and -c1000, full mode), keep-alive GET /, with
#          bench/wrk_pct.lua for the percentiles --latency leaves out:
#          servers/http --mode green (--workers 2, reported as
#          http.*.green, and --procs 2 --workers 1 in full mode, as
#          http.*.green.p2), kthread, process; and
#          nginx, 2 worker processes, a fixed "hello\n" body, access_log off;
#          and the floors, bench/ref/epoll_floor.c and
#          bench/ref/uring_floor.c (one thread, a fixed answer), at -c100.
#   KV     redis-benchmark -t set,get -c 50, without and with -P 16:
#          servers/kv --mode green --workers 2 (kthread and process without
#          -P 16), and redis-server --save '' --appendonly no; and the
#          floors, bench/ref/epoll_floor.c (plain epoll, no store) and
#          bench/ref/uring_floor.c (io_uring, no store).
#   Stall  bench/mget_stall: the worst PING beside a 160 MiB MGET (40 MiB in
#          quick mode) on servers/kv --mode green --workers 1 (kthread in
#          full mode) and redis-server.
#   Echo   bench/echo_load -c 100 -s 64 against servers/echo in each mode.
#   Conns  bench/conn_hold opens 10,000 keep-alive connections to
#          servers/http --mode green --workers 2, each after one request, and
#          the server's VmRSS is read with all of them open; the same for
#          --mode kthread (one kernel thread per connection).
#
# In full mode the green HTTP and KV servers and nginx and redis-server
# run in 3 rounds, taking turns (BENCH_SERVER_ROUNDS=N sets the count;
# quick mode: 1), and each of their figures is the median of its rounds,
# with the rounds' values on a #samples line (see "Rounds" below).
#
# Figures are appended to TSV (default BUILDDIR/bench/results/servers.tsv,
# truncated first) as name<TAB>value<TAB>unit.  A reference that is not
# installed is written as name<TAB>n/a<TAB>unit<TAB>why, which report.sh
# shows as n/a and does not count as missing; remarks for the report (the
# configurations used, errors seen) are lines "#note<TAB>text".
#
# Quick mode (CI): 1 s per load, small request counts, no -c1000 runs, the
# KV and echo loads on green mode only (KV also on redis-server), 1,000
# connections instead of 10,000 (the names stay the same): about 15 s.
# Full mode takes about two minutes and a half.
#
# The load generators run on the same machine as the servers and share its
# CPUs with them.
#
# Every load runs under a timeout proportionate to its expected length (see
# "Timeouts" below).  A load that fails or times out is run once more,
# against a fresh start of the same server; if it fails again, its figures
# are written as name<TAB>stalled<TAB>unit<TAB>why (report.sh shows them
# as STALLED), the loads left on that server are not run (stalled too, "not
# run"), and the script goes on with the next server.  A load that passed
# on its second run leaves "#retried<TAB>name<TAB>1 of 1 runs<TAB>why"
# lines.  For testing, BENCH_FAIL_LOAD="LOAD[:N],..." gives the first N
# runs (default 1; 2 stalls it) of LOAD a timeout of a tenth of a second;
# LOAD is the figures' name without the measure: http.green.w2,
# http.nginx, kv.green, kv.green.p16, kv.redis, echo.green, conn.green,
# conn.kthread...
#
# Exit status: 0; 1 if a weft server failed to start, died under load or
# did not exit cleanly (a stalled load alone does not fail the run); 2 for
# bad usage.  Missing tools (wrk, redis-benchmark, nginx, redis-server)
# only skip their rows.

set -u

mode=${1:-full}
builddir=${2:-.}
tsv=${3:-}
case $mode in
full | quick) ;;
*)
	echo "usage: $0 full|quick [BUILDDIR [TSV]]" >&2
	exit 2
	;;
esac

standalone=no
# CPUs the kv loads pin the load generator and the server to (empty: not
# pinned; see kv_green_pin).
ld_cpu='' srv_cpu=''
if [ -z "$tsv" ]; then
	mkdir -p "$builddir/bench/results" || exit 1
	tsv=$builddir/bench/results/servers.tsv
	: >"$tsv" || exit 1
	standalone=yes
fi

if [ "$mode" = full ]; then
	rounds=3       # weft's servers and their references, in turns
	wrk_s=3        # seconds per wrk run at -c100
	wrk_big_s=2    # at -c1000
	kv_n=30000     # requests per redis-benchmark test
	kv_np=300000   # the same with -P 16
	echo_s=3       # seconds of echo load
	hold_n=10000   # idle connections
	hold_kn=10000  # the same, kernel-thread mode
	stall_v=160    # 1 MiB values in the large MGET
else
	rounds=1
	wrk_s=1
	wrk_big_s=
	kv_n=2000
	kv_np=50000
	echo_s=1
	hold_n=1000
	hold_kn=1000
	stall_v=40
fi
rounds=${BENCH_SERVER_ROUNDS:-$rounds}
case $rounds in
'' | *[!0-9]* | 0)
	echo "$0: BENCH_SERVER_ROUNDS must be a whole number of rounds, at" \
	    "least 1 (not '$rounds')" >&2
	exit 2
	;;
esac

# Timeouts.  wrk and echo_load run for a fixed time: their bound is twice
# that plus 15 s (connections, the report).  redis-benchmark's requests
# take about a second at the rates seen here (30,000 at 50k-75k req/s):
# the bound assumes at least 5,000 req/s (50,000 with -P 16), plus 10 s.
# conn_hold opens 10,000 connections in a second or two: 10 s plus 1 s per
# 500.  A stall (one of redis-benchmark's connections once held it for
# minutes at 164 req/s) ends at the bound, not minutes later.
wrk_bound() { echo $(($1 * 2 + 15)); }
kv_bound() { echo $((10 + 2 * $1 / $2)); } # requests per test, least rate
echo_bound=$((echo_s * 2 + 15))
hold_bound() { echo $((10 + $1 / 500)); }

# One fd per connection for the servers and the clients.
# shellcheck disable=SC3045
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
# shellcheck disable=SC3045
nofile=$(ulimit -n)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-servers.XXXXXX") || exit 1
# This script's directory, in the source tree: lib.sh and wrk_pct.lua are
# there, not in the build tree when it is another.
here=$(cd "$(dirname "$0")" && pwd)
# Process control (a clock, process queries, sessions), shared with the
# soak; it keeps the pids of the servers running in $servers.
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
holder=   # pid of a conn_hold running
loader=   # pid of a load generator running
failed=
# The server under test, so that a failed load can start it again: kind
# (demo or ref), tag, and how it was started; up while it runs; the load
# that stalled on it, after which nothing more is run on it.
srv_kind=
srv_tag=
srv_prog=
srv_rest=
srv_fn=
srv_up=no
srv_stalled=
stall_why= # how the last stalled load failed, twice
attempt=1 # of the load running: 1, or 2 when it is run again
why=      # how the last load failed
start=$(date +%s)

say() { printf 'servers: %s\n' "$*" >&2; }
note() {
	printf '#note\t%s\n' "$*" >>"$tsv"
	say "note: $*"
}
fail() {
	failed="$failed $1"
	shift
	note "FAILED: $*"
}
fig() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$tsv"; }
na() { printf '%s\tn/a\t%s\t%s\n' "$1" "$2" "$3" >>"$tsv"; }
# na_set PREFIX WHY SUFFIX...: PREFIX.rps/p50/p90/p99/p999/cpu_us.SUFFIX
# are n/a.
na_set() {
	pre=$1
	why=$2
	shift 2
	for sx in "$@"; do
		na "$pre.rps.$sx" req/s "$why"
		na "$pre.p50.$sx" ms "$why"
		na "$pre.p90.$sx" ms "$why"
		na "$pre.p99.$sx" ms "$why"
		na "$pre.p999.$sx" ms "$why"
		na "$pre.cpu_us.$sx" us "$why"
	done
}
have() { command -v "$1" >/dev/null 2>&1; }

# Stops server $1 (described as $2): SIGTERM, up to 5 s to exit, then
# SIGKILL of its session.  Returns 0 if it exited 0 and left nothing.
stop_server() {
	session_stop "$1" 500
	if [ $stop_forced = yes ]; then
		note "$2 did not exit within 5 s of SIGTERM: killed"
		return 1
	fi
	if [ "$stop_rc" != 0 ]; then
		note "$2 exited with status $stop_rc after SIGTERM"
		return 1
	fi
	# Anything left in its session (children of a process-mode server,
	# nginx workers) is a leak: reported, and ended.
	if [ $stop_left = yes ]; then
		note "$2 left processes behind: killed"
		return 1
	fi
	return 0
}

cleanup() {
	trap - EXIT INT TERM
	if [ -n "$loader" ]; then
		kill -TERM "$loader" 2>/dev/null
		wait "$loader" 2>/dev/null
	fi
	if [ -n "$holder" ]; then
		kill -TERM "$holder" 2>/dev/null
		wait "$holder" 2>/dev/null
	fi
	for p in $servers; do
		stop_server "$p" "server $p" >/dev/null 2>&1
	done
	cpu_cgroup_drop "${session_cgroup:-}"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'say interrupted; cleanup; exit 130' INT TERM

# bound LOAD SECONDS: sets lt, the timeout of this run of LOAD: SECONDS,
# or a tenth of a second when BENCH_FAIL_LOAD asks this run to time out
# (lfake then says so in the reason, and load() runs a sleep in place of
# the load: a quick load could end within a tenth of a second).
bound() {
	lt=$2
	lfake=
	for spec in $(printf '%s' "${BENCH_FAIL_LOAD:-}" | tr ',' ' '); do
		case $spec in
		"$1") times=1 ;;
		"$1":*) times=${spec#"$1":} ;;
		*) continue ;;
		esac
		if [ "$attempt" -le "$times" ]; then
			lt=0.1
			lfake=" (BENCH_FAIL_LOAD)"
		fi
	done
}

# load WHAT COMMAND...: runs a load generator in the background under the
# timeout $lt and waits for it, so that a signal to this script is handled
# at once (the trap ends the load too).  Returns its status; on failure
# sets why.
load() {
	lwhat=$1
	shift
	if [ -n "$lfake" ]; then
		timeout -k 5 "$lt" sleep 60 </dev/null &
	elif have timeout; then
		timeout -k 5 "$lt" "$@" </dev/null &
	else
		"$@" </dev/null &
	fi
	loader=$!
	wait "$loader"
	lrc=$?
	loader=
	case $lrc in
	0) ;;
	124 | 137) why="$lwhat timed out after $lt s$lfake" ;;
	*) why="$lwhat exited with status $lrc" ;;
	esac
	return $lrc
}

# tail_why FILE: adds the last lines a failed load printed to why.
tail_why() {
	[ -z "$lfake" ] && [ -s "$1" ] &&
	    why="$why: $(tail -n 2 "$1" | tr '\n\t' '  ' | cut -c1-160)"
}

# The figures of load $1, "name unit" a line.
figs() {
	case $1 in
	stall.*)
		printf '%s\n' "kv.mget_stall.${1#stall.} ms"
		;;
	conn.green)
		printf '%s\n' "conn.10k.rss MiB" "conn.10k.per KiB" "conn.10k.ok conns"
		;;
	conn.*)
		printf '%s\n' "conn.10k.rss.${1#conn.} MiB" \
		    "conn.10k.per.${1#conn.} KiB" "conn.10k.ok.${1#conn.} conns"
		;;
	http.* | kv.*)
		printf '%s\n' "${1%%.*}.rps.${1#*.} req/s" "${1%%.*}.p50.${1#*.} ms" \
		    "${1%%.*}.p90.${1#*.} ms" "${1%%.*}.p99.${1#*.} ms" \
		    "${1%%.*}.p999.${1#*.} ms" "${1%%.*}.cpu_us.${1#*.} us"
		;;
	*)
		printf '%s\n' "${1%%.*}.rps.${1#*.} req/s" "${1%%.*}.p50.${1#*.} ms" \
		    "${1%%.*}.p99.${1#*.} ms"
		;;
	esac
}
# stalled_load LOAD WHY, retried_load LOAD WHY: the lines for its figures.
stalled_load() {
	figs "$1" | while read -r f u; do
		printf '%s\tstalled\t%s\t%s\n' "$f" "$u" "$2"
	done >>"$tsv"
}
retried_load() {
	figs "$1" | while read -r f _; do
		printf '#retried\t%s\t1 of 1 runs\t%s\n' "$f" "$2"
	done >>"$tsv"
}

# try LOAD FUNCTION ARGS...: runs a load (wrk_run, kv_run, echo_run,
# hold_run: each returns non-zero with why set when it failed) against the
# server under test.  A failure is run once more against a fresh start of
# the server: a stuck connection may be the server's, and the second run
# should not inherit it.  A second failure stalls the load's figures and
# the loads after it on this server.
try() {
	tl=$1
	shift
	stall_why=
	if [ "$srv_up" != yes ]; then
		stall_why="not run: $srv_tag did not start again"
	elif [ -n "$srv_stalled" ]; then
		stall_why="not run: $srv_stalled stalled on this server"
	fi
	if [ -n "$stall_why" ]; then
		stalled_load "$tl" "$stall_why"
		return 1
	fi
	attempt=1
	"$@" && return 0
	why1=$why
	note "$tl: $why1; run again against a fresh $srv_tag"
	if ! restart; then
		stall_why="$why1; $srv_tag did not start again"
		stalled_load "$tl" "$stall_why"
		return 1
	fi
	attempt=2
	if "$@"; then
		attempt=1
		retried_load "$tl" "$why1"
		return 0
	fi
	attempt=1
	srv_stalled=$tl
	stall_why="$why1; then $why"
	note "$tl: STALLED: $stall_why"
	stalled_load "$tl" "$stall_why"
	return 1
}

# Stops the server under test and starts it again, on a new port.  A weft
# server that died under the load, or does not exit cleanly now, fails
# the run as ever.
restart() {
	if [ "$srv_kind" = demo ]; then
		alive "$spid" || note "$srv_tag died under load"
		stop_demo "$srv_tag"
		# $srv_rest is the demo's options, words without spaces.
		# shellcheck disable=SC2086
		start_demo "$srv_tag" "$srv_prog" $srv_rest
	else
		stop_ref "$srv_tag"
		start_ref "$srv_tag" "$srv_fn"
	fi
}

# Starts a command in a session of its own, with stdout and stderr in
# $tmp/$1.out and .err.  Sets spid.
launch() {
	tag=$1
	shift
	# shellcheck disable=SC2086
	session_start "$tmp/$tag.out" "$tmp/$tag.err" \
	    ${srv_cpu:+taskset -c "$srv_cpu"} "$@"
}

# Starts a weft demo: start_demo TAG PROGRAM ARGS...  Waits up to 10 s
# for "listening on HOST:PORT"; sets spid, host and port.  Returns 1 (and
# records the failure) if it does not come up.
start_demo() {
	tag=$1
	prog=$2
	shift 2
	srv_kind=demo
	srv_tag=$tag
	srv_prog=$prog
	srv_rest=$*
	srv_up=no
	srv_stalled=
	if [ ! -x "$prog" ]; then
		fail "$tag" "$tag: $prog is not built"
		return 1
	fi
	launch "$tag" "$prog" "$@" --port 0 --quiet
	if ! await_listening "$tmp/$tag.out" "$spid" 1000; then
		fail "$tag" "$tag: $prog $* did not print its listening line" \
		    "($(head -c 300 "$tmp/$tag.err" | tr '\n' ' '))"
		stop_server "$spid" "$tag" >/dev/null 2>&1
		return 1
	fi
	srv_up=yes
	return 0
}

# Stops a weft demo; a failure to exit cleanly fails the run.
stop_demo() {
	[ "$srv_up" = yes ] || return 0
	srv_up=no
	stop_server "$spid" "$1" || fail "$1" "$1 did not shut down cleanly"
}
# Stops a reference server; how it exits is not weft's business.
stop_ref() {
	[ "$srv_up" = yes ] || return 0
	srv_up=no
	stop_server "$spid" "$1" || true
}

# A port nothing listens on, from 20000-29999 (below the ephemeral range).
free_port() {
	used=$(awk 'NR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp \
	    /proc/net/tcp6 2>/dev/null)
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		p=$((20000 + r % 10000))
		h=$(printf '%04X' "$p")
		if ! printf '%s\n' "$used" | grep -qx "$h"; then
			echo "$p"
			return 0
		fi
	done
	echo 29999
}

# True once something listens on TCP port $1.
listening() {
	h=$(printf '%04X' "$1")
	awk -v h="$h" 'NR > 1 && $4 == "0A" { split($2, a, ":");
	    if (a[2] == h) f = 1 } END { exit !f }' /proc/net/tcp \
	    /proc/net/tcp6 2>/dev/null
}

# Starts a reference server: start_ref TAG FUNCTION, where FUNCTION
# launches it on $port.  Picks a free port, up to 3 tries.  Sets spid,
# host, port.
start_ref() {
	tag=$1
	srv_kind=ref
	srv_tag=$tag
	srv_fn=$2
	srv_up=no
	srv_stalled=
	for _ in 1 2 3; do
		port=$(free_port)
		host=127.0.0.1
		"$2"
		until_cs 1000
		while before_end && alive "$spid" && ! listening "$port"; do
			sleep 0.05
		done
		if alive "$spid" && listening "$port"; then
			srv_up=yes
			return 0
		fi
		stop_server "$spid" "$tag" >/dev/null 2>&1
	done
	note "$tag did not start: $(head -c 300 "$tmp/$tag.err" | tr '\n' ' ')"
	return 1
}

# cpu_fig PRE NAME NS0 NS1 REQUESTS: records PRE.cpu_us.NAME, the server's
# CPU time per request (us), and prints it.  Without a cgroup to count in,
# n/a for the modes whose threads or processes end with their connections
# (kthread, process): cpu_used's fallback loses them.
cpu_fig() {
	if [ -z "${session_cgroup:-}" ]; then
		case $2 in
		kthread* | process*)
			na "$1.cpu_us.$2" us "no cgroup to count in: $2's units end uncounted"
			echo n/a
			return
			;;
		esac
	fi
	c_=$(cpu_us "$3" "$4" "$5")
	fig "$1.cpu_us.$2" "$c_" us
	echo "$c_"
}

# cpu_us NS0 NS1 REQUESTS: microseconds of the server's CPU time (cpu_used,
# read before and after a load) per request.
cpu_us() {
	awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {
		if (n + 0 <= 0) exit 1
		printf "%.3f\n", (b - a) / 1000 / n }'
}

# wrk_run NAME CONNS SECONDS: GET / on $host:$port; records
# http.rps.NAME (req/s), http.p50.NAME and http.p99.NAME (ms, as wrk
# --latency prints them), http.p90.NAME and http.p999.NAME (ms, the 90th
# and 99.9th percentiles: --latency has no 99.9th, so bench/wrk_pct.lua
# prints both, in whole microseconds), and http.cpu_us.NAME: the server's
# CPU time per request (us; all its processes, user and system: a measure
# that does not depend on the load generator sharing the CPUs).
wrk_run() {
	name=$1
	c=$2
	d=$3
	out=$tmp/wrk.$name
	bound "http.$name" "$(wrk_bound "$d")"
	say "  wrk -t2 -c$c -d${d}s --latency -s wrk_pct.lua" \
	    "http://$host:$port/ ($name, timeout ${lt} s)"
	cpu0=$(cpu_used "$spid")
	if ! load wrk wrk -t2 -c"$c" -d"${d}s" --latency \
	    -s "$here/wrk_pct.lua" "http://$host:$port/" >"$out" 2>&1; then
		tail_why "$out"
		return 1
	fi
	cpu1=$(cpu_used "$spid")
	res=$(awk '
	function ms(x) {
		if (x ~ /us$/) return x / 1000
		if (x ~ /ms$/) return x + 0
		if (x ~ /m$/) return x * 60000
		if (x ~ /s$/) return x * 1000
		return x + 0
	}
	/^Requests\/sec:/ { rps = $2 }
	$2 == "requests" && $3 == "in" { nreq = $1 }
	$1 == "50%" { p50 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	$1 == "pct" && $2 == "90" { p90 = $3 / 1000 }
	$1 == "pct" && $2 == "99.9" { p999 = $3 / 1000 }
	/Socket errors:/ { err = $0 }
	/Non-2xx/ { bad = $NF }
	END {
		if (rps == "" || p50 == "" || p99 == "" || nreq == "" ||
		    p90 == "" || p999 == "")
			exit 1
		sub(/^ */, "", err)
		printf "%s %.4f %.4f %.4f %.4f %s %s|%s\n", rps, p50, p99, p90, \
		    p999, nreq, bad + 0, err
	}' "$out")
	if [ -z "$res" ]; then
		why="wrk gave no figures: $(tail -n 3 "$out" | tr '\n\t' '  ')"
		return 1
	fi
	# shellcheck disable=SC2086
	set -- $res
	fig "http.rps.$name" "$1" req/s
	fig "http.p50.$name" "$2" ms
	fig "http.p90.$name" "$4" ms
	fig "http.p99.$name" "$3" ms
	fig "http.p999.$name" "$5" ms
	cpu=$(cpu_fig http "$name" "$cpu0" "$cpu1" "$6")
	rest=${7#*|}
	bad=${7%%|*}
	[ "$bad" = 0 ] || note "http $name: $bad responses were not 2xx"
	[ -z "$rest" ] || note "http $name: wrk: $rest"
	printf '%-22s %12.0f req/s   p50 %8.3f ms   p90 %8.3f ms   p99 %8.3f ms' \
	    "http $name" "$1" "$2" "$4" "$3"
	printf '   p99.9 %8.3f ms   cpu %s us/req\n' "$5" "$cpu"
	return 0
}

# kv_run NAME [-P 16]: redis-benchmark SET and GET on $host:$port; records
# kv.rps.NAME (both tests: requests / time), kv.p50.NAME, kv.p90.NAME,
# kv.p99.NAME and kv.p999.NAME (the worse of SET's and GET's, ms), and
# kv.cpu_us.NAME (the server's CPU time per request, us, as wrk_run's).
#
# Its full report, not -q --csv: the csv line has no 90th or 99.9th
# percentile, and a second run for them would measure another load.  Each
# test's report ends with a summary whose req/s, p50 and p99 are the csv
# line's (the same variables, printed the same way), and lists the
# latency at percentiles 0, 50, 75, 87.5, ... (each step halves what is
# left to 100 %), but only those where the cumulative count moved: a
# percentile left out has the latency of the line before it.  p90 and
# p99.9 fall between two steps (87.5 and 93.75, 99.805 and 99.902): their
# latency is interpolated linearly between those steps'.  Read so, p50 <=
# p90 <= p99 <= p99.9 holds whatever lines were left out.
kv_run() {
	name=$1
	shift
	n=$kv_n
	[ $# -gt 0 ] && n=$kv_np
	out=$tmp/kv.$name
	if [ $# -gt 0 ]; then
		bound "kv.$name" "$(kv_bound "$n" 50000)"
	else
		bound "kv.$name" "$(kv_bound "$n" 5000)"
	fi
	say "  redis-benchmark -t set,get -c 50 -n $n $* ($name," \
	    "timeout ${lt} s${ld_cpu:+, on CPU $ld_cpu})"
	cpu0=$(cpu_used "$spid")
	# shellcheck disable=SC2086
	if ! load redis-benchmark ${ld_cpu:+taskset -c "$ld_cpu"} \
	    redis-benchmark -h "$host" -p "$port" \
	    -t set,get -c 50 -n "$n" "$@" >"$out" 2>&1; then
		tail_why "$out"
		return 1
	fi
	cpu1=$(cpu_used "$spid")
	res=$(awk '
	# The latency at step s of the percentile lines: that of the last
	# line at or below it (the lines round the step to 3 decimals).
	function at(s,    i, r) {
		r = lv[1]
		for (i = 1; i <= nl; i++)
			if (lp[i] <= s + 0.0005) r = lv[i]
		return r
	}
	# Percentile p, between the steps below and above it.
	function pct(p,    lo, hi) {
		lo = 0; hi = 50
		while (hi <= p) { lo = hi; hi = 100 - (100 - hi) / 2 }
		return at(lo) + (at(hi) - at(lo)) * (p - lo) / (hi - lo)
	}
	function worse(a, b) { return a > b ? a : b }
	# The title follows the last progress report, after a carriage return.
	/====== [A-Z]+ ======/ {
		t = $0; sub(/.*====== /, "", t); sub(/ ======.*/, "", t)
		nl = 0; next
	}
	/^Latency by percentile distribution:/ { dist = 1; next }
	dist && $2 == "<=" {
		sub(/%$/, "", $1); lp[++nl] = $1 + 0; lv[nl] = $3 + 0; next
	}
	{ dist = 0 }
	/throughput summary:/ { rps = $3 }
	$1 == "avg" && $3 == "p50" && $5 == "p99" { sum = 1; next }
	sum {
		sum = 0
		if ((t != "SET" && t != "GET") || nl == 0 || rps + 0 <= 0) next
		k++; inv += 1 / rps
		p50 = worse(p50, $3 + 0); p99 = worse(p99, $5 + 0)
		p90 = worse(p90, pct(90)); p999 = worse(p999, pct(99.9))
	}
	END {
		if (k != 2) exit 1
		printf "%.0f %.4f %.4f %.4f %.4f\n", 2 / inv, p50, p99, p90, p999
	}' "$out")
	if [ -z "$res" ]; then
		why="redis-benchmark gave no figures: $(tail -n 3 "$out" |
		    tr '\n\t' '  ')"
		return 1
	fi
	# shellcheck disable=SC2086
	set -- $res
	fig "kv.rps.$name" "$1" req/s
	fig "kv.p50.$name" "$2" ms
	fig "kv.p90.$name" "$4" ms
	fig "kv.p99.$name" "$3" ms
	fig "kv.p999.$name" "$5" ms
	cpu=$(cpu_fig kv "$name" "$cpu0" "$cpu1" $((2 * n)))
	printf '%-22s %12.0f req/s   p50 %8.3f ms   p90 %8.3f ms   p99 %8.3f ms' \
	    "kv $name" "$1" "$2" "$4" "$3"
	printf '   p99.9 %8.3f ms   cpu %s us/req\n' "$5" "$cpu"
}

# echo_run MODE: bench/echo_load against servers/echo on $host:$port;
# records echo.rps.MODE, echo.p50.MODE and echo.p99.MODE.  Its figures go
# to a file of their own first: a failed run may have written some.
echo_run() {
	bound "echo.$1" "$echo_bound"
	say "  echo_load -c 100 -s 64 -d $echo_s ($1, timeout ${lt} s)"
	: >"$tmp/echo.tsv"
	load echo_load "$builddir/bench/echo_load" --host "$host" \
	    --port "$port" -c 100 -s 64 -d "$echo_s" --tsv "$tmp/echo.tsv" \
	    --label "$1" >"$tmp/echo.out" 2>&1
	erc=$?
	sed 's/^/  /' "$tmp/echo.out" >&2
	if [ $erc != 0 ]; then
		tail_why "$tmp/echo.out"
		return 1
	fi
	cat "$tmp/echo.tsv" >>"$tsv"
	awk -F'\t' -v m="$1" '
	$1 == "echo.rps." m { r = $2 } $1 == "echo.p50." m { a = $2 }
	$1 == "echo.p99." m { b = $2 }
	END { if (r != "") printf "%-22s %12.0f req/s   p50 %8.3f ms   " \
	    "p99 %8.3f ms\n", "echo " m, r, a, b }' "$tmp/echo.tsv"
}

# hold_run NAME N: conn_hold against the server $spid on $host:$port;
# records conn.10k.rss.NAME (MiB, the server's VmRSS with all open),
# conn.10k.per.NAME (KiB per connection over the idle server) and
# conn.10k.ok.NAME (connections held).  NAME empty: no suffix.
hold_run() {
	sfx=${1:+.$1}
	n=$2
	hb=$(hold_bound "$n")
	bound "conn.${1:-green}" "$hb"
	rss0=$(awk '/^VmRSS:/ { print $2 }' "/proc/$spid/status" 2>/dev/null)
	say "  conn_hold -n $n (idle server: ${rss0:-?} KiB, timeout ${lt} s)"
	if [ -n "$lfake" ]; then
		sleep "$lt"
		why="conn_hold held nothing within $lt s$lfake"
		return 1
	fi
	: >"$tmp/hold.out" # before the start: the loop below reads it
	# Its own timeout ends the opening; the wait below ends the run.
	"$builddir/bench/conn_hold" --host "$host" --port "$port" -n "$n" \
	    --signal-only --max-hold $((hb + 30)) --timeout "$hb" \
	    >"$tmp/hold.out" 2>"$tmp/hold.err" </dev/null &
	holder=$!
	until_cs $((hb * 100 + 500))
	while before_end && alive "$holder" && ! [ -s "$tmp/hold.out" ]; do
		sleep 0.05
	done
	sleep 0.3 # let the server settle
	held=$(sed -n 's/^held \([0-9]*\) of.*/\1/p' "$tmp/hold.out")
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$spid/status" 2>/dev/null)
	thr=$(awk '/^Threads:/ { print $2 }' "/proc/$spid/status" 2>/dev/null)
	kill -TERM "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	holder=
	sed 's/^/  /' "$tmp/hold.err" >&2
	if [ -z "$held" ]; then
		why="conn_hold held nothing within $lt s$lfake"
		return 1
	fi
	if [ -z "$rss" ] || [ -z "$rss0" ] || [ "$held" = 0 ]; then
		why="conn_hold held ${held:-no} of $n connections (server VmRSS:"
		why="$why ${rss:-unknown} KiB)"
		return 1
	fi
	[ "$held" = "$n" ] || note "conn$sfx: only $held of $n connections" \
	    "were open after one request each"
	fig "conn.10k.rss$sfx" "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')" MiB
	fig "conn.10k.per$sfx" "$(awk -v a="$rss" -v b="$rss0" -v n="$held" \
	    'BEGIN { printf "%.2f", (a - b) / n }')" KiB
	fig "conn.10k.ok$sfx" "$held" conns
	printf '%-22s %12s conns   VmRSS %8.1f MiB (idle %.1f MiB), %s threads\n' \
	    "conn${sfx:-.green}" "$held" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" \
	    "$(awk -v k="$rss0" 'BEGIN { print k / 1024 }')" "${thr:-?}"
}

run_nginx() {
	sed "s/@PORT@/$port/" "$tmp/nginx/nginx.conf.in" >"$tmp/nginx/nginx.conf"
	launch nginx "$ngx" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
	    -g 'daemon off;'
}
run_floor() {
	launch floor "$builddir/bench/epoll_floor" resp "$port"
}
run_floor_http() {
	launch http.floor "$builddir/bench/epoll_floor" http "$port"
}
run_uring_kv() {
	launch floor.uring "$builddir/bench/uring_floor" resp "$port"
}
run_uring_http() {
	launch http.floor.uring "$builddir/bench/uring_floor" http "$port"
}
# kv_ref NAME FUNCTION PROGRAM NOTE [p1]: a reference server (started by
# FUNCTION, see start_ref) under the KV load, -P1 and -P16 (only -P1 with
# p1): kv.*.NAME and kv.*.NAME.p16, n/a if PROGRAM did not start.  An
# empty NOTE writes none.
kv_ref() {
	k_p16=yes
	[ "${5-}" = p1 ] && k_p16=
	if start_ref "$1" "$2"; then
		warm_kv
		try "kv.$1" kv_run "$1"
		[ -n "$k_p16" ] && try "kv.$1.p16" kv_run "$1.p16" -P 16
		stop_ref "$1"
		[ -n "${4-}" ] && note "$4"
	else
		na_set kv "$3 did not start" "$1" ${k_p16:+"$1.p16"}
	fi
}
# http_ref TAG FUNCTION PROGRAM NAME CONNS SECS [NOTE...]: a reference
# server (started by FUNCTION as TAG, see start_ref) under the HTTP load
# with CONNS connections for SECS: http.*.NAME, n/a if PROGRAM did not
# start.
http_ref() {
	h_tag=$1 h_start=$2 h_prog=$3 h_name=$4 h_conns=$5 h_secs=$6
	shift 6
	if start_ref "$h_tag" "$h_start"; then
		warm_http
		try "http.$h_name" wrk_run "$h_name" "$h_conns" "$h_secs"
		stop_ref "$h_tag"
		[ $# -gt 0 ] && note "$*"
	else
		na_set http "$h_prog did not start" "$h_name"
	fi
}
run_redis() {
	mkdir -p "$tmp/redis"
	launch redis redis-server --port "$port" --bind 127.0.0.1 --save '' \
	    --appendonly no --dir "$tmp/redis" --daemonize no
}

http=$builddir/servers/http
kv=$builddir/servers/kv
echo_bin=$builddir/servers/echo

# Every server runs in this cgroup, which counts its CPU time (cpu_used).
session_cgroup=$(cpu_cgroup_make "weft-bench-$$")
say "$mode run, figures to $tsv (fds per process: $nofile)"
if [ -n "$session_cgroup" ]; then
	note "server CPU time per request: counted in a cgroup ($session_cgroup)"
else
	note "server CPU time per request: no cgroup could be made; read from" \
	    "the servers' processes in /proc, in clock ticks"
fi
note "load generators and servers share this machine's $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') CPUs"
[ "$mode" = full ] && note "warm-up: weft's green HTTP and KV servers," \
    "nginx, redis-server and the floors get a short unmeasured load of" \
    "the same kind (wrk -c100 for 1 s; 5,000 SETs and GETs) before their" \
    "first measured one"

# ---- Warm-up -----------------------------------------------------------
# In full mode the servers behind the report's targets (weft's green HTTP
# and KV servers, nginx, redis-server) and the floors get a short load
# of the same kind before their measured ones, its figures discarded.
# The first requests on a fresh server pay for what it sets up once (a
# green server maps and faults in a stack per new connection), and in the
# first redis-benchmark test of a fresh server they moved the p99 by up
# to a third (weft's 0.62-0.86 ms, then 0.51-0.74 in the same test run
# again; redis-server's 0.53-0.69, then 0.52-0.68).  The figures are of
# the servers' steady state.
warm_http() {
	[ "$mode" = full ] || return 0
	bound "warm.$srv_tag" "$(wrk_bound 1)"
	load wrk wrk -t2 -c100 -d1s "http://$host:$port/" >/dev/null 2>&1 ||
	    note "$srv_tag: the warm-up load failed ($why)"
}
warm_kv() {
	[ "$mode" = full ] || return 0
	bound "warm.$srv_tag" "$(kv_bound 5000 5000)"
	# shellcheck disable=SC2086
	load redis-benchmark ${ld_cpu:+taskset -c "$ld_cpu"} \
	    redis-benchmark -h "$host" -p "$port" \
	    -t set,get -c 50 -n 5000 -q >/dev/null 2>&1 ||
	    note "$srv_tag: the warm-up load failed ($why)"
}

# ---- Rounds ------------------------------------------------------------
# The loads behind the report's targets (weft's green servers against
# nginx and redis-server) run in $rounds rounds, the servers taking turns
# and the order reversed every other round (green, nginx; nginx, green;
# ...), each round's figures in a file of their own.  rounds.awk then
# writes each figure's median with its samples: one run of a few seconds
# on two shared CPUs can move a p99 by a third, and a drift of the machine
# over the minutes of the run falls on both sides alike.
#
# In full mode each round also starts the reference a second time, under
# the load of the tail-latency target (nginx at -c1000, redis-server at
# -P1): the ratio of the reference to itself, round by round, is how far
# this machine moves a verdict with no change at all, and the report
# gives it beside the target's.
#
# in_rounds NAME FIRST SECOND [THIRD]: runs the functions FIRST, SECOND
# and THIRD (each starts its servers, loads them and stops them), in
# turns, $rounds times (THIRD, SECOND, FIRST every other round), and
# appends the merged figures to $tsv.
in_rounds() {
	r_main=$tsv
	r_files=
	r=1
	while [ "$r" -le "$rounds" ]; do
		tsv=$tmp/$1.round.$r
		: >"$tsv"
		r_files="$r_files $tsv"
		[ "$rounds" -gt 1 ] && say "$1: round $r of $rounds"
		if [ $((r % 2)) = 1 ]; then
			"$2"
			"$3"
			[ -n "${4-}" ] && "$4"
		else
			[ -n "${4-}" ] && "$4"
			"$3"
			"$2"
		fi
		r=$((r + 1))
	done
	tsv=$r_main
	# shellcheck disable=SC2086
	awk -F'\t' -f "$here/rounds.awk" $r_files >>"$tsv"
	[ "$rounds" -gt 1 ] && note "$1: weft's servers and their references" \
	    "in $rounds rounds, taking turns; each figure is the median"
}

# ---- HTTP --------------------------------------------------------------
# Green threads: --workers 2 in one process (http.*.green.w2, and
# http.*.green), and in full mode also --procs 2 --workers 1
# (http.*.green.p2).
http_green() {
	while IFS= read -r cf; do
		key=${cf%%:*}
		args=${cf#*:}
		# shellcheck disable=SC2086
		if start_demo "http.green.$key" "$http" --mode green $args; then
			warm_http
			try "http.green.$key" wrk_run "green.$key" 100 "$wrk_s" ||
			    gstalled="http.green.$key stalled: $stall_why"
			[ -n "$wrk_big_s" ] && try "http.green.$key.c1000" \
			    wrk_run "green.$key.c1000" 1000 "$wrk_big_s"
			stop_demo "http.green.$key"
		fi
	done <<EOF
$configs
EOF
}
http_nginx() {
	if [ -z "$ngx" ]; then
		note "nginx is not installed: no HTTP reference"
		# shellcheck disable=SC2086
		na_set http "nginx is not installed" nginx $big
	elif start_ref nginx run_nginx; then
		warm_http
		try http.nginx wrk_run nginx 100 "$wrk_s"
		[ -n "$wrk_big_s" ] &&
		    try http.nginx.c1000 wrk_run nginx.c1000 1000 "$wrk_big_s"
		stop_ref nginx
		note "nginx: 2 worker processes, return 200 \"hello\\n\", access_log off"
	else
		# shellcheck disable=SC2086
		na_set http "nginx did not start" nginx $big
	fi
}

# nginx started again, at -c1000 only (full mode): see in_rounds.
http_nginx_again() {
	[ -n "$wrk_big_s" ] || return 0
	if [ -z "$ngx" ]; then
		na_set http "nginx is not installed" nginx.again.c1000
	else
		http_ref nginx.again run_nginx nginx nginx.again.c1000 1000 \
		    "$wrk_big_s"
	fi
}

if have wrk; then
	say "http: servers/http and nginx under wrk"
	configs='w2:--workers 2'
	[ "$mode" = full ] && configs="$configs
p2:--procs 2 --workers 1"
	gstalled= # why a green configuration stalled
	big=
	[ "$mode" = full ] && big=nginx.c1000
	ngx=
	if have nginx || [ -x /usr/sbin/nginx ]; then
		ngx=$(command -v nginx || echo /usr/sbin/nginx)
		mkdir -p "$tmp/nginx/logs" "$tmp/nginx/tmp"
		cat >"$tmp/nginx/nginx.conf.in" <<EOF
worker_processes 2;
worker_rlimit_nofile 20000;
error_log $tmp/nginx/logs/error.log error;
pid $tmp/nginx/nginx.pid;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path $tmp/nginx/tmp;
  proxy_temp_path $tmp/nginx/tmp;
  fastcgi_temp_path $tmp/nginx/tmp;
  uwsgi_temp_path $tmp/nginx/tmp;
  scgi_temp_path $tmp/nginx/tmp;
  server {
    listen 127.0.0.1:@PORT@ backlog=4096;
    location / { default_type text/plain; return 200 "hello\n"; }
  }
}
EOF
	fi
	in_rounds http http_green http_nginx http_nginx_again
	[ -n "$ngx" ] && [ -n "$wrk_big_s" ] &&
	    note "nginx.again: nginx started a second time in each round," \
		"at -c1000: the reference against itself"
	# http.*.green is the first configuration (--workers 2), chosen before
	# the run: picking the faster of two afterwards picked on noise (their
	# medians at -c100 were within 2% in most runs) and took the tail of
	# whichever won (--procs 2 once had a 36 ms round at -c1000 where
	# --workers 2 had 12 ms).  The next one stands in only when the first
	# stalled (a stalled figure reads as 0 here).
	best=
	for key in $(printf '%s\n' "$configs" | sed 's/:.*//'); do
		r=$(awk -v n="http.rps.green.$key" -F'\t' '$1 == n { v = $2 }
		    END { print v + 0 }' "$tsv")
		if awk -v a="$r" 'BEGIN { exit !(a > 0) }'; then
			best=$key
			break
		fi
	done
	if [ -n "$best" ]; then
		# The chosen configuration's figures under the plain names, with
		# their samples.
		awk -F'\t' -v k="$best" -v OFS='\t' '
		function ours(n) {
			return n ~ ("^http\\.(rps|p50|p90|p99|p999|cpu_us)\\.green\\." \
			    k "(\\.c1000)?$")
		}
		function plain(n) { sub("\\.green\\." k, ".green", n); return n }
		ours($1) { $1 = plain($1); print }
		$1 ~ /^#(samples|stalled|retried)$/ && ours($2) {
			$2 = plain($2); print
		}' "$tsv" >"$tmp/best"
		cat "$tmp/best" >>"$tsv"
		case $best in
		w2) fig http.green.procs 1 procs; fig http.green.workers 2 workers ;;
		p2) fig http.green.procs 2 procs; fig http.green.workers 1 workers ;;
		esac
		note "http.rps.green is servers/http --mode green" \
		    "$(printf '%s\n' "$configs" | sed -n "s/^$best://p")"
	elif [ -n "$gstalled" ]; then
		# Every configuration stalled: so do the plain names.
		stalled_load http.green "$gstalled"
		[ -n "$wrk_big_s" ] && stalled_load http.green.c1000 "$gstalled"
		printf '%s\tstalled\t%s\t%s\n' http.green.procs procs \
		    "$gstalled" http.green.workers workers "$gstalled" >>"$tsv"
	fi
	for m in kthread process; do
		if start_demo "http.$m" "$http" --mode "$m"; then
			try "http.$m" wrk_run "$m" 100 "$wrk_s"
			[ -n "$wrk_big_s" ] &&
			    try "http.$m.c1000" wrk_run "$m.c1000" 1000 "$wrk_big_s"
			stop_demo "http.$m"
		fi
	done
	# Below any real server, a fixed answer to every request: the epoll
	# floor (bench/ref/epoll_floor.c: a read and a write per request, as
	# nginx and servers/http make) and the io_uring floor
	# (bench/ref/uring_floor.c: no read calls, one call for a batch of
	# sends).
	http_ref http.floor run_floor_http epoll_floor floor 100 "$wrk_s" \
	    "http floor: bench/ref/epoll_floor.c, one epoll thread, a fixed" \
	    "200 to every request"
	if [ ! -x "$builddir/bench/uring_floor" ]; then
		na_set http "bench/uring_floor is not built (no liburing)" \
		    floor.uring
	else
		http_ref http.floor.uring run_uring_http uring_floor floor.uring \
		    100 "$wrk_s" "http floor.uring: bench/ref/uring_floor.c, one io_uring" \
		    "thread, a fixed 200 to every request"
	fi
else
	note "wrk is not installed: HTTP rows skipped"
	why="wrk is not installed"
	na_set http "$why" green kthread process nginx floor floor.uring
	[ "$mode" = full ] && na_set http "$why" green.c1000 kthread.c1000 \
	    process.c1000 nginx.c1000 nginx.again.c1000 green.w2 green.p2
	[ "$mode" = quick ] && na_set http "$why" green.w2
	na http.green.procs procs "$why"
	na http.green.workers workers "$why"
fi

# ---- KV ----------------------------------------------------------------
kv_green() {
	if start_demo kv.green "$kv" --mode green --workers 2; then
		warm_kv
		try kv.green kv_run green
		try kv.green.p16 kv_run green.p16 -P 16
		stop_demo kv.green
		note "kv.rps.green is servers/kv --mode green --workers 2"
	fi
}
kv_redis() {
	if have redis-server; then
		kv_ref redis run_redis redis-server \
		    "redis-server: one thread, --save '' --appendonly no"
	else
		note "redis-server is not installed: no KV reference"
		na_set kv "redis-server is not installed" redis redis.p16
	fi
}
# redis-server started again, at -P1 only (full mode): see in_rounds.
kv_redis_again() {
	[ "$mode" = full ] || return 0
	if ! have redis-server; then
		na_set kv "redis-server is not installed" redis.again
	else
		kv_ref redis.again run_redis redis-server "" p1
	fi
}
# Pinned (full mode): the load generator on one CPU and the server on
# another, so that neither takes the other's; servers/kv with one worker,
# its CPU's.  kv.*.green.pin and kv.*.redis.pin, in rounds of their own.
# On two CPUs the loads above put a one-thread client and weft's two
# workers on them, and a worker that wakes takes the client's CPU; these
# say how the two servers compare where each has a CPU of its own.
pin_cpus() { # the first two CPUs this process may run on, or nothing
	awk '/^Cpus_allowed_list:/ {
		n = split($2, r, ",")
		for (i = 1; i <= n && k < 2; i++) {
			if (split(r[i], e, "-") == 1) e[2] = e[1]
			for (c = e[1] + 0; c <= e[2] + 0 && k < 2; c++)
				cpu[k++] = c
		}
	}
	END { if (k == 2) print cpu[0], cpu[1] }' /proc/self/status
}
kv_green_pin() {
	ld_cpu=$pin_ld srv_cpu=$pin_srv
	if start_demo kv.green.pin "$kv" --mode green --workers 1; then
		warm_kv
		try kv.green.pin kv_run green.pin
		try kv.green.pin.p16 kv_run green.pin.p16 -P 16
		stop_demo kv.green.pin
	fi
	ld_cpu='' srv_cpu=''
}
kv_redis_pin() {
	ld_cpu=$pin_ld srv_cpu=$pin_srv
	kv_ref redis.pin run_redis redis-server ""
	ld_cpu='' srv_cpu=''
}
pinned_na() {
	na_set kv "$1" green.pin green.pin.p16 redis.pin redis.pin.p16
}

if have redis-benchmark; then
	say "kv: servers/kv and redis-server under redis-benchmark"
	in_rounds kv kv_green kv_redis kv_redis_again
	[ "$mode" = full ] && have redis-server &&
	    note "redis.again: redis-server started a second time in each" \
		"round, at -P1: the reference against itself"
	if [ "$mode" = full ]; then
		pins=$(pin_cpus)
		if ! have taskset; then
			pinned_na "taskset is not installed"
		elif [ -z "$pins" ]; then
			pinned_na "fewer than two CPUs to pin to"
		elif ! have redis-server; then
			pinned_na "redis-server is not installed"
		else
			pin_ld=${pins% *} pin_srv=${pins#* }
			say "kv pinned: redis-benchmark on CPU $pin_ld, the" \
			    "server on CPU $pin_srv"
			in_rounds kv.pin kv_green_pin kv_redis_pin
			note "green.pin, redis.pin: redis-benchmark on CPU" \
			    "$pin_ld, the server on CPU $pin_srv (servers/kv" \
			    "--workers 1): each on a CPU of its own"
		fi
	fi
	kmodes='kthread process'
	[ "$mode" = quick ] && kmodes=
	for m in $kmodes; do
		if start_demo "kv.$m" "$kv" --mode "$m"; then
			try "kv.$m" kv_run "$m"
			stop_demo "kv.$m"
		fi
	done
	# The floor: what one read and one write per request cost a server
	# that does nothing else (bench/ref/epoll_floor.c).
	kv_ref floor run_floor epoll_floor \
	    "kv floor: bench/ref/epoll_floor.c, one epoll thread, no store"
	# The same with io_uring: no read calls, and one call for a
	# batch of writes (bench/ref/uring_floor.c).
	if [ ! -x "$builddir/bench/uring_floor" ]; then
		na_set kv "bench/uring_floor is not built (no liburing)" \
		    floor.uring floor.uring.p16
	else
		kv_ref floor.uring run_uring_kv uring_floor \
		    "kv floor.uring: bench/ref/uring_floor.c, one io_uring thread"
	fi
else
	note "redis-benchmark is not installed: KV rows skipped"
	na_set kv "redis-benchmark is not installed" green green.p16 redis \
	    redis.p16 floor floor.p16 floor.uring floor.uring.p16
	[ "$mode" = full ] && na_set kv "redis-benchmark is not installed" \
	    kthread process redis.again &&
	    pinned_na "redis-benchmark is not installed"
fi

# A large reply beside small requests: bench/mget_stall stores $stall_v
# values of 1 MiB, asks for all of them with one MGET (3 times) and, on
# another connection, times a PING every half millisecond meanwhile.  The
# green server runs on one worker, where the reply and the PINGs must
# share it.
stall_run() {
	name=$1
	out=$tmp/stall.$name
	bound "stall.$name" $((30 + stall_v / 4))
	say "  mget_stall: $stall_v x 1 MiB, 3 MGETs beside PINGs ($name," \
	    "timeout ${lt} s)"
	if ! load mget_stall "$builddir/bench/mget_stall" "$host" "$port" \
	    "$stall_v" 1048576 3 >"$out" 2>&1; then
		tail_why "$out"
		return 1
	fi
	# shellcheck disable=SC2046
	set -- $(cat "$out")
	if [ $# -ne 2 ]; then
		why="mget_stall gave no figures: $(tail -n 3 "$out" | tr '\n' ' ')"
		return 1
	fi
	fig "kv.mget_stall.$name" "$1" ms
	printf '%-22s worst PING %8.2f ms beside an MGET of %d MiB (%.1f ms)\n' \
	    "kv $name" "$1" "$stall_v" "$2"
}

say "kv: the worst PING beside a large MGET"
if start_demo stall.green "$kv" --mode green --workers 1; then
	try stall.green stall_run green
	stop_demo stall.green
fi
if [ "$mode" = full ] && start_demo stall.kthread "$kv" --mode kthread; then
	try stall.kthread stall_run kthread
	stop_demo stall.kthread
fi
if have redis-server && start_ref redis run_redis; then
	try stall.redis stall_run redis
	stop_ref redis
else
	na kv.mget_stall.redis ms "redis-server is not installed or did not start"
fi

# ---- Echo --------------------------------------------------------------
say "echo: servers/echo under bench/echo_load"
emodes='green kthread process'
[ "$mode" = quick ] && emodes=green
for m in $emodes; do
	if [ ! -x "$builddir/bench/echo_load" ]; then
		fail echo "bench/echo_load is not built"
		break
	fi
	margs=
	[ "$m" = green ] && margs='--workers 2'
	# shellcheck disable=SC2086
	if start_demo "echo.$m" "$echo_bin" --mode "$m" $margs; then
		try "echo.$m" echo_run "$m"
		stop_demo "echo.$m"
	fi
done
[ "$mode" = full ] && note "echo: bench/echo_load -c 100 -s 64 -d $echo_s (2 workers); servers/echo --mode green --workers 2"

# ---- Idle connections --------------------------------------------------
say "conns: idle keep-alive connections held against servers/http"
if [ ! -x "$builddir/bench/conn_hold" ]; then
	fail conn "bench/conn_hold is not built"
else
	if start_demo conn.green "$http" --mode green --workers 2; then
		try conn.green hold_run "" "$hold_n"
		stop_demo conn.green
	fi
	if start_demo conn.kthread "$http" --mode kthread; then
		try conn.kthread hold_run kthread "$hold_kn"
		stop_demo conn.kthread
	fi
	note "conn.10k: $hold_n connections (kernel threads: $hold_kn), each" \
	    "after one GET /, VmRSS of servers/http --mode green --workers 2" \
	    "(and --mode kthread)"
fi

say "done in $(($(date +%s) - start)) s${failed:+; failed:$failed}"
if [ "$standalone" = yes ]; then
	echo
	echo "figures (in $tsv):"
	awk -F'\t' '$1 !~ /^#/ { printf "  %-28s %12s %s\n", $1, $2, $3 }' "$tsv"
fi
[ -z "$failed" ]
