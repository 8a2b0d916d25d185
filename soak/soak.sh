#!/bin/sh
# soak.sh - the soak test of weft's HTTP and KV servers (`make soak`).
#
#   sh soak/soak.sh [BUILDDIR]
#
# Starts servers/http --mode green --procs 2 --workers 1 and servers/kv --mode
# green on ephemeral ports (--port 0; the port is read back from the
# "listening on HOST:PORT" line), and loads both for SOAK_SECONDS with
# soak/soak_client, which checks every answer (see soak_client.c).  Meanwhile:
#
#  - every SOAK_KILL_EVERY seconds one HTTP worker process is killed with
#    SIGKILL (always the youngest: the oldest worker lives the whole run and
#    shows whether a worker leaks), the client is told with SIGUSR1 (its
#    requests that die with the worker count as "lost to a killed worker",
#    not as errors), and the supervisor must fork a new worker within 10 s;
#  - every SOAK_SAMPLE_EVERY seconds each server process is sampled: VmRSS,
#    open fds, open fds that are not established TCP connections ("idle
#    fds": what is left when the connections open at that instant are not
#    counted), threads; and the supervisor's children, for zombies;
#  - for SOAK_KTHREAD_SHARE percent of the run, in the middle, the same
#    servers in --mode kthread get a lighter load of their own.
#
# Then the operator's checks run (operator.sh, a round per 600 s of the
# run, at least one), and their summary joins this one.
#
# At the end: the servers must exit 0 on SIGTERM and leave nothing behind,
# and for the green KV server, the HTTP supervisor and the surviving HTTP
# worker, the median of the last third of the samples (after a warm-up of a
# tenth of the run) must not exceed the median of the first third by more
# than 20% of RSS (and at least 1 MiB), 10 idle fds or 2 threads.  The
# servers do not expose how many green threads are alive, so that is not
# sampled.  Server output other than the restart lines fails the run; the
# hog detector's lines ("ran N ms without yielding") are only counted, as a
# machine shared with other work can stall a worker thread.
#
# Settings (environment): SOAK_SECONDS (600), SOAK_KILL_EVERY (30; 10 for
# runs under 300 s; 0: no kills), SOAK_SAMPLE_EVERY (5; 2 for runs under
# 300 s), SOAK_KTHREAD_SHARE (20; 0: no kthread phase), SOAK_HTTP_CONNS (48),
# SOAK_KV_CONNS (24), SOAK_RATE (requests per second per server, 1000).
#
# Writes BUILDDIR/soak/results/: samples.tsv (t, process, pid, rss_kb, fds,
# idle_fds, threads), the clients' and servers' output, summary.txt.
# Exit status: 0 when every check passed, 1 otherwise, 2 for bad usage,
# 130 when interrupted.  Every process started is stopped on exit (an
# EXIT/INT/TERM trap), and waited for.

set -u

builddir=${1:-.}
secs=${SOAK_SECONDS:-600}
case $secs in
'' | *[!0-9]*)
	echo "soak: SOAK_SECONDS must be a whole number of seconds" >&2
	exit 2
	;;
esac
if [ "$secs" -lt 20 ]; then
	echo "soak: SOAK_SECONDS must be at least 20" >&2
	exit 2
fi
if [ "$secs" -lt 300 ]; then
	kill_every=${SOAK_KILL_EVERY:-10}
	sample_every=${SOAK_SAMPLE_EVERY:-2}
else
	kill_every=${SOAK_KILL_EVERY:-30}
	sample_every=${SOAK_SAMPLE_EVERY:-5}
fi
kt_share=${SOAK_KTHREAD_SHARE:-20}
http_conns=${SOAK_HTTP_CONNS:-48}
kv_conns=${SOAK_KV_CONNS:-24}
rate=${SOAK_RATE:-1000}
for v in "$kill_every" "$sample_every" "$kt_share" "$http_conns" \
    "$kv_conns" "$rate"; do
	case $v in
	'' | *[!0-9]*)
		echo "soak: SOAK_* settings must be whole numbers" >&2
		exit 2
		;;
	esac
done
[ "$sample_every" -ge 1 ] || sample_every=1
[ "$kt_share" -le 50 ] || kt_share=50

http_bin=$builddir/servers/http
kv_bin=$builddir/servers/kv
client_bin=$builddir/soak/soak_client
reset_bin=$builddir/tests/test_reset
for b in "$http_bin" "$kv_bin" "$client_bin" "$reset_bin"; do
	if [ ! -x "$b" ]; then
		echo "soak: $b is not built (run make first)" >&2
		exit 2
	fi
done

out=$builddir/soak/results
rm -rf "$out"
mkdir -p "$out" || exit 1
samples=$out/samples.tsv
printf 't\tprocess\tpid\trss_kb\tfds\tidle_fds\tthreads\n' >"$samples"

# shellcheck disable=SC3045
ulimit -n 4096 2>/dev/null

# lib.sh sets cs, spid, port, cpid, crc, servers and clients.
# shellcheck disable=SC2154
# shellcheck source=soak/lib.sh
. "$(dirname "$0")/lib.sh"

reset_pid=
cleanup() {
	trap - EXIT INT TERM
	if [ -n "$reset_pid" ]; then
		kill "$reset_pid" 2>/dev/null
		pkill -P "$reset_pid" 2>/dev/null
		wait "$reset_pid" 2>/dev/null
		reset_pid=
	fi
	stop_everything
	rm -f "$out/.est"
}
trap cleanup EXIT
trap 'say interrupted; cleanup; exit 130' INT TERM

# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------

# One line of samples.tsv for pid $2 named $1.
sample() {
	rss=
	thr=
	while read -r k v _; do
		case $k in
		VmRSS:) rss=$v ;;
		Threads:) thr=$v ;;
		esac
	done 2>/dev/null <"/proc/$2/status"
	[ -n "$rss" ] || return
	# shellcheck disable=SC2012
	fds=$(ls -l "/proc/$2/fd" 2>/dev/null | awk -v est="$out/.est" '
	    BEGIN { while ((getline l < est) > 0) e[l] = 1 }
	    / -> / { n++
	             if ($NF ~ /^socket:\[/) {
	                 ino = substr($NF, 9, length($NF) - 9)
	                 if (ino in e) s++ } }
	    END { printf "%d\t%d", n, n - s }')
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$elapsed" "$1" "$2" "$rss" "$fds" \
	    "$thr" >>"$samples"
}

zombies_prev=
zombie_pids=
sample_all() {
	awk 'FNR > 1 && $4 == "01" { print $10 }' /proc/net/tcp \
	    /proc/net/tcp6 >"$out/.est" 2>/dev/null
	sample kv "$kv_pid"
	sample http.supervisor "$sup"
	zombies_now=
	for w in $(children "$sup"); do
		if ! alive "$w"; then
			zombies_now="$zombies_now $w"
			continue
		fi
		if [ "$w" = "$sentinel" ]; then
			sample http.worker.oldest "$w"
		else
			sample http.worker.young "$w"
		fi
	done
	# A zombie seen twice in a row was not reaped.
	for z in $zombies_now; do
		case " $zombies_prev " in
		*" $z "*)
			case " $zombie_pids " in
			*" $z "*) ;;
			*)
				zombie_pids="$zombie_pids $z"
				problem "worker $z stayed a zombie for $sample_every s or more"
				;;
			esac
			;;
		esac
	done
	zombies_prev=$zombies_now
	[ -n "$kt_http" ] && sample http.kthread "$kt_http"
	[ -n "$kt_kv" ] && sample kv.kthread "$kt_kv"
	sample client "$green_client"
}

# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

say "$secs s: kill an http worker every $kill_every s, sample every" \
    "$sample_every s, kthread phase ${kt_share}% of the run; results in $out"

start_demo http "$http_bin" --mode green --procs 2 --workers 1 || exit 1
sup=$spid
http_port=$port
start_demo kv "$kv_bin" --mode green || exit 1
kv_pid=$spid
kv_port=$port

# Both workers up; the oldest is the one never killed.
clock
give_up=$((cs + 1000))
while [ "$(children "$sup" | wc -w)" -lt 2 ] && [ "$cs" -lt "$give_up" ]; do
	sleep 0.05
	clock
done
sentinel=
best=
for w in $(children "$sup"); do
	s=$(started_at "$w")
	if [ -z "$best" ] || [ "$s" -lt "$best" ] ||
	    { [ "$s" -eq "$best" ] && [ "$w" -lt "$sentinel" ]; }; then
		best=$s
		sentinel=$w
	fi
done
if [ -z "$sentinel" ]; then
	problem "the http supervisor $sup started no worker"
	exit 1
fi

# The reset storm (tests/test_reset: clients that reset their connections
# at every stage of a request, against a green server on 2 workers) runs
# beside the servers for the whole run, in storms of up to 30 s, in turn
# with and without its poll_stall site; every reset connection's server
# thread must end.
reset_loop() {
	end=$(($(date +%s) + secs))
	n=0
	while :; do
		left=$((end - $(date +%s)))
		[ "$left" -le 30 ] || left=30
		[ "$left" -ge 2 ] || break
		if WEFT_RESET_SECONDS=$left WEFT_RESET_STALL=$((n % 2)) \
		    "$reset_bin" --verbose >>"$out/reset.log" 2>&1; then
			echo "storm $n: ok" >>"$out/reset.log"
		else
			echo "storm $n: FAILED" >>"$out/reset.log"
		fi
		n=$((n + 1))
	done
}
reset_loop &
reset_pid=$!

report_every=$((secs / 10))
[ "$report_every" -ge 5 ] || report_every=5
start_client green --http-port "$http_port" --kv-port "$kv_port" \
    --seconds "$secs" --http-conns "$http_conns" --kv-conns "$kv_conns" \
    --rate "$rate" --report-every "$report_every"
green_client=$cpid

kt_dur=$((secs * kt_share / 100))
kt_at=$((secs * (100 - kt_share) / 200))
[ "$kt_dur" -ge 5 ] || kt_dur=0
kt_http=
kt_kv=
kt_client=
kt_state=waiting
[ "$kt_dur" -gt 0 ] || kt_state=off

kills=0
restarts=0
restart_max=0
victim=
killed_at=0
clock
t0=$cs
next_sample=0
next_kill=$((kill_every * 100))
[ "$kill_every" -gt 0 ] || next_kill=-1
elapsed=0

while :; do
	clock
	el=$((cs - t0))
	elapsed=$((el / 100))
	[ "$el" -lt $((secs * 100)) ] || break
	if ! alive "$green_client"; then
		problem "the load client ended before the run did"
		break
	fi

	# A killed worker must be replaced within 10 s.
	if [ -n "$victim" ]; then
		kids=$(children "$sup")
		case " $kids " in
		*" $victim "*) replaced=no ;;
		*) replaced=yes ;;
		esac
		if [ $replaced = yes ] && [ "$(echo "$kids" | wc -w)" -ge 2 ]; then
			restarts=$((restarts + 1))
			lat=$((cs - killed_at))
			[ "$lat" -le "$restart_max" ] || restart_max=$lat
			victim=
		elif [ $((cs - killed_at)) -gt 1000 ]; then
			problem "worker $victim was not replaced within 10 s"
			victim=
		fi
	fi

	if [ "$el" -ge "$next_sample" ]; then
		sample_all
		next_sample=$((next_sample + sample_every * 100))
	fi

	# Kill the youngest worker (not in the last 15 s: its restart must be
	# seen).
	if [ "$next_kill" -ge 0 ] && [ "$el" -ge "$next_kill" ] &&
	    [ -z "$victim" ] && [ "$el" -lt $(((secs - 15) * 100)) ]; then
		w=
		for k in $(children "$sup"); do
			[ "$k" = "$sentinel" ] || ! alive "$k" || w=$k
		done
		if [ -n "$w" ]; then
			kill -KILL "$w" 2>/dev/null
			kill -USR1 "$green_client" 2>/dev/null
			clock
			killed_at=$cs
			victim=$w
			kills=$((kills + 1))
			next_kill=$((next_kill + kill_every * 100))
		fi
	fi

	# The kthread phase.
	if [ $kt_state = waiting ] && [ "$el" -ge $((kt_at * 100)) ]; then
		say "kthread phase: $kt_dur s"
		if start_demo http-kthread "$http_bin" --mode kthread; then
			kt_http=$spid
			kt_http_port=$port
			if start_demo kv-kthread "$kv_bin" --mode kthread; then
				kt_kv=$spid
				start_client kthread --http-port "$kt_http_port" \
				    --kv-port "$port" --seconds "$kt_dur" \
				    --http-conns 16 --kv-conns 8 \
				    --rate $((rate / 3 + 1)) --workers 1 \
				    --report-every "$report_every"
				kt_client=$cpid
			fi
		fi
		kt_state=running
		[ -n "$kt_client" ] || kt_state=failed
	fi
	if [ $kt_state = running ] && ! alive "$kt_client"; then
		finish_client "$kt_client" kthread
		[ "$crc" = 0 ] || problem "the kthread client failed (status $crc)"
		awk 'FNR > 1 && $4 == "01" { print $10 }' /proc/net/tcp \
		    /proc/net/tcp6 >"$out/.est" 2>/dev/null
		sample http.kthread "$kt_http"
		sample kv.kthread "$kt_kv"
		stop_server "$kt_http" "http --mode kthread"
		stop_server "$kt_kv" "kv --mode kthread"
		kt_http=
		kt_kv=
		kt_state=finished
	fi
	sleep 0.25
done
sample_all
case " $(children "$sup") " in
*" $sentinel "*) ;;
*) problem "the oldest http worker ($sentinel), never killed, is gone" ;;
esac

say "load over; waiting for the client's final checks"
finish_client "$green_client" green
[ "$crc" = 0 ] || problem "the green client failed (status $crc)"
if [ $kt_state = running ]; then
	finish_client "$kt_client" kthread
	[ "$crc" = 0 ] || problem "the kthread client failed (status $crc)"
	stop_server "$kt_http" "http --mode kthread"
	stop_server "$kt_kv" "kv --mode kthread"
	kt_http=
	kt_kv=
fi
[ -z "$victim" ] || problem "worker $victim was not replaced"
stop_server "$sup" "http --mode green --procs 2"
stop_server "$kv_pid" "kv --mode green"
rm -f "$out/.est"

# ---------------------------------------------------------------------------
# Checks and the summary
# ---------------------------------------------------------------------------

wait "$reset_pid" 2>/dev/null
reset_pid=

# The operator's checks (operator.sh): kill -9, SIGTERM to one worker and
# to the supervisor, each under load, and no connection left open nor fd
# leaked after each load; a round per ten minutes of the run.
op_rounds=$((secs / 600))
[ "$op_rounds" -ge 1 ] || op_rounds=1
say "operator checks: $op_rounds round(s)"
if ! OPERATOR_ROUNDS=$op_rounds sh "$(dirname "$0")/operator.sh" \
    "$builddir" >/dev/null 2>"$out/operator.err"; then
	problem "the operator checks failed (see operator/summary.txt)"
fi
storms=$(grep -c '^storm ' "$out/reset.log" 2>/dev/null)
storms_failed=$(grep -c '^storm .*FAILED' "$out/reset.log" 2>/dev/null)
resets=$(awk '/connections reset/ { for (i = 1; i < NF; i++)
	if ($(i + 1) == "connections") n += $i } END { print n + 0 }' \
    "$out/reset.log" 2>/dev/null)
stuck=$(awk '/ stuck$/ { n += $(NF - 1) } END { print n + 0 }' \
    "$out/reset.log" 2>/dev/null)
[ "${storms:-0}" -gt 0 ] || problem "the reset storm never ran"
[ "${storms_failed:-0}" -eq 0 ] ||
    problem "$storms_failed of $storms reset storms failed (see reset.log)"
[ "${stuck:-0}" -eq 0 ] ||
    problem "$stuck server threads stayed parked on reset connections"

[ "$kills" -eq "$restarts" ] ||
    problem "$kills workers killed, $restarts replacements seen"
restart_lines=$(grep -c 'killed by SIGKILL; restarting' "$out/http.err")
[ "$restart_lines" -eq "$kills" ] ||
    problem "$kills kills but $restart_lines restart lines from the supervisor"
hogs=0
for f in "$out"/http.err "$out"/kv.err "$out"/http-kthread.err \
    "$out"/kv-kthread.err; do
	[ -f "$f" ] || continue
	h=$(grep -c 'without yielding' "$f")
	hogs=$((hogs + h))
	other=$(grep -v -e 'killed by SIGKILL; restarting' \
	    -e 'without yielding' "$f" | head -5)
	[ -z "$other" ] ||
	    problem "unexpected output from $(basename "$f" .err): $(echo "$other" |
	        tr '\n' '|')"
done

warm=$((secs / 10))
[ "$warm" -ge 5 ] || warm=5
flat=$(awk -F'\t' -v warm="$warm" '
	function med(a, lo, hi,   n, i, j, t, b) {
		n = 0
		for (i = lo; i <= hi; i++) b[++n] = a[i]
		for (i = 2; i <= n; i++) {
			t = b[i]
			for (j = i - 1; j >= 1 && b[j] > t; j--) b[j + 1] = b[j]
			b[j + 1] = t
		}
		return n % 2 ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
	}
	NR > 1 {
		p = $2
		if (!(p in cnt)) order[++np] = p
		all[p]++
		if (!(p in f_rss)) { f_rss[p] = $4; f_fd[p] = $5 }
		l_rss[p] = $4; l_fd[p] = $5
		if ($1 < warm && (p == "kv" || p == "http.supervisor" ||
		    p == "http.worker.oldest")) { cnt[p] += 0; next }
		n = ++cnt[p]
		R[p, n] = $4; F[p, n] = $6; T[p, n] = $7; A[p, n] = $5
	}
	END {
		for (k = 1; k <= np; k++) {
			p = order[k]; n = cnt[p]
			checked = (p == "kv" || p == "http.supervisor" ||
			    p == "http.worker.oldest")
			if (n < 6) {
				printf "%s\t%d\t%.1f\t%.1f\t%d\t%d\t-\t-\t%s\n", p,
				    all[p], f_rss[p] / 1024, l_rss[p] / 1024, f_fd[p],
				    l_fd[p], checked ? "FAIL(too few samples)" : "info"
				continue
			}
			third = int(n / 3)
			for (i = 1; i <= n; i++) {
				r[i] = R[p, i]; f[i] = F[p, i]; t[i] = T[p, i]; a[i] = A[p, i]
			}
			r1 = med(r, 1, third); r3 = med(r, n - third + 1, n)
			f1 = med(f, 1, third); f3 = med(f, n - third + 1, n)
			t1 = med(t, 1, third); t3 = med(t, n - third + 1, n)
			a1 = med(a, 1, third); a3 = med(a, n - third + 1, n)
			lim = r1 * 1.2; if (lim < r1 + 1024) lim = r1 + 1024
			v = "ok"
			if (r3 > lim) v = "FAIL(rss)"
			else if (f3 > f1 + 10) v = "FAIL(fds)"
			else if (t3 > t1 + 2) v = "FAIL(threads)"
			if (!checked) v = "info"
			printf "%s\t%d\t%.1f\t%.1f\t%g\t%g\t%g->%g\t%g->%g\t%s\n", p,
			    all[p], r1 / 1024, r3 / 1024, a1, a3, f1, f3, t1, t3, v
		}
	}' "$samples")

# The client's "check" lines that failed.
for f in "$out"/green.out "$out"/kthread.out; do
	[ -f "$f" ] || continue
	awk -F'\t' '$1 == "check" && $5 != "ok" { print $2 " " $3 " " $4 ": " $6 }' \
	    "$f" >"$out/.failed"
	while read -r l; do
		problem "client check failed: $l"
	done <"$out/.failed"
	rm -f "$out/.failed"
	grep -q '^check' "$f" || problem "$(basename "$f" .out) client gave no report"
done
echo "$flat" | awk -F'\t' '$NF ~ /^FAIL/ { print $1 ": " $NF }' >"$out/.flat"
while read -r l; do
	problem "not flat: $l (see samples.tsv)"
done <"$out/.flat"
rm -f "$out/.flat"

{
	echo
	echo "weft soak: $secs s; http --procs 2 --workers 1 and kv, green mode;"
	echo "kthread mode for $kt_dur s; worker kills every $kill_every s"
	echo
	printf '%-8s %-5s %-10s %10s %10s %8s %7s\n' run server type sent ok \
	    lost errors
	for f in "$out"/green.out "$out"/kthread.out; do
		[ -f "$f" ] || continue
		awk -F'\t' '$1 == "tally" {
			printf "%-8s %-5s %-10s %10d %10d %8d %7d\n", $2, $3, $4, $5,
			    $6, $7, $8 }' "$f"
	done
	echo "(connect: connections opened; lost: requests in flight on a"
	echo " killed worker; abort: deliberate disconnects mid-request)"
	echo
	echo "workers killed: $kills; replaced: $restarts (slowest after" \
	    "$((restart_max * 10)) ms); restart lines: $restart_lines;" \
	    "hog-detector lines: $hogs"
	echo "live green threads: not exposed by the servers; not sampled"
	sed -n '/^weft operator checks/,/^verdict/p' \
	    "$out/operator/summary.txt" 2>/dev/null | sed '$d'
	echo "reset storm: $storms storms, $resets connections reset at" \
	    "every stage, $stuck server threads stuck, $storms_failed failed"
	echo
	echo "medians, first third vs last third after a $warm s warm-up:"
	printf '%-20s %7s %16s %14s %12s %9s  %s\n' process samples \
	    'RSS MiB' fds 'idle fds' threads verdict
	echo "$flat" | awk -F'\t' 'NF {
		printf "%-20s %7d %7.1f->%-7.1f %6s->%-6s %12s %9s  %s\n", $1, $2,
		    $3, $4, $5, $6, $7, $8, $9 }'
	echo
	verdict
} | tee "$out/summary.txt"

[ -z "$problems" ]
