#!/bin/sh
# readme_block.sh NAME [FILE] - prints the code block of FILE (README.md by
# default) marked NAME: the fenced block (```) that comes right after the
# line "<!-- block NAME -->" or "<!-- block NAME: a note -->", with only
# blank lines between them.
#
# tests/readme_hello.sh and tools/install-check.sh build the README's
# example from it, so what they check is what a reader copies.  Exit status
# 0 with the block on standard output; 1, with a message on standard
# error, when the marker is missing or given twice, is not followed by a
# code block, or the block is empty or never closed.

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 NAME [FILE]" >&2
  exit 2
fi
name=$1
file=${2:-README.md}
if [ ! -r "$file" ]; then
  echo "readme_block: cannot read $file" >&2
  exit 1
fi

awk -v name="$name" -v file="$file" '
function fail(msg) {
  print "readme_block: " file ": " msg >"/dev/stderr"
  bad = 1
  exit 1
}
BEGIN { marker = "<!-- block " name; state = 0; n = 0; lines = 0 }
{
  # The marker: "<!-- block NAME" followed by a colon, a space or the end
  # of the comment (so that hello.c does not match hello.cc).
  if (substr($0, 1, length(marker)) == marker) {
    rest = substr($0, length(marker) + 1)
    if (rest == "" || rest ~ /^(:| |-->)/) {
      if (++n > 1)
        fail("block " name " is marked twice (lines " at " and " NR ")")
      at = NR
      state = 1
      next
    }
  }
}
state == 1 && /^[ \t]*$/ { next }
state == 1 {
  if ($0 !~ /^```/)
    fail("the line after the marker of block " name " (line " at \
        ") is not the start of a code block")
  state = 2
  next
}
state == 2 && /^```/ { state = 3; next }
state == 2 { text[++lines] = $0 }
END {
  if (bad)
    exit 1
  if (n == 0)
    fail("no block " name " (a line \"<!-- block " name " -->\")")
  if (state == 2)
    fail("block " name " (line " at ") is never closed")
  if (lines == 0)
    fail("block " name " (line " at ") is empty")
  for (i = 1; i <= lines; i++)
    print text[i]
}' "$file"
