# rounds.awk - merges the figures of loads run in several rounds into one
# set, in the TSV conventions of bench/bench.h.
#
#   awk -F'\t' -f bench/rounds.awk ROUND1.tsv ROUND2.tsv ...
#
# servers.sh runs weft's servers and their references in turns (green,
# nginx, green, nginx, ...), each round's figures in a file of its own.
# For each figure, in the order first seen:
#  - a value in at least one round: name<TAB>median<TAB>unit, then
#    #samples<TAB>name<TAB>v1,v2,... (every round's value, in the order
#    run), #stalled<TAB>name<TAB>K of N runs<TAB>why when K rounds stalled,
#    and #retried<TAB>name<TAB>K of N runs<TAB>why when K rounds passed
#    only on a second try;
#  - no value in any round (stalled or n/a every time): the last round's
#    line as it is, and #retried the same way.
# #note lines pass through once each.  The median of an even count is the
# mean of the middle two, as bench_median's.

# The median of the comma-separated values s: for an odd count the middle
# value as it was written, for an even count the mean of the middle two.
function median(s,    v, w, k, i, j, t) {
	k = split(s, w, ",")
	for (i = 1; i <= k; i++) v[i] = w[i] + 0
	for (i = 2; i <= k; i++)
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	if (k % 2 == 0) return sprintf("%.6g", (v[k / 2] + v[k / 2 + 1]) / 2)
	for (i = 1; i <= k; i++)
		if (w[i] + 0 == v[(k + 1) / 2]) return w[i]
}
function numeric(x) { return x ~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ }
function seen(n) { if (!(n in first)) { first[n] = 1; order[++nn] = n } }

FNR == 1 { rounds++ }
$1 == "#note" {
	if (!($2 in noted)) { noted[$2] = 1; notes[++nnotes] = $0 }
	next
}
$1 == "#retried" { seen($2); retried[$2]++; rwhy[$2] = $4; next }
/^#/ { next }
NF >= 3 {
	n = $1
	seen(n)
	unit[n] = $3
	if (numeric($2)) {
		# (not "vals[n] = (n in vals) ? ...": mawk makes the element
		# before it looks)
		v = nv[n]++ ? vals[n] "," $2 : $2
		vals[n] = v
	} else {
		last[n] = $0
		if ($2 == "stalled") { stalled[n]++; swhy[n] = $4 }
	}
}
END {
	for (i = 1; i <= nnotes; i++) print notes[i]
	for (i = 1; i <= nn; i++) {
		n = order[i]
		if (nv[n]) {
			printf "%s\t%s\t%s\n", n, median(vals[n]), unit[n]
			if (rounds > 1) printf "#samples\t%s\t%s\n", n, vals[n]
			if (n in stalled)
				printf "#stalled\t%s\t%d of %d runs\t%s\n", n, stalled[n],
				    rounds, swhy[n]
		} else if (n in last) {
			print last[n]
		}
		if (n in retried)
			printf "#retried\t%s\t%d of %d runs\t%s\n", n, retried[n], rounds,
			    rwhy[n]
	}
}
