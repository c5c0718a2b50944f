#!/usr/bin/env bash
# A throwaway PostgreSQL cluster: for the tests (Tests/ServerTests/Support/
# TestPostgres.swift starts one per test process), benchmarks and humans.
#
#   tools/pg-throwaway.sh [--port N] [--parent PID]
#
# Creates a cluster in a fresh temporary directory (initdb, trust auth for
# local and 127.0.0.1, fsync off), starts it on 127.0.0.1 with its unix
# socket in that directory, then prints on stdout:
#
#   line 1: postgresql://postgres@127.0.0.1:PORT/postgres  (superuser URL)
#   line 2: the directory holding the cluster (removed at the end)
#
# and keeps it running until SIGTERM, SIGINT or SIGHUP, or until its parent
# process (or --parent PID) is gone; then stops it (immediate mode, SIGKILL
# if that fails) and removes the directory. A guard process does the same if
# this script itself is killed with SIGKILL.
#
# Without --port, a free port is chosen below the kernel's ephemeral range
# (so no client's outgoing connection can take it meanwhile) and another is
# tried if that one turns out to be taken: two runs never collide.
#
# As root, initdb and postgres (which refuse root) run as the `postgres`
# user (`nobody` when there is none) through runuser, the directory chowned
# to it. Needs PostgreSQL's server binaries: `make deps` installs them.
set -euo pipefail

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

# A test runner (Foundation's Process) starts children with SIGTERM and
# others blocked, and a blocked signal stays blocked across exec: a trap
# would never run. A non-interactive shell starts `cmd &` with SIGINT
# ignored, which bash then refuses to trap. Re-exec once with an empty
# signal mask and the stop signals at their defaults (perl-base is
# Essential on Debian, so perl is always there).
if [ -z "${PG_THROWAWAY_UNBLOCKED:-}" ]; then
    export PG_THROWAWAY_UNBLOCKED=1
    exec perl -MPOSIX -e '
        sigprocmask(SIG_SETMASK, POSIX::SigSet->new) or die "sigprocmask: $!";
        $SIG{$_} = "DEFAULT" for qw(TERM INT HUP);
        exec @ARGV or die "exec: $!"' -- "$BASH" "$0" "$@"
fi
unset PG_THROWAWAY_UNBLOCKED
# Our parent at start: when it dies we are reparented (see parent_alive).
original_ppid=$PPID

port=""
parent=""
while [ $# -gt 0 ]; do
    case "$1" in
        --port) port="${2:?--port needs a number}"; shift 2 ;;
        --parent) parent="${2:?--parent needs a pid}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "pg-throwaway: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

fail() { echo "pg-throwaway: $*" >&2; exit 1; }

# The server binaries: pg_config's (libpq-dev), else the newest Debian install.
bindir=""
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    bindir="$(pg_config --bindir)"
else
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$candidate/initdb" ]; then bindir="$candidate"; break; fi
    done
fi
[ -n "$bindir" ] || fail "no PostgreSQL server binaries (initdb) found: run make deps (apt-get install postgresql)"

# Who runs the cluster: ourselves, or an unprivileged user when we are root.
as_owner=()
owner="$(id -un)"
if [ "$(id -u)" = 0 ]; then
    if id postgres >/dev/null 2>&1; then owner=postgres; else owner=nobody; fi
    as_owner=(runuser -u "$owner" --)
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/pg-throwaway.XXXXXXXX")"
data="$dir/data"
postmaster=""
guard=""

# Stops the cluster and removes the directory; safe to run twice and from
# the guard. Writes nothing: whoever read our output may be gone (SIGPIPE).
stop_cluster() {
    if [ -f "$data/postmaster.pid" ]; then
        postmaster="$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)"
        "${as_owner[@]}" "$bindir/pg_ctl" stop -D "$data" -m immediate -w -t 10 >/dev/null 2>&1 || true
    fi
    # pg_ctl refused or timed out: the postmaster's children exit on their
    # own once it is gone.
    if [ -n "$postmaster" ] && kill -0 "$postmaster" 2>/dev/null; then
        kill -KILL "$postmaster" 2>/dev/null || true
    fi
    rm -rf "$dir"
}

cleanup() {
    trap '' TERM INT HUP
    if [ -n "$guard" ]; then kill -KILL "$guard" 2>/dev/null || true; fi
    stop_cluster
}
trap cleanup EXIT
trap 'exit 0' TERM INT HUP
trap '' PIPE

if [ "$(id -u)" = 0 ]; then
    chown "$owner:" "$dir"
    "${as_owner[@]}" test -w "$dir" || fail "$owner cannot write $dir (TMPDIR=${TMPDIR:-}): use a TMPDIR it can reach"
fi

"${as_owner[@]}" "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale --no-sync \
    >"$dir/initdb.log" 2>&1 || fail "initdb failed: $(cat "$dir/initdb.log")"

# A test cluster: nothing needs to survive a crash, and many may run at once.
cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 200
EOF

# A port below the ephemeral range: the kernel never hands it to a client.
# (A machine whose range starts that low gets 10000-32767: a retry then
# covers the rare clash.)
ephemeral_low="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
if [ "$ephemeral_low" -lt 11000 ]; then ephemeral_low=32768; fi
pick_port() { echo $(( 10000 + RANDOM % (ephemeral_low - 10000) )); }

started=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
    try_port="${port:-$(pick_port)}"
    : >"$dir/postgres.log"
    chown "$owner:" "$dir/postgres.log" 2>/dev/null || true
    if "${as_owner[@]}" "$bindir/pg_ctl" start -D "$data" -w -t 60 -l "$dir/postgres.log" \
        -o "-p $try_port" >/dev/null 2>&1; then
        started="$try_port"; break
    fi
    # Only a taken port is worth another try, and only when we chose it.
    if [ -n "$port" ] || ! grep -q -e "could not bind" -e "could not create any TCP/IP sockets" "$dir/postgres.log"; then
        break
    fi
done
[ -n "$started" ] || fail "postgres did not start: $(cat "$dir/postgres.log")"
postmaster="$(head -n 1 "$data/postmaster.pid")"

# Sets `state` and `ppid` (declare them local) from /proc/PID/stat: the
# fields after the command name, which may itself hold spaces.
stat_fields() {
    local stat
    read -r stat <"/proc/$1/stat" 2>/dev/null || return 1
    stat="${stat##*) }"
    read -r state ppid _ <<<"$stat"
}

# Whether PID is running: a zombie (dead, not yet reaped, which kill -0
# still accepts) is not.
alive() {
    local state ppid
    stat_fields "$1" && [ "$state" != Z ]
}

# Whether the process that started us (or PID) is still our parent: a
# process's children are reparented the moment it dies, even while it
# waits, a zombie, for its own parent to reap it.
child_of() {
    local state ppid
    stat_fields "$BASHPID" && [ "$ppid" = "$1" ]
}

# If we are killed with SIGKILL, the guard still stops the cluster. It
# ignores the signals a terminal sends to the whole group: we stop it.
main=$$
(
    trap '' TERM INT HUP
    while child_of "$main"; do sleep 1; done
    stop_cluster
) </dev/null >/dev/null 2>&1 &
guard=$!
disown "$guard"  # no "Killed" notice when cleanup stops it

printf 'postgresql://postgres@127.0.0.1:%s/postgres\n%s\n' "$started" "$dir" || true

# The parent we answer to is gone once we are reparented (or, for
# --parent, once it is gone or a zombie). Checking our own parent needs no
# permission to signal it and cannot be fooled by a reused pid.
parent_alive() {
    if [ -n "$parent" ]; then alive "$parent"; else child_of "$original_ppid"; fi
}

while parent_alive; do
    sleep 0.2 &
    wait $! || true
done
exit 0
