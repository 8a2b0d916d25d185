#!/bin/sh
# man_check.sh - the manual pages of the calls can be made from weft.h (and
# weft_testing.h), and nothing in them is left undocumented.
#
# Runs tools/weft-man.pl on the source's include/weft.h with --check, which
# fails (naming the line) for a public call without a comment or whose
# comment has no description, a field of a public structure, a member of a
# public enum, a typedef or a public macro without a comment, and, with
# --overview docs/weft.3, for a call that weft(3) does not list or a
# listed call that has no page.  Then it writes the pages into a scratch
# directory and checks that each public call has one, and, where groff is
# installed, that every page (weft.3 too) renders without a warning.
# Run by make check; exit 0 passes, 1 fails.

src=$(cd "${srcdir:-.}" && pwd) || exit 1
perl=${PERL:-perl}
hdr=$src/include/weft.h
thdr=$src/include/weft_testing.h
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-man.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/man3"
failed=0

# weft_testing.h's call first: weft(3) names its page under Testing.
if ! "$perl" "$src/tools/weft-man.pl" --check -o "$tmp/man3" "$thdr"; then
	failed=1
fi
if ! "$perl" "$src/tools/weft-man.pl" --check --overview "$src/docs/weft.3" \
    -o "$tmp/man3" "$hdr"; then
	failed=1
fi
if ! grep -q '^\.BR weft_fail_inject (3)' "$src/docs/weft.3"; then
	echo "man_check: weft(3) does not name weft_fail_inject(3)"
	failed=1
fi

# Every public call (WEFT_EXTERN, or a static inline weft_ function) has
# a page with a description.  The names are read here without the
# generator, so that a call it fails to see is caught too.
names=$(sed -n -e 's/^WEFT_EXTERN[^(]*[ *]\(weft_[a-z][a-z_0-9]*\)(.*/\1/p' \
	-e 's/^static inline [^(]*[ *]\(weft_[a-z][a-z_0-9]*\)(.*/\1/p' \
	"$hdr" "$thdr" | sort -u)
n=0
for name in $names; do
	n=$((n + 1))
	page=$tmp/man3/$name.3
	if [ ! -f "$page" ]; then
		echo "man_check: $name has no page"
		failed=1
		continue
	fi
	# A ".so man3/x.3" page stands for the page of its family.
	so=$(sed -n 's/^\.so man3\/\(.*\)$/\1/p' "$page")
	[ -n "$so" ] && page=$tmp/man3/$so
	if ! sed -n '/^\.SH DESCRIPTION/,/^\.S[HS]/p' "$page" |
	    grep -q '^[^.]'; then
		echo "man_check: the page of $name has no description"
		failed=1
	fi
done
if [ "$n" -lt 50 ]; then
	echo "man_check: only $n public calls found in $hdr"
	failed=1
fi

if command -v groff >/dev/null 2>&1; then
	for page in "$tmp"/man3/*.3 "$src/docs/weft.3"; do
		# From the top of the tree, where ".so man3/x.3" is found.
		out=$(cd "$tmp" && groff -man -ww -z "$page" 2>&1)
		if [ -n "$out" ]; then
			echo "man_check: $page does not render cleanly:"
			echo "$out"
			failed=1
		fi
	done
else
	echo "man_check: groff is not installed; the pages were not rendered"
fi

if [ "$failed" -ne 0 ]; then
	echo "man_check: failed"
	exit 1
fi
echo "man_check: $n calls, each with its page"
