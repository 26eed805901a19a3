// The maintenance background worker: one per cluster, connected to pgtopic.database (as
// pg_cron does). Each pass runs in a fresh memory context and its own transaction:
//   * every pgtopic.notify_interval at most: one NOTIFY pgtopic, '<topic>' per topic that had
//     producer commits since the last pass (producers never NOTIFY themselves: NOTIFY takes a
//     database-wide lock at commit and would serialise every producer);
//   * at once: the segments producers asked for (queued in shared memory; the worker is always
//     running, so this needs no free background-worker slot), one transaction per request;
//   * every STABLE_LOG_MS: the last stable offsets that moved are WAL-logged in
//     catalog_partitions (what hot standbys read up to);
//   * every pgtopic.maintenance_interval: group members that own partitions but have not polled
//     for pgtopic.max_poll_interval are terminated; then pgtopic._maintain_topic() per topic, in
//     a transaction of its own — segments ahead of need, retention by whole segments — so a
//     topic whose locks are busy delays only itself.
// Producers set the worker's latch when they commit; an ERROR in a pass is logged, the pass's
// transaction is aborted, and the worker carries on. If it dies, the postmaster restarts it.
#include "guard.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "commands/async.h"
#include "commands/extension.h"
#include "postmaster/interrupt.h"
#include "tcop/tcopprot.h"

PGDLLEXPORT void pgtopic_maintenance_main(Datum arg);
}

namespace pgtopic {

char *maintenance_database = nullptr;
int maintenance_interval_ms = 5000;
int notify_interval_ms = 10;
bool maintenance_worker_enabled = true;

namespace {

constexpr int MAX_NOTIFY = 1024;
constexpr int MAX_REQUESTS = 128;
constexpr int STABLE_LOG_MS = 200;

MemoryContext pass_memory = nullptr;  // the current pass's context (reset every pass)

// What the worker did since the server started (pgtopic.maintenance_status(), the metrics).
// Written only by the worker, read by anyone, under the spinlock.
constexpr int LAST_ERROR_MAX = 256;
struct MaintenanceStats {
    slock_t mutex;
    int32 pid;  // the running worker, 0 when none
    TimestampTz started_at;
    int64 passes;    // maintenance passes over every topic completed
    int64 failures;  // steps (a topic's maintenance, a segment request, a notification round,
                     // logging the stable offsets) that ended with an ERROR
    TimestampTz last_pass_at;
    TimestampTz last_failure_at;
    char last_error[LAST_ERROR_MAX];
    int64 segments_created;  // ahead of need, and on producers' requests
    int64 segments_dropped;  // by retention
    int64 notifications;     // NOTIFY pgtopic payloads sent
};

MaintenanceStats *stats = nullptr;

template <typename F>
void update_stats(F change)
{
    SpinLockAcquire(&stats->mutex);
    change(*stats);
    SpinLockRelease(&stats->mutex);
}

bool extension_present()
{
    return OidIsValid(get_extension_oid("pgtopic", true));
}

// The topic id of a storage root table (pgtopic_data.topic_<id>), or -1 when the relation is
// gone or is not one (a topic dropped since its producers committed).
int32 topic_id_of_root(Oid relid, Oid data_ns)
{
    if (get_rel_namespace(relid) != data_ns)
        return -1;
    char *name = get_rel_name(relid);
    int32 id = -1;
    int used = 0;
    if (name == nullptr || sscanf(name, "topic_%d%n", &id, &used) != 1 || name[used] != '\0')
        return -1;
    return id;
}

// One NOTIFY pgtopic, '<topic>' per topic that had producer commits since the last pass. The
// cost follows the topics notified, not the topics that exist: each storage table is mapped to
// its topic id through the relation cache, and the names are read by primary key.
void send_notifications()
{
    if (!listeners_present())
        return;  // the commit counters keep counting; a later listener's first round covers them
    Oid relids[MAX_NOTIFY];
    int n = topics_to_notify(relids, MAX_NOTIFY);
    if (n == 0)
        return;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    Oid data_ns = extension_present() ? data_namespace(true) : InvalidOid;
    int64 sent = 0;
    if (OidIsValid(data_ns)) {
        Datum *ids = static_cast<Datum *>(palloc(sizeof(Datum) * n));
        int n_ids = 0;
        for (int i = 0; i < n; i++) {
            int32 id = topic_id_of_root(relids[i], data_ns);
            if (id >= 0)
                ids[n_ids++] = Int32GetDatum(id);
        }
        if (n_ids > 0) {
            // Parsed and planned once (passes run up to every notify_interval while producers commit).
            static SPIPlanPtr plan = nullptr;
            Oid argtypes[1] = {INT4ARRAYOID};
            Datum args[1] = {PointerGetDatum(construct_array(ids, n_ids, INT4OID, 4, true, TYPALIGN_INT))};
            SPI_connect();
            if (plan == nullptr) {
                SPIPlanPtr prepared =
                    SPI_prepare("SELECT topic FROM pgtopic.catalog_topics WHERE topic_id = ANY ($1)", 1, argtypes);
                if (prepared != nullptr && SPI_keepplan(prepared) == 0)
                    plan = prepared;
            }
            int rc = plan == nullptr ? SPI_ERROR_ARGUMENT : SPI_execute_plan(plan, args, nullptr, true, 0);
            if (rc == SPI_OK_SELECT)
                for (uint64 i = 0; i < SPI_processed; i++) {
                    char *topic = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
                    Async_Notify("pgtopic", topic);
                    sent++;
                }
            SPI_finish();
        }
    }
    PopActiveSnapshot();
    CommitTransactionCommand();
    update_stats([sent](MaintenanceStats &st) { st.notifications += sent; });
}

// Runs `sql` with one int4 argument in the current transaction, with a lock timeout: never
// queue behind a long reader or producer (try again next pass). The first row's bigint columns
// go into out[0..n_out) (0 when there is no row or a column is NULL).
void run_with_timeout(const char *timeout, const char *sql, int32 arg, int64 *out, int n_out)
{
    SPI_connect();
    char set[64];
    snprintf(set, sizeof set, "SET LOCAL lock_timeout = '%s'", timeout);
    (void) SPI_execute(set, false, 0);
    Oid argtypes[1] = {INT4OID};
    Datum values[1] = {Int32GetDatum(arg)};
    int rc = SPI_execute_with_args(sql, 1, argtypes, values, nullptr, false, 0);
    for (int i = 0; i < n_out; i++) {
        out[i] = 0;
        bool isnull = true;
        if (rc == SPI_OK_SELECT && SPI_processed > 0 && i < SPI_tuptable->tupdesc->natts) {
            Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull);
            if (!isnull)
                out[i] = DatumGetInt64(d);
        }
    }
    SPI_finish();
}

// The topics to maintain (in pass_memory), and whether this SQL version maintains them one by
// one (0.3.0 on); n = -1 when the extension is missing.
int32 *list_topics(int &n, bool &per_topic)
{
    n = -1;
    per_topic = false;
    int32 *ids = nullptr;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    if (extension_present()) {
        (void) expire_idle_members();  // Kafka's max.poll.interval.ms
        SPI_connect();
        per_topic = SPI_execute("SELECT 1 WHERE pg_catalog.to_regprocedure('pgtopic._maintain_topic(integer)') "
                                "IS NOT NULL", true, 0) == SPI_OK_SELECT && SPI_processed == 1;
        if (per_topic && SPI_execute("SELECT topic_id FROM pgtopic.catalog_topics ORDER BY topic_id", true, 0) ==
                             SPI_OK_SELECT) {
            n = static_cast<int>(SPI_processed);
            ids = static_cast<int32 *>(MemoryContextAlloc(pass_memory, sizeof(int32) * Max(n, 1)));
            for (int i = 0; i < n; i++) {
                bool isnull = false;
                ids[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
            }
        } else {
            n = 0;
        }
        if (!per_topic)  // an older SQL version: the whole pass in this transaction
            (void) SPI_execute("SET LOCAL lock_timeout = '1s'; SELECT pgtopic.run_maintenance()", false, 0);
        SPI_finish();
    }
    PopActiveSnapshot();
    CommitTransactionCommand();
    return ids;
}

int32 current_topic = 0;

void maintain_current_topic()
{
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pgtopic: maintenance");
    int64 done[2] = {0, 0};  // segments created, dropped
    if (extension_present())
        run_with_timeout("1s",
                         "SELECT count(*) FILTER (WHERE action = 'create segment'), "
                         "count(*) FILTER (WHERE action = 'drop segment') FROM pgtopic._maintain_topic($1)",
                         current_topic, done, 2);
    PopActiveSnapshot();
    CommitTransactionCommand();
    update_stats([&done](MaintenanceStats &st) {
        st.segments_created += done[0];
        st.segments_dropped += done[1];
    });
    pgstat_report_activity(STATE_IDLE, nullptr);
}

SegmentWanted current_request;

// One segment a producer asked for (current_request.from_segment), in a transaction of its own.
void create_requested()
{
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pgtopic: creating segments");
    // Never queue behind a DDL or a long lock holder: the producer creates the segment itself.
    (void) set_config_option("lock_timeout", "200ms", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
    // The topic's root first, in the order drop_topic locks (see segment_worker).
    int64 created = 0;
    if (extension_present() && OidIsValid(lock_topic_root(current_request.topic_id, AccessShareLock))) {
        Topic topic{};
        topic.id = current_request.topic_id;
        for (int64 k = current_request.from_segment; k <= current_request.upto_segment; k++) {
            if (OidIsValid(segment_relid(topic, current_request.partition, k)))
                continue;
            InternalScope scope = internal_begin();
            Oid argtypes[3] = {INT4OID, INT4OID, INT8OID};
            Datum values[3] = {Int32GetDatum(topic.id), Int32GetDatum(current_request.partition), Int64GetDatum(k)};
            (void) SPI_execute_with_args("SELECT pgtopic._create_segment($1, $2, $3)", 3, argtypes, values, nullptr,
                                         false, 0);
            internal_end(scope);
            CommandCounterIncrement();
            created++;
        }
    }
    PopActiveSnapshot();
    CommitTransactionCommand();
    update_stats([created](MaintenanceStats &st) { st.segments_created += created; });
    pgstat_report_activity(STATE_IDLE, nullptr);
}

void log_stable()
{
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (extension_present())
        (void) log_stable_offsets();
    CommitTransactionCommand();
}

// One pass; an ERROR is reported and its transaction aborted (false). No C++ object lives here.
bool guarded_pass(void (*pass)(), MemoryContext pass_context)
{
    volatile bool ok = true;
    PG_TRY();
    {
        pass();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(pass_context);
        ErrorData *edata = CopyErrorData();
        EmitErrorReport();
        FlushErrorState();
        AbortCurrentTransaction();
        ok = false;
        TimestampTz now = GetCurrentTimestamp();
        update_stats([edata, now](MaintenanceStats &st) {
            st.failures++;
            st.last_failure_at = now;
            strlcpy(st.last_error, edata->message != nullptr ? edata->message : "", sizeof st.last_error);
        });
    }
    PG_END_TRY();
    return ok;
}

void serve_segment_requests(MemoryContext pass_context)
{
    SegmentWanted requests[MAX_REQUESTS];
    int n = take_segment_requests(requests, MAX_REQUESTS);
    // One transaction per segment: the first one (the one a producer may be waiting for) is
    // visible as soon as it exists.
    // A failure (the partition's locks are busy) gives up the rest of that request: the
    // producer creates what it needs itself.
    for (int i = 0; i < n; i++)
        for (int64 k = requests[i].from_segment; k <= requests[i].upto_segment; k++) {
            current_request = requests[i];
            current_request.from_segment = current_request.upto_segment = k;
            if (!guarded_pass(create_requested, pass_context))
                break;
        }
}

void run_maintenance(MemoryContext pass_context)
{
    int n = 0;
    bool per_topic = false;
    int32 *ids = list_topics(n, per_topic);
    for (int i = 0; i < n; i++) {
        current_topic = ids[i];
        guarded_pass(maintain_current_topic, pass_context);
        serve_segment_requests(pass_context);  // producers come first
    }
}

void list_topics_pass()
{
    run_maintenance(pass_memory);
    TimestampTz now = GetCurrentTimestamp();
    update_stats([now](MaintenanceStats &st) {
        st.passes++;
        st.last_pass_at = now;
    });
}

void forget_maintenance_database(int, Datum)
{
    set_maintenance_database(InvalidOid);
    update_stats([](MaintenanceStats &st) { st.pid = 0; });
}

void maintenance_main(void *)
{
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(maintenance_database, nullptr, 0);
    pgstat_report_appname("pgtopic maintenance");
    // The worker is a superuser: never let an object in a user-writable schema shadow a built-in.
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
    // Every wait of the worker is bounded: a topic whose locks are held (a DDL, a long reader)
    // is retried at the next pass, the others go on (passes lower it for their own steps).
    SetConfigOption("lock_timeout", "1s", PGC_SUSET, PGC_S_SESSION);
    set_maintenance_latch(MyLatch);
    set_maintenance_database(MyDatabaseId);
    TimestampTz started = GetCurrentTimestamp();
    update_stats([started](MaintenanceStats &st) {
        st.pid = MyProcPid;
        st.started_at = started;
    });
    before_shmem_exit(forget_maintenance_database, Datum(0));

    MemoryContext pass_context =
        AllocSetContextCreate(TopMemoryContext, "pgtopic maintenance pass", ALLOCSET_DEFAULT_SIZES);
    pass_memory = pass_context;
    TimestampTz next_maintenance = 0;
    TimestampTz next_stable_log = 0;
    for (;;) {
        TimestampTz now = GetCurrentTimestamp();
        long until_maintenance = next_maintenance <= now ? 0 : static_cast<long>((next_maintenance - now) / 1000);
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                         Max(Min(until_maintenance, STABLE_LOG_MS), 1), PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }

        MemoryContextReset(pass_context);
        MemoryContext old = MemoryContextSwitchTo(pass_context);
        serve_segment_requests(pass_context);
        guarded_pass(send_notifications, pass_context);
        if (GetCurrentTimestamp() >= next_stable_log) {
            guarded_pass(log_stable, pass_context);
            next_stable_log = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), STABLE_LOG_MS);
        }
        if (GetCurrentTimestamp() >= next_maintenance) {
            guarded_pass(list_topics_pass, pass_context);
            next_maintenance = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), maintenance_interval_ms);
        }
        MemoryContextSwitchTo(old);

        // Coalesce: commits arriving now set the latch and are sent together after this pause.
        (void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, Max(notify_interval_ms, 1), PG_WAIT_EXTENSION);
        CHECK_FOR_INTERRUPTS();
    }
}

}  // namespace

void maintenance_shmem_request()
{
    RequestAddinShmemSpace(MAXALIGN(sizeof(MaintenanceStats)));
}

void maintenance_shmem_startup()
{
    bool found = false;
    stats = static_cast<MaintenanceStats *>(ShmemInitStruct("pgtopic maintenance stats", sizeof(MaintenanceStats), &found));
    if (!found) {
        memset(stats, 0, sizeof(MaintenanceStats));
        SpinLockInit(&stats->mutex);
    }
}

void register_maintenance_worker()
{
    if (!maintenance_worker_enabled)
        return;
    BackgroundWorker worker;
    memset(&worker, 0, sizeof(worker));
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = 2;
    snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgtopic");
    snprintf(worker.bgw_function_name, BGW_MAXLEN, "pgtopic_maintenance_main");
    snprintf(worker.bgw_name, BGW_MAXLEN, "pgtopic maintenance");
    snprintf(worker.bgw_type, BGW_MAXLEN, "pgtopic maintenance");
    RegisterBackgroundWorker(&worker);
}

}  // namespace pgtopic

void pgtopic_maintenance_main(Datum)
{
    pgtopic::guarded_void(pgtopic::maintenance_main, nullptr);
}

// One row: the maintenance worker's pid (NULL when it is not running) and what it did since the
// server started. last_error may name a topic: EXECUTE is granted to pgtopic_admin only.
PGTOPIC_FUNCTION(pgtopic_maintenance_status)
{
    using namespace pgtopic;
    MaintenanceStats st;
    SpinLockAcquire(&stats->mutex);
    st = *stats;
    SpinLockRelease(&stats->mutex);
    Datum values[10] = {Int32GetDatum(st.pid),
                        TimestampTzGetDatum(st.started_at),
                        Int64GetDatum(st.passes),
                        Int64GetDatum(st.failures),
                        TimestampTzGetDatum(st.last_pass_at),
                        TimestampTzGetDatum(st.last_failure_at),
                        PointerGetDatum(cstring_to_text(st.last_error)),
                        Int64GetDatum(st.segments_created),
                        Int64GetDatum(st.segments_dropped),
                        Int64GetDatum(st.notifications)};
    bool nulls[10] = {st.pid == 0, st.started_at == 0, false, false, st.last_pass_at == 0,
                      st.last_failure_at == 0, st.last_error[0] == '\0', false, false, false};
    begin_materialized_result(fcinfo);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    return Datum(0);
}
