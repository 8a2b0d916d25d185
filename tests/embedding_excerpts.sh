#!/bin/sh
# embedding_excerpts.sh - every C code block of docs/embedding.md is an
# excerpt of examples/server.c: its lines appear in the file in the same
# order, each run of them consecutive, with a line "..." in the block
# standing for lines left out.  A change to the example that the guide
# does not follow fails here.  Run by make check; exit 0 passes, 1 fails
# and shows the first line of each block that was not found.

src=${srcdir:-.}
doc=$src/docs/embedding.md
code=$src/examples/server.c

awk -v doc="$doc" '
	# The example, line by line.
	FNR == NR { line[++n] = $0; next }
	# The guide: collect each ```c block, then look for it.
	/^```c$/ { inblock = 1; k = 0; start = FNR; next }
	inblock && /^```$/ { inblock = 0; blocks++; find(); next }
	inblock { want[++k] = $0 }
	function find(  i, at, j, run) {
		at = 1      # where the search for the next run begins
		i = 1
		while (i <= k) {
			if (want[i] == "...") { i++; continue }
			# The run of lines up to the next "...", consecutive.
			for (run = i; run <= k && want[run] != "..."; run++)
				;
			for (j = at; j + (run - i) - 1 <= n; j++)
				if (matches(i, run, j))
					break
			if (j + (run - i) - 1 > n) {
				printf "%s:%d: not in examples/server.c (in this order): %s\n", \
				    doc, start + i, want[i]
				bad++
				return
			}
			at = j + (run - i)
			i = run
		}
	}
	function matches(i, run, j,  m) {
		for (m = 0; i + m < run; m++)
			if (line[j + m] != want[i + m])
				return 0
		return 1
	}
	END {
		if (blocks == 0) {
			print "embedding_excerpts: no C code blocks in " doc
			exit 1
		}
		if (bad) {
			print "embedding_excerpts: " bad " of " blocks \
			    " excerpts do not match examples/server.c"
			exit 1
		}
		print "embedding_excerpts: " blocks " excerpts match examples/server.c"
	}
' "$code" "$doc"
