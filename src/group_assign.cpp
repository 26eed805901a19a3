// Assignment and rebalance. Each member rebalances itself when it polls, in the coordinator's
// shared state (no lock-manager scan):
//
//  * P partitions over M members, ordered by (partitions owned, descending; slot): the first
//    P mod M get ceil(P/M), the others floor(P/M). Sticky: nobody gives up a partition it may keep.
//  * Above its share a member marks its highest partitions "releasing": still its own (nobody
//    takes them) until its transaction commits, when they become free; a ROLLBACK keeps them
//    (their offset commit was rolled back too). Below its share it takes free partitions,
//    starting at a member-specific point to spread contention.
//  * Still short: members that hold partitions but are gone are removed: a session member whose
//    backend exited or no longer holds its anchor, a lease whose session_timeout passed, a
//    member silent for pgtopic.max_poll_interval (fenced: its next commit is rejected, its next
//    consume joins again; its session and its other groups are untouched).
//
// Every change of a group's assignment bumps its generation.
#include "guard.hpp"
#include "groups.hpp"

extern "C" {
#include "storage/procarray.h"
}

namespace pgtopic {

namespace {

int owned_count(const GroupSlot &g, int32 member_slot)
{
    int n = 0;
    for (int32 p = 0; p < g.n_partitions; p++) {
        const PartitionSlot *ps = partition_of(g, p);
        if (ps->owner == member_slot + 1 && !ps->releasing)
            n++;
    }
    return n;
}

bool idle(const MemberSlot &m, TimestampTz now)
{
    if (m.kind != MemberKind::Session)
        return m.lease_expiry < now;
    return max_poll_interval_ms > 0 && TimestampDifferenceExceeds(m.last_poll, now, max_poll_interval_ms);
}

}  // namespace

int rebalance_member(MemberRef ref, int32 *give)
{
    MemberSlot *me = live_member(ref);
    if (me == nullptr)
        return 0;
    GroupSlot &g = *group_at(me->group);
    const int32 P = g.n_partitions;
    int my_owned = owned_count(g, ref.slot);
    int M = 0, rank = 0;
    TimestampTz now = GetCurrentTimestamp();
    for (int32 s = g.first_member; s >= 0; s = member_at(s)->next) {
        if (s != ref.slot && idle(*member_at(s), now))
            continue;  // silent members get no share: their partitions go to those that poll
        M++;
        if (s == ref.slot)
            continue;
        int owned = owned_count(g, s);
        if (owned > my_owned || (owned == my_owned && s < ref.slot))
            rank++;
    }
    M = Max(M, 1);
    int quota = P / M + (rank < P % M ? 1 : 0);
    int n_give = 0;
    while (my_owned > quota) {
        int32 highest = -1;
        for (int32 p = 0; p < P; p++) {
            PartitionSlot *ps = partition_of(g, p);
            if (ps->owner == ref.slot + 1 && !ps->releasing)
                highest = p;
        }
        partition_of(g, highest)->releasing = true;
        give[n_give++] = highest;
        my_owned--;
        g.generation++;
    }
    if (my_owned < quota) {
        int start = (rank * P) / M;
        for (int k = 0; k < P && my_owned < quota; k++) {
            PartitionSlot *ps = partition_of(g, (start + k) % P);
            if (ps->owner != 0)
                continue;
            *ps = PartitionSlot{ref.slot + 1, false, false, 0, -1};
            my_owned++;
            g.generation++;
        }
        // Still short: members silent for too long lose everything they hold (fenced).
        for (int32 s = g.first_member; s >= 0 && my_owned < quota;) {
            int32 next = member_at(s)->next;
            if (s != ref.slot && idle(*member_at(s), now) && owned_count(g, s) > 0) {
                if (member_at(s)->kind == MemberKind::Session)
                    ereport(LOG, (errmsg("pgtopic: member %d of group \"%s\" fenced: no poll for more than %d ms",
                                         member_at(s)->pid, g.name, max_poll_interval_ms)));
                coordinator_remove_member(s);
                for (int k = 0; k < P && my_owned < quota; k++) {
                    PartitionSlot *ps = partition_of(g, (start + k) % P);
                    if (ps->owner != 0)
                        continue;
                    *ps = PartitionSlot{ref.slot + 1, false, false, 0, -1};
                    my_owned++;
                }
            }
            s = next;
        }
    }
    me->n_owned = my_owned;
    me->generation = g.generation;
    return n_give;
}

// Session members of the group that own partitions and whose backend is gone or no longer holds
// the anchor (pg_advisory_unlock_all): removed. Probes each anchor with a conditional lock
// request, outside the coordinator's lock; only called when a member is short of its share.
void remove_dead_members(int32 group_slot)
{
    struct Candidate {
        int32 slot;
        uint32 serial;
        int32 pid;
        int32 group_id;
    };
    int n = 0;
    Candidate *c = static_cast<Candidate *>(palloc(sizeof(Candidate) * Max(max_members, 1)));
    LWLockAcquire(coordinator_lock(), LW_SHARED);
    GroupSlot *g = group_at(group_slot);
    if (g->in_use)
        for (int32 s = g->first_member; s >= 0; s = member_at(s)->next) {
            const MemberSlot *m = member_at(s);
            if (m->kind == MemberKind::Session && m->pid != MyProcPid && owned_count(*g, s) > 0)
                c[n++] = Candidate{s, m->serial, m->pid, g->group_id};
        }
    LWLockRelease(coordinator_lock());
    int dead = 0;
    for (int i = 0; i < n; i++) {
        bool gone = BackendPidGetProc(c[i].pid) == nullptr;
        if (!gone) {
            LOCKTAG tag = member_anchor_tag(c[i].group_id, c[i].slot);
            if (LockAcquire(&tag, ShareLock, false, true) != LOCKACQUIRE_NOT_AVAIL) {
                (void) LockRelease(&tag, ShareLock, false);
                gone = true;
            }
        }
        if (gone)
            c[dead++] = c[i];
    }
    if (dead == 0)
        return;
    LWLockAcquire(coordinator_lock(), LW_EXCLUSIVE);
    for (int i = 0; i < dead; i++)
        if (live_member(MemberRef{c[i].slot, c[i].serial}) != nullptr)
            coordinator_remove_member(c[i].slot);
    LWLockRelease(coordinator_lock());
}

}  // namespace pgtopic
