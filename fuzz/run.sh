#!/usr/bin/env bash
# fuzz/run.sh - builds weft's libFuzzer targets with clang and runs them.
#
# Usage: fuzz/run.sh [-t SECONDS] [-b BUILD_DIR] [-c CONFIG_H] [TARGET...]
#
#   -t SECONDS   how long each target runs (default 600)
#   -b BUILD_DIR where the fuzz binaries, scratch corpora, logs and crash
#                artifacts go (default: fuzz/build under the current
#                directory, which should be the build tree)
#   -c CONFIG_H  the build tree's config.h; the runtime is compiled against
#                it with AddressSanitizer and debug checks turned on.
#                Without it a config.h with the defaults is written.
#   TARGET       http_parse, resp, sync (default: all three)
#
# Environment: FUZZ_CC (default clang), FUZZ_FLAGS (extra compiler flags),
# FUZZ_ARGS (extra libFuzzer arguments, e.g. -jobs=4 -workers=4).
#
# Every target is compiled with -fsanitize=fuzzer,address,undefined -g -O1.
# sync_fuzz needs the runtime: its sources (the list is read from
# runtime/Makefile.mk) are compiled into it with the same sanitizers and
# coverage.  Each target starts from a fresh copy of fuzz/corpus/<target>/
# and fuzz/regress/<target>/ and runs for SECONDS.  A crash, leak, hang or
# sanitizer report is copied to fuzz/regress/<target>/ in the source tree
# (so that make check replays it from then on) and makes the script exit
# with status 1 once every target has run.  Without clang or libFuzzer the
# script exits with 77 (skipped).
set -euo pipefail

seconds=600
build=
config=
while getopts "t:b:c:h" opt; do
  case $opt in
    t) seconds=$OPTARG ;;
    b) build=$OPTARG ;;
    c) config=$OPTARG ;;
    h) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [-t SECONDS] [-b BUILD_DIR] [-c CONFIG_H] [TARGET...]" >&2
       exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(http_parse resp sync)
case $seconds in
  '' | *[!0-9]* | 0) echo "fuzz/run.sh: -t wants whole seconds (at least 1)," \
                       "not '$seconds'" >&2
                     exit 2 ;;
esac

src=$(cd "$(dirname "$0")/.." && pwd)
build=${build:-$PWD/fuzz/build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
cc=${FUZZ_CC:-clang}
read -r -a extra <<<"${FUZZ_FLAGS:-}"
read -r -a fargs <<<"${FUZZ_ARGS:-}"

for t in "${targets[@]}"; do
  case $t in
    http_parse | resp | sync) ;;
    *) echo "fuzz/run.sh: unknown target '$t' (http_parse, resp, sync)" >&2
       exit 2 ;;
  esac
done

# ---------------------------------------------------------------------------
# Can we fuzz at all?
# ---------------------------------------------------------------------------
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "fuzz/run.sh: $cc not found (Debian package clang): skipping" >&2
  exit 77
fi
# shellcheck disable=SC2054 # the commas belong to the flag
san=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
probe=$build/probe.c
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {' \
  '  return n > 0 && d[0] == 1;' '}' >"$probe"
if ! "$cc" "${san[@]}" "$probe" -o "$build/probe" >"$build/probe.log" 2>&1
then
  echo "fuzz/run.sh: $cc cannot link with ${san[*]} (libFuzzer is missing;" \
    "see $build/probe.log): skipping" >&2
  exit 77
fi

# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------
cflags=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -pthread -D_GNU_SOURCE
  -Wall -Wextra -Wno-unused-parameter "${extra[@]}")
inc=(-I"$src/include" -I"$src/servers" -I"$src/fuzz")

build_parser() { # name, parser source
  echo "fuzz/run.sh: building $1_fuzz"
  "$cc" "${cflags[@]}" "${san[@]}" "${inc[@]}" "$src/fuzz/$1_fuzz.c" \
    "$src/servers/$2" -o "$build/$1_fuzz"
}

build_sync() {
  echo "fuzz/run.sh: building sync_fuzz (with the runtime)"
  local cfgdir=$build/sync-config objdir=$build/sync-obj
  mkdir -p "$cfgdir" "$objdir"
  # The runtime includes "config.h": the build tree's, with the runtime's
  # AddressSanitizer support (fiber switches) and its debug checks on.
  {
    echo "/* Written by fuzz/run.sh. */"
    if [[ -n $config ]]; then
      echo "#include \"$(cd "$(dirname "$config")" && pwd)/$(basename "$config")\""
    else
      echo "#ifndef _GNU_SOURCE"
      echo "#define _GNU_SOURCE 1"
      echo "#endif"
      echo "#define WEFT_CTX_ASM 1"
    fi
    for d in WEFT_ASAN=1 WEFT_TSAN=0 WEFT_DEBUG=1 WEFT_VALGRIND=0; do
      echo "#undef ${d%=*}"
      echo "#define ${d%=*} ${d#*=}"
    done
  } >"$cfgdir/config.h.new"
  if ! cmp -s "$cfgdir/config.h.new" "$cfgdir/config.h"; then
    mv "$cfgdir/config.h.new" "$cfgdir/config.h"
  else
    rm -f "$cfgdir/config.h.new"
  fi
  # The library's sources, as listed in runtime/Makefile.mk.
  local sources
  sources=$(sed -n '/^libweft_la_SOURCES *=/,/[^\\]$/p' \
    "$src/runtime/Makefile.mk" | grep -oE '[^[:space:]]+\.(c|S)\b')
  if [[ -z $sources ]]; then
    echo "fuzz/run.sh: no sources found in runtime/Makefile.mk" >&2
    exit 2
  fi
  local jem_cflags jem_libs
  jem_cflags=$(pkg-config --cflags jemalloc 2>/dev/null || true)
  jem_libs=$(pkg-config --libs jemalloc 2>/dev/null || echo -ljemalloc)
  local objs=() s o
  for s in $sources; do
    o=$objdir/$(echo "$s" | tr / _).o
    objs+=("$o")
    if [[ $o -nt $src/$s && $o -nt $cfgdir/config.h ]] &&
      ! find "$src/runtime" "$src/include" -name '*.h' -newer "$o" |
        grep -q .; then
      continue
    fi
    case $s in
      *.S) "$cc" -g -Wa,--noexecstack -c "$src/$s" -o "$o" ;;
      *) # shellcheck disable=SC2086
         "$cc" "${cflags[@]}" -fsanitize=fuzzer-no-link,address,undefined \
           -fno-sanitize-recover=undefined -I"$cfgdir" -I"$src/include" \
           -iquote "$src/runtime" $jem_cflags -c "$src/$s" -o "$o" ;;
    esac
  done
  # shellcheck disable=SC2086
  "$cc" "${cflags[@]}" "${san[@]}" "${inc[@]}" "$src/fuzz/sync_fuzz.c" \
    "${objs[@]}" $jem_libs -o "$build/sync_fuzz"
}

for t in "${targets[@]}"; do
  case $t in
    http_parse) build_parser http_parse http_parse.c ;;
    resp) build_parser resp resp.c ;;
    sync) build_sync ;;
  esac
done

# ---------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------
status=0
for t in "${targets[@]}"; do
  case $t in
    http_parse) max_len=9000; timeout=10
      asan=detect_leaks=1 ;;
    resp) max_len=4096; timeout=10
      asan=detect_leaks=1 ;;
    # Green-thread stacks are plain mmap memory that LeakSanitizer does not
    # scan, ASan's fake stacks belong to a kernel thread while a green
    # thread moves between workers, and weft reports its own stack
    # overflows: the same options as the sanitizer build's tests.
    sync) max_len=292; timeout=20
      asan=detect_leaks=0:detect_stack_use_after_return=0:handle_segv=0 ;;
  esac
  corpus=$build/corpus/$t
  artifacts=$build/artifacts/$t
  log=$build/$t.log
  rm -rf "$corpus" "$artifacts"
  mkdir -p "$corpus" "$artifacts"
  for d in "$src/fuzz/corpus/$t" "$src/fuzz/regress/$t"; do
    [[ -d $d ]] || continue
    find "$d" -maxdepth 1 -type f ! -name 'README*' ! -name '.*' \
      -exec cp {} "$corpus/" \;
  done
  dict=()
  [[ -f $src/fuzz/$t.dict ]] && dict=(-dict="$src/fuzz/$t.dict")
  echo "fuzz/run.sh: running ${t}_fuzz for ${seconds} s (log: $log)"
  rc=0
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}$asan \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
    "$build/${t}_fuzz" -max_total_time="$seconds" -max_len="$max_len" \
    -timeout="$timeout" -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${dict[@]}" "${fargs[@]}" \
    "$corpus" >"$log" 2>&1 || rc=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+.*DONE' \
    "$log" | sed "s/^/  ${t}: /" || true
  found=$(find "$artifacts" -type f | sort)
  if [[ $rc -ne 0 || -n $found ]]; then
    status=1
    echo "fuzz/run.sh: ${t}_fuzz FAILED (exit $rc); the end of its log:" >&2
    tail -n 40 "$log" | sed 's/^/  | /' >&2
    if [[ -n $found ]]; then
      mkdir -p "$src/fuzz/regress/$t"
      for f in $found; do
        cp "$f" "$src/fuzz/regress/$t/"
        echo "fuzz/run.sh: kept $src/fuzz/regress/$t/$(basename "$f");" \
          "replay it with: $build/${t}_fuzz $f" >&2
      done
    else
      echo "fuzz/run.sh: no crash artifact was written" >&2
    fi
  fi
done
if [[ $status -eq 0 ]]; then
  echo "fuzz/run.sh: no failures in ${#targets[@]} target(s), ${seconds} s each"
fi
exit $status
