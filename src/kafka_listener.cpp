// The Kafka listener background worker (docs/kafka.md). Off unless
// pgtopic.kafka_listen_addresses is set. Started after recovery (never on a standby; on
// promotion), connected to pgtopic.database as pgtopic.kafka_role, whose topic rights the
// clients get. One event loop (WaitEventSet: the listening sockets, every connection, the
// latch, postmaster death) serves every connection; a connection has one request in flight at a
// time (its next frame is read only once the previous response is fully sent), its own memory
// context, and a request memory context reset after every request. Frames above
// pgtopic.kafka_max_frame_bytes or with a negative size close the connection before any buffer
// is allocated for them; connections above pgtopic.kafka_max_connections are closed at once.
// Without SASL (pgtopic.kafka_sasl_mechanisms empty), only loopback addresses are listened on and
// accepted from, unless pgtopic.kafka_allow_unauthenticated is set (in the server's configuration).
#include "guard.hpp"
#include "kafka/framing.hpp"
#include "kafka/wire.hpp"
#include "kafka_server.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "postmaster/interrupt.h"
#include "tcop/tcopprot.h"
#include "utils/varlena.h"

PGDLLEXPORT void pgtopic_kafka_listener_main(Datum arg);
}

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace pgtopic::kafka_server {

char *listen_addresses = nullptr;
int port = 9092;
char *advertised_host = nullptr;
char *role = nullptr;
bool allow_unauthenticated = false;
int max_connections = 100;
int max_frame_bytes = kafka::default_max_frame_bytes;
int auto_create_partitions = 0;
int idle_timeout_ms = 600000;

namespace {

constexpr int max_listen_sockets = 16;
constexpr std::size_t read_chunk = 64 * 1024;

struct Connection {
    pgsocket sock = PGINVALID_SOCKET;
    std::string in;        // bytes received, not yet a whole frame
    std::string out;       // response bytes not yet sent
    std::size_t sent = 0;  // of out
    bool closing = false;
    bool waiting = false;                     // a Fetch parked until data or its deadline
    TimestampTz wait_until = 0;
    std::vector<FetchWatch> watch;            // the parked Fetch's partitions and the LSOs it saw
    bool watch_all = true;                    // run it again on every commit (nothing to watch)
    TimestampTz last_active = 0;              // last byte received or sent
    MemoryContext context = nullptr;          // per connection
    MemoryContext request_context = nullptr;  // reset after every request
    ConnectionAuth auth;                      // SASL state and the authenticated role
};

// All state lives here (not in the loop's frames), so an ERROR that ends the worker unwinds
// no C++ object.
struct ListenerState {
    pgsocket listen[max_listen_sockets];
    int n_listen = 0;
    std::vector<Connection *> connections;
    WaitEventSet *set = nullptr;
    bool set_dirty = true;
    MemoryContext context = nullptr;
    char first_address[NI_MAXHOST] = "";
    TimestampTz accept_paused_until = 0;  // out of file descriptors: stop accepting for a moment
};
ListenerState *state = nullptr;

bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const auto *in = reinterpret_cast<const struct sockaddr_in *>(sa);
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const auto *in6 = reinterpret_cast<const struct sockaddr_in6 *>(sa);
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

void open_listen_sockets()
{
    char *raw = pstrdup(listen_addresses);
    List *names = nullptr;
    bool bind_failed = false;
    if (!SplitGUCList(raw, ',', &names))
        ereport(FATAL, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("invalid list syntax in pgtopic.kafka_listen_addresses")));
    ListCell *lc;
    foreach (lc, names) {
        const char *name = static_cast<const char *>(lfirst(lc));
        const char *host = strcmp(name, "*") == 0 ? nullptr : name;
        char service[16];
        snprintf(service, sizeof service, "%d", port);
        struct addrinfo hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE;
        struct addrinfo *result = nullptr;
        int rc = getaddrinfo(host, service, &hints, &result);
        if (rc != 0) {
            ereport(LOG, (errmsg("pgtopic kafka: could not resolve \"%s\": %s", name, gai_strerror(rc))));
            continue;
        }
        for (struct addrinfo *ai = result; ai != nullptr && state->n_listen < max_listen_sockets; ai = ai->ai_next) {
            char addr[NI_MAXHOST];
            if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, nullptr, 0, NI_NUMERICHOST) != 0)
                snprintf(addr, sizeof addr, "?");
            if (!allow_unauthenticated && !authentication_required() && !is_loopback(ai->ai_addr)) {
                ereport(LOG, (errmsg("pgtopic kafka: not listening on non-loopback address %s", addr),
                              errdetail("Kafka clients are not authenticated: pgtopic.kafka_sasl_mechanisms is empty."),
                              errhint("Set pgtopic.kafka_sasl_mechanisms (or, for development only, "
                                      "pgtopic.kafka_allow_unauthenticated).")));
                continue;
            }
            pgsocket s = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (s == PGINVALID_SOCKET) {
                ereport(LOG, (errmsg("pgtopic kafka: could not create a socket for %s: %m", addr)));
                continue;
            }
            int one = 1;
            (void) setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (ai->ai_family == AF_INET6)
                (void) setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
            if (bind(s, ai->ai_addr, ai->ai_addrlen) != 0 || listen(s, 128) != 0) {
                ereport(LOG, (errmsg("pgtopic kafka: could not listen on %s port %d: %m", addr, port)));
                close(s);
                bind_failed = true;
                continue;
            }
            if (state->n_listen == 0)
                strlcpy(state->first_address, addr, sizeof state->first_address);
            state->listen[state->n_listen++] = s;
            ereport(LOG, (errmsg("pgtopic kafka: listening on %s port %d", addr, port)));
        }
        freeaddrinfo(result);
    }
    // Nothing bound because the port was taken: exit, and the postmaster tries again in 5 s.
    if (state->n_listen == 0 && bind_failed)
        ereport(ERROR, (errcode(ERRCODE_CONFIG_FILE_ERROR),
                        errmsg("pgtopic kafka: could not listen on any of pgtopic.kafka_listen_addresses")));
    if (state->n_listen == 0)
        ereport(LOG, (errmsg("pgtopic kafka: no address to listen on; the listener stays idle")));
}

void close_connection(Connection *c)
{
    if (c->sock != PGINVALID_SOCKET)
        close(c->sock);
    MemoryContextDelete(c->context);
    delete c;
}

void rebuild_wait_set()
{
    if (state->set != nullptr)
        FreeWaitEventSet(state->set);
    int n = 2 + state->n_listen + static_cast<int>(state->connections.size());
    state->set = CreateWaitEventSet(state->context, n);
    (void) AddWaitEventToSet(state->set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
    (void) AddWaitEventToSet(state->set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
    if (state->accept_paused_until == 0)
        for (int i = 0; i < state->n_listen; i++)
            (void) AddWaitEventToSet(state->set, WL_SOCKET_READABLE, state->listen[i], nullptr, nullptr);
    for (Connection *c : state->connections) {
        if (c->waiting)
            continue;  // one request in flight: nothing is read while its Fetch waits
        uint32 events = c->sent < c->out.size() ? WL_SOCKET_WRITEABLE : WL_SOCKET_READABLE;
        (void) AddWaitEventToSet(state->set, events, c->sock, nullptr, c);
    }
    state->set_dirty = false;
}

void accept_connections(pgsocket listener)
{
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        pgsocket s = accept4(listener, reinterpret_cast<struct sockaddr *>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (s == PGINVALID_SOCKET) {
            if (errno == EMFILE || errno == ENFILE) {
                // The pending connection stays queued and the socket stays readable: without a
                // pause the loop would spin. Try again in a second.
                ereport(LOG, (errmsg("pgtopic kafka: accept failed: %m; not accepting for 1 s")));
                state->accept_paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
                state->set_dirty = true;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
                ereport(LOG, (errmsg("pgtopic kafka: accept failed: %m")));
            }
            return;
        }
        bool loopback = is_loopback(reinterpret_cast<struct sockaddr *>(&peer));
        if (!allow_unauthenticated && !authentication_required() && !loopback) {
            close(s);
            continue;
        }
        if (static_cast<int>(state->connections.size()) >= max_connections) {
            ereport(LOG, (errmsg("pgtopic kafka: connection refused: pgtopic.kafka_max_connections (%d) reached",
                                 max_connections)));
            close(s);
            continue;
        }
        int one = 1;
        (void) setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto *c = new Connection;
        c->sock = s;
        c->last_active = GetCurrentTimestamp();
        c->context = AllocSetContextCreate(state->context, "pgtopic kafka connection", ALLOCSET_SMALL_SIZES);
        c->request_context = AllocSetContextCreate(c->context, "pgtopic kafka request", ALLOCSET_DEFAULT_SIZES);
        c->auth.context = c->context;
        c->auth.loopback = loopback;
        state->connections.push_back(c);
        state->set_dirty = true;
    }
}

// Sends what is pending; false when the peer is gone.
bool flush_output(Connection *c)
{
    while (c->sent < c->out.size()) {
        ssize_t n = send(c->sock, c->out.data() + c->sent, c->out.size() - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += static_cast<std::size_t>(n);
            c->last_active = GetCurrentTimestamp();
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n < 0 && errno == EINTR)
            continue;
        return false;
    }
    c->out.clear();
    if (c->out.capacity() > 16 * read_chunk)
        c->out.shrink_to_fit();
    c->sent = 0;
    return true;
}

// Answers the whole frames at the start of c->in, one at a time, while nothing is left to send.
void process_frames(Connection *c)
{
    while (!c->closing && c->out.empty()) {
        kafka::FrameStatus status{kafka::FrameStatus::need_more, 0};
        bool bad_size = false;
        try {
            // After a SaslHandshake v0 the client sends bare SASL tokens, which may be shorter
            // than a request header.
            status = c->auth.stage == ConnectionAuth::Stage::raw_token ? kafka::frame_status(c->in, max_frame_bytes, 1)
                                                                       : kafka::frame_status(c->in, max_frame_bytes);
        } catch (const kafka::DecodeError &) {
            bad_size = true;  // negative, tiny or oversized frame: the stream cannot be trusted
        }
        if (bad_size) {
            ereport(LOG, (errmsg("pgtopic kafka: closing a connection: frame size %d refused",
                                 static_cast<int>(kafka::read_be32(reinterpret_cast<const unsigned char *>(c->in.data())))),
                          errdetail("Frames must hold a request header and be at most pgtopic.kafka_max_frame_bytes (%d).",
                                    max_frame_bytes)));
            c->closing = true;
            break;
        }
        if (status.kind == kafka::FrameStatus::need_more)
            break;
        MemoryContext old = MemoryContextSwitchTo(c->request_context);
        TimestampTz now = GetCurrentTimestamp();
        bool may_wait = !c->waiting || now < c->wait_until;
        int wait_ms = 0;
        FrameResult result =
            handle_frame(std::string_view(c->in).substr(4, status.bytes), c->out, may_wait, &wait_ms, &c->auth);
        MemoryContextSwitchTo(old);
        MemoryContextReset(c->request_context);
        if (result == FrameResult::waiting) {
            // The frame stays in c->in; the loop hands it in again when a partition it waits on
            // may have new data (its LSO moved) or at the deadline.
            take_fetch_watch(c->watch, &c->watch_all);
            if (!c->waiting) {
                c->waiting = true;
                c->wait_until = TimestampTzPlusMilliseconds(now, Min(wait_ms, 10 * 60 * 1000));
                c->last_active = now;
                state->set_dirty = true;
            }
            break;
        }
        if (c->waiting) {
            c->waiting = false;
            c->last_active = now;
            state->set_dirty = true;
        }
        bool ok = result == FrameResult::answered;
        c->in.erase(0, 4 + status.bytes);
        if (result == FrameResult::answered_then_close) {
            (void) flush_output(c);  // e.g. a failed authentication's error, then the close
            c->closing = true;
            break;
        }
        if (c->in.capacity() > 16 * read_chunk && c->in.size() < read_chunk)
            c->in.shrink_to_fit();  // give a big frame's buffer back
        if (!ok) {
            c->closing = true;
            break;
        }
        if (!flush_output(c))
            c->closing = true;
    }
}

void read_input(Connection *c)
{
    char buf[read_chunk];
    // A bounded number of reads per wake-up, so one busy client cannot starve the others (the
    // event stays reported while bytes are waiting).
    for (int reads = 0; reads < 16; reads++) {
        ssize_t n = recv(c->sock, buf, sizeof buf, 0);
        if (n > 0) {
            c->last_active = GetCurrentTimestamp();
            c->in.append(buf, static_cast<std::size_t>(n));
            process_frames(c);
            if (c->closing || !c->out.empty())
                return;  // one request in flight: read on once the response is out
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        c->closing = true;  // EOF or error
        return;
    }
}

void handle_connection_event(Connection *c, uint32 events)
{
    bool was_writing = c->sent < c->out.size();
    if (events & WL_SOCKET_WRITEABLE) {
        if (!flush_output(c))
            c->closing = true;
        else if (c->out.empty())
            process_frames(c);  // frames that arrived while we were sending
    }
    if (!c->closing && (events & WL_SOCKET_READABLE) && c->out.empty())
        read_input(c);
    if (c->closing || was_writing != (c->sent < c->out.size()))
        state->set_dirty = true;
}

// Closes connections idle for pgtopic.kafka_idle_timeout (Kafka's connections.max.idle.ms);
// returns the milliseconds until the next one would expire (-1: none, or the timeout is off).
long expire_idle_connections()
{
    if (idle_timeout_ms <= 0 || state->connections.empty())
        return -1;
    TimestampTz now = GetCurrentTimestamp();
    long next = -1;
    for (Connection *c : state->connections) {
        if (c->closing || c->waiting)
            continue;
        TimestampTz deadline = TimestampTzPlusMilliseconds(c->last_active, idle_timeout_ms);
        if (deadline <= now) {
            c->closing = true;
            state->set_dirty = true;
            continue;
        }
        long left = static_cast<long>((deadline - now + 999) / 1000);
        if (next < 0 || left < next)
            next = left;
    }
    return next;
}

// Parked Fetch requests run again (the debug counter, for docs/kafka.md's measurement).
uint64 parked_fetch_reruns = 0;

// Hands the parked Fetch requests in again (after a producer commit woke the latch and the last
// stable offset of a partition one waits on moved, or when one's deadline passed); returns the
// milliseconds until the earliest deadline (-1: none).
long retry_waiting_fetches(bool latch_set)
{
    long next = -1;
    for (Connection *c : state->connections) {
        if (!c->waiting || c->closing)
            continue;
        TimestampTz now = GetCurrentTimestamp();
        bool due = now >= c->wait_until;
        if (due || (latch_set && (c->watch_all || fetch_watch_changed(c->watch)))) {
            parked_fetch_reruns++;
            ereport(DEBUG1, (errmsg_internal("pgtopic kafka: parked Fetch run again (%s; %llu re-runs so far)",
                                             due ? "deadline" : "new data", static_cast<unsigned long long>(parked_fetch_reruns))));
            process_frames(c);
            if (!c->waiting)
                continue;
            now = GetCurrentTimestamp();
        }
        long left = static_cast<long>((c->wait_until - now + 999) / 1000);
        left = Max(left, 0L);
        if (next < 0 || left < next)
            next = left;
    }
    return next;
}

long min_timeout(long a, long b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return Min(a, b);
}

void reap_closed_connections()
{
    std::size_t kept = 0;
    for (Connection *c : state->connections) {
        if (c->closing)
            close_connection(c);
        else
            state->connections[kept++] = c;
    }
    state->connections.resize(kept);
}

void listener_main(void *)
{
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(maintenance_database, role, 0);
    remember_worker_user();
    pgstat_report_appname("pgtopic kafka listener");
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

    StartTransactionCommand();
    bool is_superuser = superuser();
    CommitTransactionCommand();
    if (is_superuser) {
        ereport(LOG, (errmsg("pgtopic kafka: pgtopic.kafka_role \"%s\" is a superuser; the listener does not start",
                             role),
                      errhint("Use a role with per-topic rights (pgtopic.grant_topic) instead.")));
        proc_exit(0);  // exit code 0: the postmaster does not restart the worker
    }

    MemoryContext context = AllocSetContextCreate(TopMemoryContext, "pgtopic kafka listener", ALLOCSET_DEFAULT_SIZES);
    MemoryContextSwitchTo(context);
    state = new ListenerState;
    state->context = context;
    open_listen_sockets();

    set_kafka_latch(MyLatch);
    WaitEvent events[64];
    bool latch_set = false;
    for (;;) {
        long timeout = min_timeout(expire_idle_connections(), retry_waiting_fetches(latch_set));
        timeout = min_timeout(timeout, expire_producers());
        latch_set = false;
        if (state->accept_paused_until != 0) {
            TimestampTz now = GetCurrentTimestamp();
            if (now >= state->accept_paused_until) {
                state->accept_paused_until = 0;
                state->set_dirty = true;
            } else {
                long left = static_cast<long>((state->accept_paused_until - now + 999) / 1000);
                timeout = timeout < 0 ? left : Min(timeout, left);
            }
        }
        if (state->set_dirty) {
            reap_closed_connections();
            rebuild_wait_set();
        }
        int n = WaitEventSetWait(state->set, timeout, events, lengthof(events), PG_WAIT_EXTENSION);
        for (int i = 0; i < n; i++) {
            const WaitEvent &e = events[i];
            if (e.events & WL_LATCH_SET) {
                ResetLatch(MyLatch);
                latch_set = true;  // maybe a producer commit: parked fetches look again
                CHECK_FOR_INTERRUPTS();
                if (ConfigReloadPending) {
                    ConfigReloadPending = false;
                    ProcessConfigFile(PGC_SIGHUP);
                }
            } else if (e.user_data == nullptr) {
                accept_connections(e.fd);
            } else {
                handle_connection_event(static_cast<Connection *>(e.user_data), e.events);
            }
        }
        if (state->set_dirty)
            reap_closed_connections();
        MemoryContextSwitchTo(context);
    }
}

}  // namespace

const char *advertised_host_name()
{
    if (advertised_host != nullptr && advertised_host[0] != '\0')
        return advertised_host;
    if (state != nullptr && state->first_address[0] != '\0' && strcmp(state->first_address, "0.0.0.0") != 0 &&
        strcmp(state->first_address, "::") != 0)
        return state->first_address;
    return "localhost";
}

void define_settings()
{
    DefineCustomStringVariable("pgtopic.kafka_listen_addresses",
                               "Addresses the Kafka protocol listener binds to ('' = no listener).",
                               "A comma-separated list of host names or addresses, or * for all. Only loopback "
                               "addresses are used unless pgtopic.kafka_allow_unauthenticated is on.",
                               &listen_addresses, "", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.kafka_port", "TCP port of the Kafka protocol listener.", nullptr, &port, 9092,
                            1, 65535, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("pgtopic.kafka_advertised_host",
                               "Host name Metadata responses tell Kafka clients to connect to.",
                               "Empty: the first address the listener bound.", &advertised_host, "", PGC_SIGHUP, 0,
                               nullptr, nullptr, nullptr);
    DefineCustomStringVariable("pgtopic.kafka_role",
                               "Role the Kafka listener runs as; Kafka clients get its topic rights.",
                               "Must not be a superuser. Required when pgtopic.kafka_listen_addresses is set.",
                               &role, "", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("pgtopic.kafka_allow_unauthenticated",
                             "Lets the Kafka listener listen on and accept non-loopback addresses.",
                             "Kafka clients are not authenticated yet: anyone who can connect gets "
                             "pgtopic.kafka_role's rights.",
                             &allow_unauthenticated, false, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("pgtopic.kafka_sasl_mechanisms",
                               "SASL mechanisms Kafka clients must authenticate with (SCRAM-SHA-256, PLAIN).",
                               "Empty (the default): no authentication, every request runs as pgtopic.kafka_role. "
                               "Otherwise every connection authenticates as a PostgreSQL role that may log in, "
                               "whose topic rights its requests get; PLAIN is offered on loopback connections only.",
                               &sasl_mechanisms, "", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.kafka_max_connections", "Most Kafka client connections at once.", nullptr,
                            &max_connections, 100, 1, 10000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.kafka_auto_create_partitions",
                            "Partitions of a topic created when a Kafka client asks Metadata for an unknown one.",
                            "0 (the default) turns auto-creation off. Creating needs pgtopic.kafka_role to be a "
                            "member of pgtopic_admin.",
                            &auto_create_partitions, 0, 0, 100000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.kafka_idle_timeout",
                            "Closes a Kafka client connection idle for this long (Kafka's connections.max.idle.ms).",
                            "0 keeps idle connections open.", &idle_timeout_ms, 600000, 0, INT_MAX, PGC_SIGHUP,
                            GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.kafka_max_frame_bytes",
                            "Largest Kafka request frame; a larger one closes its connection.", nullptr,
                            &max_frame_bytes, kafka::default_max_frame_bytes, 1024, MaxAllocSize - 1024,
                            PGC_POSTMASTER, GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
    define_producer_settings();
}

void register_worker()
{
    if (listen_addresses == nullptr || listen_addresses[0] == '\0')
        return;
    if (role == nullptr || role[0] == '\0') {
        ereport(WARNING, (errmsg("pgtopic.kafka_listen_addresses is set but pgtopic.kafka_role is not; the Kafka "
                                 "listener does not start")));
        return;
    }
    BackgroundWorker worker;
    memset(&worker, 0, sizeof(worker));
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = 5;
    snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgtopic");
    snprintf(worker.bgw_function_name, BGW_MAXLEN, "pgtopic_kafka_listener_main");
    snprintf(worker.bgw_name, BGW_MAXLEN, "pgtopic kafka listener");
    snprintf(worker.bgw_type, BGW_MAXLEN, "pgtopic kafka listener");
    RegisterBackgroundWorker(&worker);
}

}  // namespace pgtopic::kafka_server

void pgtopic_kafka_listener_main(Datum)
{
    pgtopic::guarded_void(pgtopic::kafka_server::listener_main, nullptr);
}
