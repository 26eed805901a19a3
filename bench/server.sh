#!/usr/bin/env bash
# Starts (or reuses) the throwaway PostgreSQL 15 of the benchmark, with fixed settings.
# Sourced by bench/run. Needs: BENCH_DIR, BENCH_PORT. Builds nothing: uses the pgtopic installed
# in the system PostgreSQL 15 (scripts/setup installs it).
BIN=/usr/lib/postgresql/15/bin
as_pg() { (cd / && runuser -u postgres -- "$@"); }   # never in the checkout (it may be unreadable to postgres)

# The fixed settings, printed with every result table.
BENCH_SETTINGS=(
    "shared_preload_libraries = 'pgtopic'"
    "pgtopic.database = 'bench'"
    "shared_buffers = '2GB'"
    "wal_level = 'replica'"
    "synchronous_commit = 'on'"
    "fsync = 'on'"
    "full_page_writes = 'on'"
    "wal_buffers = '64MB'"
    "max_wal_size = '8GB'"
    "checkpoint_timeout = '30min'"
    "max_connections = 100"
    "autovacuum = 'on'"
    "jit = 'off'"
)

server_start() {
    local data=$BENCH_DIR/data
    if [[ -f $data/postmaster.pid ]] && as_pg "$BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        echo "bench: reusing the server in $data (port $BENCH_PORT)"
    else
        if [[ ! -f $data/PG_VERSION ]]; then
            install -d -o postgres -g postgres -m 700 "$BENCH_DIR"
            as_pg "$BIN/initdb" -D "$data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
        fi
        {
            printf '%s\n' "${BENCH_SETTINGS[@]}"
            echo "port = $BENCH_PORT"
            echo "listen_addresses = ''"
            echo "unix_socket_directories = '$BENCH_DIR'"
            echo "log_min_messages = warning"
            echo "logging_collector = off"
        } | as_pg tee "$data/postgresql.auto.conf" >/dev/null
        as_pg "$BIN/pg_ctl" -D "$data" -l "$BENCH_DIR/server.log" -w -t 60 start >/dev/null
        echo "bench: started a server in $data (port $BENCH_PORT)"
    fi
    bench_psql -d postgres -qAtc "SELECT 1 FROM pg_database WHERE datname = 'bench'" | grep -q 1 ||
        bench_psql -d postgres -qc "CREATE DATABASE bench"
}

server_stop() {
    local data=$BENCH_DIR/data
    [[ -f $data/postmaster.pid ]] && as_pg "$BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
}

bench_psql() { "$BIN/psql" -X -h "$BENCH_DIR" -p "$BENCH_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"; }
