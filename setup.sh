#!/usr/bin/env bash
# setup.sh - install what weft needs (Debian 12), then configure and build.
#
#   ./setup.sh [configure options...]
#
# Installs only the packages that are missing, regenerates the build system
# only when configure is missing or older than its sources, reconfigures only
# when the options differ from the last run, then builds with make -j.
# Running it again does nothing it has already done.
set -euo pipefail

cd "$(dirname "$0")"

# To build: compiler, make, autotools, pkg-config, jemalloc (the heap).
# To test: Criterion.  valgrind provides valgrind/valgrind.h for
# --enable-valgrind, and the tool itself.
packages=(
  build-essential autoconf automake libtool pkg-config
  libjemalloc-dev
  libcriterion-dev
  valgrind
  gdb # tests/gdb_check.sh: the green-thread extension, in batch mode
  man-db # make check-install: man finds each call's page (groff renders it)
  clang libclang-rt-14-dev # make fuzz: libFuzzer
  gnuplot-nox # the plots of `make bench` (bench/results/REPORT.md)
  # The server bench: real clients, and the servers weft is compared with
  # (only run by the bench, with their own configuration; never started as
  # services).
  wrk redis-tools redis-server nginx-light
  # The Go reference of the million-thread run (bench/alive_go.sh): run
  # beside weft by the bench only, never linked into it.
  golang-go
  # Boost.Context, the reference of the raw switch (bench/switch's
  # switch.boost): linked into that bench program alone, never into weft.
  libboost-context-dev
  # liburing, for the io_uring reference of the server bench
  # (bench/ref/uring_floor.c): linked into that program alone.
  liburing-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
      grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup.sh: installing ${missing[*]}"
  if ((EUID == 0)); then
    sudo=()
  elif command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "setup.sh: run as root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# Regenerate the build system if it is missing or out of date.
regen=0
if [[ ! -x configure || ! -f build-aux/tap-driver.sh ]]; then
  regen=1
else
  for f in configure.ac Makefile.am */Makefile.mk; do
    if [[ -f $f && $f -nt configure ]]; then
      regen=1
    fi
  done
fi
if ((regen)); then
  echo "setup.sh: autoreconf -fi"
  autoreconf -fi
fi

# Configure when never configured here, when configure is newer than the
# last run, or when the options differ from the last run's (config.status
# prints those shell-quoted; eval turns them back into words).
same_options() {
  local last
  local -a old
  last=$(./config.status --config) || return 1
  eval "old=($last)"
  ((${#old[@]} == $#)) || return 1
  local i=0 a
  for a in "$@"; do
    [[ ${old[i]} == "$a" ]] || return 1
    i=$((i + 1))
  done
}
if [[ ! -x config.status || configure -nt config.status ]] ||
    ! same_options "$@"; then
  echo "setup.sh: ./configure $*"
  ./configure -q "$@"
fi

make -j"$(nproc)"
