# report.awk - turns the figures of one bench run into REPORT.md, the
# summary latest.txt, the plots' data and the history (run by report.sh,
# which says what it passes; POSIX awk).
# ---- formatting --------------------------------------------------------
function num(x) { return x + 0 }
function has(n) { return (n in val) }
function f1(x, d) { return sprintf("%." d "f", x) }
# A time in ns, in the unit that reads best.
function ftime(ns) {
	if (ns < 10) return f1(ns, 1) " ns"
	if (ns < 1000) return f1(ns, 0) " ns"
	if (ns < 100000) return f1(ns / 1000, 1) " µs"
	if (ns < 1000000) return f1(ns / 1000, 0) " µs"
	if (ns < 100000000) return f1(ns / 1000000, 2) " ms"
	return f1(ns / 1000000, 0) " ms"
}
function fkib(k) {
	if (k < 10) return f1(k, 2) " KiB"
	if (k < 1024) return f1(k, 1) " KiB"
	return f1(k / 1024, 1) " MiB"
}
function frate(r) {
	if (r >= 1000000) return f1(r / 1000000, 2) " M/s"
	if (r >= 1000) return f1(r / 1000, 0) " k/s"
	return f1(r, 0) "/s"
}
# Requests per second, three significant digits.
function freq(r) {
	if (r >= 1000000) return f1(r / 1000000, 2) " M/s"
	if (r >= 100000) return f1(r / 1000, 0) " k/s"
	if (r >= 1000) return f1(r / 1000, 1) " k/s"
	return f1(r, 0) "/s"
}
function fx(x) {
	if (x >= 10) return f1(x, 0) "x"
	if (x >= 1) return f1(x, 1) "x"
	return sprintf("%.2g", x) "x"
}
# A figure in its own unit, for tables.
function fval(n) {
	if (!has(n)) return (n in stl) ? "STALLED" : "-"
	return fv(num(val[n]), unit[n])
}
# A value v in unit u.
function fv(v, u) {
	if (u == "ns") return ftime(v)
	if (u == "ms") return ftime(v * 1000000)
	if (u == "KiB") return fkib(v)
	if (u == "MiB") return fkib(v * 1024)
	if (u == "msg/s") return frate(v)
	if (u == "req/s") return freq(v)
	if (u == "conns") return f1(v, 0)
	if (u == "bool") return v ? "yes" : "no"
	if (u == "%") return f1(v, v < 10 ? 2 : 1) " %"
	if (u == "x") return f1(v, 1) "x"
	if (u == "CPUs") return f1(v, 2) " CPUs"
	if (u == "us") return f1(v, v < 10 ? 2 : 1) " µs"
	return v " " u
}
# What the same wakes cost with nothing but an eventfd (bench/handoff, not
# weft): the floor pchan.green.wake_late sits on, on this machine.
function wakeref(    r, q, m) {
	r = "pchan.wake_late.ref.max"; q = "pchan.wake_late.ref.p99"
	m = "pchan.green.wake_late.max"
	if (!has(r) || !has(q) || !has(m) || num(val[r]) <= 0)
		return ""
	return sprintf("reference: the same wakes of a process blocked in " \
	    "epoll_wait on an eventfd (not weft) were %s late at worst and %s " \
	    "at the 99th percentile here; pchan.green.wake_late.max is %.1fx " \
	    "that worst", fval(r), fval(q), num(val[m]) / num(val[r]))
}
# Plot data: "-" for a missing figure; its label, formatted.
# What a bare shared-memory ring (bench/msg, not weft) makes of the same
# 4 KiB messages: the ceiling the pchan and shared-heap figure sits under.
function ringref(    r, p, m) {
	r = "msg.rate.process.ring"; p = "msg.rate.process.pipe"
	m = "msg.rate.process.shm"
	if (!has(r) || !has(p) || !has(m) || num(val[p]) <= 0 || \
	    num(val[r]) <= 0)
		return ""
	return sprintf("reference: a bare ring in shared memory (not weft) " \
	    "moved %s here, %.1fx msg.rate.process.pipe; " \
	    "msg.rate.process.shm is %.0f%% of it", fval(r), \
	    num(val[r]) / num(val[p]), 100 * num(val[m]) / num(val[r]))
}
function dat(n) { return has(n) ? val[n] : "-" }
function lbl(n) { return has(n) ? fval(n) : "" }
function bar(f, label, n) {
	printf "%s\t%s\t%s\n", label, dat(n), lbl(n) > f
}
function bar2(f, label, a, b) {
	printf "%s\t%s\t%s\t%s\t%s\n", label, dat(a), dat(b), lbl(a), \
	    lbl(b) > f
}

function compare(v, op, t) {
	if (op == "<=") return v <= t
	if (op == "<") return v < t
	if (op == ">=") return v >= t
	if (op == ">") return v > t
	return 1
}

# ---- outliers ------------------------------------------------------------
# A figure in a table, marked when flagged.
function fvalo(n) { return fval(n) ((n in owhy) ? " (outlier)" : "") }
# Figures no rule applies to: system-wide readings that other work on the
# machine moves (kernel slab, KernelStack), a share set by the scheduler
# (cross.split), a CPU share of a few hundredths of a percent (idle.cpu).
# Their spread says nothing about weft.
function unsteady(n) {
	return n ~ /\.slab$|\.kstack\.meminfo$|\.split$|^idle\.cpu$/
}
function flag(n, why) {
	if (!(n in owhy)) { onames[++nout] = n; owhy[n] = why }
	else owhy[n] = owhy[n] "; " why
}
# The median of v[1..k] (sorts v).
function vmedian(v, k,    i, j, t) {
	for (i = 2; i <= k; i++)
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	return k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
}
# How far a is from b, as a factor of at least 1 ("3.2x").
function apart(a, b) { return a >= b ? a / b : b / a }
# Within the run: a sample more than 3 times above or below the median of
# its figure.  The samples of a figure on a quiet machine agree within
# about 1.5x (the tables print min and max); three times the median is no
# longer noise of the measurement but an event in it (a preemption, a
# migration, a stall), and with 2 or 3 samples it can move the median.
# The median stands, but the samples are shown.  Only positive samples:
# a ratio means nothing around zero.
function wild_samples(n,    k, v, i, m, far, c) {
	if (!(n in samp) || unsteady(n)) return
	k = split(samp[n], v, ",")
	if (k < 2) return
	for (i = 1; i <= k; i++) {
		v[i] += 0
		if (v[i] <= 0) return
		c[i] = v[i]
	}
	m = vmedian(c, k)
	far = 0
	for (i = 1; i <= k; i++)
		if (apart(v[i], m) > far) far = apart(v[i], m)
	if (far > 3)
		flag(n, sprintf("a sample %.1fx away from the median of its %d " \
		    "samples", far, k))
}
# Against the reference in the same run (refs above).
function off_reference(n, ref, factor,    a, b) {
	if (!has(n) || !has(ref)) return
	a = num(val[n]); b = num(val[ref])
	if (a <= 0 || b <= 0) return
	if (unit[n] == "ms" && a > b * factor)
		flag(n, sprintf("%.1fx %s (%s) in the same run; usual: at most " \
		    "%dx", a / b, ref, fval(ref), factor))
	if (unit[n] != "ms" && a < b / factor)
		flag(n, sprintf("1/%.0f of %s (%s) in the same run; usual: at " \
		    "least 1/%d", b / a, ref, fval(ref), factor))
}
# Against its history: outside [1/3, 3x] of the median of its last (up to)
# 5 runs of the same mode, given 2 or more.  Run-to-run changes of one
# figure on this kind of shared two-CPU machine stay within 2x (machine
# noise, where the host places the CPUs: see bench/README.md); 3x is a
# different machine, a regression or a stall, worth a look either way.
# Latency percentiles are left out: those of a short load on two shared
# CPUs jump by several times between runs (the same-run reference bound
# covers the green ones).
function off_history(n,    k, i, v, m, a) {
	if (!has(n) || unsteady(n) || n ~ /\.p(50|90|99|999)\./ || hn[n] < 2) \
		return
	a = num(val[n])
	if (a <= 0) return
	k = 0
	for (i = (hn[n] > 5 ? hn[n] - 4 : 1); i <= hn[n]; i++)
		v[++k] = hv[n, i]
	m = vmedian(v, k)
	if (m <= 0) return
	if (apart(a, m) > 3) {
		flag(n, sprintf("%.1fx %s the median of its last %d %s runs " \
		    "(%s)", apart(a, m), a > m ? "above" : "below", k, mode, \
		    fv(m, unit[n])))
	}
}
# Two figures measured in the same rounds, taking turns (the servers in
# servers.sh; the kinds of bench/msg within each repetition): the ratio
# of each round, "; rounds 0.93x, 1.02x, 0.97x", so that a reader sees
# whether the verdict on the medians holds round by round.  Empty unless
# both have one sample per round, the same number of them.
function rounds(a, b, near1,    ka, kb, va, vb, i, s) {
	if (a !~ /^(http|kv|msg\.rate)\./ || !(a in samp) || !(b in samp))
		return ""
	ka = split(samp[a], va, ","); kb = split(samp[b], vb, ",")
	if (ka != kb || ka < 2) return ""
	s = "; rounds"
	for (i = 1; i <= ka; i++) {
		if (vb[i] + 0 <= 0) return ""
		s = s (i > 1 ? ", " : " ") (near1 == 1 ? \
		    sprintf("%.2fx", va[i] / vb[i]) : fx(va[i] / vb[i]))
	}
	return s
}
# The references a target's ratio is read against, measured in the same
# run over the same denominator (ratios.txt's sixth field, "what:figure"
# pairs split by commas), with their ratio in each round when they were
# measured in rounds: "; in this run epoll floor 0.86x, io_uring floor
# 0.59x", "; in this run nginx started again 0.97x (rounds 1.13x, 0.82x,
# 0.97x)".  A target below what a server that does nothing reaches asks
# for less than nothing, and a gap smaller than the reference's distance
# from itself is one this run cannot tell from noise: the reader sees
# both in the row.  A pair "what:figure/denominator" gives the ratio of
# two other figures of the run instead (the same comparison made another
# way: each server on a CPU of its own).
function beside(list, den,    k, p, i, j, q, s, nm, d, rr) {
	if (list == "") return ""
	k = split(list, p, ",")
	s = ""
	for (i = 1; i <= k; i++) {
		j = index(p[i], ":")
		nm = substr(p[i], j + 1)
		d = den
		if ((q = index(nm, "/"))) {
			d = substr(nm, q + 1)
			nm = substr(nm, 1, q - 1)
		}
		if (!j || !has(nm) || !has(d) || num(val[d]) == 0) continue
		rr = rounds(nm, d, 1)
		s = s (s == "" ? "; in this run " : ", ") substr(p[i], 1, j - 1) \
		    " " sprintf("%.2fx", num(val[nm]) / num(val[d])) \
		    (rr == "" ? "" : " (" substr(rr, 3) ")")
	}
	return s
}
# The samples of a figure, for the report: "12 ns, 14 ns, 47 ns".
function fsamples(n,    k, v, i, s) {
	if (!(n in samp)) return has(n) ? "one run: " fval(n) : "-"
	k = split(samp[n], v, ",")
	s = fv(v[1] + 0, unit[n])
	for (i = 2; i <= k; i++) s = s ", " fv(v[i] + 0, unit[n])
	return s
}

# ---- verdicts on the explainer -----------------------------------------
# A claimed cost of about lo..hi ns ("~" read as a factor of 2 either way).
# kind "fast": the claim is that it is cheap; "slow": that it is costly.
function vrange(v, lo, hi, kind) {
	if (v >= lo / 2 && v <= hi * 2)
		return "holds"
	if (v < lo / 2)
		return kind == "fast" ? \
		    "holds (" fx(lo / v) " better than claimed)" : \
		    "does not hold here (" fx(lo / v) " cheaper than claimed)"
	return kind == "fast" ? \
	    "does not hold here (" fx(v / hi) " costlier than claimed)" : \
	    "holds (" fx(v / hi) " costlier than claimed)"
}
# "a is cheaper than b": b / a >= 1.25 holds.
function vless(a, b, pre, post) {
	if (b / a >= 1.25) return "holds (" pre " " fx(b / a) post ")"
	if (b / a >= 0.8) return "does not hold here (within " \
	    f1(100 * (b / a > 1 ? b / a - 1 : 1 - b / a), 0) "%)"
	return "does not hold here (the other way round: " fx(a / b) ")"
}
# "a costs extra over b": the difference d (figure n, value v) is above
# zero at the median and in every sample, so noise does not explain it;
# given as a share of base, the cheaper cost.
function vextra(n, v, base, pre, post,    k, s, i, low) {
	if (v <= 0)
		return "does not hold here (the other way round: " \
		    fv(-v, unit[n]) " less)"
	low = 0
	k = (n in samp) ? split(samp[n], s, ",") : 0
	for (i = 1; i <= k; i++)
		if (s[i] + 0 <= 0) low++
	if (low)
		return "does not hold here (" fv(v, unit[n]) " at the median, " \
		    "but " low " of " k " samples at or below zero: noise)"
	return "holds (" pre " " fv(v, unit[n]) post ": " \
	    f1(100 * v / base, v < base / 10 ? 1 : 0) "% of " \
	    fv(base, unit[n]) ")"
}
# "a is at least lo": a factor.
function vatleast(v, lo, pre, post) {
	if (v >= lo) return "holds (" pre " " fx(v) post ")"
	return "does not hold here (" pre " " fx(v) post "; the claim needs " \
	    fx(lo) ")"
}
function unmeasured(claim) {
	printf "| %s | - | not measured: a figure is missing or stalled |\n", \
	    claim > out
}
function minof(a, b) {
	if (!has(a)) return b
	if (!has(b)) return a
	return num(val[a]) <= num(val[b]) ? a : b
}
# The claims of claims.txt (passed in claims), one row each.
function claim_rows(   n, L, i, f, a, b, mm, text, name, av, bv, verdict) {
	n = split(claims, L, "\n")
	for (i = 1; i <= n; i++) {
		if (L[i] == "") continue
		split(L[i], f, "|")
		a = f[3]; b = f[4]
		if (a ~ /^min:/) {
			split(substr(a, 5), mm, ",")
			a = minof(mm[1], mm[2])
		}
		if (!has(a) || (b != "" && !has(b))) {
			unmeasured(f[1])
			continue
		}
		text = f[9]
		while (match(text, /\{[^}]*\}/)) {
			name = substr(text, RSTART + 1, RLENGTH - 2)
			text = substr(text, 1, RSTART - 1) \
			    fval(name == "A" ? a : name) \
			    substr(text, RSTART + RLENGTH)
		}
		av = num(val[a]); bv = b != "" ? num(val[b]) : 0
		if (f[2] == "slow" || f[2] == "fast")
			verdict = vrange(av, f[5] + 0, f[6] + 0, f[2])
		else if (f[2] == "less")
			verdict = vless(av, bv, f[7], f[8])
		else if (f[2] == "less-rate")
			verdict = vless(1 / av, 1 / bv, f[7], f[8])
		else if (f[2] == "extra")
			verdict = vextra(a, av, bv, f[7], f[8])
		else if (f[2] == "atleast")
			verdict = vatleast(av, f[5] + 0, f[7], f[8])
		else if (bv / av >= 2)
			verdict = "holds (" f[7] " " fx(bv / av) f[8] f[10] ")"
		else
			verdict = "does not hold here (" f[7] " " fx(bv / av) f[8] ")"
		printf "| %s | %s | %s |\n", f[1], text, verdict > out
	}
}
# ---- the servers table ---------------------------------------------------
# One row: PRE.rps.SFX, PRE.p50.SFX, PRE.p99.SFX, PRE.cpu_us.SFX (the
# server's CPU time per request; "-" where it is not measured), and the
# throughput as a multiple of the reference REF (a rps name; "" for none).  A figure quick
# mode does not measure leaves no row.
function srow(load, server, how, pre, sfx, ref,    r, x) {
	r = pre ".rps." sfx
	if (!has(r) && quick && cquick[r] == "full only") return
	if (r in na) {
		printf "| %s | %s | %s | n/a: %s | | | | |\n", load, server, how, \
		    na[r] > out
		return
	}
	if (r in stl) {
		printf "| %s | %s | %s | STALLED: %s | | | | |\n", load, server, \
		    how, stl[r] > out
		return
	}
	if (!has(r)) {
		printf "| %s | %s | %s | MISSING | | | | |\n", load, server, \
		    how > out
		return
	}
	x = ""
	if (ref == r) x = "reference"
	else if (ref != "" && has(ref) && num(val[ref]) > 0)
		x = sprintf("%.2fx", num(val[r]) / num(val[ref]))
	else if (ref != "" && (ref in na)) x = "n/a"
	printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", load, server, \
	    how, fvalo(r), fvalo(pre ".p50." sfx), fvalo(pre ".p99." sfx), \
	    fvalo(pre ".cpu_us." sfx), x > out
}
# Names with a stall or a retry, in the order written.
function sadd(n) { if (!(n in sseen)) { sseen[n] = 1; snames[++nsn] = n } }
# What became of a stalled or retried figure, in words.
function stallwhy(n,    s) {
	if (n in stl) return stl[n]
	s = (n in pstl) ? pstl[n] "; the median of the others" : ""
	if (n in retr) s = s (s == "" ? "" : "; ") retr[n] ", then measured"
	return s
}
# The counts that close the targets and the summary.
function counts(    s) {
	s = sprintf("%d missing, %d below target, %d stalled", missing, \
	    misses, nstl)
	if (npst) s = s sprintf(" (and %d with some samples stalled)", npst)
	if (nretr) s = s sprintf(", %d with samples retried", nretr)
	return s sprintf(", %d outlier%s", nout, nout == 1 ? "" : "s")
}
function sbar(label, n, group) {
	if (has(n)) {
		sdat = sdat sprintf("%s\t%s\t%s\t%d\n", label, val[n], fval(n), \
		    group)
		sbars++
	}
}
# One load of the latency plot, under header: a row per percentile (x,
# percentile, weft's green server and the reference: PRE.PCT.GSX and
# PRE.PCT.RSX, then their labels) in ldat, and the header at the middle
# of its four in lhead; nothing when neither server has a percentile.
# A load takes five places on x: its four, and a gap before the next.
# lmin and lmax keep the range of the latencies drawn, lng and lnr how
# many of each server's there are.
function lload(header, pre, gsx, rsx,    j, any, g, r) {
	any = 0
	for (j = 1; j <= 4; j++)
		if (has(pre "." lpc[j] "." gsx) || has(pre "." lpc[j] "." rsx))
			any = 1
	if (!any) return
	for (j = 1; j <= 4; j++) {
		g = pre "." lpc[j] "." gsx; r = pre "." lpc[j] "." rsx
		ldat = ldat sprintf("%d\t%s\t%s\t%s\t%s\t%s\n", lx + j - 1, \
		    llab[j], dat(g), dat(r), lbl(g), lbl(r))
		lrange(g); lrange(r)
		if (has(g)) lng++
		if (has(r)) lnr++
	}
	lhead = lhead sprintf("%.1f\t%s\n", lx + 1.5, header)
	lx += 5
}
function lrange(n) {
	if (!has(n) || num(val[n]) <= 0) return
	if (lmin == "" || num(val[n]) < lmin) lmin = num(val[n])
	if (lmax == "" || num(val[n]) > lmax) lmax = num(val[n])
}

BEGIN {
	nc = split(cat, cl, "\n")
	for (i = 1; i <= nc; i++) {
		split(cl[i], w, "|")
		cname[i] = w[1]; cunit[w[1]] = w[2]; cop[w[1]] = w[3]
		ctgt[w[1]] = w[4]; cquick[w[1]] = w[5]; cwhat[w[1]] = w[6]
		known[w[1]] = 1
	}
	nr = split(ratios, rl, "\n")
}
# The history first: the figures of earlier runs in this mode, oldest
# first (not those of this run, if the report is written again).
FILENAME == hist {
	if ($2 == run) seen_run = 1
	if ($0 !~ /^#/ && NF >= 5 && $3 == mode && $2 != run && $5 ~ /^[-0-9.e+]+$/)
		hv[$4, ++hn[$4]] = $5 + 0
	next
}
$1 == "#note" { rnote[++nnote] = $2; next }
$1 == "#samples" { samp[$2] = $3; next }
$1 == "#series" { ser[$2] = $3; next }
$1 == "#retried" { retr[$2] = $3 " retried: " $4; sadd($2); next }
$1 == "#stalled" { pstl[$2] = $3 " stalled: " $4; sadd($2); next }
/^#/ { next }
NF >= 3 && $2 == "n/a" { na[$1] = NF >= 4 ? $4 : "not measured"; next }
NF >= 3 && $2 == "stalled" {
	stl[$1] = NF >= 4 ? $4 : "stalled"; sunit[$1] = $3; sadd($1); next
}
NF >= 3 { val[$1] = $2; unit[$1] = $3; order[++nv] = $1 }
END {
	quick = mode == "quick"
	# ---- stalls ----
	# A figure measured after all (a later line) is not stalled.
	nstl = 0; npst = 0; nretr = 0
	for (i = 1; i <= nsn; i++) {
		n = snames[i]
		if ((n in stl) && has(n)) delete stl[n]
		if (n in stl) nstl++
		if (n in pstl) npst++
		if (n in retr) nretr++
	}
	# Figures of one sample or one load share their reason: one line each
	# for the lists, the names together.
	ngrp = 0
	for (i = 1; i <= nsn; i++) {
		n = snames[i]
		t = ((n in stl) ? "STALLED: " : "") stallwhy(n)
		if (ngrp && t == gtext[ngrp]) { gnames[ngrp] = gnames[ngrp] ", " n; continue }
		gnames[++ngrp] = n; gtext[ngrp] = t
	}
	# ---- outliers, in the order of the catalogue ----
	nref = split(refs, rf, "\n")
	for (i = 1; i <= nref; i++) {
		split(rf[i], w, "|")
		refof[w[1]] = w[2]; reffac[w[1]] = w[3] + 0
	}
	nout = 0
	for (i = 1; i <= nc; i++) {
		n = cname[i]
		wild_samples(n)
		if (n in refof) off_reference(n, refof[n], reffac[n])
		off_history(n)
	}
	# ---- targets ----
	missing = 0; misses = 0; ntg = 0
	for (i = 1; i <= nc; i++) {
		n = cname[i]
		skip = (n in na) || (n in stl) || (quick && cquick[n] == "full only")
		if (!has(n) && !skip) { missing++; missname = missname " " n }
		if (cop[n] == "") continue
		ntg++
		tl[ntg] = n " " cop[n] " " ctgt[n] (cunit[n] == "bool" ? "" : " " cunit[n])
		if (!has(n)) {
			tm[ntg] = (n in na) ? na[n] : (n in stl) ? stl[n] : "-"
			ts[ntg] = (n in na) ? "n/a" : (n in stl) ? "STALLED" : \
			    skip ? "not run" : "MISSING"
			continue
		}
		tm[ntg] = fval(n)
		ts[ntg] = compare(num(val[n]), cop[n], num(ctgt[n])) ? "PASS" : "MISS"
		if (ts[ntg] == "MISS") misses++
	}
	for (i = 1; i <= nr; i++) {
		split(rl[i], w, "|")
		ntg++
		tl[ntg] = w[1]
		if ((w[2] in na) || (w[3] in na)) {
			tm[ntg] = (w[3] in na) ? w[3] ": " na[w[3]] : w[2] ": " na[w[2]]
			ts[ntg] = "n/a"; continue
		}
		if ((w[2] in stl) || (w[3] in stl)) {
			tm[ntg] = (w[3] in stl) ? w[3] ": " stl[w[3]] : \
			    w[2] ": " stl[w[2]]
			ts[ntg] = "STALLED"; continue
		}
		if (quick && (cquick[w[2]] == "full only" || \
		    cquick[w[3]] == "full only")) {
			tm[ntg] = "-"; ts[ntg] = "not run"; continue
		}
		if (!has(w[2]) || !has(w[3]) || num(val[w[3]]) == 0) {
			tm[ntg] = "-"; ts[ntg] = "MISSING"; continue
		}
		r = num(val[w[2]]) / num(val[w[3]])
		# Targets near 1 (server against reference) need the decimals.
		tm[ntg] = (num(w[5]) == 1 ? sprintf("%.2fx", r) : fx(r)) " (" \
		    fval(w[2]) " / " fval(w[3]) rounds(w[2], w[3], num(w[5])) \
		    beside(w[6], w[3]) ")"
		ts[ntg] = compare(r, w[4], num(w[5])) ? "PASS" : "MISS"
		if (ts[ntg] == "MISS") misses++
	}

	# ---- REPORT.md ----
	out = report
	printf "# weft: what green threads, kernel threads and processes " \
	    "cost\n\n" > out
	printf "%s run, %s, %s s.  Machine: %s, %s CPUs, %s, %s.  " \
	    "Load average before the run: %s; at the end: %s (the crowds " \
	    "of kernel threads and processes raise it).\n\n", mode, when, \
	    secs, cpu, ncpu, memtotal, kernel, load0, load > out
	if (quick)
		printf "**Quick mode**: shorter runs, 3 repetitions, smaller " \
		    "crowds (the notes say which figures are scaled down); " \
		    "indicative figures only.  `make bench` runs the full " \
		    "set.\n\n" > out
	printf "Every figure is the median of several repetitions, each in " \
	    "a fresh process; figures that are compared were measured in " \
	    "turns within this run.  Kernel threads and processes were " \
	    "pinned to CPUs (\"two CPUs\": one each on the first two CPUs; " \
	    "\"one CPU\": both on the first).  On this machine a system " \
	    "call costs %s and a page fault %s: creating kernel threads " \
	    "and processes, and first touches of fresh stacks, are made " \
	    "of these.  A cache line takes %s to move from one CPU to the " \
	    "other: every message, lock or queue that two CPUs share pays " \
	    "it at least once (spawn.1m.green, the cross handoffs and " \
	    "msg.rate.process.* follow it).  The numbers are only as quiet " \
	    "as the machine.\n\n", \
	    fval("machine.syscall"), fval("machine.fault"), \
	    fval("machine.line") > out

	printf "## Summary\n\n" > out
	printf "| mode | create (start + wait) | switch / handoff (one way) " \
	    "| memory per idle unit | talk (4 KiB messages) |\n" > out
	printf "| --- | --- | --- | --- | --- |\n" > out
	printf "| green thread | %s | %s (1 worker), %s (2 workers); " \
	    "yield %s | %s | %s by pointer |\n", fval("spawn_join.green"), \
	    fval("handoff.green.local"), fval("handoff.green.cross"), \
	    fval("yield.green"), fval("mem.idle.green"), \
	    fval("msg.rate.green") > out
	printf "| kernel thread | %s | %s (two CPUs), %s (one CPU) | %s " \
	    "| %s by pointer |\n", fval("spawn_join.kthread"), \
	    fval("handoff.kthread"), fval("handoff.kthread.1cpu"), \
	    fval("mem.idle.kthread"), fval("msg.rate.kthread") > out
	printf "| process | %s | pchan %s, pipe %s (two CPUs); pchan %s, " \
	    "pipe %s (one CPU) | %s | %s by pointer (shared heap), %s " \
	    "through a pipe |\n\n", fval("spawn_join.process"), \
	    fval("handoff.process.shm"), fval("handoff.process.pipe"), \
	    fval("handoff.process.shm.1cpu"), \
	    fval("handoff.process.pipe.1cpu"), fval("mem.idle.process"), \
	    fval("msg.rate.process.shm"), fval("msg.rate.process.pipe") > out

	printf "## Targets\n\n| target | measured | status |\n" > out
	printf "| --- | --- | --- |\n" > out
	for (i = 1; i <= ntg; i++)
		printf "| %s | %s | %s |\n", tl[i], tm[i], \
		    ts[i] == "PASS" || ts[i] == "n/a" ? ts[i] : "**" ts[i] "**" > out
	printf "\n%s.\n\n", counts() > out
	if (ringref() != "")
		printf "%s\n\n", ringref() > out
	if (wakeref() != "")
		printf "%s\n\n", wakeref() > out

	# ---- stalls ----
	printf "## Stalled and retried\n\n" > out
	printf "A sample that fails (its process exits non-zero, is killed or " \
	    "passes its alarm; a server load that fails or passes its " \
	    "timeout) is run once more, in a fresh process or against a " \
	    "fresh server; if it fails again it has stalled.  A figure with " \
	    "no sample left is shown as STALLED, with the reason; one with " \
	    "some is the median of the others.  Stalls do not fail the run " \
	    "(unless BENCH_STRICT=1).\n\n" > out
	if (!nsn)
		printf "No sample failed in this run.\n\n" > out
	else {
		printf "| figure | reported | what happened |\n" \
		    "| --- | ---: | --- |\n" > out
		for (i = 1; i <= nsn; i++) {
			n = snames[i]
			printf "| %s | %s | %s |\n", n, fval(n), stallwhy(n) > out
		}
		printf "\n" > out
	}

	# ---- outliers ----
	printf "## Outliers\n\n" > out
	printf "Figures far from their usual range, flagged but kept: a " \
	    "sample more than 3x away from the median of its figure; a " \
	    "weft server below 1/5 of the reference server's throughput " \
	    "or above 10x its p99 in the same run; or a figure outside " \
	    "[1/3, 3x] of the median of its last (up to) 5 runs in this " \
	    "mode, given 2 or more (history.tsv beside this report).  Each " \
	    "is listed with its raw samples (a server figure is one " \
	    "run).\n\n" > out
	if (!nout)
		printf "None in this run.\n\n" > out
	else {
		printf "| figure | value | why flagged | samples |\n" \
		    "| --- | ---: | --- | --- |\n" > out
		for (i = 1; i <= nout; i++) {
			n = onames[i]
			printf "| %s | %s | %s | %s |\n", n, fval(n), owhy[n], \
			    fsamples(n) > out
		}
		printf "\n" > out
	}

	# ---- claims ----
	printf "## Claims of the explainer, measured\n\n" > out
	printf "The quantitative claims of *Threads vs Processes* " \
	    "(the explainer weft makes runnable), against this run.\n\n" > out
	printf "| claim | measured here | verdict |\n| --- | --- | --- |\n" > out
	claim_rows()
	printf "\n" > out

	# ---- servers ----
	printf "## Servers\n\n" > out
	printf "weft's server demos under load, each started on an " \
	    "ephemeral port and stopped with SIGTERM after its runs.  The " \
	    "load generators run on the same machine and share its %s " \
	    "CPUs with the server, so every figure is for the pair.  " \
	    "HTTP: wrk -t2, keep-alive GET / (a 6-byte body), %s per run.  " \
	    "KV: redis-benchmark -t set,get -c 50, %s requests per " \
	    "test (%s with -P 16); req/s counts SET and GET together, the " \
	    "latencies are the worse of the two.  Echo: bench/echo_load, " \
	    "100 connections each sending 64 bytes and waiting for the " \
	    "echo, %s.  CPU/req is the server's CPU time (user and system, " \
	    "all its processes) over the load divided by the requests " \
	    "served: unlike req/s, it does not depend on how the CPUs were " \
	    "shared with the load generator.  The last column is the " \
	    "throughput against the reference server under the same " \
	    "load.\n\n", ncpu, \
	    quick ? "1 s" : "3 s (2 s at -c1000)", \
	    quick ? "2,000" : "30,000", quick ? "50,000" : "300,000", \
	    quick ? "1 s" : "3 s" > out
	if (has("http.green.procs") && num(val["http.green.procs"]) > 1)
		gcfg = "green, --procs " val["http.green.procs"] " --workers " \
		    val["http.green.workers"]
	else if (has("http.green.workers"))
		gcfg = "green, --workers " val["http.green.workers"]
	else
		gcfg = "green"
	printf "| load | server | mode | req/s | p50 | p99 | CPU/req | vs " \
	    "reference |\n| --- | --- | --- | ---: | ---: | ---: | ---: | " \
	    "---: |\n" > out
	split("c100 c1000", cc, " ")
	for (k = 1; k <= 2; k++) {
		sx = k == 1 ? "" : ".c1000"
		ld = "HTTP, wrk -" substr(cc[k], 1)
		ref = "http.rps.nginx" sx
		srow(ld, "servers/http", gcfg, "http", "green" sx, ref)
		srow(ld, "servers/http", "kthread", "http", "kthread" sx, ref)
		srow(ld, "servers/http", "process", "http", "process" sx, ref)
		srow(ld, "nginx", "2 worker processes", "http", "nginx" sx, ref)
		if (k == 2)
			srow(ld, "nginx, started again", "2 worker processes", \
			    "http", "nginx.again" sx, ref)
	}
	srow("HTTP, wrk -c100", "floor (bench/ref/epoll_floor.c)", \
	    "epoll, one thread", "http", "floor", "http.rps.nginx")
	srow("HTTP, wrk -c100", "floor (bench/ref/uring_floor.c)", \
	    "io_uring, one thread", "http", "floor.uring", "http.rps.nginx")
	ld = "KV, redis-benchmark -c 50"
	srow(ld, "servers/kv", "green, --workers 2", "kv", "green", "kv.rps.redis")
	srow(ld, "servers/kv", "kthread", "kv", "kthread", "kv.rps.redis")
	srow(ld, "servers/kv", "process", "kv", "process", "kv.rps.redis")
	srow(ld, "redis-server", "one thread", "kv", "redis", "kv.rps.redis")
	srow(ld, "redis-server, started again", "one thread", "kv", \
	    "redis.again", "kv.rps.redis")
	srow(ld, "floor (bench/ref/epoll_floor.c)", "epoll, one thread", "kv", \
	    "floor", "kv.rps.redis")
	srow(ld, "floor (bench/ref/uring_floor.c)", "io_uring, one thread", \
	    "kv", "floor.uring", "kv.rps.redis")
	srow(ld, "servers/kv, pinned", "green, --workers 1, its own CPU", \
	    "kv", "green.pin", "kv.rps.redis.pin")
	srow(ld, "redis-server, pinned", "one thread, its own CPU", "kv", \
	    "redis.pin", "kv.rps.redis.pin")
	ld = "KV, redis-benchmark -c 50 -P 16"
	srow(ld, "servers/kv", "green, --workers 2", "kv", "green.p16", \
	    "kv.rps.redis.p16")
	srow(ld, "redis-server", "one thread", "kv", "redis.p16", \
	    "kv.rps.redis.p16")
	srow(ld, "floor (bench/ref/epoll_floor.c)", "epoll, one thread", "kv", \
	    "floor.p16", "kv.rps.redis.p16")
	srow(ld, "floor (bench/ref/uring_floor.c)", "io_uring, one thread", \
	    "kv", "floor.uring.p16", "kv.rps.redis.p16")
	srow(ld, "servers/kv, pinned", "green, --workers 1, its own CPU", \
	    "kv", "green.pin.p16", "kv.rps.redis.pin.p16")
	srow(ld, "redis-server, pinned", "one thread, its own CPU", "kv", \
	    "redis.pin.p16", "kv.rps.redis.pin.p16")
	ld = "echo, echo_load -c 100 -s 64"
	srow(ld, "servers/echo", "green, --workers 2", "echo", "green", "")
	srow(ld, "servers/echo", "kthread", "echo", "kthread", "")
	srow(ld, "servers/echo", "process", "echo", "process", "")
	printf "\nIdle keep-alive connections, each open after one GET / " \
	    "(bench/conn_hold), and the server's VmRSS with all of them " \
	    "open%s:\n\n", quick ? " (quick mode: 1,000 connections, not " \
	    "10,000)" : "" > out
	printf "| server | connections open | VmRSS | per connection " \
	    "(growth over the idle server) |\n| --- | ---: | ---: | ---: " \
	    "|\n" > out
	printf "| servers/http --mode green --workers 2 | %s | %s | %s |\n", \
	    fval("conn.10k.ok"), fval("conn.10k.rss"), fval("conn.10k.per") > out
	printf "| servers/http --mode kthread (a kernel thread each) | %s | %s " \
	    "| %s |\n\n", fval("conn.10k.ok.kthread"), \
	    fval("conn.10k.rss.kthread"), fval("conn.10k.per.kthread") > out
	if (nnote) {
		printf "Notes from the run:\n\n" > out
		for (i = 1; i <= nnote; i++)
			printf "- %s\n", rnote[i] > out
		printf "\n" > out
	}
	if (plots == "yes") {
		sbars = 0; sdat = ""
		sbar("http green", "http.rps.green", 1)
		sbar("http kthread", "http.rps.kthread", 1)
		sbar("http process", "http.rps.process", 1)
		sbar("nginx", "http.rps.nginx", 4)
		sbar("kv green", "kv.rps.green", 2)
		sbar("kv kthread", "kv.rps.kthread", 2)
		sbar("kv process", "kv.rps.process", 2)
		sbar("redis", "kv.rps.redis", 4)
		sbar("kv green -P16", "kv.rps.green.p16", 2)
		sbar("redis -P16", "kv.rps.redis.p16", 4)
		sbar("echo green", "echo.rps.green", 3)
		sbar("echo kthread", "echo.rps.kthread", 3)
		sbar("echo process", "echo.rps.process", 3)
		if (sbars) {
			f = dir "/plot-servers.dat"
			printf "%s", sdat > f
			close(f)
			printf "![Requests per second per server and mode]" \
			    "(servers.png)\n\n" > out
		}
		# The latency percentiles of each load, weft's green server
		# against the reference, only when some were measured: index 0
		# the bars, index 1 the loads' headers, index 2 their range
		# (latency.gp says the format).
		split("p50 p90 p99 p999", lpc, " ")
		split("p50 p90 p99 p99.9", llab, " ")
		lx = 0; ldat = ""; lhead = ""; lmin = ""; lmax = ""; lng = 0
		lnr = 0
		lload("HTTP -c100 vs nginx", "http", "green", "nginx")
		lload("HTTP -c1000 vs nginx", "http", "green.c1000", \
		    "nginx.c1000")
		lload("KV vs redis-server", "kv", "green", "redis")
		lload("KV -P 16 vs redis-server", "kv", "green.p16", \
		    "redis.p16")
		if (lmin != "") {
			f = dir "/plot-latency.dat"
			printf "# x\tpercentile\tgreen (ms)\treference (ms)\t" \
			    "labels\n%s", ldat > f
			printf "\n\n# x\tload\n%s", lhead > f
			printf "\n\n# least, greatest (ms); how many green, " \
			    "reference\n%s\t%s\t%d\t%d\n", lmin, lmax, lng, lnr > f
			close(f)
			printf "![Latency percentiles per load, weft's green " \
			    "server against the reference](latency.png)\n\n" > out
			printf "*Latency at p50, p90, p99 and p99.9 (log " \
			    "scale) of each load: wrk's for HTTP (p90 and " \
			    "p99.9 from bench/wrk_pct.lua), redis-benchmark's " \
			    "for KV (the worse of SET and GET; p90 and p99.9 " \
			    "interpolated between its percentile lines).*\n\n" > out
		}
	}

	# ---- plots ----
	printf "## Plots\n\n" > out
	if (plots == "yes") {
		printf "![Creation cost per mode](create.png)\n\n" > out
		printf "![Switch and handoff cost per mode](handoff.png)\n\n" > out
		printf "![Memory per idle unit per mode](memory.png)\n\n" > out
		printf "![4 KiB messages per second](talk.png)\n\n" > out
		printf "![Scaling from 10 to 1,000,000 units](scaling.png)\n\n" > out
		if (("preempt.wakes.on" in ser) || ("preempt.wakes.off" in ser))
			printf "![How late a sleeper wakes beside a green thread " \
			    "that never yields, preemption on and off]" \
			    "(preempt.png)\n\n" > out
	} else if (plots == "off") {
		printf "Skipped: BENCH_NO_PLOTS=1.\n\n" > out
	} else {
		printf "Skipped: gnuplot is not installed (Debian: gnuplot-nox, " \
		    "which setup.sh installs).  The tables hold the same " \
		    "figures.\n\n" > out
	}

	# ---- scaling table ----
	printf "## Scaling: N units alive at once\n\n" > out
	printf "Start N units that each block (green threads and kernel " \
	    "threads in a channel receive, processes in read()), until all " \
	    "of them run; then memory is read with all N blocked.  Per " \
	    "unit: the time to start it, and its memory (user pages + page " \
	    "tables + kernel stack).%s\n\n", quick ? "  Quick mode stops " \
	    "each ladder one rung lower." : "" > out
	printf "| units | green: start | green: memory | kernel thread: " \
	    "start | kernel thread: memory | process: start | process: " \
	    "memory |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n" > out
	split("green kthread process", md, " ")
	for (e = 1; e <= 6; e++) {
		n = 10 ^ e; line = "| " n " |"; any = 0
		for (m = 1; m <= 3; m++) {
			a = "scale." md[m] "." n ".ns"; b = "scale." md[m] "." n ".kib"
			line = line " " (has(a) ? fval(a) : "") " | " \
			    (has(b) ? fval(b) : "") " |"
			if (has(a)) any = 1
		}
		if (any) print line > out
	}
	printf "\n" > out

	# ---- memory ----
	printf "## How memory is counted\n\n" > out
	printf "Per idle unit, with N units blocked (green %s, kernel " \
	    "threads %s, processes %s):\n\n", quick ? "10,000" : "100,000", \
	    quick ? "1,000" : "10,000", quick ? "100" : "1,000" > out
	printf "- *user pages*: green threads and kernel threads: the growth " \
	    "of the process RSS.  Processes: the growth of the summed Pss " \
	    "of anonymous and shared-memory pages over the parent and all " \
	    "children (Pss splits a shared page among the processes that " \
	    "map it, so the sum counts each physical page once: the pages " \
	    "a child copied on write count, the ones it still shares do " \
	    "not).  File-backed pages (library code) are left out: they " \
	    "exist once whatever the count.\n" > out
	printf "- *page tables*: the growth of VmPTE (/proc/PID/status) of " \
	    "the process, or the VmPTE of the children summed.\n" > out
	printf "- *kernel stack*: 16 KiB per kernel thread or process " \
	    "(x86-64 THREAD_SIZE without KASAN), counted as that constant.  " \
	    "As a check, KernelStack in /proc/meminfo (system-wide) grew " \
	    "by %s per kernel thread and %s per process in this run.  A " \
	    "green thread has none (%s).\n", \
	    fval("mem.idle.kthread.kstack.meminfo"), \
	    fval("mem.idle.process.kstack.meminfo"), \
	    fval("mem.idle.green.kstack.meminfo") > out
	printf "- *not counted*: kernel slab (task_struct, mm_struct, VMAs, " \
	    "file tables...), measured as the growth of SUnreclaim in " \
	    "/proc/meminfo, which is system-wide and so also shows other " \
	    "work on the machine: green %s, kernel thread %s, process %s " \
	    "per unit.\n\n", fval("mem.idle.green.slab"), \
	    fval("mem.idle.kthread.slab"), fval("mem.idle.process.slab") > out

	# ---- all figures ----
	printf "## All figures\n\n| name | value | what |\n" > out
	printf "| --- | ---: | --- |\n" > out
	for (i = 1; i <= nc; i++) {
		n = cname[i]
		note = (quick && cquick[n] != "") ? " (quick: " cquick[n] ")" : ""
		printf "| %s | %s | %s%s |\n", n, has(n) ? fvalo(n) : \
		    (n in na) ? "n/a" : (n in stl) ? "STALLED" : \
		    (quick && cquick[n] == "full only") ? "not run" : "MISSING", \
		    cwhat[n], note > out
	}
	for (i = 1; i <= nv; i++)
		if (!(order[i] in known) && order[i] !~ /^scale\./ && \
		    order[i] !~ /^http\.(rps|p50|p90|p99|p999)\.green\.(w2|p2)/)
			printf "| %s | %s %s | |\n", order[i], val[order[i]], \
			    unit[order[i]] > out
	printf "\nThe raw figures, scaling rungs included, are in latest.tsv " \
	    "(name, median, unit; each figure's samples on a #samples " \
	    "line); the programs print min and max too.\n" > out
	close(out)

	# ---- latest.txt: the terminal summary ----
	out = summary
	printf "\nweft bench summary: %s mode, %s, %s CPUs, %s s, load " \
	    "average %s before, %s after\n", mode, when, ncpu, secs, load0, \
	    load > out
	if (quick)
		printf "quick mode: smaller counts and 3 runs; indicative " \
		    "figures only\n" > out
	printf "%-34s %12s %-6s %-9s %-7s %s\n", "name", "value", "unit", \
	    "target", "status", "note" > out
	for (i = 1; i <= nc; i++) {
		n = cname[i]
		t = cop[n] == "" ? "" : cop[n] " " ctgt[n]
		st = "-"
		if (!has(n)) st = (n in na) ? "n/a" : (n in stl) ? "STALLED" : \
		    (quick && cquick[n] == "full only") ? "not run" : "MISSING"
		else if (cop[n] != "")
			st = compare(num(val[n]), cop[n], num(ctgt[n])) ? "PASS" : "MISS"
		note = quick ? (cquick[n] != "" ? "quick: " cquick[n] : "quick") : ""
		if (n in owhy) note = "OUTLIER" (note == "" ? "" : "; " note)
		if ((n in pstl) || (n in retr))
			note = ((n in pstl) ? "samples stalled" : "retried") \
			    (note == "" ? "" : "; " note)
		printf "%-34s %12s %-6s %-9s %-7s %s\n", n, \
		    has(n) ? val[n] : (n in na) ? "n/a" : (n in stl) ? "stalled" : \
		    "-", cunit[n], t, st, note > out
	}
	printf "\n%-58s %s\n", "comparison", "status" > out
	for (i = 1; i <= nr; i++) {
		j = ntg - nr + i
		printf "%-58s %-7s %s\n", tl[j], ts[j], tm[j] > out
	}
	if (ringref() != "")
		printf "%s\n", ringref() > out
	if (wakeref() != "")
		printf "%s\n", wakeref() > out
	if (nsn) {
		printf "\nstalled and retried (REPORT.md: Stalled and retried):\n" > out
		for (i = 1; i <= ngrp; i++)
			printf "  %s: %s\n", gnames[i], gtext[i] > out
	}
	if (nout) {
		printf "\noutliers (REPORT.md: Outliers):\n" > out
		for (i = 1; i <= nout; i++)
			printf "  %s = %s: %s; samples: %s\n", onames[i], \
			    fval(onames[i]), owhy[onames[i]], \
			    fsamples(onames[i]) > out
	}
	if (missing)
		printf "\nmissing:%s\n", missname > out
	printf "\n%s\n", counts() > out
	close(out)

	# ---- history: this run, once ----
	if (!seen_run) {
		f = dir "/history.new"
		for (i = 1; i <= nc; i++)
			if (has(cname[i]) && val[cname[i]] ~ /^[-0-9.e+]+$/)
				printf "%s\t%s\t%s\t%s\t%s\n", stamp, run, mode, \
				    cname[i], val[cname[i]] > f
		close(f)
	}

	# ---- plot data ----
	if (plots == "yes") {
		f = dir "/plot-create.dat"
		bar(f, "green (weft_spawn)", "spawn_join.green")
		bar(f, "green (weft_task)", "spawn_join.green.task")
		bar(f, "kernel thread", "spawn_join.kthread")
		bar(f, "process", "spawn_join.process")
		close(f)
		# Two bars a group: two CPUs (green: 2 workers), one CPU.
		f = dir "/plot-handoff.dat"
		bar2(f, "raw switch", "", "switch.asm")
		bar2(f, "green yield", "", "yield.green")
		bar2(f, "green chan", "handoff.green.cross", "handoff.green.local")
		bar2(f, "kthread chan", "handoff.kthread", "handoff.kthread.1cpu")
		bar2(f, "kthread pipe", "handoff.kthread.pipe", \
		    "handoff.kthread.pipe.1cpu")
		bar2(f, "process pipe", "handoff.process.pipe", \
		    "handoff.process.pipe.1cpu")
		bar2(f, "process pchan", "handoff.process.shm", \
		    "handoff.process.shm.1cpu")
		close(f)
		f = dir "/plot-memory.dat"
		split("green kthread process", md, " ")
		split("green thread|kernel thread|process", mlab, "|")
		for (m = 1; m <= 3; m++) {
			b = "mem.idle." md[m]
			printf "%s\t%s\t%s\t%s\t%s\t%s\n", mlab[m], dat(b ".user"), \
			    dat(b ".pt"), dat(b ".kstack"), dat(b), lbl(b) > f
		}
		close(f)
		f = dir "/plot-talk.dat"
		bar(f, "green threads", "msg.rate.green")
		bar(f, "kernel threads", "msg.rate.kthread")
		bar(f, "processes: pipe", "msg.rate.process.pipe")
		bar(f, "processes: shared heap", "msg.rate.process.shm")
		bar(f, "processes: bare ring (not weft)", "msg.rate.process.ring")
		close(f)
		f = dir "/plot-scale.dat"
		for (m = 1; m <= 3; m++) {
			if (m > 1) printf "\n\n" > f
			printf "# %s\n", md[m] > f
			rows = 0
			for (e = 1; e <= 6; e++) {
				n = 10 ^ e; a = "scale." md[m] "." n
				if (has(a ".ns") && has(a ".kib")) {
					printf "%d\t%s\t%s\n", n, val[a ".ns"], val[a ".kib"] > f
					rows++
				}
			}
			if (!rows) printf "1\t-\t-\n" > f
		}
		close(f)
		# The sleeper's wakes (bench/preempt), "due:late" in ms: index 0
		# with preemption on, 1 off; only when the program ran.
		if (("preempt.wakes.on" in ser) || ("preempt.wakes.off" in ser)) {
			f = dir "/plot-preempt.dat"
			split("on off", pm, " ")
			for (m = 1; m <= 2; m++) {
				if (m > 1) printf "\n\n" > f
				printf "# preemption %s: due (ms), late (ms)\n", pm[m] > f
				k = split(ser["preempt.wakes." pm[m]], pw, ",")
				rows = 0
				for (i = 1; i <= k; i++)
					if (split(pw[i], xy, ":") == 2) {
						printf "%s\t%s\n", xy[1], xy[2] > f
						rows++
					}
				if (!rows) printf "-\t-\n" > f
			}
			close(f)
		}
	}
	print (missing ? 3 : misses ? 4 : nstl + npst ? 5 : 0) > (dir "/.status")
}
