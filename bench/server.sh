#!/usr/bin/env bash
# Starts (or reuses) the throwaway PostgreSQL 15 of the benchmark, with fixed settings.
# Sourced by bench/run. Needs: BENCH_DIR, BENCH_PORT. Builds nothing: uses the pgtopic installed
# in the system PostgreSQL 15 (scripts/setup installs it); BENCH_BIN points at another install's
# bin directory (e.g. a private copy built from a branch). The Kafka listener listens on
# 127.0.0.1:BENCH_KAFKA_PORT (default BENCH_PORT + 1) as the role bench_kafka (no superuser; the
# bench grants it each Kafka topic).
BIN=${BENCH_BIN:-/usr/lib/postgresql/15/bin}
BENCH_KAFKA_PORT=${BENCH_KAFKA_PORT:-$((BENCH_PORT + 1))}
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
            echo "pgtopic.kafka_listen_addresses = '127.0.0.1'"
            echo "pgtopic.kafka_port = $BENCH_KAFKA_PORT"
            echo "pgtopic.kafka_role = 'bench_kafka'"
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
    # The listener's role; its worker retries every 5 s until the role and the database exist.
    bench_psql -d postgres -qAtc "SELECT 1 FROM pg_roles WHERE rolname = 'bench_kafka'" | grep -q 1 ||
        bench_psql -d postgres -qc "CREATE ROLE bench_kafka LOGIN"
    local i
    for i in $(seq 1 30); do
        (exec 3<>/dev/tcp/127.0.0.1/$BENCH_KAFKA_PORT) 2>/dev/null && return 0
        sleep 0.5
    done
    echo "bench: the Kafka listener is not up on 127.0.0.1:$BENCH_KAFKA_PORT (the Kafka rows will be skipped)"
}

server_stop() {
    local data=$BENCH_DIR/data
    [[ -f $data/postmaster.pid ]] && as_pg "$BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
}

bench_psql() { "$BIN/psql" -X -h "$BENCH_DIR" -p "$BENCH_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"; }
