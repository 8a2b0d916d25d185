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

# examples/address: in each part every line shows one address; after
# fork the parent keeps 1 while the child wrote 2, in the shared heap
# worker 0 reads the 2 worker 1 wrote; where frames are shown, two after
# fork and one in the shared heap.
address_more() {
	awk '
	/^1\. / { part = 1 }
	/^2\. / { part = 2 }
	/ address 0x[0-9a-f]+ +value / {
		for (i = 1; i < NF; i++) {
			if ($i == "address") a = $(i + 1)
			if ($i == "value") v = $(i + 1)
			if ($i == "frame") f = $(i + 1)
		}
		if (!(part in addr)) addr[part] = a
		else if (addr[part] != a) {
			print "    FAIL: part " part " shows two addresses: " \
			    addr[part] " and " a
			bad = 1
		}
		if ($1 == "child," && $3 == "writing") { cv = v; cf = f }
		if ($1 == "parent," && $2 == "afterwards:") { pv = v; pf = f }
		if ($1 == "worker" && $2 == "1," && $4 == "writing:") wf = f
		if ($1 == "worker" && $2 == "0," && $3 == "afterwards:") {
			ov = v; of = f
		}
	}
	END {
		if (bad) exit 1
		if (cv != 2 || pv != 1) {
			print "    FAIL: after fork: child " cv ", parent " pv \
			    ", expected 2 and 1"
			exit 1
		}
		if (ov != 2) {
			print "    FAIL: worker 0 read " ov " from the shared " \
			    "heap, expected the 2 worker 1 wrote"
			exit 1
		}
		if (pf ~ /^0x/ && cf == pf) {
			print "    FAIL: after fork both copies are on frame " pf
			exit 1
		}
		if (of ~ /^0x/ && wf != of) {
			print "    FAIL: the shared object is on frames " wf \
			    " and " of
			exit 1
		}
	}' "$1"
}

# examples/refcount: main and each of the 4 holders drop a reference,
# exactly one of them the last, which frees; every holder read the value;
# the reference whose owner died is reported stale.
refcount_more() {
	awk '
	/ drops its reference: [0-9]+ left$/ { drops++ }
	/ drops the last reference and frees the object$/ { drops++; frees++ }
	/^  holder [0-9]+ \(worker [0-9]+\) reads 42$/ { reads++ }
	/^  worker 1: check: stale / { stale = 1 }
	END {
		if (drops != 5 || frees != 1 || reads != 4) {
			print "    FAIL: " drops " drops, " frees " frees, " \
			    reads " reads of 42; expected 5, 1 and 4"
			exit 1
		}
		if (!stale) {
			print "    FAIL: the stale reference was not reported"
			exit 1
		}
	}' "$1"
}

check address 0 'verdict: one address, two processes: private after fork' \
    address_more
check refcount 0 'verdict: freed once by its last holder' refcount_more

if [ "$bad" -eq 0 ]; then
	echo "all examples behaved"
else
	echo "$bad example(s) did not behave"
fi
exit "$bad"
