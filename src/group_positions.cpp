// This backend's memberships, positions and commits.
//
//  * A position (the next offset to hand out) lives in the coordinator's shared state with the
//    partition's owner, so a member_id member finds it from whichever backend serves its next
//    call. Committed offsets live in pgtopic.catalog_offsets, written in the caller's
//    transaction (auto-commit at the next consume: Kafka's rule, per member).
//  * Exact rollback: the first time a (sub)transaction touches a membership its positions are
//    saved here; ROLLBACK, ROLLBACK TO SAVEPOINT and a PL/pgSQL EXCEPTION block put them back.
//    Partitions a rebalance gave away stay the member's until the top transaction commits.
//    PREPARE TRANSACTION of a transaction that touched a group is refused (0A000).
//  * Only what the caller read counts: consume records which rows it put into its result
//    (a "delivery"); when the executor that ran it ends (ExecutorEnd), the rows it actually took
//    from the result (a LIMIT, a cursor closed early) decide how far each position moves.
#include "guard.hpp"
#include "groups.hpp"

extern "C" {
#include "executor/executor.h"
#include "nodes/nodeFuncs.h"
#include "nodes/execnodes.h"
#include "utils/tuplestore.h"
}

namespace pgtopic {
namespace {

constexpr int MEMBERSHIPS_PER_BACKEND = 64;

MemoryContext groups_context = nullptr;  // memberships' lifetime
MemoryContext xact_context = nullptr;    // saves, releases, deliveries: reset at transaction end
Membership memberships[MEMBERSHIPS_PER_BACKEND];
bool exit_callback_registered = false;

// ---- rollback state -----------------------------------------------------------------------

struct SavedPartition {
    int32 partition;
    bool valid;
    int64 position;
    int64 committed;
};

struct Save {
    SubTransactionId subid;
    int32 group_slot;
    MemberRef member;
    int n;
    SavedPartition *parts;
};

struct Release {  // a partition given away: free at COMMIT
    SubTransactionId subid;
    int32 group_slot;
    MemberRef member;
    int32 partition;
};

struct Delivery {
    bool open;
    SubTransactionId subid;
    const QueryDesc *query;  // the executor that ran consume; nullptr: applied at once
    Tuplestorestate *store;
    int32 group_slot;
    MemberRef member;
    int64 n_rows;
    int32 *row_part;  // per row of the result, in order
    int64 *row_offset;
    int n_parts;
    int32 *part;  // per partition read
    int64 *start;  // its position when the read began
    int64 *end;    // its position after a complete read
};

template <typename T>
struct List {
    int n = 0, cap = 0;
    T *items = nullptr;
    T &push()
    {
        if (n == cap) {
            int new_cap = Max(cap * 2, 8);
            T *grown = static_cast<T *>(MemoryContextAllocZero(xact_context, sizeof(T) * new_cap));
            if (items != nullptr)
                memcpy(grown, items, sizeof(T) * n);
            items = grown;
            cap = new_cap;
        }
        return items[n++];
    }
};

List<Save> saves;
List<Release> releases;
List<Delivery> deliveries;
List<Oid> dropped_topics;  // storage tables of topics this transaction dropped

// ExecutorRun nesting: the query whose run is in progress when consume is called.
constexpr int RUN_STACK_MAX = 256;
const QueryDesc *run_stack[RUN_STACK_MAX];
int run_depth = 0;
// Executors started and not ended yet (an open cursor's among them), while deliveries are open.
struct ActiveQuery {
    const QueryDesc *query;
    SubTransactionId subid;
};
List<ActiveQuery> active_queries;
ExecutorStart_hook_type prev_executor_start = nullptr;
ExecutorRun_hook_type prev_executor_run = nullptr;
ExecutorEnd_hook_type prev_executor_end = nullptr;

void reset_xact_state()
{
    saves = List<Save>{};
    releases = List<Release>{};
    deliveries = List<Delivery>{};
    active_queries = List<ActiveQuery>{};
    dropped_topics = List<Oid>{};
    if (xact_context != nullptr)
        MemoryContextReset(xact_context);
}

bool same_name(const Membership &m, const Topic &topic, text *group_name, const char *member_id)
{
    int len = VARSIZE_ANY_EXHDR(group_name);
    const char *mid = member_id != nullptr ? member_id : "";
    return m.in_use && m.database == MyDatabaseId && m.topic_id == topic.id && m.topic_root == topic.root_relid &&
           static_cast<int>(strlen(m.group_name)) == len && memcmp(m.group_name, VARDATA_ANY(group_name), len) == 0 &&
           strcmp(m.member_id, mid) == 0;
}

// Nothing here may fail (commit/abort callbacks): shared memory under the coordinator's lock
// and local memory only.
void restore_save(const Save &s)
{
    MemberSlot *me = live_member(s.member);
    if (me == nullptr || group_slot_of(me) != s.group_slot)
        return;
    GroupSlot *g = group_at(s.group_slot);
    for (int32 p = 0; p < g->n_partitions; p++) {
        PartitionSlot *ps = partition_of(*g, p);
        if (ps->owner != s.member.slot + 1)
            continue;
        bool found = false;
        for (int i = 0; i < s.n && !found; i++)
            if (s.parts[i].partition == p) {
                ps->valid = s.parts[i].valid;
                ps->position = s.parts[i].position;
                ps->committed = s.parts[i].committed;
                found = true;
            }
        if (!found)
            ps->valid = false;  // taken in the rolled-back part: read the catalog again
    }
}

void unrelease(const Release &r)
{
    MemberSlot *me = live_member(r.member);
    if (me == nullptr || group_slot_of(me) != r.group_slot)
        return;
    PartitionSlot *ps = partition_of(*group_at(r.group_slot), r.partition);
    if (ps->owner == r.member.slot + 1)
        ps->releasing = false;
}

void free_released(const Release &r)
{
    MemberSlot *me = live_member(r.member);
    if (me == nullptr || group_slot_of(me) != r.group_slot)
        return;
    GroupSlot *g = group_at(r.group_slot);
    PartitionSlot *ps = partition_of(*g, r.partition);
    if (ps->owner == r.member.slot + 1 && ps->releasing) {
        *ps = PartitionSlot{0, false, false, 0, -1};
        g->generation++;
    }
}

// A rolled-back group creation: the member of a group row that no longer exists leaves.
void forget_created(bool top, SubTransactionId subid)
{
    for (Membership &m : memberships)
        if (m.in_use && m.created_in_xact && (top || m.created_in_subxact == subid)) {
            MemberSlot *me = live_member(m.member);
            if (me != nullptr) {
                GroupSlot *g = group_at(group_slot_of(me));
                coordinator_remove_member(m.member.slot);
                if (g->in_use && g->group_id == m.group_id)
                    g->row_missing = true;  // its other members put the row back at their next call
            }
            if (m.member_id[0] == '\0') {
                LOCKTAG tag = member_anchor_tag(m.group_id, m.member.slot);
                if (LockHeldByMe(&tag, ExclusiveLock))
                    (void) LockRelease(&tag, ExclusiveLock, true);
            }
            m = Membership{};
        }
}

void xact_callback(XactEvent event, void *)
{
    if (event == XACT_EVENT_PRE_PREPARE) {
        bool touched = saves.n > 0 || releases.n > 0;
        for (const Membership &m : memberships)
            touched = touched || (m.in_use && m.created_in_xact);
        if (touched)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("cannot PREPARE a transaction that consumed, committed or sought in a pgtopic "
                                   "consumer group"),
                            errdetail("A group's positions and assignment cannot wait for COMMIT PREPARED."),
                            errhint("Consume and commit outside the two-phase transaction, or write what you "
                                    "consumed to a table and prepare that.")));
        return;
    }
    bool commit = event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT;
    bool abort = event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT;
    if (!commit && !abort)
        return;
    run_depth = 0;
    if (saves.n > 0 || releases.n > 0 || commit || abort) {
        bool any_created = false;
        for (const Membership &m : memberships)
            any_created = any_created || (m.in_use && m.created_in_xact);
        if (saves.n > 0 || releases.n > 0 || any_created) {
            LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
            if (abort) {
                for (int i = saves.n - 1; i >= 0; i--)
                    restore_save(saves.items[i]);
                for (int i = 0; i < releases.n; i++)
                    unrelease(releases.items[i]);
                forget_created(true, InvalidSubTransactionId);
            } else {
                for (int i = 0; i < releases.n; i++)
                    free_released(releases.items[i]);
            }
            LWLockRelease(coordinator_lock());
        }
    }
    for (Membership &m : memberships) {
        m.created_in_xact = false;
        m.created_in_subxact = InvalidSubTransactionId;
    }
    if (commit)
        for (int i = 0; i < dropped_topics.n; i++)
            coordinator_forget_topic(MyDatabaseId, dropped_topics.items[i]);
    reset_xact_state();
}

void subxact_callback(SubXactEvent event, SubTransactionId subid, SubTransactionId parent, void *)
{
    if (event == SUBXACT_EVENT_COMMIT_SUB) {
        for (int i = 0; i < saves.n; i++)
            if (saves.items[i].subid == subid) {
                // The parent's older save (if any) is the one to restore on its rollback.
                bool parent_has = false;
                for (int j = 0; j < saves.n; j++)
                    parent_has = parent_has || (saves.items[j].subid == parent &&
                                                saves.items[j].member.slot == saves.items[i].member.slot &&
                                                saves.items[j].member.serial == saves.items[i].member.serial);
                saves.items[i].subid = parent_has ? InvalidSubTransactionId : parent;
            }
        for (int i = 0; i < releases.n; i++)
            if (releases.items[i].subid == subid)
                releases.items[i].subid = parent;
        for (int i = 0; i < deliveries.n; i++)
            if (deliveries.items[i].subid == subid)
                deliveries.items[i].subid = parent;
        for (Membership &m : memberships)
            if (m.in_use && m.created_in_xact && m.created_in_subxact == subid)
                m.created_in_subxact = parent;
        return;
    }
    if (event != SUBXACT_EVENT_ABORT_SUB)
        return;
    // ExecutorRun frames of the aborted subtransaction are gone (their hook's PG_FINALLY ran);
    // its executors never reach ExecutorEnd.
    for (int i = 0; i < active_queries.n; i++)
        if (active_queries.items[i].subid == subid)
            active_queries.items[i].query = nullptr;
    for (int i = 0; i < deliveries.n; i++)
        if (deliveries.items[i].subid == subid)
            deliveries.items[i].open = false;  // never read: positions stay where they were
    bool any = false;
    for (int i = 0; i < saves.n; i++)
        any = any || saves.items[i].subid == subid;
    for (int i = 0; i < releases.n; i++)
        any = any || releases.items[i].subid == subid;
    for (const Membership &m : memberships)
        any = any || (m.in_use && m.created_in_xact && m.created_in_subxact == subid);
    if (!any)
        return;
    LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
    for (int i = saves.n - 1; i >= 0; i--)
        if (saves.items[i].subid == subid) {
            restore_save(saves.items[i]);
            saves.items[i].subid = InvalidSubTransactionId;  // spent
        }
    for (int i = 0; i < releases.n; i++)
        if (releases.items[i].subid == subid) {
            unrelease(releases.items[i]);
            releases.items[i].subid = InvalidSubTransactionId;
            releases.items[i].member.slot = -1;  // spent
        }
    forget_created(false, subid);
    LWLockRelease(coordinator_lock());
}

void exit_callback(int, Datum)
{
    coordinator_remove_session_members(MyProcPid);
}

// ---- what the caller read ------------------------------------------------------------------

// The number of rows still unread in a result tuplestore, without moving its reader: a copy of
// read pointer 0 (the executor's) is advanced to the end.
int64 unread_rows(Tuplestorestate *store)
{
    int ptr = tuplestore_alloc_read_pointer(store, 0);
    tuplestore_select_read_pointer(store, ptr);
    int64 n = 0;
    while (tuplestore_advance(store, true))
        n++;
    tuplestore_select_read_pointer(store, 0);
    return n;
}

// The function scan's per-function state (nodeFunctionscan.c keeps it private; PostgreSQL 15).
struct FunctionScanPerFuncStateCopy {
    SetExprState *setexpr;
    TupleDesc tupdesc;
    int colcount;
    Tuplestorestate *tstore;
    int64 rowcount;
    TupleTableSlot *func_slot;
};

struct StoreSearch {
    Tuplestorestate *store;
    bool found;
};

bool find_store(PlanState *ps, void *arg)
{
    auto *search = static_cast<StoreSearch *>(arg);
    if (ps == nullptr || search->found)
        return search->found;
    if (IsA(ps, FunctionScanState)) {
        auto *fs = reinterpret_cast<FunctionScanState *>(ps);
        auto *per = reinterpret_cast<FunctionScanPerFuncStateCopy *>(fs->funcstates);
        for (int i = 0; i < fs->nfuncs && per != nullptr; i++)
            if (per[i].tstore == search->store)
                search->found = true;
    } else if (IsA(ps, ProjectSetState)) {
        auto *pss = reinterpret_cast<ProjectSetState *>(ps);
        for (int i = 0; i < pss->nelems; i++) {
            Node *e = pss->elems[i];
            if (e != nullptr && IsA(e, SetExprState) &&
                reinterpret_cast<SetExprState *>(e)->funcResultStore == search->store)
                search->found = true;
        }
    }
    if (search->found)
        return true;
    return planstate_tree_walker(ps, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)(void)>(find_store)), arg);
}

bool store_in_plan(const QueryDesc *query, Tuplestorestate *store)
{
    if (query == nullptr || query->planstate == nullptr || store == nullptr)
        return false;
    StoreSearch search{store, false};
    (void) find_store(query->planstate, &search);
    return search.found;
}

// Moves the positions by the first `read` rows of the delivery.
void apply_delivery(Delivery &d, int64 read)
{
    d.open = false;
    LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
    MemberSlot *me = live_member(d.member);
    if (me != nullptr && group_slot_of(me) == d.group_slot) {
        GroupSlot *g = group_at(d.group_slot);
        for (int k = 0; k < d.n_parts; k++) {
            int32 p = d.part[k];
            int64 last_read = -1, rows = 0, rows_read = 0;
            for (int64 r = 0; r < d.n_rows; r++)
                if (d.row_part[r] == p) {
                    rows++;
                    if (r < read) {
                        rows_read++;
                        last_read = d.row_offset[r];
                    }
                }
            int64 to = rows_read == rows ? d.end[k] : rows_read > 0 ? last_read + 1 : d.start[k];
            PartitionSlot *ps = partition_of(*g, p);
            if (ps->owner == d.member.slot + 1 && ps->valid)
                ps->position = to;
        }
    }
    LWLockRelease(coordinator_lock());
}

void executor_start(QueryDesc *query, int eflags)
{
    if (prev_executor_start)
        prev_executor_start(query, eflags);
    else
        standard_ExecutorStart(query, eflags);
    active_queries.push() = ActiveQuery{query, GetCurrentSubTransactionId()};
}

void executor_run(QueryDesc *query, ScanDirection direction, uint64 count, bool execute_once)
{
    int depth = run_depth;
    if (depth < RUN_STACK_MAX)
        run_stack[depth] = query;
    run_depth = depth + 1;
    PG_TRY();
    {
        if (prev_executor_run)
            prev_executor_run(query, direction, count, execute_once);
        else
            standard_ExecutorRun(query, direction, count, execute_once);
    }
    PG_FINALLY();
    {
        run_depth = depth;
    }
    PG_END_TRY();
}

void executor_end(QueryDesc *query)
{
    for (int i = active_queries.n - 1; i >= 0; i--)
        if (active_queries.items[i].query == query || active_queries.items[i].query == nullptr)
            active_queries.items[i] = active_queries.items[--active_queries.n];
    for (int i = 0; i < deliveries.n; i++) {
        Delivery &d = deliveries.items[i];
        if (!d.open)
            continue;
        if (store_in_plan(query, d.store))
            apply_delivery(d, d.n_rows - unread_rows(d.store));
        else if (d.query == query)
            apply_delivery(d, d.n_rows);  // its result went somewhere we cannot see: all of it
    }
    if (prev_executor_end)
        prev_executor_end(query);
    else
        standard_ExecutorEnd(query);
}

const QueryDesc *running_query()
{
    return run_depth > 0 && run_depth <= RUN_STACK_MAX ? run_stack[run_depth - 1] : nullptr;
}

// An open delivery whose result is no longer in any running plan (a rescan freed it) counts as
// read; one still being read (a cursor) is an error for a new consume of the same member.
void settle_deliveries(const Membership &m, bool error_if_open)
{
    for (int i = 0; i < deliveries.n; i++) {
        Delivery &d = deliveries.items[i];
        if (!d.open || d.member.slot != m.member.slot || d.member.serial != m.member.serial)
            continue;
        bool live = false;
        for (int k = 0; k < active_queries.n && !live; k++)
            live = store_in_plan(active_queries.items[k].query, d.store);
        if (!live) {
            apply_delivery(d, d.n_rows);
            continue;
        }
        if (error_if_open)
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("the result of an earlier consume of group \"%s\" is still being read",
                                   m.group_name),
                            errdetail("Its positions move by what is read from it once it is closed."),
                            errhint("Close the cursor (or finish the query) that reads it first.")));
        apply_delivery(d, d.n_rows - unread_rows(d.store));
    }
}

// ---- catalog ---------------------------------------------------------------------------------

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

[[noreturn]] void raise_fenced(const char *group_name, const char *topic_name)
{
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("this member is no longer in group \"%s\" on topic \"%s\"", group_name, topic_name),
                    errdetail("It was fenced (silent for longer than pgtopic.max_poll_interval or its lease "
                              "expired) or its anchor lock was released; its partitions went to other members, "
                              "which continue from the last committed offsets."),
                    errhint("Call pgtopic.consume() again to rejoin the group.")));
}

// With the coordinator's lock held: the member, or the lock released and the fenced error.
MemberSlot *require_live(const Membership &m)
{
    MemberSlot *me = live_member(m.member);
    if (me != nullptr && group_slot_of(me) == m.group_slot)
        return me;
    LWLockRelease(coordinator_lock());
    raise_fenced(m.group_name, m.topic_name);
}

}  // namespace

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

const char *member_id_arg(FunctionCallInfo fcinfo, int argno)
{
    if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
        return nullptr;
    text *t = PG_GETARG_TEXT_PP(argno);
    int len = VARSIZE_ANY_EXHDR(t);
    if (len < 1 || len > MEMBER_ID_MAX)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("member_id must be 1 to %d bytes long", MEMBER_ID_MAX)));
    const char *p = VARDATA_ANY(t);
    for (int i = 0; i < len; i++)
        if (static_cast<unsigned char>(p[i]) < 0x20)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("member_id must not contain control characters")));
    return text_to_cstring(t);
}

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

int32 group_id_for(const Topic &topic, text *group_name, bool *created, bool may_create)
{
    Oid argtypes[2] = {TEXTOID, INT4OID};
    Datum values[2] = {PointerGetDatum(group_name), Int32GetDatum(topic.id)};
    InternalScope scope = internal_begin();
    // A committed row first, with a fresh snapshot (no wait, no insert).
    SPIPlanPtr plan = SPI_prepare("SELECT group_id FROM pgtopic.catalog_groups WHERE group_name = $1 AND topic_id = $2",
                                  2, argtypes);
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    int rc = SPI_execute_snapshot(plan, values, nullptr, snapshot, InvalidSnapshot, true, false, 1);
    UnregisterSnapshot(snapshot);
    bool isnull = false;
    int32 id = 0;
    *created = false;
    if (rc == SPI_OK_SELECT && SPI_processed == 1) {
        id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    } else if (!may_create) {
        id = 0;
    } else {
        rc = SPI_execute_with_args(
            "INSERT INTO pgtopic.catalog_groups (group_name, topic_id) VALUES ($1, $2) "
            "ON CONFLICT (topic_id, group_name) DO NOTHING RETURNING group_id",
            2, argtypes, values, nullptr, false, 1);
        if (rc != SPI_OK_INSERT_RETURNING)
            ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not register the consumer group")));
        *created = SPI_processed == 1;
        if (*created) {
            id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        } else {
            snapshot = RegisterSnapshot(GetLatestSnapshot());
            rc = SPI_execute_snapshot(plan, values, nullptr, snapshot, InvalidSnapshot, true, false, 1);
            UnregisterSnapshot(snapshot);
            if (rc != SPI_OK_SELECT || SPI_processed != 1)
                ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not find the consumer group")));
            id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        }
    }
    internal_end(scope);
    return id;
}

void groups_forget_topic_at_commit(Oid topic_root)
{
    dropped_topics.push() = topic_root;
}

// leave() of a topic that was dropped: the session's memberships of it go (true if any).
bool leave_dropped_topic(text *topic_name, text *group_name, const char *member_id)
{
    bool any = false;
    const char *mid = member_id != nullptr ? member_id : "";
    char topic[TOPIC_NAME_MAX + 1], group[GROUP_NAME_MAX + 1];
    text_to_cstring_buffer(topic_name, topic, sizeof topic);
    text_to_cstring_buffer(group_name, group, sizeof group);
    for (Membership &m : memberships)
        if (m.in_use && m.database == MyDatabaseId && strcmp(m.topic_name, topic) == 0 &&
            strcmp(m.group_name, group) == 0 && strcmp(m.member_id, mid) == 0 &&
            get_rel_name(m.topic_root) == nullptr) {
            leave_group(m, false);
            any = true;
        }
    return any;
}

void groups_positions_init()
{
    xact_context = AllocSetContextCreate(TopMemoryContext, "pgtopic group transaction", ALLOCSET_SMALL_SIZES);
    prev_executor_start = ExecutorStart_hook;
    ExecutorStart_hook = executor_start;
    prev_executor_run = ExecutorRun_hook;
    ExecutorRun_hook = executor_run;
    prev_executor_end = ExecutorEnd_hook;
    ExecutorEnd_hook = executor_end;
    RegisterXactCallback(xact_callback, nullptr);
    RegisterSubXactCallback(subxact_callback, nullptr);
}

Membership *find_membership(const Topic &topic, text *group_name, const char *member_id)
{
    for (Membership &m : memberships)
        if (same_name(m, topic, group_name, member_id))
            return &m;
    return nullptr;
}

// Local entries that hold nothing any more: members removed meanwhile, topics dropped.
void drop_stale_memberships()
{
    for (Membership &m : memberships) {
        if (!m.in_use || m.created_in_xact)
            continue;
        bool gone = get_rel_name(m.topic_root) == nullptr;
        LWLockAcquire(coordinator_lock(), LW_SHARED);
        MemberSlot *me = live_member(m.member);
        gone = gone || me == nullptr || group_slot_of(me) != m.group_slot;
        LWLockRelease(coordinator_lock());
        if (gone)
            leave_group(m, false);
    }
}

// The first member of a group new to the coordinator finds (or inserts) its catalog row; on an
// error it leaves again, so the joiners waiting for the id do not wait for ever.
int32 first_member_lookup(const Topic &topic, text *group_name, bool *created, MemberRef ref, int32 gs)
{
    int32 group_id = 0;
    PG_TRY();
    {
        group_id = group_id_for(topic, group_name, created);
    }
    PG_CATCH();
    {
        LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
        if (live_member(ref) != nullptr)
            coordinator_remove_member(ref.slot);  // frees the group if nobody else is in it
        LWLockRelease(coordinator_lock());
        PG_RE_THROW();
    }
    PG_END_TRY();
    LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
    if (live_member(ref) != nullptr)
        group_at(gs)->group_id = group_id;
    LWLockRelease(coordinator_lock());
    return group_id;
}

// The transaction that created the group's row rolled back while other members were in the
// group: a member puts the row back (same id; in its own transaction, whose rollback marks it
// missing again).
void restore_group_row(Membership &m, const Topic &topic)
{
    LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
    GroupSlot *g = group_at(m.group_slot);
    bool missing = g->in_use && g->group_id == m.group_id && g->row_missing;
    if (missing)
        g->row_missing = false;
    LWLockRelease(coordinator_lock());
    if (!missing)
        return;
    PG_TRY();
    {
        Oid argtypes[3] = {INT4OID, TEXTOID, INT4OID};
        Datum values[3] = {Int32GetDatum(m.group_id), CStringGetTextDatum(m.group_name), Int32GetDatum(topic.id)};
        InternalScope scope = internal_begin();
        int rc = SPI_execute_with_args("INSERT INTO pgtopic.catalog_groups (group_id, group_name, topic_id) "
                                       "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                                       3, argtypes, values, nullptr, false, 0);
        if (rc != SPI_OK_INSERT)
            ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not register the consumer group")));
        if (SPI_processed == 1) {
            m.created_in_xact = true;
            m.created_in_subxact = GetCurrentSubTransactionId();
        }
        internal_end(scope);
    }
    PG_CATCH();
    {
        LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
        if (g->in_use && g->group_id == m.group_id)
            g->row_missing = true;
        LWLockRelease(coordinator_lock());
        PG_RE_THROW();
    }
    PG_END_TRY();
}

Membership &join_group(const Topic &topic, text *topic_name, text *group_name, const char *member_id)
{
    if (groups_context == nullptr) {
        groups_context = AllocSetContextCreate(TopMemoryContext, "pgtopic groups", ALLOCSET_SMALL_SIZES);
    }
    if (!exit_callback_registered) {
        before_shmem_exit(exit_callback, 0);
        exit_callback_registered = true;
    }
    if (MyBackendId == InvalidBackendId)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("pgtopic consumer groups are not available in this kind of process")));

    Membership *m = find_membership(topic, group_name, member_id);
    if (m != nullptr) {
        LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
        MemberSlot *me = live_member(m->member);
        bool ok = me != nullptr && group_slot_of(me) == m->group_slot;
        if (!ok && member_id != nullptr) {
            // Another backend may have made the lease member again: find it by member_id.
            int32 gs = coordinator_find_group(topic, m->group_name);
            MemberRef ref = gs >= 0 ? coordinator_find_lease(gs, member_id) : MemberRef{-1, 0};
            if (ref.slot >= 0 && group_at(gs)->group_id == m->group_id) {
                m->group_slot = gs;
                m->member = ref;
                me = member_at(ref.slot);
                ok = true;
            }
        }
        if (ok) {
            TimestampTz now = GetCurrentTimestamp();
            me->pid = MyProcPid;
            me->last_poll = now;
            if (me->kind != MemberKind::Session)
                me->lease_expiry = TimestampTzPlusMilliseconds(now, session_timeout_ms);
            if (group_at(m->group_slot)->n_partitions < topic.partitions)
                coordinator_resize(m->group_slot, topic.partitions);
        }
        LWLockRelease(coordinator_lock());
        if (ok) {
            if (member_id == nullptr) {
                // pg_advisory_unlock_all() also drops pgtopic's session locks: take the anchor again.
                LOCKTAG tag = member_anchor_tag(m->group_id, m->member.slot);
                if (!LockHeldByMe(&tag, ExclusiveLock))
                    (void) LockAcquire(&tag, ExclusiveLock, true, false);
            }
            restore_group_row(*m, topic);
            return *m;
        }
        leave_group(*m, false);  // fenced: join again, from the committed offsets
        m = nullptr;
    }

    Membership *slot = nullptr;
    for (int attempt = 0; attempt < 2 && slot == nullptr; attempt++) {
        for (Membership &candidate : memberships)
            if (!candidate.in_use) {
                slot = &candidate;
                break;
            }
        if (slot == nullptr && attempt == 0) {
            drop_stale_memberships();
            // A lease member's entry is only a cache (its state is in shared memory): evictable.
            for (Membership &candidate : memberships)
                if (slot == nullptr && candidate.in_use && candidate.member_id[0] != '\0' &&
                    !candidate.created_in_xact) {
                    candidate = Membership{};
                    slot = &candidate;
                }
        }
    }
    if (slot == nullptr)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("a session may be a member of at most %d consumer groups", MEMBERSHIPS_PER_BACKEND),
                        errhint("Call pgtopic.leave() for groups this session no longer consumes.")));

    char name[GROUP_NAME_MAX + 1];
    text_to_cstring_buffer(group_name, name, sizeof name);
    bool created = false;
    MemberRef ref{-1, 0};
    int32 gs = -1, group_id = 0;
    // The group's id from the coordinator when it has members: joining never reads or writes
    // the catalog then, so it never waits for another member's open transaction (which may
    // still be creating the group's row). A new group's first member looks the row up (or
    // inserts it) while the coordinator shows the group with id 0; others wait for that.
    for (int spins = 0;; spins++) {
        LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
        gs = coordinator_find_group(topic, name);
        if (gs >= 0 && group_at(gs)->group_id == 0) {
            LWLockRelease(coordinator_lock());
            CHECK_FOR_INTERRUPTS();
            pg_usleep(Min(spins + 1, 10) * 1000L);
            continue;
        }
        group_id = gs >= 0 ? group_at(gs)->group_id : 0;
        if (member_id != nullptr && gs >= 0)
            ref = coordinator_find_lease(gs, member_id);
        if (ref.slot < 0)
            ref = coordinator_add_member(topic, group_id, name,
                                         member_id != nullptr ? MemberKind::Lease : MemberKind::Session, member_id);
        MemberSlot *me = member_at(ref.slot);
        TimestampTz now = GetCurrentTimestamp();
        me->pid = MyProcPid;
        me->last_poll = now;
        if (me->kind != MemberKind::Session)
            me->lease_expiry = TimestampTzPlusMilliseconds(now, session_timeout_ms);
        gs = group_slot_of(me);
        LWLockRelease(coordinator_lock());
        break;
    }
    if (group_id == 0)
        group_id = first_member_lookup(topic, group_name, &created, ref, gs);
    *slot = Membership{};
    slot->in_use = true;
    slot->database = MyDatabaseId;
    slot->topic_id = topic.id;
    slot->topic_root = topic.root_relid;
    slot->group_id = group_id;
    slot->group_slot = gs;
    slot->member = ref;
    text_to_cstring_buffer(topic_name, slot->topic_name, sizeof slot->topic_name);
    strlcpy(slot->group_name, name, sizeof slot->group_name);
    if (member_id != nullptr)
        strlcpy(slot->member_id, member_id, sizeof slot->member_id);
    slot->created_in_xact = created;
    slot->created_in_subxact = created ? GetCurrentSubTransactionId() : InvalidSubTransactionId;
    if (member_id == nullptr) {
        LOCKTAG tag = member_anchor_tag(group_id, ref.slot);
        (void) LockAcquire(&tag, ExclusiveLock, true, false);
    }
    restore_group_row(*slot, topic);
    return *slot;
}

Membership &existing_membership(const Topic &topic, text *topic_name, text *group_name, const char *member_id)
{
    Membership *m = find_membership(topic, group_name, member_id);
    char name[GROUP_NAME_MAX + 1];
    text_to_cstring_buffer(group_name, name, sizeof name);
    LWLockAcquire(coordinator_lock(), LW_SHARED);
    bool exists;
    if (member_id != nullptr) {
        // A lease member may have consumed through another backend (a connection pooler).
        int32 gs = coordinator_find_group(topic, name);
        exists = gs >= 0 && coordinator_find_lease(gs, member_id).slot >= 0;
    } else {
        MemberSlot *me = m != nullptr ? live_member(m->member) : nullptr;
        exists = me != nullptr && group_slot_of(me) == m->group_slot;
    }
    LWLockRelease(coordinator_lock());
    if (exists)
        return join_group(topic, topic_name, group_name, member_id);
    if (m != nullptr) {
        leave_group(*m, false);
        raise_fenced(name, text_to_cstring(topic_name));
    }
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("%s is not a member of group \"%s\" on topic \"%s\"",
                           member_id != nullptr ? "this member_id" : "this session", name,
                           text_to_cstring(topic_name)),
                    member_id != nullptr
                        ? errhint("Call pgtopic.consume() with this member_id first: commit applies to what "
                                  "this member consumed.")
                        : errhint("Call pgtopic.consume() first: commit applies to what this session consumed.")));
}

void leave_group(Membership &m, bool commit_first)
{
    if (commit_first) {
        settle_deliveries(m, false);
        save_for_rollback(m);
        commit_positions(m, false);
    }
    LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
    MemberSlot *me = live_member(m.member);
    if (me != nullptr && group_slot_of(me) == m.group_slot)
        coordinator_remove_member(m.member.slot);
    LWLockRelease(coordinator_lock());
    if (m.member_id[0] == '\0') {
        LOCKTAG tag = member_anchor_tag(m.group_id, m.member.slot);
        if (LockHeldByMe(&tag, ExclusiveLock))
            (void) LockRelease(&tag, ExclusiveLock, true);
    }
    m = Membership{};
}

void save_for_rollback(const Membership &m)
{
    SubTransactionId subid = GetCurrentSubTransactionId();
    for (int i = 0; i < saves.n; i++)
        if (saves.items[i].subid == subid && saves.items[i].member.slot == m.member.slot &&
            saves.items[i].member.serial == m.member.serial)
            return;
    LWLockAcquire(coordinator_lock(), LW_SHARED);
    MemberSlot *me = live_member(m.member);
    if (me == nullptr || group_slot_of(me) != m.group_slot) {
        LWLockRelease(coordinator_lock());
        return;
    }
    GroupSlot *g = group_at(m.group_slot);
    Save s{subid, m.group_slot, m.member, 0, nullptr};
    s.parts = static_cast<SavedPartition *>(MemoryContextAlloc(xact_context, sizeof(SavedPartition) * Max(g->n_partitions, 1)));
    for (int32 p = 0; p < g->n_partitions; p++) {
        const PartitionSlot *ps = partition_of(*g, p);
        if (ps->owner == m.member.slot + 1)
            s.parts[s.n++] = SavedPartition{p, ps->valid, ps->position, ps->committed};
    }
    LWLockRelease(coordinator_lock());
    saves.push() = s;
}

void commit_positions(Membership &m, bool explicit_commit)
{
    int n = 0;
    Datum *parts = nullptr, *offsets = nullptr;
    LWLockAcquire(coordinator_lock(), LW_SHARED);
    MemberSlot *me = live_member(m.member);
    if (me == nullptr || group_slot_of(me) != m.group_slot) {
        if (explicit_commit)
            (void) require_live(m);  // releases the lock and raises
        LWLockRelease(coordinator_lock());
        return;  // auto-commit of a fenced member: its next owner redelivers (at least once)
    }
    GroupSlot *g = group_at(m.group_slot);
    parts = static_cast<Datum *>(palloc(sizeof(Datum) * Max(g->n_partitions, 1)));
    offsets = static_cast<Datum *>(palloc(sizeof(Datum) * Max(g->n_partitions, 1)));
    for (int32 p = 0; p < g->n_partitions; p++) {
        const PartitionSlot *ps = partition_of(*g, p);
        if (ps->owner == m.member.slot + 1 && ps->valid && ps->position != ps->committed) {
            parts[n] = Int32GetDatum(p);
            offsets[n] = Int64GetDatum(ps->position);
            n++;
        }
    }
    LWLockRelease(coordinator_lock());
    if (n == 0)
        return;
    store_offsets(m.group_id, parts, offsets, n);
    LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
    me = live_member(m.member);
    if (me != nullptr && group_slot_of(me) == m.group_slot) {
        g = group_at(m.group_slot);
        for (int i = 0; i < n; i++) {
            PartitionSlot *ps = partition_of(*g, DatumGetInt32(parts[i]));
            if (ps->owner == m.member.slot + 1)
                ps->committed = DatumGetInt64(offsets[i]);
        }
    }
    LWLockRelease(coordinator_lock());
}

int assign_partitions(Membership &m, const Topic &topic)
{
    int32 *give = static_cast<int32 *>(palloc(sizeof(int32) * Max(topic.partitions, 1)));
    int given = 0;
    for (int round = 0; round < 2; round++) {
        LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
        (void) require_live(m);
        GroupSlot *g = group_at(m.group_slot);
        if (g->n_partitions < topic.partitions)
            coordinator_resize(m.group_slot, topic.partitions);
        int n_give = rebalance_member(m.member, give);
        int owned = member_at(m.member.slot)->n_owned;
        int members = g->n_members;
        int32 P = g->n_partitions;
        LWLockRelease(coordinator_lock());
        for (int i = 0; i < n_give; i++)
            releases.push() = Release{GetCurrentSubTransactionId(), m.group_slot, m.member, give[i]};
        given += n_give;
        // Short of a fair share with nothing free: members that died or dropped their anchor.
        if (round == 0 && owned < P / Max(members, 1))
            remove_dead_members(m.group_slot);
        else
            break;
    }
    return given;
}

void assign_and_load(Membership &m, const Topic &topic)
{
    (void) assign_partitions(m, topic);

    // Committed offsets of owned partitions whose position is unknown. The upsert takes the
    // rows' locks: if the previous owner's transaction wrote an offset and has not ended, this
    // waits for it and then sees its final value (exactly once for work done in the database).
    int n = 0;
    Datum *parts = static_cast<Datum *>(palloc(sizeof(Datum) * Max(topic.partitions, 1)));
    LWLockAcquire(coordinator_lock(), LW_SHARED);
    GroupSlot *g = group_at(m.group_slot);
    for (int32 p = 0; p < g->n_partitions; p++) {
        const PartitionSlot *ps = partition_of(*g, p);
        if (ps->owner == m.member.slot + 1 && !ps->valid && !ps->releasing)
            parts[n++] = Int32GetDatum(p);
    }
    LWLockRelease(coordinator_lock());
    if (n == 0)
        return;

    Oid argtypes[2] = {INT4OID, INT4ARRAYOID};
    Datum values[2] = {Int32GetDatum(m.group_id), PointerGetDatum(construct_array(parts, n, INT4OID, 4, true, TYPALIGN_INT))};
    int32 *loaded_part = static_cast<int32 *>(palloc(sizeof(int32) * n));
    int64 *loaded_pos = static_cast<int64 *>(palloc(sizeof(int64) * n));
    int64 *loaded_committed = static_cast<int64 *>(palloc(sizeof(int64) * n));
    int loaded = 0;
    InternalScope scope = internal_begin();
    int rc = SPI_execute_with_args(
        "INSERT INTO pgtopic.catalog_offsets AS c (group_id, \"partition\") SELECT $1, unnest($2::int[]) "
        "ON CONFLICT (group_id, \"partition\") DO UPDATE SET committed_offset = c.committed_offset "
        "RETURNING \"partition\", committed_offset",
        2, argtypes, values, nullptr, false, 0);
    if (rc != SPI_OK_INSERT_RETURNING)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not read the group's offsets")));
    for (uint64 r = 0; r < SPI_processed && loaded < n; r++) {
        bool isnull = false;
        int32 p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
        Datum d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull);
        loaded_part[loaded] = p;
        loaded_committed[loaded] = isnull ? -1 : DatumGetInt64(d);
        loaded_pos[loaded] = isnull ? -1 : DatumGetInt64(d);
        loaded++;
    }
    internal_end(scope);
    // No committed offset: pgtopic.auto_offset_reset decides (Kafka's auto.offset.reset).
    for (int i = 0; i < loaded; i++)
        if (loaded_pos[i] < 0) {
            int64 lso = partition_offsets(topic, loaded_part[i]).last_stable_offset;
            loaded_pos[i] = auto_offset_reset == RESET_LATEST ? lso : log_start_offset(topic, loaded_part[i], lso);
        }
    LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
    MemberSlot *me = live_member(m.member);
    if (me != nullptr && group_slot_of(me) == m.group_slot) {
        g = group_at(m.group_slot);
        for (int i = 0; i < loaded; i++) {
            PartitionSlot *ps = partition_of(*g, loaded_part[i]);
            if (ps->owner == m.member.slot + 1 && !ps->valid) {
                ps->valid = true;
                ps->position = loaded_pos[i];
                ps->committed = loaded_committed[i];
            }
        }
    }
    LWLockRelease(coordinator_lock());
}

namespace {

struct OwnedCopy {
    int32 partition;
    int64 position;
};

// The member's readable partitions (owned, not being given away, position known).
int owned_copy(const Membership &m, OwnedCopy *out)
{
    int n = 0;
    LWLockAcquire(coordinator_lock(), LW_SHARED);
    MemberSlot *me = live_member(m.member);
    if (me != nullptr && group_slot_of(me) == m.group_slot) {
        GroupSlot *g = group_at(m.group_slot);
        for (int32 p = 0; p < g->n_partitions; p++) {
            const PartitionSlot *ps = partition_of(*g, p);
            if (ps->owner == m.member.slot + 1 && ps->valid && !ps->releasing)
                out[n++] = OwnedCopy{p, ps->position};
        }
    }
    LWLockRelease(coordinator_lock());
    return n;
}

// Retention dropped the segment the position points into: Kafka's auto.offset.reset applies
// (earliest: the log start offset; latest: the last stable offset).
int64 reset_if_below_log_start(int64 position, int32 partition, const Topic &topic, int64 lso)
{
    if (OidIsValid(segment_relid(topic, partition, position / topic.segment_size)))
        return position;
    int64 first = log_start_offset(topic, partition, lso);
    if (position >= first)
        return position;  // a hole above the log start (a dropped segment in the middle): read on
    return auto_offset_reset == RESET_LATEST ? lso : first;
}

}  // namespace

// Where an owned partition whose position is not loaded yet would start, read without locks
// (the real load, with its handoff wait, comes once the call goes on).
int64 peek_start(const Membership &m, const Topic &topic, int32 partition)
{
    Oid argtypes[2] = {INT4OID, INT4OID};
    Datum values[2] = {Int32GetDatum(m.group_id), Int32GetDatum(partition)};
    InternalScope scope = internal_begin();
    SPIPlanPtr plan = SPI_prepare("SELECT committed_offset FROM pgtopic.catalog_offsets WHERE group_id = $1 "
                                  "AND \"partition\" = $2",
                                  2, argtypes);
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    int rc = SPI_execute_snapshot(plan, values, nullptr, snapshot, InvalidSnapshot, true, false, 1);
    UnregisterSnapshot(snapshot);
    int64 start = -1;
    if (rc == SPI_OK_SELECT && SPI_processed == 1) {
        bool isnull = false;
        Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        if (!isnull)
            start = DatumGetInt64(d);
    }
    internal_end(scope);
    if (start < 0) {
        int64 lso = partition_offsets(topic, partition).last_stable_offset;
        start = auto_offset_reset == RESET_LATEST ? lso : log_start_offset(topic, partition, lso);
    }
    return start;
}

bool messages_available(Membership &m, const Topic &topic, TupleDesc desc)
{
    // A rebalance first (shared memory only): partitions this member takes count (their
    // positions are read below), and one it must give away ends the wait (the next member
    // gets it when this call's transaction commits).
    if (assign_partitions(m, topic) > 0)
        return true;
    // Copy under the lock; the LSOs are read after it (partition_offsets may read the storage).
    int32 *parts = static_cast<int32 *>(palloc(sizeof(int32) * Max(topic.partitions, 1)));
    int64 *positions = static_cast<int64 *>(palloc(sizeof(int64) * Max(topic.partitions, 1)));
    bool *loaded = static_cast<bool *>(palloc(sizeof(bool) * Max(topic.partitions, 1)));
    int n = 0;
    bool any = false;
    LWLockAcquire(coordinator_lock(), LW_SHARED);
    MemberSlot *me = live_member(m.member);
    if (me == nullptr || group_slot_of(me) != m.group_slot) {
        any = true;  // fenced: the call joins again
    } else {
        GroupSlot *g = group_at(m.group_slot);
        for (int32 p = 0; p < g->n_partitions; p++) {
            const PartitionSlot *ps = partition_of(*g, p);
            if (ps->owner != m.member.slot + 1 || ps->releasing)
                continue;
            parts[n] = p;
            loaded[n] = ps->valid;
            positions[n++] = ps->position;
        }
    }
    LWLockRelease(coordinator_lock());
    for (int i = 0; i < n && !any; i++) {
        int64 lso = partition_offsets(topic, parts[i]).last_stable_offset;
        int64 from = loaded[i] ? positions[i] : peek_start(m, topic, parts[i]);
        if (from >= lso)
            continue;
        int64 next = from;
        any = peek_partition(topic, parts[i], from, lso, desc, &next);
        if (!any && loaded[i] && next > positions[i]) {
            // Only rolled-back offsets there (gaps forever): the position moves over them.
            LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
            MemberSlot *me2 = live_member(m.member);
            if (me2 != nullptr && group_slot_of(me2) == m.group_slot) {
                PartitionSlot *ps = partition_of(*group_at(m.group_slot), parts[i]);
                if (ps->owner == m.member.slot + 1 && ps->valid && ps->position == positions[i])
                    ps->position = next;
            }
            LWLockRelease(coordinator_lock());
        }
    }
    return any;
}

void require_no_open_delivery(const Membership &m)
{
    settle_deliveries(m, true);
}

int64 read_owned(Membership &m, const Topic &topic, int64 max_messages, ReturnSetInfo *rsinfo, Tuplestorestate *result)
{
    OwnedCopy *owned = static_cast<OwnedCopy *>(palloc(sizeof(OwnedCopy) * Max(topic.partitions, 1)));
    int n = owned_copy(m, owned);
    Delivery d{};
    d.open = true;
    d.subid = GetCurrentSubTransactionId();
    d.query = running_query();
    d.store = result;
    d.group_slot = m.group_slot;
    d.member = m.member;
    d.row_part = static_cast<int32 *>(MemoryContextAlloc(xact_context, sizeof(int32) * Max(max_messages, 1)));
    d.row_offset = static_cast<int64 *>(MemoryContextAlloc(xact_context, sizeof(int64) * Max(max_messages, 1)));
    d.part = static_cast<int32 *>(MemoryContextAlloc(xact_context, sizeof(int32) * Max(n, 1)));
    d.start = static_cast<int64 *>(MemoryContextAlloc(xact_context, sizeof(int64) * Max(n, 1)));
    d.end = static_cast<int64 *>(MemoryContextAlloc(xact_context, sizeof(int64) * Max(n, 1)));
    if (n == 0 || max_messages == 0)
        return 0;

    // LSOs first, then one snapshot for all partitions.
    int64 *lso = static_cast<int64 *>(palloc(sizeof(int64) * n));
    for (int i = 0; i < n; i++)
        lso[i] = partition_offsets(topic, owned[i].partition).last_stable_offset;
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());

    // Fairly: each partition gets an equal share of max_messages first, then what is left goes
    // round-robin.
    uint32 start = m.next_start++;
    int64 share = Max(max_messages / n, 1);
    int64 total = 0;
    int *index_of = static_cast<int *>(palloc(sizeof(int) * n));  // owned[k] -> d.part index
    for (int k = 0; k < n; k++)
        index_of[k] = -1;
    log_rows(d.row_offset);
    for (int pass = 0; pass < 2 && total < max_messages; pass++) {
        for (int j = 0; j < n && total < max_messages; j++) {
            int k = (start + j) % n;
            OwnedCopy &o = owned[k];
            if (o.position >= lso[k])
                continue;
            if (index_of[k] < 0) {
                int64 from = reset_if_below_log_start(o.position, o.partition, topic, lso[k]);
                index_of[k] = d.n_parts++;
                d.part[index_of[k]] = o.partition;
                d.start[index_of[k]] = from;
                o.position = from;
            }
            if (poll_budget_spent())
                break;
            int64 want = pass == 0 ? Min(share, max_messages - total) : max_messages - total;
            int64 before = rows_logged();
            ReadResult r = read_partition(topic, o.partition, o.position, want, lso[k], snapshot, rsinfo);
            for (int64 i = before; i < before + r.count; i++)
                d.row_part[i] = o.partition;
            o.position = r.next_offset;
            d.end[index_of[k]] = r.next_offset;
            total += r.count;
        }
    }
    log_rows(nullptr);
    UnregisterSnapshot(snapshot);
    d.n_rows = total;
    if (d.n_parts == 0)
        return 0;
    Delivery &stored = deliveries.push();
    stored = d;
    if (stored.query == nullptr)
        apply_delivery(stored, stored.n_rows);
    return total;
}

bool seek_owned(Membership &m, int32 partition, int64 to)
{
    LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
    MemberSlot *me = live_member(m.member);
    bool owned = false;
    if (me != nullptr && group_slot_of(me) == m.group_slot && partition < group_at(m.group_slot)->n_partitions) {
        PartitionSlot *ps = partition_of(*group_at(m.group_slot), partition);
        if (ps->owner == m.member.slot + 1) {
            ps->valid = true;
            ps->position = to;
            ps->committed = to;
            owned = true;
        }
    }
    LWLockRelease(coordinator_lock());
    return owned;
}

void groups_init_backend_callbacks()
{
    groups_positions_init();
}

}  // namespace pgtopic
