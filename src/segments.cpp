// Segments: the offset-range leaf tables of a topic partition, and how they come to exist.
//
// Segment k of partition p of topic t is pgtopic_data.topic_<t>_p<p>_s<k> and holds offsets
// [k * segment_size, (k + 1) * segment_size). Producers and readers go straight to the leaf by
// name (a syscache look-up), never through tuple routing or the planner.
//
// Segments are created ahead of need, in transactions of their own (pgtopic._create_segment:
// CREATE TABLE + ATTACH PARTITION, which takes only SHARE UPDATE EXCLUSIVE on the partition
// table), so producers hold no DDL lock that other producers would queue behind:
//   * in pgtopic.database, by the maintenance worker, which is always running (it needs no free
//     background-worker slot): a producer queues a request in shared memory and sets its latch,
//     for up to LOOKAHEAD segments when segments are small;
//   * elsewhere, by a short-lived dynamic background worker (when a slot is free);
//   * a producer that finds its segment missing asks for it, waits at most SEGMENT_WAIT_MS for
//     it to appear, and then creates it in its own transaction.
#include "guard.hpp"
#include "pgtopic.hpp"

extern "C" {
PGDLLEXPORT void pgtopic_segment_worker_main(Datum arg);
}

namespace pgtopic {
namespace {

struct SegmentRequest {
    Oid database;
    Oid user;
    int32 topic_id;
    int32 partition;
    int64 segment;
};

// How long a producer that needs a missing segment waits for a creator before creating it.
constexpr long SEGMENT_WAIT_MS = 200;

// Segments created ahead at a time by the maintenance worker: enough for about LOOKAHEAD_OFFSETS
// offsets, at most MAX_LOOKAHEAD segments (1 for segments of 1024 offsets or more).
constexpr int64 LOOKAHEAD_OFFSETS = 1024;
constexpr int64 MAX_LOOKAHEAD = 16;

int64 lookahead(const Topic &topic)
{
    if (!maintenance_serves_database())
        return 1;  // a dynamic worker creates one segment at a time
    return Max(int64{1}, Min(MAX_LOOKAHEAD, (LOOKAHEAD_OFFSETS + topic.segment_size - 1) / topic.segment_size));
}

void segment_name(char *buf, size_t size, int32 topic_id, int32 partition, int64 segment)
{
    snprintf(buf, size, "topic_%d_p%d_s" INT64_FORMAT, topic_id, partition, segment);
}

void create_segment_here(int32 topic_id, int32 partition, int64 segment)
{
    Oid argtypes[3] = {INT4OID, INT4OID, INT8OID};
    Datum values[3] = {Int32GetDatum(topic_id), Int32GetDatum(partition), Int64GetDatum(segment)};
    InternalScope scope = internal_begin();
    int rc = SPI_execute_with_args("SELECT pgtopic._create_segment($1, $2, $3)", 3, argtypes, values, nullptr,
                                   false, 0);
    if (rc != SPI_OK_SELECT)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("pgtopic._create_segment failed: %s",
                                                                SPI_result_code_string(rc))));
    internal_end(scope);
}

BackgroundWorkerHandle *start_segment_worker(const Topic &topic, int32 partition, int64 segment)
{
    BackgroundWorker worker;
    memset(&worker, 0, sizeof(worker));
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = BGW_NEVER_RESTART;
    snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgtopic");
    snprintf(worker.bgw_function_name, BGW_MAXLEN, "pgtopic_segment_worker_main");
    snprintf(worker.bgw_name, BGW_MAXLEN, "pgtopic segment creator");
    snprintf(worker.bgw_type, BGW_MAXLEN, "pgtopic segment creator");
    worker.bgw_notify_pid = MyProcPid;
    SegmentRequest request{MyDatabaseId, BOOTSTRAP_SUPERUSERID, topic.id, partition, segment};
    static_assert(sizeof(request) <= BGW_EXTRALEN, "request fits bgw_extra");
    memcpy(worker.bgw_extra, &request, sizeof(request));

    BackgroundWorkerHandle *handle = nullptr;
    if (!RegisterDynamicBackgroundWorker(&worker, &handle))
        return nullptr;
    return handle;
}

// Runs a one-value query with a fresh snapshot (every committed row, whatever the caller's
// isolation level); -1 for NULL.
int64 query_int64(const char *sql, int nargs, Oid *argtypes, Datum *values)
{
    InternalScope scope = internal_begin();
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    SPIPlanPtr plan = SPI_prepare(sql, nargs, argtypes);
    if (plan == nullptr)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not plan \"%s\"", sql)));
    int rc = SPI_execute_snapshot(plan, values, nullptr, snapshot, InvalidSnapshot, true, false, 1);
    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not read \"%s\"", sql)));
    bool isnull = false;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    int64 result = isnull ? -1 : DatumGetInt64(d);
    UnregisterSnapshot(snapshot);
    internal_end(scope);
    return result;
}

// The highest stored offset of a partition, -1 if it holds none. An ordered scan of the
// segments' primary keys ("partition", msg_offset), which max() over the partition's table would
// not use (it read every row: 10 ms per 40,000 messages).
int64 stored_last_offset(const Topic &topic, int32 partition)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT msg_offset FROM pgtopic_data.topic_%d_p%d WHERE \"partition\" = %d "
             "ORDER BY msg_offset DESC LIMIT 1)",
             topic.id, partition, partition);
    return query_int64(sql, 0, nullptr, nullptr);
}

void segment_worker(void *arg)
{
    SegmentRequest request;
    memcpy(&request, arg, sizeof(request));
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnectionByOid(request.database, request.user, 0);

    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    pgstat_report_activity(STATE_RUNNING, "pgtopic: creating a segment");
    // The topic's root first, in the order drop_topic locks (the root, then its partitions and
    // segments): a creator holding a partition while it waits for the root deadlocks with it.
    bool present = OidIsValid(get_namespace_oid("pgtopic", true)) &&
                   OidIsValid(lock_topic_root(request.topic_id, AccessShareLock));
    PushActiveSnapshot(GetTransactionSnapshot());
    if (present)
        create_segment_here(request.topic_id, request.partition, request.segment);
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
}

}  // namespace

namespace {

// The OID of pgtopic_data, kept until a schema changes (DROP and CREATE EXTENSION make a new
// one): every produce and read looks its segments up by name in it.
Oid cached_data_ns = InvalidOid;
bool data_ns_callback_registered = false;

void forget_data_namespace(Datum, int, uint32)
{
    cached_data_ns = InvalidOid;
}

// Per partition (direct-mapped), the last segment whose successor this backend has seen: a
// producer in the second half of a segment looks the next one up once, not on every call.
struct NextSegmentSeen {
    Oid root;
    int32 partition;
    int64 segment;
};
constexpr int NEXT_SEEN_SLOTS = 64;
NextSegmentSeen next_seen[NEXT_SEEN_SLOTS];

NextSegmentSeen &next_seen_slot(Oid root, int32 partition)
{
    uint32 h = hash_combine(static_cast<uint32>(root), static_cast<uint32>(partition));
    return next_seen[h % NEXT_SEEN_SLOTS];
}

}  // namespace

Oid data_namespace(bool missing_ok)
{
    if (OidIsValid(cached_data_ns))
        return cached_data_ns;
    if (!data_ns_callback_registered) {
        CacheRegisterSyscacheCallback(NAMESPACEOID, forget_data_namespace, Datum(0));
        data_ns_callback_registered = true;
    }
    cached_data_ns = get_namespace_oid("pgtopic_data", missing_ok);
    return cached_data_ns;
}

bool lock_existing_relation(Oid relid, LOCKMODE lockmode)
{
    LockRelationOid(relid, lockmode);
    if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
        return true;
    UnlockRelationOid(relid, lockmode);
    return false;
}

Oid lock_topic_root(int32 topic_id, LOCKMODE lockmode)
{
    Oid ns = data_namespace(true);
    if (!OidIsValid(ns))
        return InvalidOid;
    char relname[NAMEDATALEN];
    snprintf(relname, sizeof relname, "topic_%d", topic_id);
    Oid root = get_relname_relid(relname, ns);
    // drop_topic may have committed while we waited for the lock.
    return OidIsValid(root) && lock_existing_relation(root, lockmode) ? root : InvalidOid;
}

Oid segment_relid(const Topic &topic, int32 partition, int64 segment)
{
    char name[NAMEDATALEN];
    segment_name(name, sizeof name, topic.id, partition, segment);
    return get_relname_relid(name, data_namespace());
}

// Waits (bounded) for another backend's creator to make the segment visible.
static Oid wait_for_segment(const Topic &topic, int32 partition, int64 segment, long timeout_ms)
{
    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
    for (;;) {
        AcceptInvalidationMessages();
        Oid relid = segment_relid(topic, partition, segment);
        if (OidIsValid(relid) || GetCurrentTimestamp() >= deadline)
            return relid;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 2, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}

Oid ensure_segment(const Topic &topic, int32 partition, int64 segment)
{
    Oid relid = segment_relid(topic, partition, segment);
    if (OidIsValid(relid))
        return relid;

    // Ask the maintenance worker (this database's), else start a creator (one backend per
    // segment), and give it a moment; never seconds.
    bool asked = request_segments(topic, partition, segment, segment + lookahead(topic) - 1);
    if (!asked && claim_segment_request(topic, partition, segment))
        asked = start_segment_worker(topic, partition, segment) != nullptr;
    // A creator that just let us down once is not waited for again at once (a batch spanning
    // many missing segments would wait 200 ms for each).
    static TimestampTz last_timeout = 0;
    bool wait = asked && TimestampDifferenceExceeds(last_timeout, GetCurrentTimestamp(), 1000);
    relid = wait_for_segment(topic, partition, segment, wait ? SEGMENT_WAIT_MS : 0);
    if (OidIsValid(relid))
        return relid;
    if (wait)
        last_timeout = GetCurrentTimestamp();

    // No creator, or it is slow: create it here (concurrent creators serialise on the
    // partition's DDL lock and re-check; see _create_segment).
    create_segment_here(topic.id, partition, segment);
    CommandCounterIncrement();
    relid = segment_relid(topic, partition, segment);
    if (!OidIsValid(relid))
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("could not create segment " INT64_FORMAT " of partition %d", segment, partition)));
    return relid;
}

void prepare_next_segment(const Topic &topic, int32 partition, int64 segment, bool past_middle)
{
    // With the maintenance worker: keep up to `ahead` segments beyond this one, asking again
    // when the one half-way there is missing. Without it: the next one, past the middle.
    int64 ahead = lookahead(topic);
    int64 probe = segment + Max(int64{1}, ahead / 2);
    if (ahead == 1 && !past_middle)
        return;
    NextSegmentSeen &seen = next_seen_slot(topic.root_relid, partition);
    if (seen.root == topic.root_relid && seen.partition == partition && seen.segment >= probe)
        return;
    if (OidIsValid(segment_relid(topic, partition, probe))) {
        seen = NextSegmentSeen{topic.root_relid, partition, probe};
        return;
    }
    if (!claim_segment_request(topic, partition, probe))
        return;
    if (!request_segments(topic, partition, segment + 1, segment + ahead) && past_middle)
        (void) start_segment_worker(topic, partition, segment + 1);
}

int64 stored_next_offset(const Topic &topic, int32 partition)
{
    // Above every stored message, and above every committed group offset: offsets of
    // transactions that rolled back just before a crash may have been passed by consumers (the
    // LSO moved over them), so they must not be handed out again.
    int64 next = stored_last_offset(topic, partition) + 1;
    Oid argtypes[2] = {INT4OID, INT4OID};
    Datum values[2] = {Int32GetDatum(topic.id), Int32GetDatum(partition)};
    int64 committed = query_int64("SELECT max(o.committed_offset) FROM pgtopic.catalog_offsets o "
                                  "JOIN pgtopic.catalog_groups g ON g.group_id = o.group_id "
                                  "WHERE g.topic_id = $1 AND o.\"partition\" = $2",
                                  2, argtypes, values);
    return Max(next, committed);
}

int64 log_start_offset(const Topic &topic, int32 partition, int64 last_stable_offset)
{
    // Never below the recorded log start (retention raised it when it dropped segments; after
    // every segment went and a restart, the lowest segment may be a new one above it).
    PartitionBounds bounds = read_partition_bounds(topic.id, partition);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT min(pg_catalog.substring(c.relname, '_s([0-9]+)$')::pg_catalog.int8) "
             "FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid "
             "WHERE i.inhparent = 'pgtopic_data.topic_%d_p%d'::pg_catalog.regclass",
             topic.id, partition);
    int64 lowest_segment = query_int64(sql, 0, nullptr, nullptr);
    int64 start = lowest_segment < 0 ? (bounds.present ? bounds.log_start : last_stable_offset)
                                     : lowest_segment * topic.segment_size;
    if (bounds.present)
        start = Max(start, bounds.log_start);
    return Min(start, last_stable_offset);
}

}  // namespace pgtopic

using namespace pgtopic;

// pgtopic._raise_log_start(topic_id, partition, log_start): retention, after a DROP of a segment.
PGTOPIC_FUNCTION(pgtopic_raise_log_start)
{
    (void) raise_partition_bound(PG_GETARG_INT32(0), PG_GETARG_INT32(1), Bound::LogStart, PG_GETARG_INT64(2));
    PG_RETURN_VOID();
}

// pgtopic._lock_for_drop(partition_table, segment): retention takes the two locks DROP TABLE of
// the segment needs. The partition table may be held a moment by a segment creator: wait for it
// at most 200 ms (a lock timeout, 55P03, for the caller's subtransaction to catch). The segment
// is held by readers and producers, maybe for long (a transaction block): never wait for it.
PGTOPIC_FUNCTION(pgtopic_lock_for_drop)
{
    int level = NewGUCNestLevel();
    (void) set_config_option("lock_timeout", "200ms", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    LockRelationOid(PG_GETARG_OID(0), AccessExclusiveLock);
    AtEOXact_GUC(true, level);
    PG_RETURN_BOOL(ConditionalLockRelationOid(PG_GETARG_OID(1), AccessExclusiveLock));
}

PGTOPIC_FUNCTION(pgtopic_log_stable_offsets)
{
    PG_RETURN_INT32(RecoveryInProgress() ? 0 : log_stable_offsets());
}

void pgtopic_segment_worker_main(Datum)
{
    pgtopic::guarded_void(pgtopic::segment_worker, MyBgworkerEntry->bgw_extra);
}
