// The group coordinator's shared state: one fixed-size region sized by pgtopic.max_groups,
// pgtopic.max_members and pgtopic.max_group_partitions, protected by one LWLock.
//
//   groups[max_groups]                 a group per (database, topic, name) that has members
//   members[max_members]               a member: the SQL session, a member_id lease (PgBouncer),
//                                      or (later) a Kafka client; linked per group
//   partitions[max_group_partitions]   per group, one slot per topic partition: its owner and
//                                      the owner's position; each group's slots are contiguous,
//                                      packed (a freed group's range is closed up at once)
//
// A group exists while it has members and is freed with its last member; its positions are a
// cache of catalog_offsets plus what its members were handed out and not committed yet. A full
// table is a 53400 error for the caller that wanted one more entry, with a hint naming the
// setting: nobody else notices. A session member also holds one advisory lock, its anchor
// (pg_locks: objsubid 29698, classid = group_id, objid = member slot), so pg_locks shows who is
// in which group; at backend exit the session's members are removed (before_shmem_exit), and
// after a crash the postmaster initialises this memory again.
#include "guard.hpp"
#include "groups.hpp"

namespace pgtopic {

int max_groups = 1024;
int max_members = 4096;
int max_group_partitions = 131072;
int session_timeout_ms = 45000;

namespace {

struct Shared {
    LWLock *lock;
    int32 partitions_used;  // partitions[0 .. partitions_used) belong to groups
    uint32 next_serial;
};

Shared *shared = nullptr;
GroupSlot *groups = nullptr;
MemberSlot *members = nullptr;
PartitionSlot *partitions = nullptr;

Size shared_size()
{
    Size size = MAXALIGN(sizeof(Shared));
    size = add_size(size, MAXALIGN(mul_size(static_cast<Size>(max_groups), sizeof(GroupSlot))));
    size = add_size(size, MAXALIGN(mul_size(static_cast<Size>(max_members), sizeof(MemberSlot))));
    size = add_size(size, mul_size(static_cast<Size>(max_group_partitions), sizeof(PartitionSlot)));
    return size;
}

[[noreturn]] void limit_reached(const char *what, const char *setting, int value)
{
    LWLockRelease(shared->lock);
    ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                    errmsg("too many consumer group %s", what),
                    errdetail("The group coordinator's shared memory holds at most %d.", value),
                    errhint("Raise %s (needs a restart), or let idle members leave (pgtopic.leave).", setting)));
}

// Claims `n` partition slots at the end of the packed range; -1 if they do not fit.
int32 claim_partitions(int32 n)
{
    if (n > max_group_partitions - shared->partitions_used)
        return -1;
    int32 base = shared->partitions_used;
    shared->partitions_used += n;
    for (int32 i = 0; i < n; i++)
        partitions[base + i] = PartitionSlot{0, false, false, 0, -1};
    return base;
}

// Closes up the range [base, base + n): later groups' ranges move down.
void release_partitions(int32 base, int32 n)
{
    if (n == 0)
        return;
    int32 tail = shared->partitions_used - (base + n);
    if (tail > 0)
        memmove(&partitions[base], &partitions[base + n], sizeof(PartitionSlot) * tail);
    shared->partitions_used -= n;
    for (int i = 0; i < max_groups; i++)
        if (groups[i].in_use && groups[i].base > base)
            groups[i].base -= n;
}

}  // namespace

LWLock *coordinator_lock()
{
    return shared->lock;
}

GroupSlot *group_at(int32 slot)
{
    return &groups[slot];
}

MemberSlot *member_at(int32 slot)
{
    return &members[slot];
}

PartitionSlot *partition_of(const GroupSlot &g, int32 partition)
{
    return &partitions[g.base + partition];
}

MemberSlot *live_member(MemberRef ref)
{
    if (ref.slot < 0 || ref.slot >= max_members)
        return nullptr;
    MemberSlot *m = &members[ref.slot];
    return m->group >= 0 && m->serial == ref.serial ? m : nullptr;
}

int32 group_slot_of(const MemberSlot *member)
{
    return member->group;
}

LOCKTAG member_anchor_tag(int32 group_id, int32 member_slot)
{
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(group_id), static_cast<uint32>(member_slot),
                         LOCK_SPACE_MEMBER);
    return tag;
}

int32 coordinator_find_group(const Topic &topic, const char *name)
{
    for (int i = 0; i < max_groups; i++) {
        const GroupSlot &g = groups[i];
        if (g.in_use && g.database == MyDatabaseId && g.topic_id == topic.id && g.topic_root == topic.root_relid &&
            strcmp(g.name, name) == 0)
            return i;
    }
    return -1;
}

void coordinator_forget_topic(Oid database, Oid topic_root)
{
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    for (int i = 0; i < max_groups; i++)
        while (groups[i].in_use && groups[i].database == database && groups[i].topic_root == topic_root &&
               groups[i].first_member >= 0)
            coordinator_remove_member(groups[i].first_member);
    LWLockRelease(shared->lock);
}

MemberRef coordinator_find_lease(int32 group_slot, const char *member_id)
{
    for (int32 s = groups[group_slot].first_member; s >= 0; s = members[s].next)
        if (members[s].kind != MemberKind::Session && strcmp(members[s].member_id, member_id) == 0)
            return MemberRef{s, members[s].serial};
    return MemberRef{-1, 0};
}

void coordinator_resize(int32 group_slot, int32 n)
{
    GroupSlot &g = groups[group_slot];
    if (n <= g.n_partitions)
        return;  // partitions are never removed from a topic
    int32 extra = n - g.n_partitions;
    if (extra > max_group_partitions - shared->partitions_used)
        limit_reached("partition assignments", "pgtopic.max_group_partitions", max_group_partitions);
    // Make room right after this group's range (later ranges move up).
    int32 end = g.base + g.n_partitions;
    int32 tail = shared->partitions_used - end;
    if (tail > 0)
        memmove(&partitions[end + extra], &partitions[end], sizeof(PartitionSlot) * tail);
    for (int32 i = 0; i < extra; i++)
        partitions[end + i] = PartitionSlot{0, false, false, 0, -1};
    shared->partitions_used += extra;
    for (int i = 0; i < max_groups; i++)
        if (i != group_slot && groups[i].in_use && groups[i].base >= end)
            groups[i].base += extra;
    g.n_partitions = n;
    g.generation++;
}

MemberRef coordinator_add_member(const Topic &topic, int32 group_id, const char *name, MemberKind kind,
                                 const char *member_id)
{
    const int32 n_partitions = topic.partitions;
    int32 gs = coordinator_find_group(topic, name);
    if (gs >= 0 && group_id != 0 && groups[gs].group_id != 0 && groups[gs].group_id != group_id) {
        // The group row was made again (dropped with its topic's rows, a rolled-back creation):
        // the old slot's members belong to a group that is gone.
        while (groups[gs].in_use && groups[gs].first_member >= 0)
            coordinator_remove_member(groups[gs].first_member);
        gs = -1;
    }
    int32 ms = -1;
    for (int i = 0; i < max_members && ms < 0; i++)
        if (members[i].group < 0)
            ms = i;
    if (ms < 0)
        limit_reached("members", "pgtopic.max_members", max_members);
    if (gs < 0) {
        for (int i = 0; i < max_groups && gs < 0; i++)
            if (!groups[i].in_use)
                gs = i;
        if (gs < 0)
            limit_reached("groups", "pgtopic.max_groups", max_groups);
        int32 base = claim_partitions(n_partitions);
        if (base < 0)
            limit_reached("partition assignments", "pgtopic.max_group_partitions", max_group_partitions);
        GroupSlot &g = groups[gs];
        g = GroupSlot{};
        g.in_use = true;
        g.database = MyDatabaseId;
        g.topic_id = topic.id;
        g.topic_root = topic.root_relid;
        g.group_id = group_id;
        strlcpy(g.name, name, sizeof g.name);
        g.generation = 1;
        g.n_partitions = n_partitions;
        g.base = base;
        g.first_member = -1;
        g.n_members = 0;
    } else if (groups[gs].n_partitions < n_partitions) {
        coordinator_resize(gs, n_partitions);
    }
    GroupSlot &g = groups[gs];
    MemberSlot &m = members[ms];
    uint32 serial = ++shared->next_serial;
    TimestampTz now = GetCurrentTimestamp();
    m = MemberSlot{};
    m.group = gs;
    m.serial = serial;
    m.kind = kind;
    m.pid = MyProcPid;
    m.next = g.first_member;
    m.n_owned = 0;
    m.generation = g.generation;
    if (member_id != nullptr)
        strlcpy(m.member_id, member_id, sizeof m.member_id);
    const char *app = application_name != nullptr ? application_name : "";
    strlcpy(m.client_id, app, sizeof m.client_id);
    m.joined_at = now;
    m.last_poll = now;
    m.lease_expiry = kind == MemberKind::Session ? 0 : TimestampTzPlusMilliseconds(now, session_timeout_ms);
    g.first_member = ms;
    g.n_members++;
    g.generation++;
    return MemberRef{ms, serial};
}

void coordinator_remove_member(int32 ms)
{
    MemberSlot &m = members[ms];
    if (m.group < 0)
        return;
    GroupSlot &g = groups[m.group];
    for (int32 p = 0; p < g.n_partitions; p++) {
        PartitionSlot &ps = partitions[g.base + p];
        if (ps.owner == ms + 1)
            ps = PartitionSlot{0, false, false, 0, -1};
    }
    for (int32 *link = &g.first_member; *link >= 0; link = &members[*link].next)
        if (*link == ms) {
            *link = m.next;
            break;
        }
    g.n_members--;
    g.generation++;
    m.group = -1;
    m.n_owned = 0;
    if (g.n_members == 0) {
        release_partitions(g.base, g.n_partitions);
        g.in_use = false;
    }
}

void coordinator_remove_session_members(int32 pid)
{
    if (shared == nullptr)
        return;
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    for (int i = 0; i < max_members; i++)
        if (members[i].group >= 0 && members[i].kind == MemberKind::Session && members[i].pid == pid)
            coordinator_remove_member(i);
    LWLockRelease(shared->lock);
}

int coordinator_expire_leases()
{
    if (shared == nullptr)
        return 0;
    TimestampTz now = GetCurrentTimestamp();
    int expired = 0;
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    for (int i = 0; i < max_members; i++)
        if (members[i].group >= 0 && members[i].kind != MemberKind::Session && members[i].lease_expiry < now) {
            coordinator_remove_member(i);
            expired++;
        }
    LWLockRelease(shared->lock);
    return expired;
}

void members_shmem_request()
{
    RequestAddinShmemSpace(shared_size());
    RequestNamedLWLockTranche("pgtopic groups", 1);
}

void members_shmem_startup()
{
    bool found = false;
    char *base = static_cast<char *>(ShmemInitStruct("pgtopic group coordinator", shared_size(), &found));
    shared = reinterpret_cast<Shared *>(base);
    base += MAXALIGN(sizeof(Shared));
    groups = reinterpret_cast<GroupSlot *>(base);
    base += MAXALIGN(mul_size(static_cast<Size>(max_groups), sizeof(GroupSlot)));
    members = reinterpret_cast<MemberSlot *>(base);
    base += MAXALIGN(mul_size(static_cast<Size>(max_members), sizeof(MemberSlot)));
    partitions = reinterpret_cast<PartitionSlot *>(base);
    if (!found) {
        memset(shared, 0, shared_size());
        shared->lock = &(GetNamedLWLockTranche("pgtopic groups"))->lock;
        for (int i = 0; i < max_members; i++)
            members[i].group = -1;
    }
}

// The maintenance worker's pass: members whose lease expired are removed (their partitions go
// to the members that poll). Idle session members are never terminated: another member that
// needs their partitions fences them (group_assign.cpp).
int expire_idle_members()
{
    return coordinator_expire_leases();
}

}  // namespace pgtopic

using namespace pgtopic;

// This database's members, for the group_members and consumer_lag views: one row per member
// with the partitions it owns.
PGTOPIC_FUNCTION(pgtopic_members)
{
    begin_materialized_result(fcinfo);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    int cap = 64;
    Datum *parts = static_cast<Datum *>(palloc(sizeof(Datum) * cap));
    LWLockAcquire(shared->lock, LW_SHARED);
    for (int i = 0; i < max_members; i++) {
        const MemberSlot &m = members[i];
        if (m.group < 0 || groups[m.group].database != MyDatabaseId)
            continue;
        const GroupSlot &g = groups[m.group];
        int n = 0;
        for (int32 p = 0; p < g.n_partitions; p++)
            if (partitions[g.base + p].owner == i + 1) {
                if (n == cap) {
                    cap *= 2;
                    parts = static_cast<Datum *>(repalloc(parts, sizeof(Datum) * cap));
                }
                parts[n++] = Int32GetDatum(p);
            }
        const char *kind = m.kind == MemberKind::Session ? "session" : m.kind == MemberKind::Lease ? "lease" : "kafka";
        Datum values[10] = {Int32GetDatum(m.pid),
                            Int32GetDatum(g.group_id),
                            TimestampTzGetDatum(m.joined_at),
                            TimestampTzGetDatum(m.last_poll),
                            CStringGetTextDatum(m.member_id),
                            CStringGetTextDatum(kind),
                            PointerGetDatum(construct_array(parts, n, INT4OID, 4, true, TYPALIGN_INT)),
                            Int64GetDatum(static_cast<int64>(g.generation)),
                            TimestampTzGetDatum(m.lease_expiry),
                            CStringGetTextDatum(m.client_id)};
        bool nulls[10] = {false, false, false, false, m.member_id[0] == '\0', false, false, false,
                          m.kind == MemberKind::Session, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    LWLockRelease(shared->lock);
    return Datum(0);
}
