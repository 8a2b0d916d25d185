#!/bin/sh
# operator.sh - what an operator does to a running server, done under load
# and checked: kill -9 of a worker, SIGTERM to one worker, SIGTERM to the
# supervisor or the server; and after each load, a check that no
# connection is left open on the server and no fd leaked.  Run by
# `make soak` after soak.sh, or alone:
#
#   sh soak/operator.sh [BUILDDIR]
#
# A round is:
#
#  1. servers/http --mode green --procs 2 --workers 1, loaded by
#     soak/soak_client (32 connections, every answer checked):
#       - kill -9 of the youngest worker: the supervisor must fork a new
#         one within 10 s and log "killed by SIGKILL; restarting";
#       - SIGTERM to the other worker (an operator's signal to one pid):
#         it drains, and the supervisor must start a new one within 20 s
#         and log "drained on a signal the supervisor did not send";
#       - the load ends; the client must have found every answer right
#         (requests in flight on the signalled workers aside: it is told
#         with SIGUSR1, as in soak.sh);
#       - within 10 s every server process must hold no TCP connection
#         (a connection left open after its client went away is a green
#         thread left parked) and no more fds than when it started (a
#         replaced worker is held to the first workers' count);
#       - the load starts again, and the supervisor gets SIGTERM: within
#         2 s new clients must be refused, and within 20 s it must exit 0
#         with nothing left in its session.
#  2. servers/http and servers/kv, --mode green --workers 2, loaded together:
#     the same check of connections and fds after the load, then SIGTERM
#     to each under a new load: refused at once, exit 0.
#
# Settings (environment): OPERATOR_ROUNDS (1).  Writes
# BUILDDIR/soak/results/operator/: the servers' and clients' output,
# operator.log (one line per action, with how long it took), summary.txt.
# Exit status: 0 when every check passed, 1 otherwise, 2 for bad usage,
# 130 when interrupted.

set -u

builddir=${1:-.}
rounds=${OPERATOR_ROUNDS:-1}
case $rounds in
'' | *[!0-9]* | 0)
	echo "operator: OPERATOR_ROUNDS must be a whole number above 0" >&2
	exit 2
	;;
esac

http_bin=$builddir/servers/http
kv_bin=$builddir/servers/kv
client_bin=$builddir/soak/soak_client
for b in "$http_bin" "$kv_bin" "$client_bin"; do
	if [ ! -x "$b" ]; then
		echo "operator: $b is not built (run make first)" >&2
		exit 2
	fi
done

out=$builddir/soak/results/operator
rm -rf "$out"
mkdir -p "$out" || exit 1
log=$out/operator.log
: >"$log"

# shellcheck disable=SC3045
ulimit -n 4096 2>/dev/null

# lib.sh sets cs, spid, port and cpid, and reads soak_tag.
# shellcheck disable=SC2034,SC2154
soak_tag=operator
# shellcheck source=soak/lib.sh
. "$(dirname "$0")/lib.sh"

cleanup() {
	trap - EXIT INT TERM
	stop_everything
}
trap cleanup EXIT
trap 'say interrupted; cleanup; exit 130' INT TERM

# One line of operator.log: what was done, and how it went.
note() { printf '%s\n' "$*" >>"$log"; }

nfds() {
	# shellcheck disable=SC2012
	ls "/proc/$1/fd" 2>/dev/null | wc -l
}

# The TCP connections (listening sockets aside) process $1 holds: their
# number in $nconn, and how many in each state in $cstates.
conns_of() {
	# shellcheck disable=SC2012
	set -- "$(ls -l "/proc/$1/fd" 2>/dev/null | awk '
	    BEGIN {
		split("ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT1 FIN_WAIT2 " \
		    "TIME_WAIT CLOSE CLOSE_WAIT LAST_ACK LISTEN CLOSING", name)
		for (f = 1; f <= 2; f++) {
			file = f == 1 ? "/proc/net/tcp" : "/proc/net/tcp6"
			while ((getline l < file) > 0) {
				split(l, x)
				if (x[4] != "0A" && x[10] ~ /^[0-9]+$/)
					st[x[10]] = name[("0x" x[4]) + 0]
			}
		}
	    }
	    / -> socket:\[/ {
		ino = $NF
		gsub(/[^0-9]/, "", ino)
		if (ino in st) { n++; by[st[ino]]++ }
	    }
	    END {
		printf "%d", n
		for (s in by) printf " %s:%d", s, by[s]
	    }')"
	nconn=${1%% *}
	cstates=${1#"$nconn"}
}

# The worker of supervisor $1 that started first ($2 = oldest) or last
# ($2 = youngest), in $wpid.
pick_worker() {
	wpid=
	best=
	for w in $(children "$1"); do
		alive "$w" || continue
		s=$(started_at "$w")
		if [ -z "$best" ] || { [ "$2" = oldest ] && [ "$s" -lt "$best" ]; } ||
		    { [ "$2" = youngest ] && [ "$s" -ge "$best" ]; }; then
			best=$s
			wpid=$w
		fi
	done
}

# Waits up to $2 hundredths for supervisor $1 to have 2 live workers, none
# of them $3 (may be empty).  True when it did; the wait in $waited.
await_workers() {
	clock
	from=$cs
	while :; do
		n=0
		old=no
		for w in $(children "$1"); do
			alive "$w" || continue
			n=$((n + 1))
			[ "$w" != "$3" ] || old=yes
		done
		clock
		waited=$((cs - from))
		[ "$n" -lt 2 ] || [ $old = yes ] || return 0
		[ "$waited" -lt "$2" ] || return 1
		sleep 0.02
	done
}

# Ends load client $1 (named $2) with SIGTERM; it must exit 0 (every
# answer right) within 30 s.
end_load() {
	stop_client "$1"
	if [ $stopped = yes ]; then
		problem "the $2 client did not end within 30 s of SIGTERM"
	elif [ "$crc" != 0 ]; then
		problem "the $2 client found wrong answers (status $crc):" \
		    "$(grep -v '^soak_client' "$out/$2.err" | head -3 | tr '\n' '|')"
	fi
	tallies=$(awk -F'\t' '$1 == "tally" && $4 != "connect" {
		s += $5; o += $6; l += $7; e += $8 }
		END { printf "%d sent, %d ok, %d lost, %d errors", s, o, l, e }' \
	    "$out/$2.out")
	note "$2: $tallies"
}

# The load is over: within 10 s, process $1 (named $2) must hold no TCP
# connection and at most $3 fds.
quiet_check() {
	clock
	give_up=$((cs + 1000))
	while :; do
		conns_of "$1"
		fds=$(nfds "$1")
		clock
		if [ "$nconn" -eq 0 ] && [ "$fds" -le "$3" ]; then
			note "$2: no connection left, $fds fds (at start $3)," \
			    "quiet after $((cs - give_up + 1000))0 ms"
			return
		fi
		[ "$cs" -lt "$give_up" ] || break
		sleep 0.1
	done
	left_conns=$((left_conns + nconn))
	[ "$fds" -le "$3" ] || leaked_fds=$((leaked_fds + fds - $3))
	problem "$2 (pid $1): 10 s after its clients went away it holds" \
	    "$nconn connection(s)${cstates:+ (}${cstates# }${cstates:+)} and" \
	    "$fds fds (at start $3)"
}

# SIGTERM to server $1 (named $2, port $3, probe kind $4) under load:
# new clients must be refused within 2 s, and it must exit 0 within 20 s
# with nothing left in its session.
term_under_load() {
	kill -TERM "$1" 2>/dev/null
	clock
	t0=$cs
	refused_in=
	while [ $((cs - t0)) -lt 200 ]; do
		if [ "$4" = http ]; then
			pr=$("$client_bin" --probe http --http-port "$3")
		else
			pr=$("$client_bin" --probe kv --kv-port "$3")
		fi
		clock
		if [ "$pr" = refused ]; then
			refused_in=$((cs - t0))
			break
		fi
		sleep 0.02
	done
	if [ -n "$refused_in" ]; then
		[ "$refused_in" -le "$refuse_max" ] || refuse_max=$refused_in
	else
		problem "$2 still took new clients 2 s after SIGTERM"
	fi
	while alive "$1" && [ $((cs - t0)) -lt 2000 ]; do
		sleep 0.05
		clock
	done
	if alive "$1"; then
		problem "$2 did not exit within 20 s of SIGTERM under load: killed"
		kill -KILL "-$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null
	fi
	wait "$1"
	rc=$?
	[ "$rc" = 0 ] || problem "$2 exited with status $rc after SIGTERM under load"
	took=$((cs - t0))
	[ "$took" -le "$term_max" ] || term_max=$took
	terms_sup=$((terms_sup + 1))
	note "$2: SIGTERM under load: refused new clients after" \
	    "${refused_in:-?}0 ms, exited $rc after ${took}0 ms"
	sleep 0.2
	if kill -0 "-$1" 2>/dev/null; then
		problem "$2 left processes behind after SIGTERM: killed"
		kill -KILL "-$1" 2>/dev/null
	fi
	forget_server "$1"
}

# signal_worker oldest|youngest SIGNAL CS WHAT: sends SIGNAL to that
# worker of $sup under the load $load (told with SIGUSR1), and waits up to
# CS hundredths of a second for its replacement; waited: how long it took,
# or empty if it did not come (a problem).
signal_worker() {
	pick_worker "$sup" "$1"
	kill -"$2" "$wpid" 2>/dev/null
	kill -USR1 "$load" 2>/dev/null
	if await_workers "$sup" "$3" "$wpid"; then
		note "$name: $4 to worker $wpid: replaced after ${waited}0 ms"
	else
		waited=
		problem "$name: worker $wpid, sent $4, was not replaced within" \
		    "$(($3 / 100)) s"
	fi
}

kills=0
terms=0
terms_sup=0
restart_max=0
drain_restart_max=0
refuse_max=0
term_max=0
left_conns=0
leaked_fds=0
checks=0

procs_round() {
	name=http-procs-$1
	start_demo "$name" "$http_bin" --mode green --procs 2 --workers 1 || return
	sup=$spid
	hp=$port
	if ! await_workers "$sup" 1000 ""; then
		problem "$name: the supervisor did not start 2 workers"
		stop_server "$sup" "$name"
		return
	fi
	sleep 0.5
	base_sup=$(nfds "$sup")
	base_w=0
	for w in $(children "$sup"); do
		n=$(nfds "$w")
		[ "$n" -le "$base_w" ] || base_w=$n
	done

	start_client "$name-load" --http-port "$hp" --seconds 3600 \
	    --http-conns 32 --kv-conns 0 --rate 800 --report-every 3600
	load=$cpid
	sleep 3

	signal_worker youngest KILL 1000 "kill -9"
	kills=$((kills + 1))
	[ -z "$waited" ] || [ "$waited" -le "$restart_max" ] || restart_max=$waited
	sleep 3

	signal_worker oldest TERM 2000 "SIGTERM"
	terms=$((terms + 1))
	[ -z "$waited" ] || [ "$waited" -le "$drain_restart_max" ] ||
	    drain_restart_max=$waited
	sleep 3

	end_load "$load" "$name-load"
	checks=$((checks + 1))
	quiet_check "$sup" "$name supervisor" "$base_sup"
	for w in $(children "$sup"); do
		alive "$w" || continue
		checks=$((checks + 1))
		quiet_check "$w" "$name worker" "$base_w"
	done

	start_client "$name-load2" --http-port "$hp" --seconds 3600 \
	    --http-conns 32 --kv-conns 0 --rate 800 --report-every 3600
	load=$cpid
	sleep 3
	term_under_load "$sup" "$name supervisor" "$hp" http
	stop_client "$load"

	n=$(grep -c 'killed by SIGKILL; restarting' "$out/$name.err")
	[ "$n" -eq 1 ] ||
	    problem "$name: $n lines \"killed by SIGKILL; restarting\", not 1"
	n=$(grep -c 'drained on a signal the supervisor did not send; restarting' \
	    "$out/$name.err")
	[ "$n" -eq 1 ] ||
	    problem "$name: $n lines \"drained on a signal the supervisor did" \
	        "not send\", not 1"
}

green_round() {
	ht=http-green-$1
	kt=kv-green-$1
	start_demo "$ht" "$http_bin" --mode green --workers 2 || return
	hpid=$spid
	hport=$port
	if ! start_demo "$kt" "$kv_bin" --mode green --workers 2; then
		stop_server "$hpid" "$ht"
		return
	fi
	kpid=$spid
	kport=$port
	sleep 0.5
	base_h=$(nfds "$hpid")
	base_k=$(nfds "$kpid")

	start_client "$ht-load" --http-port "$hport" --kv-port "$kport" \
	    --seconds 3600 --http-conns 32 --kv-conns 16 --rate 800 \
	    --report-every 3600
	load=$cpid
	sleep 8
	end_load "$load" "$ht-load"
	checks=$((checks + 2))
	quiet_check "$hpid" "$ht" "$base_h"
	quiet_check "$kpid" "$kt" "$base_k"

	start_client "$ht-load2" --http-port "$hport" --kv-port "$kport" \
	    --seconds 3600 --http-conns 32 --kv-conns 16 --rate 800 \
	    --report-every 3600
	load=$cpid
	sleep 3
	term_under_load "$hpid" "$ht" "$hport" http
	term_under_load "$kpid" "$kt" "$kport" kv
	stop_client "$load"
}

say "$rounds round(s); results in $out"
round=1
while [ "$round" -le "$rounds" ]; do
	procs_round "$round"
	green_round "$round"
	round=$((round + 1))
done

{
	echo
	echo "weft operator checks: $rounds round(s) under load"
	echo "  kill -9 of a worker: $kills (replaced within" \
	    "$((restart_max * 10)) ms at worst)"
	echo "  SIGTERM to one worker: $terms (replaced within" \
	    "$((drain_restart_max * 10)) ms at worst)"
	echo "  SIGTERM to a supervisor or server: $terms_sup (new clients" \
	    "refused within $((refuse_max * 10)) ms, exit 0 within" \
	    "$((term_max * 10)) ms at worst)"
	echo "  after each load, $checks server processes checked:" \
	    "$left_conns connection(s) left open, $leaked_fds fd(s) leaked"
	verdict
} | tee "$out/summary.txt"

[ -z "$problems" ]
