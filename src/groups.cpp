// Consumer groups over session-level advisory locks (ARCHITECTURE.md, "Consumer groups").
//
//  * A group is a row of pgtopic.catalog_groups per (topic, group name); its id keys the locks.
//  * Membership: a SHARE session advisory lock on (database, group id, 0, LOCK_SPACE_MEMBER),
//    held by every live member; the lock manager's view (pg_locks) is the member list.
//  * Ownership of a partition: an EXCLUSIVE session advisory lock on (database, group id,
//    partition, LOCK_SPACE_OWNER). Released the instant the session ends.
//  * Each poll computes the fair share from the lock manager's view: P partitions over M live
//    members, ordered by (partitions owned, descending; pid): the first P mod M get ceil(P/M),
//    the others floor(P/M). A member above its share commits and releases its highest partitions;
//    a member below it takes free ones (sticky: nobody gives up a partition it may keep).
//  * Positions (the next offset to hand out) live in this backend; committed offsets live in
//    pgtopic.catalog_offsets and are written in the caller's transaction. On ROLLBACK the
//    positions return to what they were when the transaction began.
#include "guard.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "storage/procarray.h"
#include "utils/acl.h"
}

#include <csignal>

namespace pgtopic {
namespace {

constexpr uint16 LOCK_SPACE_MEMBER = 0x7402;  // 29698 in pg_locks.objsubid
constexpr uint16 LOCK_SPACE_OWNER = 0x7403;   // 29699
constexpr int MEMBERSHIPS_PER_BACKEND = 32;
constexpr int GROUP_NAME_MAX = 249;

// ---- shared registry: who is a member since when, and when it last polled -----------------

struct MemberEntry {
    Oid database;
    int32 group_id;  // 0: free
    TimestampTz joined_at;
    TimestampTz last_poll;
};

struct BackendMembers {
    slock_t mutex;
    int32 pid;
    MemberEntry entries[MEMBERSHIPS_PER_BACKEND];
};

BackendMembers *registry = nullptr;  // MaxBackends entries

Size registry_size()
{
    return mul_size(static_cast<Size>(MaxBackends), sizeof(BackendMembers));
}

BackendMembers *my_registry()
{
    if (MyBackendId == InvalidBackendId || MyBackendId > MaxBackends)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("pgtopic consumer groups are not available in this kind of process")));
    return &registry[MyBackendId - 1];
}

// ---- backend-local state ----------------------------------------------------------------

struct OwnedPartition {
    int32 partition;
    bool position_valid;  // false: (re)load from the catalog before use
    int64 position;       // next offset to hand out
    int64 committed;      // value of catalog_offsets as this session wrote or read it; -1: none
};

struct Membership {
    bool in_use;
    Oid database;
    int32 topic_id;
    int32 group_id;
    char group_name[GROUP_NAME_MAX + 1];
    int registry_slot;
    bool created_in_xact;  // this transaction inserted the group row ...
    SubTransactionId created_in_subxact;  // ... in this subtransaction (moves up on subcommit)
    bool stale;            // ... and rolled back: leave and join again
    uint32 next_start;     // round-robin start among owned partitions
    int n_owned, cap_owned;
    OwnedPartition *owned;
    // state when the current transaction first touched this membership, restored on abort
    bool touched;
    int n_saved;
    OwnedPartition *saved;
    // partitions a rebalance inside a transaction block gave away: still locked until COMMIT
    // (released then), taken back on ROLLBACK, so the surrender and its offset commit are atomic
    int n_releasing;
    int32 *releasing;
};

MemoryContext groups_context = nullptr;
Membership memberships[MEMBERSHIPS_PER_BACKEND];
bool exit_callback_registered = false;

LOCKTAG member_tag(int32 group_id)
{
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(group_id), 0, LOCK_SPACE_MEMBER);
    return tag;
}

LOCKTAG owner_tag(int32 group_id, int32 partition)
{
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(group_id), static_cast<uint32>(partition),
                         LOCK_SPACE_OWNER);
    return tag;
}

void check_group_name(text *name)
{
    int len = VARSIZE_ANY_EXHDR(name);
    if (len < 1 || len > GROUP_NAME_MAX)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("group_name must be 1 to %d bytes long", GROUP_NAME_MAX)));
    const char *p = VARDATA_ANY(name);
    for (int i = 0; i < len; i++)
        if (static_cast<unsigned char>(p[i]) < 0x20)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("group_name must not contain control characters")));
}

void registry_clear_slot(int slot)
{
    BackendMembers *me = &registry[MyBackendId - 1];
    SpinLockAcquire(&me->mutex);
    me->entries[slot].group_id = 0;
    SpinLockRelease(&me->mutex);
}

void registry_touch(const Membership &m)
{
    BackendMembers *me = &registry[MyBackendId - 1];
    TimestampTz now = GetCurrentTimestamp();
    SpinLockAcquire(&me->mutex);
    me->entries[m.registry_slot].last_poll = now;
    SpinLockRelease(&me->mutex);
}

// Session ends: the lock manager releases the locks; only the registry needs clearing.
void exit_callback(int, Datum)
{
    if (registry == nullptr || MyBackendId == InvalidBackendId || MyBackendId > MaxBackends)
        return;
    BackendMembers *me = &registry[MyBackendId - 1];
    SpinLockAcquire(&me->mutex);
    for (MemberEntry &e : me->entries)
        e.group_id = 0;
    SpinLockRelease(&me->mutex);
}

// Nothing here may fail (commit/abort callbacks): only local memory is touched.
// The partition's state when the transaction first touched the membership; a partition acquired
// in the transaction has none: reload it from the catalog.
OwnedPartition saved_state(const Membership &m, int32 partition)
{
    for (int j = 0; j < m.n_saved; j++)
        if (m.saved[j].partition == partition)
            return m.saved[j];
    return OwnedPartition{partition, false, 0, -1};
}

void restore_saved(Membership &m)
{
    for (int i = 0; i < m.n_owned; i++)
        m.owned[i] = saved_state(m, m.owned[i].partition);
}

// The transaction's rebalance gave these partitions away; its locks are still held. ROLLBACK:
// they are this member's again, as they were (their offset commit was rolled back too). COMMIT:
// released now, when the next owner can read the committed offsets.
void end_releasing(Membership &m, bool aborted)
{
    for (int k = 0; k < m.n_releasing; k++) {
        int32 p = m.releasing[k];
        if (aborted) {
            m.owned[m.n_owned++] = saved_state(m, p);
        } else {
            LOCKTAG tag = owner_tag(m.group_id, p);
            (void) LockRelease(&tag, ExclusiveLock, true);
        }
    }
    m.n_releasing = 0;
}

void xact_callback(XactEvent event, void *)
{
    if (event == XACT_EVENT_PREPARE) {
        // The prepared transaction holds the offset commit; the surrendered partitions go now.
        for (Membership &m : memberships)
            if (m.in_use)
                end_releasing(m, false);
        return;
    }
    if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_COMMIT &&
        event != XACT_EVENT_PARALLEL_ABORT)
        return;
    bool aborted = event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT;
    for (Membership &m : memberships) {
        if (!m.in_use)
            continue;
        if (aborted && m.touched)
            restore_saved(m);
        end_releasing(m, aborted);
        if (aborted && m.created_in_xact)
            m.stale = true;
        m.touched = false;
        m.created_in_xact = false;
    }
}

// A subtransaction that touched a membership rolled back: its catalog writes are gone, so this
// session no longer knows what the catalog holds; positions stay where they are (those messages
// were handed out), and the next commit writes them again.
//
// A group row inserted by a subtransaction that rolled back is gone: that membership is stale.
void subxact_callback(SubXactEvent event, SubTransactionId subid, SubTransactionId parent, void *)
{
    for (Membership &m : memberships) {
        if (!m.in_use)
            continue;
        if (event == SUBXACT_EVENT_COMMIT_SUB && m.created_in_xact && m.created_in_subxact == subid)
            m.created_in_subxact = parent;
        if (event != SUBXACT_EVENT_ABORT_SUB)
            continue;
        if (m.created_in_xact && m.created_in_subxact == subid)
            m.stale = true;
        if (m.touched)
            for (int i = 0; i < m.n_owned; i++)
                m.owned[i].committed = -2;
    }
}

// First use of a membership in this transaction: remember its state for ROLLBACK.
void touch(Membership &m)
{
    if (m.touched)
        return;
    m.n_saved = m.n_owned;
    memcpy(m.saved, m.owned, sizeof(OwnedPartition) * m.n_owned);
    m.touched = true;
}

void ensure_capacity(Membership &m, int partitions)
{
    if (partitions <= m.cap_owned)
        return;
    int cap = Max(partitions, 8);
    auto *owned = static_cast<OwnedPartition *>(MemoryContextAllocZero(groups_context, sizeof(OwnedPartition) * cap));
    auto *saved = static_cast<OwnedPartition *>(MemoryContextAllocZero(groups_context, sizeof(OwnedPartition) * cap));
    auto *releasing = static_cast<int32 *>(MemoryContextAllocZero(groups_context, sizeof(int32) * cap));
    if (m.owned != nullptr) {
        memcpy(owned, m.owned, sizeof(OwnedPartition) * m.n_owned);
        memcpy(saved, m.saved, sizeof(OwnedPartition) * m.n_saved);
        memcpy(releasing, m.releasing, sizeof(int32) * m.n_releasing);
        pfree(m.owned);
        pfree(m.saved);
        pfree(m.releasing);
    }
    m.owned = owned;
    m.saved = saved;
    m.releasing = releasing;
    m.cap_owned = cap;
}

Membership *find_membership(int32 topic_id, text *group_name)
{
    int len = VARSIZE_ANY_EXHDR(group_name);
    for (Membership &m : memberships)
        if (m.in_use && m.database == MyDatabaseId && m.topic_id == topic_id &&
            static_cast<int>(strlen(m.group_name)) == len && memcmp(m.group_name, VARDATA_ANY(group_name), len) == 0)
            return &m;
    return nullptr;
}

void release_all(Membership &m)
{
    for (int i = 0; i < m.n_owned; i++) {
        LOCKTAG tag = owner_tag(m.group_id, m.owned[i].partition);
        (void) LockRelease(&tag, ExclusiveLock, true);
    }
    end_releasing(m, false);
    LOCKTAG tag = member_tag(m.group_id);
    (void) LockRelease(&tag, ShareLock, true);
    registry_clear_slot(m.registry_slot);
    if (m.owned != nullptr) {
        pfree(m.owned);
        pfree(m.saved);
        pfree(m.releasing);
    }
    m = Membership{};
}

// The group's id, inserting its catalog row if it is new.
int32 group_id_for(const Topic &topic, text *group_name, bool *created)
{
    Oid argtypes[2] = {TEXTOID, INT4OID};
    Datum values[2] = {PointerGetDatum(group_name), Int32GetDatum(topic.id)};
    InternalScope scope = internal_begin();
    int rc = SPI_execute_with_args(
        "INSERT INTO pgtopic.catalog_groups (group_name, topic_id) VALUES ($1, $2) "
        "ON CONFLICT (topic_id, group_name) DO NOTHING RETURNING group_id",
        2, argtypes, values, nullptr, false, 1);
    if (rc != SPI_OK_INSERT_RETURNING)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not register the consumer group")));
    int32 id = 0;
    *created = SPI_processed == 1;
    bool isnull = false;
    if (*created) {
        id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    } else {
        // Committed by someone else, perhaps after our statement's snapshot: read with a new one.
        SPIPlanPtr plan = SPI_prepare("SELECT group_id FROM pgtopic.catalog_groups WHERE group_name = $1 AND topic_id = $2",
                                      2, argtypes);
        Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
        rc = SPI_execute_snapshot(plan, values, nullptr, snapshot, InvalidSnapshot, true, false, 1);
        UnregisterSnapshot(snapshot);
        if (rc != SPI_OK_SELECT || SPI_processed != 1)
            ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not find the consumer group")));
        id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    }
    internal_end(scope);
    return id;
}

Membership &join(const Topic &topic, text *group_name)
{
    Membership *m = find_membership(topic.id, group_name);
    if (m != nullptr && !m->stale) {
        // pg_advisory_unlock_all() also drops pgtopic's session locks: take membership again.
        LOCKTAG tag = member_tag(m->group_id);
        if (!LockHeldByMe(&tag, ShareLock))
            (void) LockAcquire(&tag, ShareLock, true, false);
        return *m;
    }
    if (m != nullptr)
        release_all(*m);

    if (groups_context == nullptr)
        groups_context = AllocSetContextCreate(TopMemoryContext, "pgtopic groups", ALLOCSET_SMALL_SIZES);
    if (!exit_callback_registered) {
        before_shmem_exit(exit_callback, 0);
        exit_callback_registered = true;
    }
    BackendMembers *me = my_registry();

    Membership *slot = nullptr;
    int index = 0;
    for (Membership &candidate : memberships) {
        if (!candidate.in_use) {
            slot = &candidate;
            break;
        }
        index++;
    }
    if (slot == nullptr)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("a session may be a member of at most %d consumer groups", MEMBERSHIPS_PER_BACKEND),
                        errhint("Call pgtopic.leave() for groups this session no longer consumes.")));

    bool created = false;
    int32 group_id = group_id_for(topic, group_name, &created);
    LOCKTAG tag = member_tag(group_id);
    (void) LockAcquire(&tag, ShareLock, true, false);

    *slot = Membership{};
    slot->in_use = true;
    slot->database = MyDatabaseId;
    slot->topic_id = topic.id;
    slot->group_id = group_id;
    text_to_cstring_buffer(group_name, slot->group_name, sizeof slot->group_name);
    slot->registry_slot = index;
    slot->created_in_xact = created;
    slot->created_in_subxact = created ? GetCurrentSubTransactionId() : InvalidSubTransactionId;
    ensure_capacity(*slot, topic.partitions);

    TimestampTz now = GetCurrentTimestamp();
    SpinLockAcquire(&me->mutex);
    me->pid = MyProcPid;
    me->entries[index] = MemberEntry{MyDatabaseId, group_id, now, now};
    SpinLockRelease(&me->mutex);
    return *slot;
}

OwnedPartition *owned_partition(Membership &m, int32 partition)
{
    for (int i = 0; i < m.n_owned; i++)
        if (m.owned[i].partition == partition)
            return &m.owned[i];
    return nullptr;
}

void drop_owned(Membership &m, int index)
{
    m.owned[index] = m.owned[m.n_owned - 1];
    m.n_owned--;
}

// Runs one of the offset statements (group id, int[] of partitions, bigint[] of offsets),
// prepared once per backend and kept (a saved SPI plan): the consumer's hot path pays only its
// execution. Returns the number of rows it wrote.
uint64 execute_offsets(SPIPlanPtr &plan, const char *query, Datum *values, int expected_rc)
{
    if (plan == nullptr) {
        Oid argtypes[3] = {INT4OID, INT4ARRAYOID, INT8ARRAYOID};
        SPIPlanPtr prepared = SPI_prepare(query, 3, argtypes);
        if (prepared == nullptr || SPI_keepplan(prepared) != 0)
            ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not prepare the offset commit: %s",
                                                                    SPI_result_code_string(SPI_result))));
        plan = prepared;
    }
    if (SPI_execute_plan(plan, values, nullptr, false, 0) != expected_rc)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not store the group's offsets")));
    return SPI_processed;
}

// Stores the committed offsets of `n` partitions of a group, as the extension's owner. A member
// has the catalog rows of the partitions it owns (load_positions made them), so this is an
// UPDATE: no speculative insertion and no row lock record per partition, as an upsert would
// write. A row that is missing (seek on a partition the group never read) makes it fall back to
// the upsert.
void store_offsets(int32 group_id, Datum *parts, Datum *offsets, int n)
{
    static SPIPlanPtr update_plan = nullptr;
    static SPIPlanPtr upsert_plan = nullptr;
    InternalScope scope = internal_begin();
    Datum values[3] = {Int32GetDatum(group_id),
                       PointerGetDatum(construct_array(parts, n, INT4OID, 4, true, TYPALIGN_INT)),
                       PointerGetDatum(construct_array(offsets, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE))};
    uint64 updated = execute_offsets(update_plan,
                                     "UPDATE pgtopic.catalog_offsets AS c "
                                     "SET committed_offset = u.o, committed_at = now() "
                                     "FROM unnest($2::int[], $3::bigint[]) AS u(p, o) "
                                     "WHERE c.group_id = $1 AND c.\"partition\" = u.p",
                                     values, SPI_OK_UPDATE);
    if (updated < static_cast<uint64>(n))
        (void) execute_offsets(upsert_plan,
                               "INSERT INTO pgtopic.catalog_offsets (group_id, \"partition\", committed_offset, "
                               "committed_at) SELECT $1, u.p, u.o, now() FROM unnest($2::int[], $3::bigint[]) "
                               "AS u(p, o) ON CONFLICT (group_id, \"partition\") DO UPDATE "
                               "SET committed_offset = EXCLUDED.committed_offset, committed_at = EXCLUDED.committed_at",
                               values, SPI_OK_INSERT);
    internal_end(scope);
}

// Writes the positions of owned partitions that moved since the catalog last saw them.
void commit_positions(Membership &m, bool explicit_commit)
{
    for (int i = 0; i < m.n_owned;) {
        LOCKTAG tag = owner_tag(m.group_id, m.owned[i].partition);
        if (LockHeldByMe(&tag, ExclusiveLock)) {
            i++;
            continue;
        }
        if (explicit_commit)
            ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
                            errmsg("partition %d is no longer owned by this session in group \"%s\"",
                                   m.owned[i].partition, m.group_name),
                            errdetail("Its ownership lock was released; its next owner continues from the last "
                                      "committed offset."),
                            errhint("Call pgtopic.consume() again to rejoin the group.")));
        drop_owned(m, i);  // auto-commit: skip it, the next owner redelivers (at least once)
    }

    int n = 0;
    Datum *parts = static_cast<Datum *>(palloc(sizeof(Datum) * Max(m.n_owned, 1)));
    Datum *offsets = static_cast<Datum *>(palloc(sizeof(Datum) * Max(m.n_owned, 1)));
    for (int i = 0; i < m.n_owned; i++) {
        const OwnedPartition &o = m.owned[i];
        if (o.position_valid && o.position != o.committed) {
            parts[n] = Int32GetDatum(o.partition);
            offsets[n] = Int64GetDatum(o.position);
            n++;
        }
    }
    if (n == 0)
        return;

    store_offsets(m.group_id, parts, offsets, n);
    for (int i = 0; i < m.n_owned; i++)
        if (m.owned[i].position_valid)
            m.owned[i].committed = m.owned[i].position;
}

// Loads the committed offsets of owned partitions whose position is unknown. The upsert takes
// the rows' locks: if the previous owner's transaction wrote an offset and has not ended, this
// waits for it and then sees its final value (exactly once for work done in the database).
void load_positions(Membership &m, const Topic &topic)
{
    int n = 0;
    Datum *parts = static_cast<Datum *>(palloc(sizeof(Datum) * Max(m.n_owned, 1)));
    for (int i = 0; i < m.n_owned; i++)
        if (!m.owned[i].position_valid)
            parts[n++] = Int32GetDatum(m.owned[i].partition);
    if (n == 0)
        return;

    Oid argtypes[2] = {INT4OID, INT4ARRAYOID};
    Datum values[2] = {Int32GetDatum(m.group_id),
                       PointerGetDatum(construct_array(parts, n, INT4OID, 4, true, TYPALIGN_INT))};
    InternalScope scope = internal_begin();
    int rc = SPI_execute_with_args(
        "INSERT INTO pgtopic.catalog_offsets AS c (group_id, \"partition\") SELECT $1, unnest($2::int[]) "
        "ON CONFLICT (group_id, \"partition\") DO UPDATE SET committed_offset = c.committed_offset "
        "RETURNING \"partition\", committed_offset",
        2, argtypes, values, nullptr, false, 0);
    if (rc != SPI_OK_INSERT_RETURNING)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not read the group's offsets")));
    for (uint64 r = 0; r < SPI_processed; r++) {
        bool isnull = false;
        int32 p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
        Datum d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull);
        OwnedPartition *o = owned_partition(m, p);
        if (o == nullptr)
            continue;
        if (!isnull) {
            o->position = DatumGetInt64(d);
            o->committed = o->position;
        } else {
            // No committed offset: pgtopic.auto_offset_reset decides (Kafka's auto.offset.reset).
            if (auto_offset_reset == RESET_LATEST) {
                o->position = partition_offsets(topic, p).last_stable_offset;
            } else {
                o->position = log_start_offset(topic, p, partition_offsets(topic, p).last_stable_offset);
            }
            o->committed = -1;
        }
        o->position_valid = true;
    }
    internal_end(scope);
}

bool has_terminate_rights(PGPROC *proc)
{
    if (superuser())
        return true;
    if (superuser_arg(proc->roleId))
        return false;
    return has_privs_of_role(GetUserId(), proc->roleId) ||
           has_privs_of_role(GetUserId(), ROLE_PG_SIGNAL_BACKEND);
}

// Kafka's max.poll.interval.ms: a member that owns a partition we need and has not polled for
// longer than pgtopic.max_poll_interval is removed by terminating its session (its locks go
// with it). Only with the rights pg_terminate_backend would need.
void expire_idle_owner(Membership &m, int pid)
{
    if (max_poll_interval_ms <= 0 || pid == MyProcPid)
        return;
    PGPROC *proc = BackendPidGetProc(pid);
    if (proc == nullptr || proc->backendId == InvalidBackendId || proc->backendId > MaxBackends)
        return;
    BackendMembers *them = &registry[proc->backendId - 1];
    TimestampTz last_poll = 0;
    SpinLockAcquire(&them->mutex);
    if (them->pid == pid)
        for (const MemberEntry &e : them->entries)
            if (e.group_id == m.group_id && e.database == MyDatabaseId)
                last_poll = e.last_poll;
    SpinLockRelease(&them->mutex);
    if (last_poll == 0 ||
        !TimestampDifferenceExceeds(last_poll, GetCurrentTimestamp(), max_poll_interval_ms))
        return;
    if (!has_terminate_rights(proc)) {
        ereport(WARNING, (errmsg("member %d of group \"%s\" exceeded pgtopic.max_poll_interval but this role may "
                                 "not terminate it",
                                 pid, m.group_name)));
        return;
    }
    ereport(LOG, (errmsg("pgtopic: terminating member %d of group \"%s\": no poll for more than %d ms", pid,
                         m.group_name, max_poll_interval_ms)));
    (void) kill(pid, SIGTERM);
}

struct GroupView {
    int n_members;
    int *member_pids;
    int *member_owned;  // partitions each member owns
    int *owner_of;      // per partition: owner pid or 0
};

GroupView group_view(const Membership &m, int32 partitions)
{
    GroupView v{};
    v.owner_of = static_cast<int *>(palloc0(sizeof(int) * partitions));
    LockData *locks = GetLockStatusData();
    v.member_pids = static_cast<int *>(palloc(sizeof(int) * (locks->nelements + 1)));
    v.member_owned = static_cast<int *>(palloc0(sizeof(int) * (locks->nelements + 1)));
    for (int i = 0; i < locks->nelements; i++) {
        const LockInstanceData &l = locks->locks[i];
        if (l.locktag.locktag_type != LOCKTAG_ADVISORY || l.locktag.locktag_field1 != MyDatabaseId ||
            l.locktag.locktag_field2 != static_cast<uint32>(m.group_id) || l.holdMask == 0)
            continue;
        if (l.locktag.locktag_field4 == LOCK_SPACE_MEMBER) {
            bool seen = false;
            for (int j = 0; j < v.n_members; j++)
                seen = seen || v.member_pids[j] == l.pid;
            if (!seen)
                v.member_pids[v.n_members++] = l.pid;
        } else if (l.locktag.locktag_field4 == LOCK_SPACE_OWNER &&
                   l.locktag.locktag_field3 < static_cast<uint32>(partitions)) {
            v.owner_of[l.locktag.locktag_field3] = l.pid;
        }
    }
    for (int j = 0; j < v.n_members; j++)
        for (int p = 0; p < partitions; p++)
            if (v.owner_of[p] == v.member_pids[j])
                v.member_owned[j]++;
    return v;
}

void rebalance(Membership &m, const Topic &topic)
{
    const int32 P = topic.partitions;
    ensure_capacity(m, P);
    GroupView v = group_view(m, P);

    // Fair shares: members ordered by (owned desc, pid), the first P mod M get one more.
    int M = Max(v.n_members, 1);
    int rank = 0;
    int my_owned = m.n_owned;
    for (int j = 0; j < v.n_members; j++) {
        int pid = v.member_pids[j];
        if (pid == MyProcPid)
            continue;
        if (v.member_owned[j] > my_owned || (v.member_owned[j] == my_owned && pid < MyProcPid))
            rank++;
    }
    int quota = P / M + (rank < P % M ? 1 : 0);

    // Above the share: give back the highest partitions (their offsets were committed first).
    // Inside a transaction block the lock is kept until COMMIT (end_releasing): a ROLLBACK also
    // undoes that offset commit, and a next owner starting from the older offset would get the
    // messages again. Outside one, the statement's own commit follows at once.
    while (m.n_owned > quota) {
        int highest = 0;
        for (int i = 1; i < m.n_owned; i++)
            if (m.owned[i].partition > m.owned[highest].partition)
                highest = i;
        if (IsTransactionBlock()) {
            m.releasing[m.n_releasing++] = m.owned[highest].partition;
        } else {
            LOCKTAG tag = owner_tag(m.group_id, m.owned[highest].partition);
            (void) LockRelease(&tag, ExclusiveLock, true);
        }
        drop_owned(m, highest);
    }

    // Below it: take free partitions, starting at a member-specific point to spread contention.
    if (m.n_owned < quota) {
        int start = (rank * P) / M;
        for (int k = 0; k < P && m.n_owned < quota; k++) {
            int32 p = (start + k) % P;
            if (v.owner_of[p] != 0 || owned_partition(m, p) != nullptr)
                continue;
            LOCKTAG tag = owner_tag(m.group_id, p);
            if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
                continue;
            m.owned[m.n_owned++] = OwnedPartition{p, false, 0, -1};
        }
        // Still short: partitions held by members that stopped polling are taken from them.
        for (int32 p = 0; p < P && m.n_owned < quota; p++)
            if (v.owner_of[p] != 0 && v.owner_of[p] != MyProcPid)
                expire_idle_owner(m, v.owner_of[p]);
    }
}

// Retention dropped the segment the position points into: Kafka's auto.offset.reset applies
// (earliest: the log start offset; latest: the last stable offset).
void reset_if_below_log_start(OwnedPartition &o, const Topic &topic, int64 lso)
{
    if (OidIsValid(segment_relid(topic, o.partition, o.position / topic.segment_size)))
        return;
    int64 first = log_start_offset(topic, o.partition, lso);
    if (o.position >= first)
        return;  // a hole above the log start (a dropped segment in the middle): read on
    o.position = auto_offset_reset == RESET_LATEST ? lso : first;
}

// One pass over the owned partitions, fairly: each gets an equal share of max_messages first,
// then what is left goes round-robin. Returns how many messages it appended.
int64 read_owned(Membership &m, const Topic &topic, int64 max_messages, ReturnSetInfo *rsinfo)
{
    int n = m.n_owned;
    if (n == 0 || max_messages == 0)
        return 0;
    // LSOs first, then one snapshot for all partitions.
    int64 *lso = static_cast<int64 *>(palloc(sizeof(int64) * n));
    for (int i = 0; i < n; i++)
        lso[i] = partition_offsets(topic, m.owned[i].partition).last_stable_offset;
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());

    int64 total = 0;
    uint32 start = m.next_start++;
    int64 share = Max(max_messages / n, 1);
    for (int pass = 0; pass < 2 && total < max_messages; pass++) {
        for (int k = 0; k < n && total < max_messages; k++) {
            OwnedPartition &o = m.owned[(start + k) % n];
            if (o.position >= lso[(start + k) % n])
                continue;
            if (pass == 0)
                reset_if_below_log_start(o, topic, lso[(start + k) % n]);
            if (poll_budget_spent())
                break;
            int64 want = pass == 0 ? Min(share, max_messages - total) : max_messages - total;
            ReadResult r = read_partition(topic, o.partition, o.position, want, lso[(start + k) % n], snapshot, rsinfo);
            o.position = r.next_offset;
            total += r.count;
        }
    }
    UnregisterSnapshot(snapshot);
    return total;
}

Membership &member_of(const Topic &topic, text *topic_name, text *group_name)
{
    Membership *m = find_membership(topic.id, group_name);
    if (m == nullptr || m->stale)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("this session is not a member of group \"%s\" on topic \"%s\"",
                               text_to_cstring(group_name), text_to_cstring(topic_name)),
                        errhint("Call pgtopic.consume() first: commit applies to what this session consumed.")));
    return *m;
}

}  // namespace

// For the maintenance worker: terminates every member of this database that owns partitions and
// has not polled for longer than pgtopic.max_poll_interval. Returns how many it terminated.
int expire_idle_members()
{
    if (max_poll_interval_ms <= 0 || registry == nullptr)
        return 0;
    LockData *locks = GetLockStatusData();
    TimestampTz now = GetCurrentTimestamp();
    int terminated = 0;
    for (int b = 0; b < MaxBackends; b++) {
        BackendMembers *bm = &registry[b];
        MemberEntry copy[MEMBERSHIPS_PER_BACKEND];
        SpinLockAcquire(&bm->mutex);
        int pid = bm->pid;
        memcpy(copy, bm->entries, sizeof copy);
        SpinLockRelease(&bm->mutex);
        bool idle_owner = false;
        for (const MemberEntry &e : copy) {
            if (e.group_id == 0 || e.database != MyDatabaseId ||
                !TimestampDifferenceExceeds(e.last_poll, now, max_poll_interval_ms))
                continue;
            for (int i = 0; i < locks->nelements && !idle_owner; i++) {
                const LockInstanceData &l = locks->locks[i];
                idle_owner = l.pid == pid && l.holdMask != 0 && l.locktag.locktag_type == LOCKTAG_ADVISORY &&
                             l.locktag.locktag_field1 == MyDatabaseId &&
                             l.locktag.locktag_field2 == static_cast<uint32>(e.group_id) &&
                             l.locktag.locktag_field4 == LOCK_SPACE_OWNER;
            }
        }
        if (idle_owner && pid != MyProcPid && BackendPidGetProc(pid) != nullptr) {
            ereport(LOG, (errmsg("pgtopic: terminating group member %d: no poll for more than %d ms", pid,
                                 max_poll_interval_ms)));
            (void) kill(pid, SIGTERM);
            terminated++;
        }
    }
    return terminated;
}

void members_shmem_request()
{
    RequestAddinShmemSpace(registry_size());
}

void members_shmem_startup()
{
    bool found = false;
    registry = static_cast<BackendMembers *>(ShmemInitStruct("pgtopic group members", registry_size(), &found));
    if (!found) {
        memset(registry, 0, registry_size());
        for (int i = 0; i < MaxBackends; i++)
            SpinLockInit(&registry[i].mutex);
    }
}

void groups_init_backend_callbacks()
{
    RegisterXactCallback(xact_callback, nullptr);
    RegisterSubXactCallback(subxact_callback, nullptr);
}

}  // namespace pgtopic

using namespace pgtopic;

PGTOPIC_FUNCTION(pgtopic_consume)
{
    require_args(fcinfo, {"topic", "group_name", "max_messages", "wait_ms"});
    text *group_name = PG_GETARG_TEXT_PP(1);
    int32 max_messages = PG_GETARG_INT32(2);
    int32 wait_ms = PG_GETARG_INT32(3);
    check_group_name(group_name);
    require_nonnegative(max_messages, "max_messages");
    require_nonnegative(wait_ms, "wait_ms");
    if (RecoveryInProgress())
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("cannot consume during recovery"),
                        errhint("Consumer groups commit offsets: connect to the primary.")));

    Topic topic = lookup_topic(PG_GETARG_TEXT_PP(0), AccessShareLock);
    require_topic_right(topic, PG_GETARG_TEXT_PP(0), Right::Consume);
    begin_poll(max_messages);
    Membership &m = join(topic, group_name);
    touch(m);
    registry_touch(m);

    commit_positions(m, false);  // Kafka's auto-commit: what the previous call handed out
    rebalance(m, topic);
    load_positions(m, topic);

    begin_materialized_result(fcinfo);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    // Long poll: sleep on the topic's condition variable, which every producer transaction on
    // the topic broadcasts when it ends; prepare to sleep before looking, so no wake-up is lost.
    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
    ConditionVariable *changed = wait_ms > 0 ? topic_changed(topic) : nullptr;
    for (;;) {
        if (changed != nullptr)
            ConditionVariablePrepareToSleep(changed);
        if (read_owned(m, topic, max_messages, rsinfo) > 0 || changed == nullptr)
            break;
        long remaining = static_cast<long>((deadline - GetCurrentTimestamp()) / 1000);
        if (remaining <= 0)
            break;
        (void) ConditionVariableTimedSleep(changed, Min(remaining, 1000L), PG_WAIT_EXTENSION);
        registry_touch(m);
    }
    if (changed != nullptr)
        ConditionVariableCancelSleep();
    registry_touch(m);
    return Datum(0);
}

PGTOPIC_FUNCTION(pgtopic_commit)
{
    require_args(fcinfo, {"topic", "group_name"});
    text *group_name = PG_GETARG_TEXT_PP(1);
    check_group_name(group_name);
    Topic topic = lookup_topic(PG_GETARG_TEXT_PP(0), AccessShareLock);
    require_topic_right(topic, PG_GETARG_TEXT_PP(0), Right::Consume);
    Membership &m = member_of(topic, PG_GETARG_TEXT_PP(0), group_name);
    touch(m);
    commit_positions(m, true);
    PG_RETURN_VOID();
}

PGTOPIC_FUNCTION(pgtopic_leave)
{
    require_args(fcinfo, {"topic", "group_name"});
    text *group_name = PG_GETARG_TEXT_PP(1);
    check_group_name(group_name);
    Topic topic = lookup_topic(PG_GETARG_TEXT_PP(0), AccessShareLock);
    require_topic_right(topic, PG_GETARG_TEXT_PP(0), Right::Consume);
    Membership *m = find_membership(topic.id, group_name);
    if (m == nullptr)
        PG_RETURN_BOOL(false);
    if (!m->stale) {
        touch(*m);
        commit_positions(*m, false);
    }
    release_all(*m);
    PG_RETURN_BOOL(true);
}

// seek: the next consume of this group on that partition starts at to_offset. From the owning
// session it moves its position; from elsewhere it needs the partition to be unowned (it takes
// the ownership lock for the rest of the transaction). Either way the offset is committed in the
// caller's transaction.
PGTOPIC_FUNCTION(pgtopic_seek)
{
    require_args(fcinfo, {"topic", "group_name", "partition", "to_offset"});
    text *group_name = PG_GETARG_TEXT_PP(1);
    int32 partition = PG_GETARG_INT32(2);
    int64 to_offset = PG_GETARG_INT64(3);
    check_group_name(group_name);
    require_nonnegative(to_offset, "to_offset");
    Topic topic = lookup_topic(PG_GETARG_TEXT_PP(0), AccessShareLock);
    require_topic_right(topic, PG_GETARG_TEXT_PP(0), Right::Consume);
    check_partition(topic, partition);
    int64 high_watermark = partition_offsets(topic, partition).high_watermark;
    if (to_offset > high_watermark)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("offset " INT64_FORMAT " is beyond the end of partition %d", to_offset, partition),
                        errdetail("The partition's high watermark is " INT64_FORMAT ".", high_watermark),
                        errhint("Use pgtopic.seek_to_end() to skip everything.")));

    Membership *m = find_membership(topic.id, group_name);
    OwnedPartition *o = (m != nullptr && !m->stale) ? owned_partition(*m, partition) : nullptr;
    int32 group_id;
    if (o != nullptr) {
        touch(*m);
        group_id = m->group_id;
    } else {
        bool created = false;
        group_id = group_id_for(topic, group_name, &created);
        LOCKTAG tag = owner_tag(group_id, partition);
        if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL) {
            Membership probe{};
            probe.group_id = group_id;
            GroupView v = group_view(probe, topic.partitions);
            ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
                            errmsg("partition %d of topic \"%s\" is owned by another member of group \"%s\"",
                                   partition, text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(group_name)),
                            errdetail("The owner is the session with pid %d.", v.owner_of[partition]),
                            errhint("Call seek from the owning session, or make it leave the group first.")));
        }
    }

    Datum part = Int32GetDatum(partition), offset = Int64GetDatum(to_offset);
    store_offsets(group_id, &part, &offset, 1);
    if (o != nullptr) {
        o->position = to_offset;
        o->committed = to_offset;
        o->position_valid = true;
    }
    PG_RETURN_VOID();
}

// Registry rows of every backend, for the group_members and consumer_lag views.
PGTOPIC_FUNCTION(pgtopic_members)
{
    begin_materialized_result(fcinfo);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (int b = 0; b < MaxBackends; b++) {
        BackendMembers *bm = &registry[b];
        MemberEntry copy[MEMBERSHIPS_PER_BACKEND];
        SpinLockAcquire(&bm->mutex);
        int pid = bm->pid;
        memcpy(copy, bm->entries, sizeof copy);
        SpinLockRelease(&bm->mutex);
        for (const MemberEntry &e : copy) {
            if (e.group_id == 0 || e.database != MyDatabaseId)
                continue;
            Datum values[4] = {Int32GetDatum(pid), Int32GetDatum(e.group_id), TimestampTzGetDatum(e.joined_at),
                               TimestampTzGetDatum(e.last_poll)};
            bool nulls[4] = {false, false, false, false};
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        }
    }
    return Datum(0);
}
