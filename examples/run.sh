#!/bin/sh
# run.sh - runs every example, shows its output, and checks it did what
# it shows.  `make run-examples` calls it with the build directory.
#
#   sh examples/run.sh [BUILDDIR]
#
# Exit status: the number of examples that did not behave (0: all did).

set -u

builddir=${1:-.}
bin=$builddir/examples
out=${TMPDIR:-/tmp}/weft-demo.$$
trap 'rm -f "$out"' EXIT
bad=0

# example  expected-exit-status  text-its-output-must-contain  [more]
# more: a function that checks the output further (its file is $1); it
# says what is wrong and fails when the example did not behave.
check() {
	name=$1 want_status=$2 want_text=$3 more=${4-}
	echo "==> examples/$name"
	if [ ! -x "$bin/$name" ]; then
		echo "    not built (run make first)"
		bad=$((bad + 1))
		return
	fi
	timeout 120 "$bin/$name" >"$out" 2>&1
	status=$?
	sed 's/^/    /' "$out"
	if [ "$status" -ne "$want_status" ]; then
		echo "    FAIL: exit status $status, expected $want_status"
		bad=$((bad + 1))
	elif ! grep -qF -- "$want_text" "$out"; then
		echo "    FAIL: the output does not contain: $want_text"
		bad=$((bad + 1))
	elif [ -n "$more" ] && ! "$more" "$out"; then
		bad=$((bad + 1))
	else
		echo "    ok (exit status $status)"
	fi
	echo
}

# examples/timeslice: both modes reported, the cooperative ticker
# starved; the preemptive one must be on time only where weft preempted
# (weft_stats counted preemptions): without preemption it starves too.
timeslice_more() {
	awk '
	/^cooperative \(/ { mode = "cooperative" }
	/^preemptive \(/ { mode = "preemptive" }
	/^  preemptions / { preemptions[mode] = $2 + 0 }
	/^  -> the ticker was / {
		sub(/^  -> the ticker was /, "")
		verdict[mode] = $0
	}
	END {
		split("cooperative preemptive", modes, " ")
		for (i = 1; i <= 2; i++)
			if (!(modes[i] in verdict) || !(modes[i] in preemptions)) {
				print "    FAIL: no result for the " modes[i] " mode"
				exit 1
			}
		if (verdict["cooperative"] != "starved") {
			print "    FAIL: the cooperative ticker was " \
			    verdict["cooperative"] ", expected starved"
			exit 1
		}
		if (preemptions["preemptive"] == 0) {
			print "    no preemptions: the preemptive ticker is not " \
			    "held to on time"
			exit 0
		}
		if (verdict["preemptive"] != "on time") {
			print "    FAIL: " preemptions["preemptive"] \
			    " preemptions, yet the preemptive ticker was " \
			    verdict["preemptive"] ", expected on time"
			exit 1
		}
	}' "$1"
}

# examples/server needs a client: it is started on a free port, asked
# one line through bash's /dev/tcp, and stopped with SIGTERM, after which
# it must exit 0 with its summary.
server_check() {
	echo "==> examples/server"
	if [ ! -x "$bin/server" ]; then
		echo "    not built (run make first)"
		bad=$((bad + 1))
		return
	fi
	# timeout passes SIGTERM on, and kills a server that would not stop.
	timeout -k 5 30 "$bin/server" 0 >"$out" 2>&1 &
	pid=$!
	port= tries=0
	while [ -z "$port" ] && [ "$tries" -lt 100 ] && kill -0 "$pid" 2>/dev/null
	do
		sleep 0.1
		tries=$((tries + 1))
		port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
	done
	answer=
	if [ -n "$port" ]; then
		answer=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
		    printf "hello, weft\n" >&3 && IFS= read -r line <&3 &&
		    printf "%s\n" "$line"' client "$port")
	fi
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	status=$?
	sed 's/^/    /' "$out"
	echo "    the client sent 'hello, weft' and got '$answer'"
	if [ -z "$port" ]; then
		echo "    FAIL: no 'listening on 127.0.0.1:PORT' line within 10 s"
		bad=$((bad + 1))
	elif [ "$answer" != "HELLO, WEFT" ]; then
		echo "    FAIL: the answer is not 'HELLO, WEFT'"
		bad=$((bad + 1))
	elif [ "$status" -ne 0 ]; then
		echo "    FAIL: exit status $status after SIGTERM, expected 0"
		bad=$((bad + 1))
	elif ! grep -qF 'stopped by SIGTERM; connections: 1, answered: 1,' "$out"
	then
		echo "    FAIL: no summary of 1 connection and 1 answer"
		bad=$((bad + 1))
	else
		echo "    ok (exit status $status)"
	fi
	echo
}

check vector 0 '[1, 2, 3, 4, 5]'
check channel 0 'received 42'
check counter 0 'got 800000  -> exact'
check layout 0 'green thread'
# Death by SIGABRT: the shell reports 128 + 6.
check overflow 134 'overflowed its 64 KiB stack'
check shared_list 0 '8 of 8 new nodes reuse'
check crash 0 'killed by SIGSEGV; restarting'
check when 0 'When to use which'
check timeslice 0 'Kept the ticker on time:' timeslice_more
server_check

if [ "$bad" -eq 0 ]; then
	echo "all examples behaved"
else
	echo "$bad example(s) did not behave"
fi
exit "$bad"
