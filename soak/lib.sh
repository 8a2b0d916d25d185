# lib.sh - what the soak scripts (soak.sh, operator.sh) share: messages
# and problems, and starting and stopping the demo servers and the load
# client, on the process control of bench/lib.sh (a clock, process
# queries, sessions), which servers.sh uses too.  Sourced, not run.  The
# caller sets out (the results directory) and client_bin (soak/soak_client)
# first.
# shellcheck shell=sh
# Variables are set for the caller, and read from it:
# shellcheck disable=SC2034,SC2154

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../bench/lib.sh"
say() { printf '%s: %s\n' "${soak_tag:-soak}" "$*" >&2; }
problems=
problem() {
	problems="$problems
  - $*"
	say "PROBLEM: $*"
}

clients= # pids of the load clients running; $servers: the servers

# Starts a demo in a session of its own: start_demo TAG PROGRAM ARGS...
# Waits up to 15 s for its "listening on" line; sets spid and port.
start_demo() {
	tag=$1
	shift
	session_start "$out/$tag.out" "$out/$tag.err" "$@" --port 0 --quiet
	if ! await_listening "$out/$tag.out" "$spid" 1500; then
		problem "$tag ($*) did not start: $(head -c 300 "$out/$tag.err" |
		    tr '\n' ' ')"
		return 1
	fi
	return 0
}

# Stops server $1 (named $2): SIGTERM, 20 s to exit with status 0, then
# SIGKILL of its session.  Anything left in its session is a problem.
stop_server() {
	session_stop "$1" 2000
	if [ $stop_forced = yes ]; then
		problem "$2 did not exit within 20 s of SIGTERM: killed"
	elif [ "$stop_rc" != 0 ]; then
		problem "$2 exited with status $stop_rc after SIGTERM"
	fi
	[ $stop_left = no ] || problem "$2 left processes behind: killed"
}

# Waits up to $2 hundredths of a second for client $1 to end; then, if it
# still runs, sends it $3 (a signal name).  Reaps it, with its exit status
# in $crc and stopped=yes if it had to be signalled, and forgets it.
reap_client() {
	until_cs "$2"
	while alive "$1" && before_end; do
		sleep 0.1
	done
	stopped=no
	if alive "$1"; then
		stopped=yes
		kill -"$3" "$1" 2>/dev/null
	fi
	wait "$1" 2>/dev/null
	crc=$?
	rest=
	for p in $clients; do
		[ "$p" = "$1" ] || rest="$rest $p"
	done
	clients=$rest
}

# Ends client $1: SIGTERM (it reports and exits), SIGKILL after 30 s; its
# status in $crc, stopped=yes if it had to be killed.
stop_client() {
	kill -TERM "$1" 2>/dev/null
	reap_client "$1" 3000 KILL
}


# Starts a load client: start_client TAG ARGS...; sets cpid.  Waits up to
# 15 s for its first line (it handles SIGUSR1 from then on).
start_client() {
	tag=$1
	shift
	"$client_bin" --label "$tag" "$@" >"$out/$tag.out" 2>"$out/$tag.err" \
	    </dev/null &
	cpid=$!
	clients="$clients $cpid"
	clock
	give_up=$((cs + 1500))
	while [ "$cs" -lt "$give_up" ] && alive "$cpid" &&
	    ! [ -s "$out/$tag.err" ]; do
		sleep 0.05
		clock
	done
}

# Waits for client $1 (named $2), which ends by itself; its status goes to
# $crc.
finish_client() {
	reap_client "$1" 6000 TERM
	[ $stopped = no ] || problem "the $2 client did not finish in time: stopped"
}

# Stops every client and server still running (the scripts' exit trap).
stop_everything() {
	for p in $clients; do
		stop_client "$p"
	done
	clients=
	for p in $servers; do
		stop_server "$p" "server $p" >/dev/null 2>&1
	done
}

# The verdict line(s) of a summary: PASS, or FAIL with the problems.
verdict() {
	if [ -z "$problems" ]; then
		echo "verdict: PASS"
	else
		echo "verdict: FAIL$problems"
	fi
}

