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
//
// The counter is durable through a reservation: before handing out offsets at or above
// `reserved`, a producer raises catalog_partitions.reserved_offset in place (WAL-logged and
// flushed; one write per RESERVE_CHUNK offsets, never one per message), so a restart, a crash,
// a promoted standby or a restored dump resumes at or above every offset ever handed out, even
// one of a rolled-back transaction that readers have already passed (a sequence's cache works
// the same way; the price is a gap of at most a chunk at each restart).
//
// The hash is fixed-size (pgtopic.shared_partitions partition entries and as many topic
// entries); a topic's entries are freed when the transaction that drops its storage commits.
#include "guard.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "access/xlog.h"
}

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
    slock_t mutex;     // protects initialized, next_offset, reserved, inflight
    bool initialized;  // next_offset has been read from the storage since startup
    bool bounded;      // the partition has a catalog_partitions row (reservations are durable)
    bool dropped;      // its topic's drop committed while a slot still pointed here
    int64 next_offset;
    int64 reserved;          // offsets below it are covered by the durable reservation
    int64 logged_stable;     // last LSO written to catalog_partitions.stable_offset
    dlist_head inflight;     // InflightSlot, ascending first_offset
    PartitionState *topic;   // the topic's entry (partition entries only)
    int64 requested_segment; // highest segment a backend started a creator for (under mutex)
    // topic entries only:
    pg_atomic_uint64 commits;      // producer commits (and rollbacks that moved the LSO)
    uint64 notified;               // value of commits the maintenance worker last notified
};

// Offsets reserved (durably) ahead of the counter at a time: one in-place catalog write and WAL
// flush per this many offsets (or per call, for a bigger batch).
constexpr int64 RESERVE_CHUNK = 1024;

// Condition variables for long polls, shared by topics through a hash of the storage table:
// never freed nor re-initialised, so a consumer sleeping on one while its topic is dropped
// cannot be left on a list that no longer exists. Topics sharing one see spurious wake-ups.
constexpr int TOPIC_CVS = 1024;

constexpr int MAX_SEGMENT_REQUESTS = 128;

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
    LWLock *bounds_lock;  // serialises in-place changes of catalog_partitions
    int partition_entries;  // entries in the hash (under hash_lock), each kind capped at
    int topic_entries;      // pgtopic.shared_partitions
    Latch *maintenance_latch;  // the maintenance worker's, set when producers commit
    Latch *kafka_latch;        // the Kafka listener's (parked Fetch requests), likewise
    Oid maintenance_database;  // the database it serves (segment requests)
    slock_t request_mutex;
    int n_requests;
    SegmentWanted requests[MAX_SEGMENT_REQUESTS];
    pg_atomic_uint32 listeners;  // backends that have run LISTEN pgtopic (see note_listener)
    ConditionVariable topic_cvs[TOPIC_CVS];
    int slots_per_backend;
    InflightSlot slots[FLEXIBLE_ARRAY_MEMBER];
};

SharedState *shared = nullptr;
HTAB *partition_hash = nullptr;

// This backend's in-flight registrations in the current transaction.
InflightSlot *my_slots = nullptr;
int my_slot_count = 0;
bool exit_callback_registered = false;


ConditionVariable *cv_of(const PartitionKey &key)
{
    uint32 h = hash_combine(static_cast<uint32>(key.database), static_cast<uint32>(key.root_relid));
    return &shared->topic_cvs[h % TOPIC_CVS];
}

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
        // Everything of the entry is read while our slot is still on its list: once it is off,
        // the entry of a dropped topic may be freed at any moment (sweep_dropped).
        PartitionState *topic = ps->topic;
        ConditionVariable *cv = cv_of(ps->key);
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen = seen || my_slots[j].partition_topic == topic;
        slot->partition_topic = topic;
        SpinLockAcquire(&ps->mutex);
        // A rollback that held the LSO back while others took later offsets lets their
        // committed messages through: that is news for subscribers too.
        bool was_head = !committed && dlist_head_node(&ps->inflight) == &slot->node;
        bool others_after = ps->next_offset > slot->last_offset + 1;
        bool news = !seen && (committed || (was_head && others_after));
        if (news)
            pg_atomic_fetch_add_u64(&topic->commits, 1);
        dlist_delete(&slot->node);
        SpinLockRelease(&ps->mutex);
        slot->partition = nullptr;
        if (seen)
            continue;
        wake_worker = wake_worker || news;
        ConditionVariableBroadcast(cv);  // the pool is never freed
    }
    my_slot_count = 0;
    if (wake_worker && shared->maintenance_latch != nullptr && listeners_present())
        SetLatch(shared->maintenance_latch);
    if (wake_worker && shared->kafka_latch != nullptr)
        SetLatch(shared->kafka_latch);
}

// SyncRepWaitForLSN stops waiting for the synchronous standby, and lets the commit through,
// when the backend is told to die or the postmaster is gone.
bool commit_may_be_unreplicated()
{
    return my_slot_count > 0 && (ProcDiePending || !PostmasterIsAlive());
}

// Storage tables of topics dropped by the current transaction (object access hook), with the
// subtransaction level that dropped them; freed from shared memory at commit.
struct PendingForget {
    Oid root_relid;
    int level;
};
PendingForget *pending = nullptr;  // in TopTransactionContext
int n_pending = 0;
int max_pending = 0;

int compare_pending(const void *a, const void *b)
{
    Oid x = static_cast<const PendingForget *>(a)->root_relid, y = static_cast<const PendingForget *>(b)->root_relid;
    return x < y ? -1 : x > y ? 1 : 0;
}

bool is_pending(Oid root)
{
    PendingForget key{root, 0};
    return bsearch(&key, pending, n_pending, sizeof(PendingForget), compare_pending) != nullptr;
}

// Frees the entries of the topics this transaction dropped. Infallible (a commit callback):
// no allocation; an entry another backend's slot still points to (a commit that could not be
// confirmed to the synchronous standby) is kept, marked dropped, and freed once its list is empty.
void apply_pending_forgets()
{
    if (n_pending == 0)
        return;
    // One pass over the hash, whatever the number of topics dropped (DROP EXTENSION drops all).
    qsort(pending, n_pending, sizeof(PendingForget), compare_pending);
    LWLockAcquire(shared->hash_lock, LW_EXCLUSIVE);
    bool any_busy = false;
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, partition_hash);
    while (auto *ps = static_cast<PartitionState *>(hash_seq_search(&status))) {
        if (ps->key.database != MyDatabaseId || ps->key.partition == TOPIC_ENTRY || !is_pending(ps->key.root_relid))
            continue;
        SpinLockAcquire(&ps->mutex);
        bool busy = !dlist_is_empty(&ps->inflight);
        ps->dropped = true;
        SpinLockRelease(&ps->mutex);
        if (busy) {
            any_busy = true;  // kept, with its topic entry: sweep_dropped frees both later
            continue;
        }
        (void) hash_search(partition_hash, &ps->key, HASH_REMOVE, nullptr);
        shared->partition_entries--;
    }
    for (int i = 0; i < n_pending; i++) {
        PartitionKey topic_key{MyDatabaseId, pending[i].root_relid, TOPIC_ENTRY};
        auto *topic = static_cast<PartitionState *>(hash_search(partition_hash, &topic_key, HASH_FIND, nullptr));
        if (topic == nullptr)
            continue;
        topic->dropped = true;
        bool referenced = false;
        if (any_busy) {
            HASH_SEQ_STATUS inner;
            hash_seq_init(&inner, partition_hash);
            while (auto *p = static_cast<PartitionState *>(hash_seq_search(&inner)))
                referenced = referenced || (p->topic == topic && p->key.partition != TOPIC_ENTRY);
        }
        if (!referenced) {
            (void) hash_search(partition_hash, &topic_key, HASH_REMOVE, nullptr);
            shared->topic_entries--;
        }
    }
    LWLockRelease(shared->hash_lock);
    n_pending = 0;
}

// Frees dropped entries whose last slot has gone (hash_lock held exclusively): partition
// entries first, then topic entries no partition entry points to any more.
void sweep_dropped()
{
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, partition_hash);
    while (auto *ps = static_cast<PartitionState *>(hash_seq_search(&status))) {
        if (!ps->dropped || ps->key.partition == TOPIC_ENTRY)
            continue;
        SpinLockAcquire(&ps->mutex);
        bool busy = !dlist_is_empty(&ps->inflight);
        SpinLockRelease(&ps->mutex);
        if (!busy) {
            (void) hash_search(partition_hash, &ps->key, HASH_REMOVE, nullptr);
            shared->partition_entries--;
        }
    }
    hash_seq_init(&status, partition_hash);
    while (auto *ps = static_cast<PartitionState *>(hash_seq_search(&status))) {
        if (!ps->dropped || ps->key.partition != TOPIC_ENTRY)
            continue;
        bool referenced = false;
        HASH_SEQ_STATUS inner;
        hash_seq_init(&inner, partition_hash);
        while (auto *p = static_cast<PartitionState *>(hash_seq_search(&inner)))
            referenced = referenced || p->topic == ps;
        if (!referenced) {
            (void) hash_search(partition_hash, &ps->key, HASH_REMOVE, nullptr);
            shared->topic_entries--;
        }
    }
}

void subxact_callback(SubXactEvent event, SubTransactionId, SubTransactionId, void *)
{
    int level = GetCurrentTransactionNestLevel();
    if (event == SUBXACT_EVENT_ABORT_SUB) {
        while (n_pending > 0 && pending[n_pending - 1].level >= level)
            n_pending--;
    } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
        for (int i = 0; i < n_pending; i++)
            if (pending[i].level >= level)
                pending[i].level = level - 1;
    }
}

// Topics whose long-polling readers this transaction wakes when it commits (alter_topic: they
// look the topic up again and see its new partitions); more than fit wake every sleeper.
constexpr int MAX_WAKES = 16;
Oid wakes[MAX_WAKES];
int n_wakes = 0;
bool wake_all = false;

void apply_wakes()
{
    if (wake_all) {
        for (int i = 0; i < TOPIC_CVS; i++)
            ConditionVariableBroadcast(&shared->topic_cvs[i]);
    } else {
        for (int i = 0; i < n_wakes; i++)
            ConditionVariableBroadcast(cv_of(PartitionKey{MyDatabaseId, wakes[i], TOPIC_ENTRY}));
    }
    n_wakes = 0;
    wake_all = false;
}

// Nothing here may fail: an ERROR in a commit/abort callback is a PANIC.
void xact_callback(XactEvent event, void *)
{
    switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
        apply_wakes();
        if (!commit_may_be_unreplicated())
            release_my_slots(true);
        // else: released by exit_callback (or never, if the postmaster is gone)
        apply_pending_forgets();
        pending = nullptr;
        n_pending = max_pending = 0;
        break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
        n_wakes = 0;
        wake_all = false;
        release_my_slots(false);
        pending = nullptr;  // freed with TopTransactionContext
        n_pending = max_pending = 0;
        break;
    case XACT_EVENT_PREPARE:
        n_wakes = 0;
        wake_all = false;
        // COMMIT PREPARED may run in another backend: a topic dropped in a prepared
        // transaction keeps its entries until a restart.
        pending = nullptr;
        n_pending = max_pending = 0;
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
    const bool is_topic = key.partition == TOPIC_ENTRY;
    LWLockAcquire(shared->hash_lock, LW_EXCLUSIVE);
    ps = static_cast<PartitionState *>(hash_search(partition_hash, &key, HASH_FIND, nullptr));
    if (ps == nullptr) {
        int *count = is_topic ? &shared->topic_entries : &shared->partition_entries;
        if (*count >= shared_partitions)
            sweep_dropped();
        if (*count < shared_partitions)
            ps = static_cast<PartitionState *>(hash_search(partition_hash, &key, HASH_ENTER_NULL, &found));
        if (ps != nullptr && !found) {
            (*count)++;
            SpinLockInit(&ps->mutex);
            ps->initialized = false;
            ps->bounded = false;
            ps->dropped = false;
            ps->next_offset = 0;
            ps->reserved = 0;
            ps->logged_stable = -1;
            dlist_init(&ps->inflight);
            ps->topic = nullptr;
            ps->requested_segment = -1;
            pg_atomic_init_u64(&ps->commits, 0);
            ps->notified = 0;
        }
    }
    LWLockRelease(shared->hash_lock);
    if (ps == nullptr)
        ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                        errmsg("pgtopic's shared memory for partitions is full"),
                        errdetail("Shared memory tracks at most %d topic partitions (and %d topics) of all databases.",
                                  shared_partitions, shared_partitions),
                        errhint("Raise pgtopic.shared_partitions (currently %d) and restart the server, or drop "
                                "unused topics.",
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
        // Above every stored message and committed group offset, and at or above the durable
        // reservation and log start (offsets handed out before a restart, crash, failover or
        // dump, even by transactions that rolled back, and segments retention dropped).
        int64 next = stored_next_offset(topic, partition);
        PartitionBounds bounds = read_partition_bounds(topic.id, partition);
        if (bounds.present)
            next = Max(next, Max(bounds.reserved, bounds.log_start));
        SpinLockAcquire(&ps->mutex);
        if (!ps->initialized) {
            ps->next_offset = next;
            ps->bounded = bounds.present;
            ps->reserved = bounds.present ? bounds.reserved : 0;
            ps->logged_stable = bounds.present ? bounds.stable : -1;
            ps->initialized = true;
        }
        SpinLockRelease(&ps->mutex);
    } else {
        SpinLockAcquire(&ps->mutex);
        bool bounded = ps->bounded;
        SpinLockRelease(&ps->mutex);
        if (!bounded) {
            // Loaded before the partition had a catalog_partitions row (ALTER EXTENSION UPDATE to
            // 0.3.0 without a restart): from now on its reservations are durable too.
            PartitionBounds bounds = read_partition_bounds(topic.id, partition);
            if (bounds.present) {
                SpinLockAcquire(&ps->mutex);
                if (!ps->bounded) {
                    ps->bounded = true;
                    ps->reserved = bounds.reserved;
                    ps->logged_stable = bounds.stable;
                }
                SpinLockRelease(&ps->mutex);
            }
        }
    }
    return ps;
}

// Raises the partition's durable reservation above next_offset + count (and a chunk more).
void reserve_offsets(const Topic &topic, int32 partition, PartitionState *ps, int64 count)
{
    SpinLockAcquire(&ps->mutex);
    int64 wanted = Max(ps->next_offset + count, ps->reserved) + Max(RESERVE_CHUNK, count);
    SpinLockRelease(&ps->mutex);
    int64 stored = raise_partition_bound(topic.id, partition, Bound::Reserved, wanted);
    SpinLockAcquire(&ps->mutex);
    if (stored < 0)
        ps->bounded = false;  // the row is gone (cannot happen while we hold the topic's lock)
    else
        ps->reserved = Max(ps->reserved, stored);
    SpinLockRelease(&ps->mutex);
}

InflightSlot *my_slot_for(PartitionState *ps)
{
    for (int i = my_slot_count - 1; i >= 0; i--)
        if (my_slots[i].partition == ps)
            return &my_slots[i];
    return nullptr;
}

// Partition entries and topic entries, each capped at pgtopic.shared_partitions.
long hash_entries()
{
    return 2L * shared_partitions;
}

}  // namespace

void offsets_shmem_request()
{
    RequestAddinShmemSpace(add_size(shared_size(), hash_estimate_size(hash_entries(), sizeof(PartitionState))));
    RequestNamedLWLockTranche("pgtopic", 2);
}

// Called with AddinShmemInitLock held.
void offsets_shmem_startup()
{
    bool found = false;
    shared = static_cast<SharedState *>(ShmemInitStruct("pgtopic shared state", shared_size(), &found));
    if (!found) {
        memset(shared, 0, shared_size());
        LWLockPadded *locks = GetNamedLWLockTranche("pgtopic");
        shared->hash_lock = &locks[0].lock;
        shared->bounds_lock = &locks[1].lock;
        shared->slots_per_backend = max_partitions_per_transaction;
        shared->maintenance_database = InvalidOid;
        SpinLockInit(&shared->request_mutex);
        pg_atomic_init_u32(&shared->listeners, 0);
        for (auto &cv : shared->topic_cvs)
            ConditionVariableInit(&cv);
    }
    HASHCTL info;
    memset(&info, 0, sizeof(info));
    info.keysize = sizeof(PartitionKey);
    info.entrysize = sizeof(PartitionState);
    // Fixed size: the table never grows into the spare shared memory other hashes need.
    partition_hash = ShmemInitHash("pgtopic partitions", hash_entries(), hash_entries(), &info,
                                   HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);
}

void offsets_init_backend_callbacks()
{
    RegisterXactCallback(xact_callback, nullptr);
    RegisterSubXactCallback(subxact_callback, nullptr);
}

void wake_readers_at_commit(const Topic &topic)
{
    for (int i = 0; i < n_wakes; i++)
        if (wakes[i] == topic.root_relid)
            return;
    if (n_wakes < MAX_WAKES)
        wakes[n_wakes++] = topic.root_relid;
    else
        wake_all = true;
}

ConditionVariable *topic_changed(const Topic &topic)
{
    return cv_of(PartitionKey{MyDatabaseId, topic.root_relid, TOPIC_ENTRY});
}

LWLock *bounds_lock()
{
    return shared->bounds_lock;
}

void forget_topic_at_commit(Oid root_relid)
{
    for (int i = 0; i < n_pending; i++)
        if (pending[i].root_relid == root_relid)
            return;
    if (n_pending == max_pending) {
        int grown = Max(8, max_pending * 2);
        pending = static_cast<PendingForget *>(
            pending == nullptr ? MemoryContextAlloc(TopTransactionContext, sizeof(PendingForget) * grown)
                               : repalloc(pending, sizeof(PendingForget) * grown));
        max_pending = grown;
    }
    pending[n_pending++] = PendingForget{root_relid, GetCurrentTransactionNestLevel()};
}

// A relation is being dropped: if it is a topic's storage root (pgtopic_data.topic_<id>), its
// shared-memory state goes when the transaction commits (drop_topic, DROP EXTENSION, DROP
// SCHEMA ... CASCADE, a DROP TABLE by hand).
bool offsets_object_access(Oid relid)
{
    if (shared == nullptr || !IsTransactionState())
        return false;
    Oid ns = get_rel_namespace(relid);
    if (!OidIsValid(ns) || ns != data_namespace(true))
        return false;
    char *name = get_rel_name(relid);
    int id = -1, used = 0;
    if (name == nullptr || sscanf(name, "topic_%d%n", &id, &used) != 1 || name[used] != '\0')
        return false;
    forget_topic_at_commit(relid);
    return true;
}

bool maintenance_serves_database()
{
    return shared->maintenance_database == MyDatabaseId && shared->maintenance_latch != nullptr;
}

bool request_segments(const Topic &topic, int32 partition, int64 from_segment, int64 upto_segment)
{
    if (!maintenance_serves_database())
        return false;
    bool queued = false;
    SpinLockAcquire(&shared->request_mutex);
    for (int i = 0; i < shared->n_requests && !queued; i++) {
        SegmentWanted &r = shared->requests[i];
        if (r.topic_id == topic.id && r.partition == partition) {
            r.from_segment = Min(r.from_segment, from_segment);
            r.upto_segment = Max(r.upto_segment, upto_segment);
            queued = true;
        }
    }
    if (!queued && shared->n_requests < MAX_SEGMENT_REQUESTS) {
        shared->requests[shared->n_requests++] = SegmentWanted{topic.id, partition, from_segment, upto_segment};
        queued = true;
    }
    SpinLockRelease(&shared->request_mutex);
    if (queued)
        SetLatch(shared->maintenance_latch);
    return queued;
}

void set_maintenance_database(Oid database)
{
    shared->maintenance_database = database;
}

int take_segment_requests(SegmentWanted *out, int max)
{
    SpinLockAcquire(&shared->request_mutex);
    int n = Min(max, shared->n_requests);
    memcpy(out, shared->requests, sizeof(SegmentWanted) * n);
    memmove(shared->requests, shared->requests + n, sizeof(SegmentWanted) * (shared->n_requests - n));
    shared->n_requests -= n;
    SpinLockRelease(&shared->request_mutex);
    return n;
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

void set_kafka_latch(Latch *latch)
{
    shared->kafka_latch = latch;
}

bool peek_last_stable_offset(Oid root_relid, int32 partition, int64 *lso)
{
    PartitionKey key{MyDatabaseId, root_relid, partition};
    bool known = false;
    LWLockAcquire(shared->hash_lock, LW_SHARED);  // the entry cannot be swept while it is held
    auto *ps = static_cast<PartitionState *>(hash_search(partition_hash, &key, HASH_FIND, nullptr));
    if (ps != nullptr) {
        SpinLockAcquire(&ps->mutex);
        if (ps->initialized && !ps->dropped) {
            *lso = dlist_is_empty(&ps->inflight) ? ps->next_offset : slot_of(dlist_head_node(&ps->inflight))->first_offset;
            known = true;
        }
        SpinLockRelease(&ps->mutex);
    }
    LWLockRelease(shared->hash_lock);
    return known;
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

// DROP DATABASE succeeded: nobody is connected to it any more, and its entries go (the object
// access hook does not see the topics of a dropped database).
void forget_database(Oid database)
{
    if (shared == nullptr || !OidIsValid(database))
        return;
    LWLockAcquire(shared->hash_lock, LW_EXCLUSIVE);
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, partition_hash);
    while (auto *ps = static_cast<PartitionState *>(hash_seq_search(&status)))
        if (ps->key.database == database)
            ps->dropped = true;
    sweep_dropped();
    LWLockRelease(shared->hash_lock);
}

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
    if (pg_atomic_fetch_add_u32(&shared->listeners, 1) != 0)
        return;
    // The first listener: commits made while nobody listened are not news to it. Mark them as
    // notified (the worker writes `notified` only under the lock in shared mode).
    LWLockAcquire(shared->hash_lock, LW_EXCLUSIVE);
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, partition_hash);
    while (auto *ps = static_cast<PartitionState *>(hash_seq_search(&status)))
        if (ps->key.partition == TOPIC_ENTRY)
            ps->notified = pg_atomic_read_u64(&ps->commits);
    LWLockRelease(shared->hash_lock);
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
    while (ps->bounded && ps->next_offset + count > ps->reserved) {
        // Beyond the durable reservation: raise it first (rare: once per RESERVE_CHUNK
        // offsets). Serialised by the bounds lock; whoever comes second finds it done.
        SpinLockRelease(&ps->mutex);
        reserve_offsets(topic, partition, ps, count);
        SpinLockAcquire(&ps->mutex);
    }
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
        // A standby replays commits in commit order, not offset order: offset 11 may be
        // visible before 10. It reads only below the primary's last stable offset as the
        // primary last WAL-logged it (log_stable_offsets): every commit below it was replayed
        // before that record, so a snapshot taken after reading it sees them all.
        PartitionBounds bounds = read_partition_bounds(topic.id, partition);
        if (!bounds.present)
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("cannot read this topic on a standby"),
                            errdetail("The topic's partitions have no logged stable offsets."),
                            errhint("Run ALTER EXTENSION pgtopic UPDATE on the primary, or read from the primary.")));
        return {bounds.stable, bounds.stable};
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

int log_stable_offsets()
{
    struct Pending {
        PartitionKey key;
        int64 lso;
    };
    // Room for every partition entry there can be (pgtopic.shared_partitions): a fixed smaller
    // batch, taken in hash order, would leave the same partitions unlogged on every pass.
    const int MAX_LOG = Max(shared_partitions, 1);
    auto *todo = static_cast<Pending *>(palloc(sizeof(Pending) * static_cast<Size>(MAX_LOG)));
    int n = 0;
    LWLockAcquire(shared->hash_lock, LW_SHARED);
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, partition_hash);
    while (auto *ps = static_cast<PartitionState *>(hash_seq_search(&status))) {
        if (ps->key.database != MyDatabaseId || ps->key.partition == TOPIC_ENTRY || n == MAX_LOG)
            continue;
        SpinLockAcquire(&ps->mutex);
        int64 lso = dlist_is_empty(&ps->inflight) ? ps->next_offset
                                                  : slot_of(dlist_head_node(&ps->inflight))->first_offset;
        bool changed = ps->initialized && ps->bounded && !ps->dropped && lso > ps->logged_stable;
        SpinLockRelease(&ps->mutex);
        if (changed)
            todo[n++] = Pending{ps->key, lso};
    }
    LWLockRelease(shared->hash_lock);

    // The LSO was read before the WAL record is written: every commit below it is earlier in
    // the WAL, so a standby that replayed the record has replayed them too.
    Oid data_ns = data_namespace(true);
    int written = 0;
    for (int i = 0; i < n; i++) {
        if (get_rel_namespace(todo[i].key.root_relid) != data_ns)
            continue;
        char *name = get_rel_name(todo[i].key.root_relid);
        int id = -1, used = 0;
        if (name == nullptr || sscanf(name, "topic_%d%n", &id, &used) != 1 || name[used] != '\0')
            continue;
        if (raise_partition_bound(id, todo[i].key.partition, Bound::Stable, todo[i].lso) < 0)
            continue;
        written++;
        LWLockAcquire(shared->hash_lock, LW_SHARED);
        auto *ps = static_cast<PartitionState *>(hash_search(partition_hash, &todo[i].key, HASH_FIND, nullptr));
        if (ps != nullptr) {
            SpinLockAcquire(&ps->mutex);
            ps->logged_stable = Max(ps->logged_stable, todo[i].lso);
            SpinLockRelease(&ps->mutex);
        }
        LWLockRelease(shared->hash_lock);
    }
    pfree(todo);
    return written;
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
