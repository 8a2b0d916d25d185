#!/bin/sh
# check_report.sh - checks what the bench does with stalls and outliers,
# without waiting for a real stall: report.sh on made-up figures, and two
# bench programs with failures injected (BENCH_FAIL_SAMPLE, bench.h).
#
#   report.sh   a stalled figure shows as STALLED, is listed with its reason
#               and does not count as missing; a sample 4x off its median,
#               a green server at 1/450 of its reference and a figure 5x
#               off its history are flagged as outliers with their samples;
#               what is within the rules is not; the exit status says
#               stalled (5) or missed (4) as documented; history.tsv gets
#               each run once.
#   rounds      rounds.awk merges three rounds of server figures into
#               medians with their samples, counts stalled and retried
#               rounds, writes an n/a once; the report gives a server
#               target's ratio in each round beside that of the medians.
#   floors      a CPU target's row gives the floors' ratios over the same
#               reference in the same run, leaving out those not measured;
#               the switch's row, the switch without the FP control state.
#   bench/yield a sample failed once is retried and the figure is there; a
#               sample failed twice leaves the median of the others and a
#               #stalled line, exit 0; every sample failed twice: exit 1.
#   bench/chan  a figure whose every sample failed twice is written as
#               stalled and the program exits 0, its other figure measured;
#               report.sh shows it STALLED.
#
# Run by "make check" from the top of the build tree (srcdir set by
# automake), or by hand: srcdir=SRC sh SRC/bench/check_report.sh from a
# build tree.  About a second.  Exit status: 0 passed, 1 failed.

srcdir=${srcdir:-.}
report=$srcdir/bench/report.sh
for f in "$report" bench/yield bench/chan; do
	if [ ! -f "$f" ]; then
		echo "check_report: FAIL: $f is missing (run from the top of the" \
		    "build tree)"
		exit 1
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-check-report.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
passes=0
fails=0

ok() { passes=$((passes + 1)); }
fail() {
	echo "check_report: FAIL ($what): $*"
	fails=$((fails + 1))
}
# has FILE REGEX: some line of FILE matches (extended regex).
has() {
	if grep -Eq -- "$2" "$1"; then ok; else fail "no line of $1 matches: $2"; fi
}
hasnt() {
	if grep -Eq -- "$2" "$1"; then fail "a line of $1 matches: $2"; else ok; fi
}
status() {
	if [ "$1" = "$2" ]; then ok; else fail "exit status $1, expected $2"; fi
}
# The lines of section $2 of REPORT.md $1, up to the next section.
section() {
	awk -v s="## $2" '$0 == s { on = 1; next } /^## / { on = 0 } on' "$1"
}

# ---- made-up figures -----------------------------------------------------
# One figure for every name of the catalogue (figures.txt), in quick mode: each
# target met exactly, and the figures that targets compare set so that the
# comparisons hold.
grep -v '^#' "$srcdir/bench/figures.txt" |
    awk -F'|' -v OFS='\t' '
	$5 == "full only" { next }
	{
		v = 100
		if ($3 == "<=" || $3 == ">=") v = $4
		if ($3 == "<") v = $4 / 2
		if ($3 == ">") v = $4 * 2
		if ($1 == "msg.rate.process.shm") v = 500
		if ($1 == "spawn_join.kthread") v = 60 * 300
		if ($1 == "spawn_join.process") v = 60 * 2000
		if ($1 ~ /^(http|kv)\.cpu_us\.green/) v = 50
		print $1, v, $2
	}' >"$tmp/base.tsv"
if [ "$(wc -l <"$tmp/base.tsv")" -lt 50 ]; then
	echo "check_report: FAIL: could not read the catalogue, bench/figures.txt"
	exit 1
fi

# run_report NAME: report.sh on $tmp/NAME/latest.tsv; sets rc, md, txt.
run_report() {
	BENCH_NO_PLOTS=1 sh "$report" quick "$tmp/$1" 60 '0.00 0.00 0.00' \
	    >"$tmp/$1/stdout" 2>"$tmp/$1/stderr"
	rc=$?
	md=$tmp/$1/REPORT.md
	txt=$tmp/$1/latest.txt
	section "$md" "Stalled and retried" >"$tmp/$1/stalls.md"
	section "$md" "Outliers" >"$tmp/$1/outliers.md"
}

# 1. Every figure as usual: nothing stalled, nothing flagged.
what=plain
mkdir "$tmp/plain"
cp "$tmp/base.tsv" "$tmp/plain/latest.tsv"
# Plot points (bench/preempt's wakes) are no figures.
printf '#series\tpreempt.wakes.on\t0.8:9.1,10.9:9.0\n' >>"$tmp/plain/latest.tsv"
run_report plain
status "$rc" 0
has "$txt" '^0 missing, 0 below target, 0 stalled, 0 outliers$'
hasnt "$md" 'preempt\.wakes'
has "$tmp/plain/stalls.md" '^No sample failed'
has "$tmp/plain/outliers.md" '^None in this run'

# 2. Stalls and a wild sample.
what=stalls
mkdir "$tmp/stalls"
grep -v '^msg\.rate\.process\.ring	' "$tmp/base.tsv" >"$tmp/stalls/latest.tsv"
{
	printf 'msg.rate.process.ring\tstalled\tmsg/s\t3 of 3 samples stalled: '
	printf 'exited with status 1: deadline passed, twice\n'
	printf '#stalled\tmsg.rate.green\t1 of 3 samples\tdied of signal 14\n'
	printf '#retried\tmsg.rate.kthread\t1 of 3 samples\texited with status 1\n'
	# 60 is 4x the median: flagged.  3x, 1.5x, and a figure no rule
	# applies to: not.
	printf '#samples\tyield.green\t5,15,60\n'
	printf '#samples\tchan.pingpong.green.local\t20,30,40\n'
	printf '#samples\tmem.idle.process.slab\t1,100,1000\n'
} >>"$tmp/stalls/latest.tsv"
run_report stalls
status "$rc" 5
has "$md" '^\| msg\.rate\.process\.ring \| STALLED \|'
has "$tmp/stalls/stalls.md" '^\| msg\.rate\.process\.ring \| STALLED \| 3 of 3 samples stalled: exited with status 1: deadline passed, twice \|'
has "$tmp/stalls/stalls.md" '^\| msg\.rate\.green \| .* \| 1 of 3 samples stalled: died of signal 14'
has "$tmp/stalls/stalls.md" '^\| msg\.rate\.kthread \| .* \| 1 of 3 samples retried: exited with status 1'
has "$txt" '^msg\.rate\.process\.ring +stalled msg/s +STALLED'
has "$txt" '^  msg\.rate\.process\.ring: STALLED: 3 of 3 samples stalled'
has "$txt" '^0 missing, 0 below target, 1 stalled \(and 1 with some samples stalled\), 1 with samples retried, 1 outlier$'
has "$tmp/stalls/outliers.md" '^\| yield\.green \| .* \| a sample 4\.0x away from the median of its 3 samples \| 5\.0 ns, 15 ns, 60 ns \|$'
hasnt "$tmp/stalls/outliers.md" 'chan\.pingpong|mem\.idle'
has "$txt" '^  yield\.green = 15 ns: .*; samples: 5\.0 ns, 15 ns, 60 ns$'
hasnt "$txt" '^missing:'

# 3. A green server far below the reference measured in the same run, on a
#    fresh clone (no history): kv.rps.green once read 164 req/s.
what=reference
mkdir "$tmp/reference"
grep -Ev '^kv\.(rps|p99)\.(green|redis)	' "$tmp/base.tsv" \
    >"$tmp/reference/latest.tsv"
printf '%s\t%s\t%s\n' kv.rps.green 164 req/s kv.rps.redis 75000 req/s \
    kv.p99.green 2500 ms kv.p99.redis 0.6 ms http.p99.green 5 ms \
    >>"$tmp/reference/latest.tsv"
run_report reference
status "$rc" 4 # and kv.rps.green misses its target
has "$tmp/reference/outliers.md" '^\| kv\.rps\.green \| 164/s \| 1/457 of kv\.rps\.redis \(75\.0 k/s\) in the same run; usual: at least 1/5 \| one run: 164/s \|$'
has "$tmp/reference/outliers.md" '^\| kv\.p99\.green \| .* \| 4166\.7x kv\.p99\.redis'
hasnt "$tmp/reference/outliers.md" 'http\.p99\.green'
has "$md" '^\| KV, redis-benchmark -c 50 \| servers/kv \| green, --workers 2 \| 164/s \(outlier\) \|'
has "$txt" '^kv\.rps\.green +164 req/s .*OUTLIER'
has "$txt" ', 2 outliers$'

# 4. History: machine.syscall at 5x the median of its last 3 runs is
#    flagged; machine.fault, 10x off its only earlier run, is not.
what=history
mkdir "$tmp/history"
grep -v '^machine\.syscall	' "$tmp/base.tsv" >"$tmp/history/latest.tsv"
printf 'machine.syscall\t500\tns\n' >>"$tmp/history/latest.tsv"
{
	printf '%s\t%s\tquick\tmachine.syscall\t%s\n' \
	    2024-01-01T00:00:00Z 11 90 2024-01-02T00:00:00Z 12 110 \
	    2024-01-03T00:00:00Z 13 100
	printf '2024-01-03T00:00:00Z\t13\tquick\tmachine.fault\t10\n'
	# Another mode's runs do not count.
	printf '2024-01-04T00:00:00Z\t14\tfull\tmachine.fault\t10\n'
} >"$tmp/history/history.tsv"
run_report history
status "$rc" 0
has "$tmp/history/outliers.md" '^\| machine\.syscall \| 500 ns \| 5\.0x above the median of its last 3 quick runs \(100 ns\) \|'
hasnt "$tmp/history/outliers.md" 'machine\.fault'
has "$txt" ', 1 outlier$'
n1=$(wc -l <"$tmp/history/history.tsv")
if [ "$n1" -gt 6 ]; then ok; else fail "history.tsv did not get this run"; fi
has "$tmp/history/history.tsv" '	quick	machine\.syscall	500$'
run_report history # the same run again: added once
n2=$(wc -l <"$tmp/history/history.tsv")
if [ "$n1" = "$n2" ]; then ok; else fail "history.tsv got the run twice"; fi

# 5. Rounds (servers.sh): rounds.awk merges three rounds' files into
#    medians with samples; the report gives a server target's ratio per
#    round beside the ratio of the medians.
what=rounds
mkdir "$tmp/rounds"
for r in 1 2 3; do
	{
		printf '#note	kv: a note every round\n'
		printf 'kv.p99.green	%s	ms\n' "$(echo 0.9 0.5 0.7 | cut -d' ' -f$r)"
		printf 'kv.p99.redis	%s	ms\n' "$(echo 1.0 1.0 0.5 | cut -d' ' -f$r)"
		printf 'kv.p99.redis.again	%s	ms\n' \
		    "$(echo 1.0 0.8 0.6 | cut -d' ' -f$r)"
		printf 'kv.p99.green.pin	%s	ms\n' \
		    "$(echo 0.4 0.6 0.5 | cut -d' ' -f$r)"
		printf 'kv.p99.redis.pin	0.5	ms\n'
		printf 'kv.rps.redis	n/a	req/s	redis-server is not installed\n'
		if [ $r = 2 ]; then
			printf 'kv.cpu_us.green	stalled	us	redis-benchmark timed out\n'
			printf '#retried	kv.p50.green	1 of 1 runs	why not\n'
		else
			printf 'kv.cpu_us.green	%s	us\n' $((r * 10))
		fi
		printf 'kv.p50.green	0.25	ms\n'
	} >"$tmp/rounds/r$r.tsv"
done
awk -F'	' -f "$srcdir/bench/rounds.awk" "$tmp/rounds/r1.tsv" \
    "$tmp/rounds/r2.tsv" "$tmp/rounds/r3.tsv" >"$tmp/rounds/merged.tsv"
m=$tmp/rounds/merged.tsv
if [ "$(grep -c '^#note' "$m")" = 1 ]; then ok; else fail "notes not merged"; fi
has "$m" '^kv\.p99\.green	0\.7	ms$'
has "$m" '^#samples	kv\.p99\.green	0\.9,0\.5,0\.7$'
has "$m" '^kv\.p99\.redis	1\.0	ms$'
has "$m" '^kv\.rps\.redis	n/a	req/s	redis-server is not installed$'
has "$m" '^kv\.cpu_us\.green	20	us$'
has "$m" '^#samples	kv\.cpu_us\.green	10,30$'
has "$m" '^#stalled	kv\.cpu_us\.green	1 of 3 runs	redis-benchmark timed out$'
has "$m" '^#retried	kv\.p50\.green	1 of 3 runs	why not$'
if [ "$(grep -c '^kv\.rps\.redis' "$m")" = 1 ]; then ok; else
	fail "kv.rps.redis not written once"
fi
awk -F'	' -f "$srcdir/bench/rounds.awk" "$tmp/rounds/r1.tsv" \
    >"$tmp/rounds/one.tsv"
hasnt "$tmp/rounds/one.tsv" '^#samples'
has "$tmp/rounds/one.tsv" '^kv\.p99\.green	0\.9	ms$'
grep -Ev '^kv\.p99\.(green|redis)	' "$tmp/base.tsv" >"$tmp/rounds/latest.tsv"
grep -E '^(#samples	)?kv\.p99\.(green|redis)' "$m" >>"$tmp/rounds/latest.tsv"
run_report rounds
# With the reference started again in the same rounds, its ratio to the
# reference, round by round, beside the target's; and the two servers
# each on a CPU of its own, their own ratio (a "figure/denominator" pair).
has "$md" '^\| kv\.p99\.green <= 1x kv\.p99\.redis .*\| 0\.70x \(700 .s / 1\.00 ms; rounds 0\.90x, 0\.50x, 1\.40x; in this run redis-server started again 0\.80x \(rounds 1\.00x, 0\.80x, 1\.20x\), each server on a CPU of its own \(weft with one worker\) 1\.00x \(rounds 0\.80x, 1\.20x, 1\.00x\)\) \| PASS \|$'
mkdir "$tmp/rounds1"
grep -Ev '^kv\.p99\.(redis\.again|green\.pin|redis\.pin)' \
    "$tmp/rounds/latest.tsv" >"$tmp/rounds1/latest.tsv"
run_report rounds1
has "$md" '^\| kv\.p99\.green <= 1x kv\.p99\.redis .*\| 0\.70x \(700 .s / 1\.00 ms; rounds 0\.90x, 0\.50x, 1\.40x\) \| PASS \|$'
# Not for figures of one run.
hasnt "$tmp/plain/REPORT.md" 'rounds [0-9]'

# 6. Floors: a CPU target's row gives the floors measured in the same run
#    over the same reference (ratios.txt's sixth field); a floor with no
#    figure (n/a) is left out, and so are the references of other rows.
what=floors
mkdir "$tmp/floors"
grep -Ev '^http\.cpu_us\.(floor|floor\.uring|nginx)	' "$tmp/base.tsv" \
    >"$tmp/floors/latest.tsv"
{
	printf 'http.cpu_us.nginx\t8\tus\n'
	printf 'http.cpu_us.floor\t6.8\tus\n'
	printf 'http.cpu_us.floor.uring\tn/a\tus\tno liburing\n'
} >>"$tmp/floors/latest.tsv"
run_report floors
has "$md" '^\| http\.cpu_us\.green <= 0\.8x http\.cpu_us\.nginx \| 6\.2x \(50\.0 .s / 8\.00 .s; in this run epoll floor 0\.85x\) \| \*\*MISS\*\* \|$'
has "$md" '^\| kv\.cpu_us\.green <= 0\.8x kv\.cpu_us\.redis \| 0\.5x \(50\.0 .s / 100\.0 .s; in this run epoll floor 1\.00x, io_uring floor 1\.00x\) \| PASS \|$'
has "$md" '^\| switch\.asm <= 1x switch\.boost .*; in this run a switch without the FP control state 1\.00x\) \| PASS \|$'
hasnt "$md" '^\| (alive|msg)\..*in this run'

# ---- a real program, failures injected -------------------------------------
what='yield, one failure'
BENCH_FAIL_SAMPLE=yield.green:1 bench/yield --quick --reps 2 \
    --tsv "$tmp/y1.tsv" >"$tmp/y1.out" 2>"$tmp/y1.err"
status $? 0
has "$tmp/y1.err" '^bench: yield\.green: sample failed \(exited with status 1: .*\); retrying once$'
has "$tmp/y1.tsv" '^yield\.green	[0-9.e+]+	ns$'
has "$tmp/y1.tsv" '^#samples	yield\.green	[0-9.e+]+,[0-9.e+]+$'
has "$tmp/y1.tsv" '^#retried	yield\.green	1 of 2 samples	exited with status 1'
has "$tmp/y1.out" '^yield\.green .*1 sample retried$'

what='yield, one sample failed twice'
BENCH_FAIL_SAMPLE=yield.green:2:2 bench/yield --quick --reps 2 \
    --tsv "$tmp/y2.tsv" >"$tmp/y2.out" 2>"$tmp/y2.err"
status $? 0
has "$tmp/y2.err" '^bench: yield\.green: sample failed again \(.*\): stalled$'
has "$tmp/y2.tsv" '^yield\.green	[0-9.e+]+	ns$'
has "$tmp/y2.tsv" '^#stalled	yield\.green	1 of 2 samples	exited with status 1.*, twice$'

what='yield, every sample failed twice'
BENCH_FAIL_SAMPLE='yield.green:*:2,mutex.turns.green:*:2' bench/yield \
    --quick --reps 2 --tsv "$tmp/y3.tsv" >"$tmp/y3.out" 2>"$tmp/y3.err"
status $? 1 # nothing measured: the program cannot run here
has "$tmp/y3.tsv" '^yield\.green	stalled	ns	2 of 2 samples stalled: '
has "$tmp/y3.tsv" '^mutex\.turns\.green	stalled	ns	2 of 2 samples stalled: '

what='chan, one figure stalled'
BENCH_FAIL_SAMPLE='chan.pingpong.green.cross:*:2' bench/chan --quick \
    --reps 1 --tsv "$tmp/c.tsv" >"$tmp/c.out" 2>"$tmp/c.err"
status $? 0
has "$tmp/c.tsv" '^chan\.pingpong\.green\.cross	stalled	ns	1 of 1 samples stalled: exited with status 1'
has "$tmp/c.tsv" '^handoff\.green\.cross	stalled	ns	'
has "$tmp/c.tsv" '^chan\.pingpong\.green\.local	[0-9.e+]+	ns$'
has "$tmp/c.out" '^chan\.pingpong\.green\.cross +STALLED '

what='chan, in the report'
mkdir "$tmp/chan"
grep -Ev '^(chan\.pingpong\.green|handoff\.green)\.cross' "$tmp/base.tsv" \
    >"$tmp/chan/latest.tsv"
grep '	stalled	' "$tmp/c.tsv" >>"$tmp/chan/latest.tsv"
run_report chan
status "$rc" 5
has "$tmp/chan/stalls.md" '^\| chan\.pingpong\.green\.cross \| STALLED \| 1 of 1 samples stalled: '
has "$txt" '^0 missing, '

echo "check_report: $passes passed, $fails failed"
[ "$fails" = 0 ]
