// The maintenance background worker: one per cluster, connected to pgtopic.database (as
// pg_cron does). Each pass runs in a fresh memory context and its own transaction:
//   * every pgtopic.notify_interval at most: one NOTIFY pgtopic, '<topic>' per topic that had
//     producer commits since the last pass (producers never NOTIFY themselves: NOTIFY takes a
//     database-wide lock at commit and would serialise every producer);
//   * every pgtopic.maintenance_interval: group members that own partitions but have not polled
//     for pgtopic.max_poll_interval are terminated; pgtopic.run_maintenance() — segments ahead
//     of need, retention by whole segments.
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
                }
            SPI_finish();
        }
    }
    PopActiveSnapshot();
    CommitTransactionCommand();
}

void run_maintenance()
{
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pgtopic: maintenance");
    if (extension_present()) {
        (void) expire_idle_members();  // Kafka's max.poll.interval.ms
        SPI_connect();
        // Never queue behind a long reader or producer of a segment: try again next pass.
        (void) SPI_execute("SET LOCAL lock_timeout = '1s'", false, 0);
        (void) SPI_execute("SELECT pgtopic.run_maintenance()", false, 0);
        SPI_finish();
    }
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
}

// One pass; an ERROR is reported and its transaction aborted. No C++ object lives here.
void guarded_pass(void (*pass)(), MemoryContext pass_context)
{
    PG_TRY();
    {
        pass();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(pass_context);
        EmitErrorReport();
        FlushErrorState();
        AbortCurrentTransaction();
    }
    PG_END_TRY();
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
    set_maintenance_latch(MyLatch);

    MemoryContext pass_context =
        AllocSetContextCreate(TopMemoryContext, "pgtopic maintenance pass", ALLOCSET_DEFAULT_SIZES);
    TimestampTz next_maintenance = 0;
    for (;;) {
        TimestampTz now = GetCurrentTimestamp();
        long until_maintenance = next_maintenance <= now ? 0 : static_cast<long>((next_maintenance - now) / 1000);
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, Max(until_maintenance, 1),
                         PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }

        MemoryContextReset(pass_context);
        MemoryContext old = MemoryContextSwitchTo(pass_context);
        guarded_pass(send_notifications, pass_context);
        if (GetCurrentTimestamp() >= next_maintenance) {
            guarded_pass(run_maintenance, pass_context);
            next_maintenance = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), maintenance_interval_ms);
        }
        MemoryContextSwitchTo(old);

        // Coalesce: commits arriving now set the latch and are sent together after this pause.
        (void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, Max(notify_interval_ms, 1), PG_WAIT_EXTENSION);
        CHECK_FOR_INTERRUPTS();
    }
}

}  // namespace

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
