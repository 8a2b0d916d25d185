# lib.sh - process control shared by the scripts that run weft's servers
# under load (bench/servers.sh, soak/soak.sh, soak/operator.sh): a clock
# that does not fork, process queries, starting a server in a session of
# its own and reading its "listening on HOST:PORT" line, and stopping it.
# Sourced, not run; POSIX sh.  What a late exit or a process left behind
# means is the caller's policy: servers.sh notes it, the soak fails.
# The caller keeps the pids of the servers it runs in $servers.
# shellcheck shell=sh
# Variables are set for the caller, and read from it:
# shellcheck disable=SC2034,SC2154

servers=

# Sets cs to the time since boot in hundredths of a second.  Neither this
# nor alive() forks, so that waiting loops keep time on a loaded machine.
clock() {
	read -r up _ </proc/uptime
	cs=$((${up%.*} * 100 + 1${up#*.} - 100))
}

# Sets end to $1 hundredths of a second from now; before_end is true until
# then.
until_cs() {
	clock
	end=$((cs + $1))
}
before_end() {
	clock
	[ "$cs" -lt "$end" ]
}

# True while pid $1 runs (a zombie does not count).
alive() {
	st=
	read -r st 2>/dev/null <"/proc/$1/stat" || return 1
	st=${st##*) }
	st=${st%% *}
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# The children of pid $1, on one line.
children() {
	c=$(cat "/proc/$1/task/"*/children 2>/dev/null) ||
	    c=$(pgrep -P "$1" 2>/dev/null | tr '\n' ' ')
	# shellcheck disable=SC2086
	echo $c
}

# Field 22 of /proc/PID/stat: when the process started, in clock ticks.
started_at() {
	st=
	read -r st 2>/dev/null <"/proc/$1/stat" || {
		echo 0
		return
	}
	# shellcheck disable=SC2086
	set -- ${st##*) }
	shift 19
	echo "$1"
}

# session_start OUT ERR COMMAND...: runs COMMAND in a session of its own
# (so that it and whatever it forks can be stopped together), its output
# in OUT and ERR (OUT emptied first).  Sets spid and adds it to $servers.
session_start() {
	so=$1
	se=$2
	shift 2
	: >"$so"
	if command -v setsid >/dev/null 2>&1; then
		setsid "$@" >"$so" 2>"$se" </dev/null &
	else
		"$@" >"$so" 2>"$se" </dev/null &
	fi
	spid=$!
	servers="$servers $spid"
}

# await_listening OUT PID CS: waits up to CS hundredths of a second for
# the line "listening on HOST:PORT" in OUT, while PID lives.  Sets host
# (127.0.0.1 for a wildcard address) and port; returns 1 if it never came.
await_listening() {
	line=
	until_cs "$3"
	while before_end; do
		read -r line <"$1"
		case $line in
		"listening on "*)
			line=${line#listening on }
			break
			;;
		esac
		line=
		alive "$2" || break
		sleep 0.05
	done
	[ -n "$line" ] || return 1
	host=${line%:*}
	port=${line##*:}
	case $host in
	'' | 0.0.0.0 | '*' | '[::]' | ::) host=127.0.0.1 ;;
	esac
	return 0
}

# session_stop PID CS: SIGTERM to PID, up to CS hundredths of a second for
# it to exit, then SIGKILL of its whole session.  Sets stop_forced (yes if
# it had to be killed), stop_rc (its exit status otherwise) and stop_left
# (yes if processes were left in its session; they are killed), and takes
# PID off $servers.
session_stop() {
	sp=$1
	kill -TERM "$sp" 2>/dev/null
	until_cs "$2"
	while alive "$sp" && before_end; do
		sleep 0.05
	done
	stop_forced=no
	if alive "$sp"; then
		kill -KILL "-$sp" 2>/dev/null || kill -KILL "$sp" 2>/dev/null
		stop_forced=yes
	fi
	wait "$sp" 2>/dev/null
	stop_rc=$?
	stop_left=no
	if [ $stop_forced = yes ]; then
		kill -KILL "-$sp" 2>/dev/null
	elif kill -0 "-$sp" 2>/dev/null; then
		sleep 0.2
		if kill -0 "-$sp" 2>/dev/null; then
			stop_left=yes
			kill -KILL "-$sp" 2>/dev/null
		fi
	fi
	forget_server "$sp"
}

# Takes pid $1 off $servers (it has been reaped).
forget_server() {
	rest=
	for p in $servers; do
		[ "$p" = "$1" ] || rest="$rest $p"
	done
	servers=$rest
}
