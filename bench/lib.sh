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
# in OUT and ERR (OUT emptied first), and in the cgroup session_cgroup if
# that is set (see cpu_used).  Sets spid and adds it to $servers.
session_start() {
	so=$1
	se=$2
	shift 2
	: >"$so"
	if [ -n "${session_cgroup:-}" ]; then
		# Into the cgroup first, then the command in place of this
		# shell: the same process, so $! is the server's pid.
		# shellcheck disable=SC2016
		sh -c 'echo $$ >"$1/cgroup.procs" || exit 126; shift
		    command -v setsid >/dev/null 2>&1 && exec setsid "$@"
		    exec "$@"' sh "$session_cgroup" "$@" \
		    >"$so" 2>"$se" </dev/null &
	elif command -v setsid >/dev/null 2>&1; then
		setsid "$@" >"$so" 2>"$se" </dev/null &
	else
		"$@" >"$so" 2>"$se" </dev/null &
	fi
	spid=$!
	servers="$servers $spid"
}

# The CPU time a server costs, whatever processes and threads it runs its
# work in, and those that have ended too: servers started by session_start
# while session_cgroup names a cgroup run in it, and cpu_used reads the
# cgroup's counter (cgroup v2's cpu.stat, to the microsecond, or v1's
# cpuacct.usage, to the nanosecond).  cpu_cgroup_make makes one, where this
# user may (root, a cgroup file system mounted); without one, cpu_used
# falls back to the session's processes' own times in /proc, in clock
# ticks (10 ms), which loses threads and processes that ended unwaited.

# cpu_cgroup_make NAME: makes the cgroup NAME and prints its directory, or
# prints nothing where it cannot.
cpu_cgroup_make() {
	for r_ in /sys/fs/cgroup/unified /sys/fs/cgroup /sys/fs/cgroup/cpuacct; do
		[ -f "$r_/cgroup.procs" ] || continue
		if [ -f "$r_/cpu.stat" ] || [ -f "$r_/cpuacct.usage" ] ||
		    [ "$r_" = /sys/fs/cgroup/unified ]; then
			if mkdir "$r_/$1" 2>/dev/null; then
				if [ -f "$r_/$1/cpu.stat" ] ||
				    [ -f "$r_/$1/cpuacct.usage" ]; then
					echo "$r_/$1"
					return 0
				fi
				rmdir "$r_/$1" 2>/dev/null
			fi
		fi
	done
	return 1
}

# cpu_cgroup_drop DIR: removes a cgroup cpu_cgroup_make made, once what
# ran in it has gone.
cpu_cgroup_drop() {
	[ -n "$1" ] && rmdir "$1" 2>/dev/null
	return 0
}

# cpu_used SID: the CPU time (user + system, ns) used so far by the server
# of session SID: its cgroup's counter when session_cgroup is set, else
# the sum over the session's processes of utime, stime, cutime and cstime.
cpu_used() {
	if [ -n "${session_cgroup:-}" ]; then
		if [ -f "$session_cgroup/cpuacct.usage" ]; then
			cat "$session_cgroup/cpuacct.usage"
		else
			awk '$1 == "usage_usec" { printf "%.0f\n", $2 * 1000 }' \
			    "$session_cgroup/cpu.stat"
		fi
		return
	fi
	awk -v sid="$1" -v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" '
	FNR == 1 {
		s = $0
		sub(/^.*\) /, "", s) # past the command, which may hold ") "
		n = split(s, f, " ")
		# f[1] is the state, f[4] the session, f[12..15] utime,
		# stime, cutime and cstime
		if (n >= 15 && f[4] == sid)
			t += (f[12] + f[13] + f[14] + f[15]) * 1e9 / hz
	}
	END { printf "%.0f\n", t }' /proc/[0-9]*/stat 2>/dev/null
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
