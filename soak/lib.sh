# lib.sh - what the soak scripts (soak.sh, operator.sh) share: messages
# and problems, a clock, process queries, and starting and stopping the
# demo servers and the load client.  Sourced, not run.  The caller sets
# out (the results directory) and client_bin (soak/soak_client) first.
# shellcheck shell=sh
say() { printf '%s: %s\n' "${soak_tag:-soak}" "$*" >&2; }
problems=
problem() {
	problems="$problems
  - $*"
	say "PROBLEM: $*"
}

# Time since boot in hundredths of a second, in $cs; no fork.
clock() {
	read -r up _ </proc/uptime
	cs=$((${up%.*} * 100 + 1${up#*.} - 100))
}

# True while pid $1 runs (a zombie does not count).
alive() {
	st=
	read -r st 2>/dev/null <"/proc/$1/stat" || return 1
	st=${st##*) }
	st=${st%% *}
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# The children of pid $1, one line.
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

servers=  # pids of the servers running (each leads its own session)
clients=  # pids of the load clients running

# Starts a demo in a session of its own: start_demo TAG PROGRAM ARGS...
# Waits up to 15 s for its "listening on" line; sets spid and port.
start_demo() {
	tag=$1
	shift
	: >"$out/$tag.out"
	setsid "$@" --port 0 --quiet >"$out/$tag.out" 2>"$out/$tag.err" \
	    </dev/null &
	spid=$!
	servers="$servers $spid"
	clock
	give_up=$((cs + 1500))
	line=
	while [ "$cs" -lt "$give_up" ]; do
		read -r line <"$out/$tag.out"
		case $line in
		"listening on "*) break ;;
		esac
		line=
		alive "$spid" || break
		sleep 0.05
		clock
	done
	if [ -z "$line" ]; then
		problem "$tag ($*) did not start: $(head -c 300 "$out/$tag.err" |
		    tr '\n' ' ')"
		return 1
	fi
	port=${line##*:}
	return 0
}

# Stops server $1 (named $2): SIGTERM, 20 s to exit with status 0, then
# SIGKILL of its session.  Anything left in its session is a problem.
stop_server() {
	sp=$1
	what=$2
	kill -TERM "$sp" 2>/dev/null
	clock
	give_up=$((cs + 2000))
	while alive "$sp" && [ "$cs" -lt "$give_up" ]; do
		sleep 0.1
		clock
	done
	forced=no
	if alive "$sp"; then
		problem "$what did not exit within 20 s of SIGTERM: killed"
		kill -KILL "-$sp" 2>/dev/null || kill -KILL "$sp" 2>/dev/null
		forced=yes
	fi
	wait "$sp" 2>/dev/null
	rc=$?
	[ $forced = yes ] || [ $rc = 0 ] ||
	    problem "$what exited with status $rc after SIGTERM"
	if kill -0 "-$sp" 2>/dev/null; then
		sleep 0.5
		if kill -0 "-$sp" 2>/dev/null; then
			problem "$what left processes behind: killed"
			kill -KILL "-$sp" 2>/dev/null
		fi
	fi
	rest=
	for p in $servers; do
		[ "$p" = "$sp" ] || rest="$rest $p"
	done
	servers=$rest
}

# Ends client $1: SIGTERM (it reports and exits), SIGKILL after 30 s.
stop_client() {
	kill -TERM "$1" 2>/dev/null
	clock
	give_up=$((cs + 3000))
	while alive "$1" && [ "$cs" -lt "$give_up" ]; do
		sleep 0.1
		clock
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
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
	clock
	give_up=$((cs + 6000))
	while alive "$1" && [ "$cs" -lt "$give_up" ]; do
		sleep 0.2
		clock
	done
	if alive "$1"; then
		problem "the $2 client did not finish in time: stopped"
		kill -TERM "$1" 2>/dev/null
	fi
	wait "$1"
	crc=$?
	rest=
	for p in $clients; do
		[ "$p" = "$1" ] || rest="$rest $p"
	done
	clients=$rest
}

