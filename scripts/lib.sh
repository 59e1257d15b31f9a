# Shared shell functions for the project's scripts. Source it; do not run it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP_ROOT="$ROOT/.tmp"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $*"; fi
}

# Installs the Rust toolchain's absence as an error: building needs cargo.
ensure_cargo() {
  command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs)"
}

# PostgreSQL server binaries (initdb, postgres, pg_ctl) from Debian's package.
pg_bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# apt_install PACKAGE...: Debian packages, as root.
apt_install() {
  log "installing $*"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if [ -n "$(pg_bindir)" ] && [ -x "$(pg_bindir)/initdb" ]; then return; fi
  apt_install postgresql
  [ -x "$(pg_bindir)/initdb" ] || die "PostgreSQL install failed"
}

# iptables and ip: the transparent proxy test redirects traffic in a network
# namespace of its own.
ensure_iptables() {
  if command -v iptables >/dev/null && command -v ip >/dev/null; then return; fi
  apt_install iptables iproute2
  command -v iptables >/dev/null || die "iptables install failed"
}

# valgrind: `scripts/bench instructions` counts instructions with callgrind.
ensure_valgrind() {
  command -v valgrind >/dev/null && return
  apt_install valgrind
  command -v valgrind >/dev/null || die "valgrind install failed"
}

# run_as_db_user CMD...: initdb and postgres refuse to run as root.
run_as_db_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

# start_postgres DIR PORT [extra postgres -c options...]: a throwaway server
# on 127.0.0.1, trust auth, user postgres. Stop it with stop_postgres DIR.
start_postgres() {
  local dir="$1" port="$2"; shift 2
  local bin; bin="$(pg_bindir)"
  rm -rf "$dir"; mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown nobody "$dir"
  run_as_db_user "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
  local opts="-p $port -k $dir -c listen_addresses=127.0.0.1"
  for o in "$@"; do opts="$opts -c $o"; done
  run_as_db_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "$opts" start >/dev/null
}

stop_postgres() {
  local dir="$1"
  [ -d "$dir/data" ] && run_as_db_user "$(pg_bindir)/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
}

# wait_http URL SECONDS: until URL answers 2xx.
wait_http() {
  local url="$1" secs="${2:-30}" i
  for ((i = 0; i < secs * 10; i++)); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# A free TCP port on loopback.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
