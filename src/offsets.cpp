// Offsets and the last stable offset (LSO): Kafka's read_committed answer to the offset
// visibility trap (ARCHITECTURE.md, "Offsets").
//
// Shared memory holds one PartitionState per (database, topic, partition): the next offset to
// hand out and a list of the in-flight transactions' first offsets on that partition, in
// allocation order. A producer takes offsets and registers its first one in one spinlock
// critical section, and holds nothing while its transaction runs. Its registration is removed
// by the XACT_EVENT_COMMIT/ABORT callback, which PostgreSQL calls only after the transaction
// became visible (ProcArrayEndTransaction). So:
//
//     LSO = first offset of the oldest in-flight transaction, or next offset when none
//
// and every offset below the LSO belongs to a transaction that has ended: committed (and
// visible to any snapshot taken after the LSO was read) or aborted (a gap forever).
//
// With a synchronous standby the callback also runs after the standby confirmed the commit,
// except when the wait for it was cut short because this backend is being terminated or the
// postmaster died: then the commit may exist here only, and a failover would lose it and hand
// its offsets out again. Such a commit keeps its registration (the LSO stays below it) until the
// backend exits; if the postmaster is dead it keeps it for good, so a consumer still running on
// the dying server never reads it.
#include "guard.hpp"
#include "pgtopic.hpp"

namespace pgtopic {
namespace {

// Keyed by the topic's storage table, not its id: a topic dropped and re-created (also by
// DROP EXTENSION or a restore) gets a new table OID and so a fresh state, never a stale one.
struct PartitionKey {
    Oid database;
    Oid root_relid;
    int32 partition;
};

// One entry per topic partition; and one per topic (partition = TOPIC_ENTRY) that carries the
// topic's wake-up state: a condition variable long-polling consumers sleep on, and a counter of
// producer commits that the maintenance worker turns into coalesced NOTIFYs.
constexpr int32 TOPIC_ENTRY = -1;

struct PartitionState {
    PartitionKey key;  // hash key, must be first
    slock_t mutex;     // protects initialized, next_offset, inflight
    bool initialized;  // next_offset has been read from the storage since startup
    int64 next_offset;
    dlist_head inflight;     // InflightSlot, ascending first_offset
    PartitionState *topic;   // the topic's entry (partition entries only)
    int64 requested_segment; // highest segment a backend started a creator for (under mutex)
    // topic entries only:
    ConditionVariable changed;     // broadcast when a producer transaction ends
    pg_atomic_uint64 commits;      // producer commits (and rollbacks that moved the LSO)
    uint64 notified;               // value of commits the maintenance worker last notified
};

struct InflightSlot {
    dlist_node node;
    PartitionState *partition;
    int64 first_offset;
    int64 last_offset;  // highest offset this transaction took on the partition
    int32 pid;
    PartitionState *partition_topic;  // scratch for release_my_slots
};

// dlist_container() is C-only (it type-checks with __builtin_types_compatible_p).
InflightSlot *slot_of(dlist_node *node)
{
    return reinterpret_cast<InflightSlot *>(reinterpret_cast<char *>(node) - offsetof(InflightSlot, node));
}

struct SharedState {
    LWLock *hash_lock;  // protects the hash table's membership (not the entries' contents)
    Latch *maintenance_latch;  // the maintenance worker's, set when producers commit
    pg_atomic_uint32 listeners;  // backends that have run LISTEN pgtopic (see note_listener)
    int slots_per_backend;
    InflightSlot slots[FLEXIBLE_ARRAY_MEMBER];
};

SharedState *shared = nullptr;
HTAB *partition_hash = nullptr;

// This backend's in-flight registrations in the current transaction.
InflightSlot *my_slots = nullptr;
int my_slot_count = 0;
bool exit_callback_registered = false;


Size shared_size()
{
    Size slots = mul_size(mul_size(static_cast<Size>(MaxBackends), max_partitions_per_transaction),
                          sizeof(InflightSlot));
    return add_size(offsetof(SharedState, slots), slots);
}

// Removes this transaction's registrations and wakes whoever waits on the topics it touched.
// Called after the transaction became visible (or was rolled back); infallible.
void release_my_slots(bool committed)
{
    bool wake_worker = false;
    for (int i = 0; i < my_slot_count; i++) {
        InflightSlot *slot = &my_slots[i];
        PartitionState *ps = slot->partition;
        SpinLockAcquire(&ps->mutex);
        // A rollback that held the LSO back while others took later offsets lets their
        // committed messages through: that is news for subscribers too.
        bool was_head = !committed && dlist_head_node(&ps->inflight) == &slot->node;
        bool others_after = ps->next_offset > slot->last_offset + 1;
        dlist_delete(&slot->node);
        SpinLockRelease(&ps->mutex);
        slot->partition = nullptr;

        PartitionState *topic = ps->topic;
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen = seen || my_slots[j].partition_topic == topic;
        slot->partition_topic = topic;
        if (seen)
            continue;
        if (committed || (was_head && others_after)) {
            pg_atomic_fetch_add_u64(&topic->commits, 1);
            wake_worker = true;
        }
        ConditionVariableBroadcast(&topic->changed);
    }
    my_slot_count = 0;
    if (wake_worker && shared->maintenance_latch != nullptr && listeners_present())
        SetLatch(shared->maintenance_latch);
}

// SyncRepWaitForLSN stops waiting for the synchronous standby, and lets the commit through,
// when the backend is told to die or the postmaster is gone.
bool commit_may_be_unreplicated()
{
    return my_slot_count > 0 && (ProcDiePending || !PostmasterIsAlive());
}

// Nothing here may fail: an ERROR in a commit/abort callback is a PANIC.
void xact_callback(XactEvent event, void *)
{
    switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
        if (commit_may_be_unreplicated())
            break;  // released by exit_callback (or never, if the postmaster is gone)
        release_my_slots(true);
        break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
        release_my_slots(false);
        break;
    case XACT_EVENT_PRE_PREPARE:
        if (my_slot_count > 0)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("cannot PREPARE a transaction that has produced to a pgtopic topic"),
                            errdetail("Offsets handed out to a prepared transaction would hold back every "
                                      "consumer of the partition until COMMIT PREPARED."),
                            errhint("Produce outside the two-phase transaction.")));
        break;
    default:
        break;
    }
}

void exit_callback(int, Datum)
{
    if (PostmasterIsAlive())
        release_my_slots(false);
}

PartitionState *find_partition(const PartitionKey &key)
{
    LWLockAcquire(shared->hash_lock, LW_SHARED);
    auto *ps = static_cast<PartitionState *>(hash_search(partition_hash, &key, HASH_FIND, nullptr));
    LWLockRelease(shared->hash_lock);
    if (ps != nullptr)
        return ps;

    bool found = false;
    LWLockAcquire(shared->hash_lock, LW_EXCLUSIVE);
    ps = static_cast<PartitionState *>(hash_search(partition_hash, &key, HASH_ENTER_NULL, &found));
    if (ps != nullptr && !found) {
        SpinLockInit(&ps->mutex);
        ps->initialized = false;
        ps->next_offset = 0;
        dlist_init(&ps->inflight);
        ps->topic = nullptr;
        ps->requested_segment = -1;
        ConditionVariableInit(&ps->changed);
        pg_atomic_init_u64(&ps->commits, 0);
        ps->notified = 0;
    }
    LWLockRelease(shared->hash_lock);
    if (ps == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
                        errmsg("pgtopic's shared memory for partitions is full"),
                        errhint("Raise pgtopic.shared_partitions (currently %d) and restart the server.",
                                shared_partitions)));
    return ps;
}

// The partition's state, with next_offset read from the storage once since startup.
// Callers hold a lock on the topic's storage table, so drop_topic cannot remove it meanwhile.
PartitionState *partition_state(const Topic &topic, int32 partition)
{
    PartitionKey key{MyDatabaseId, topic.root_relid, partition};
    PartitionState *ps = find_partition(key);
    if (ps->topic == nullptr) {
        // Set once, to the same value by anyone racing; entries never move.
        ps->topic = find_partition(PartitionKey{MyDatabaseId, topic.root_relid, TOPIC_ENTRY});
    }

    SpinLockAcquire(&ps->mutex);
    bool initialized = ps->initialized;
    SpinLockRelease(&ps->mutex);
    if (!initialized) {
        // No producer can have an uncommitted row here: each one initialises first. Racing
        // initialisers compute the same value; the first to take the mutex wins.
        int64 next = stored_next_offset(topic, partition);
        SpinLockAcquire(&ps->mutex);
        if (!ps->initialized) {
            ps->next_offset = next;
            ps->initialized = true;
        }
        SpinLockRelease(&ps->mutex);
    }
    return ps;
}

InflightSlot *my_slot_for(PartitionState *ps)
{
    for (int i = my_slot_count - 1; i >= 0; i--)
        if (my_slots[i].partition == ps)
            return &my_slots[i];
    return nullptr;
}

}  // namespace

void offsets_shmem_request()
{
    RequestAddinShmemSpace(add_size(shared_size(), hash_estimate_size(shared_partitions, sizeof(PartitionState))));
    RequestNamedLWLockTranche("pgtopic", 1);
}

// Called with AddinShmemInitLock held.
void offsets_shmem_startup()
{
    bool found = false;
    shared = static_cast<SharedState *>(ShmemInitStruct("pgtopic shared state", shared_size(), &found));
    if (!found) {
        memset(shared, 0, shared_size());
        shared->hash_lock = &(GetNamedLWLockTranche("pgtopic"))->lock;
        shared->slots_per_backend = max_partitions_per_transaction;
        pg_atomic_init_u32(&shared->listeners, 0);
    }
    HASHCTL info;
    memset(&info, 0, sizeof(info));
    info.keysize = sizeof(PartitionKey);
    info.entrysize = sizeof(PartitionState);
    partition_hash = ShmemInitHash("pgtopic partitions", shared_partitions, shared_partitions, &info,
                                   HASH_ELEM | HASH_BLOBS);
}

void offsets_init_backend_callbacks()
{
    RegisterXactCallback(xact_callback, nullptr);
}

ConditionVariable *topic_changed(const Topic &topic)
{
    return &find_partition(PartitionKey{MyDatabaseId, topic.root_relid, TOPIC_ENTRY})->changed;
}

bool claim_segment_request(const Topic &topic, int32 partition, int64 segment)
{
    PartitionState *ps = partition_state(topic, partition);
    SpinLockAcquire(&ps->mutex);
    bool mine = ps->requested_segment < segment;
    if (mine)
        ps->requested_segment = segment;
    SpinLockRelease(&ps->mutex);
    return mine;
}

void set_maintenance_latch(Latch *latch)
{
    shared->maintenance_latch = latch;
}

namespace {

bool this_backend_listens = false;

void forget_listener(int, Datum)
{
    if (this_backend_listens)
        pg_atomic_fetch_sub_u32(&shared->listeners, 1);
    this_backend_listens = false;
}

}  // namespace

// Counts a backend that runs LISTEN pgtopic, until it exits. Without any, the maintenance
// worker sends no NOTIFY and producers do not wake it: a round of notifications is a
// transaction of its own (about 3% of a core at 100 rounds per second) that nobody would read.
// Over-counting is harmless (an UNLISTEN, or a LISTEN rolled back, keeps the count until exit);
// a listener is never missed, because LISTEN is a utility statement and every backend has the
// hook (shared_preload_libraries).
void note_listener()
{
    if (this_backend_listens || shared == nullptr)
        return;
    before_shmem_exit(forget_listener, Datum(0));
    this_backend_listens = true;
    pg_atomic_fetch_add_u32(&shared->listeners, 1);
}

bool listeners_present()
{
    return pg_atomic_read_u32(&shared->listeners) > 0;
}

int topics_to_notify(Oid *relids, int max)
{
    int n = 0;
    LWLockAcquire(shared->hash_lock, LW_SHARED);
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, partition_hash);
    while (auto *ps = static_cast<PartitionState *>(hash_seq_search(&status))) {
        if (ps->key.partition != TOPIC_ENTRY || ps->key.database != MyDatabaseId)
            continue;
        uint64 commits = pg_atomic_read_u64(&ps->commits);
        if (commits == ps->notified || n == max)
            continue;
        ps->notified = commits;
        relids[n++] = ps->key.root_relid;
    }
    LWLockRelease(shared->hash_lock);
    return n;
}

int64 allocate_offsets(const Topic &topic, int32 partition, int64 count)
{
    if (RecoveryInProgress())
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("cannot produce to a topic during recovery"),
                        errhint("Connect to the primary (target_session_attrs=read-write).")));
    if (MyBackendId == InvalidBackendId || MyBackendId > MaxBackends)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("pgtopic cannot produce from this kind of process")));
    if (my_slots == nullptr) {
        my_slots = &shared->slots[static_cast<Size>(MyBackendId - 1) * shared->slots_per_backend];
        if (!exit_callback_registered) {
            before_shmem_exit(exit_callback, 0);
            exit_callback_registered = true;
        }
    }

    PartitionState *ps = partition_state(topic, partition);
    InflightSlot *slot = my_slot_for(ps);
    if (slot == nullptr && my_slot_count >= shared->slots_per_backend)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("a transaction may produce to at most %d partitions",
                               shared->slots_per_backend),
                        errhint("Raise pgtopic.max_partitions_per_transaction and restart the server.")));

    SpinLockAcquire(&ps->mutex);
    int64 first = ps->next_offset;
    ps->next_offset += count;
    if (slot != nullptr)
        slot->last_offset = first + count - 1;
    if (slot == nullptr) {
        slot = &my_slots[my_slot_count++];
        slot->partition = ps;
        slot->first_offset = first;
        slot->last_offset = first + count - 1;
        slot->pid = MyProcPid;
        dlist_push_tail(&ps->inflight, &slot->node);
    }
    SpinLockRelease(&ps->mutex);
    return first;
}

PartitionOffsets partition_offsets(const Topic &topic, int32 partition)
{
    if (RecoveryInProgress()) {
        // A standby has no in-flight producers of its own; it sees what the primary committed.
        int64 next = stored_next_offset(topic, partition);
        return {next, next};
    }
    PartitionState *ps = partition_state(topic, partition);
    PartitionOffsets result;
    SpinLockAcquire(&ps->mutex);
    result.high_watermark = ps->next_offset;
    result.last_stable_offset = dlist_is_empty(&ps->inflight)
                                    ? ps->next_offset
                                    : slot_of(dlist_head_node(&ps->inflight))->first_offset;
    SpinLockRelease(&ps->mutex);
    return result;
}

void forget_topic(Oid root_relid)
{
    LWLockAcquire(shared->hash_lock, LW_EXCLUSIVE);
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, partition_hash);
    while (auto *ps = static_cast<PartitionState *>(hash_seq_search(&status))) {
        if (ps->key.database != MyDatabaseId || ps->key.root_relid != root_relid)
            continue;
        // Still referenced by this very transaction (it produced, then dropped): keep it, and
        // the topic entry it points to. Entries left behind are harmless: the key names a
        // storage table that no longer exists.
        if (!dlist_is_empty(&ps->inflight) || ps->key.partition == TOPIC_ENTRY)
            continue;
        hash_search(partition_hash, &ps->key, HASH_REMOVE, nullptr);
    }
    LWLockRelease(shared->hash_lock);
}

}  // namespace pgtopic

using namespace pgtopic;

// The in-flight producer transactions of this database, for the lso_holders view.
PGTOPIC_FUNCTION(pgtopic_inflight)
{
    begin_materialized_result(fcinfo);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    LWLockAcquire(shared->hash_lock, LW_SHARED);
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, partition_hash);
    while (auto *ps = static_cast<PartitionState *>(hash_seq_search(&status))) {
        if (ps->key.database != MyDatabaseId)
            continue;
        // Copy under the spinlock, emit after releasing it.
        constexpr int MAX_COPY = 64;
        int32 pids[MAX_COPY];
        int64 firsts[MAX_COPY];
        int n = 0;
        SpinLockAcquire(&ps->mutex);
        // dlist_foreach() is C-only; walk the ring by hand.
        for (dlist_node *cur = ps->inflight.head.next; cur != &ps->inflight.head && n < MAX_COPY; cur = cur->next) {
            InflightSlot *slot = slot_of(cur);
            pids[n] = slot->pid;
            firsts[n] = slot->first_offset;
            n++;
        }
        SpinLockRelease(&ps->mutex);
        for (int i = 0; i < n; i++) {
            Datum values[4] = {ObjectIdGetDatum(ps->key.root_relid), Int32GetDatum(ps->key.partition),
                               Int32GetDatum(pids[i]), Int64GetDatum(firsts[i])};
            bool nulls[4] = {false, false, false, false};
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        }
    }
    LWLockRelease(shared->hash_lock);
    return Datum(0);
}
