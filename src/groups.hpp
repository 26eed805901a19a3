// Consumer groups' internal interfaces, shared by the group_*.cpp files (ARCHITECTURE.md,
// "Consumer groups"):
//
//   group_coordinator.cpp  the coordinator's fixed-size shared state: groups, members, partition
//                          assignments and positions; allocation, limits, reclamation, exit
//   group_assign.cpp       assignment and rebalance: fair shares, liveness, fencing idle members
//   group_positions.cpp    this backend's memberships, positions and commits, rollback to the
//                          start of a (sub)transaction, what the caller actually read
//   group_sql.cpp          the SQL entry points (consume, commit, seek, leave, the views)
#pragma once

#include "pgtopic.hpp"

namespace pgtopic {

constexpr int GROUP_NAME_MAX = 249;
constexpr int MEMBER_ID_MAX = 128;
constexpr int CLIENT_ID_MAX = 64;
constexpr int CLIENT_HOST_MAX = 64;
constexpr uint16 LOCK_SPACE_MEMBER = 0x7402;  // 29698 in pg_locks.objsubid: a member's anchor

// Settings (pgtopic.cpp).
extern int max_groups;            // pgtopic.max_groups
extern int max_members;           // pgtopic.max_members
extern int max_group_partitions;  // pgtopic.max_group_partitions
extern int session_timeout_ms;    // pgtopic.session_timeout

// ---- the coordinator's shared state (group_coordinator.cpp) ------------------------------
// Everything below is protected by coordinator_lock(); indexes into the arrays are "slots".

enum class MemberKind : uint8 {
    Session,  // the SQL session itself (no member_id): lives as long as the backend's anchor
    Lease,    // a SQL caller's member_id: lives while calls renew its lease
    Kafka,    // a Kafka client's member (reserved for the wire protocol)
};

struct PartitionSlot {
    int32 owner;      // member slot + 1; 0: nobody owns it
    bool releasing;   // given up by its owner: free when the owner's transaction commits
    bool valid;       // position and committed are known (else: load from catalog_offsets)
    int64 position;   // next offset to hand out
    int64 committed;  // the value in catalog_offsets as the owner last wrote or read it; -1: none
};

struct GroupSlot {
    bool in_use;
    Oid database;
    int32 topic_id;
    Oid topic_root;    // the topic's storage table: a topic dropped and made again (also by DROP
                       // EXTENSION, which starts topic ids again) is another group
    int32 group_id;    // pgtopic.catalog_groups.group_id; 0 while its first member looks it up
    bool row_missing;  // the transaction that inserted the group's row rolled back
    char name[GROUP_NAME_MAX + 1];
    uint64 generation;  // bumped by every change of the assignment
    int32 n_partitions;
    int32 base;  // first PartitionSlot of this group
    int32 first_member;
    int32 n_members;
};

struct MemberSlot {
    int32 group;    // group slot; -1: free
    uint32 serial;  // distinguishes successive users of the slot (fencing)
    MemberKind kind;
    int32 pid;      // Session: its backend; Lease: the backend of its last call
    int32 next;     // next member of the same group; -1: last
    int32 n_owned;
    uint64 generation;  // the group's generation when this member last saw its assignment
    char member_id[MEMBER_ID_MAX + 1];
    char client_id[CLIENT_ID_MAX + 1];
    char client_host[CLIENT_HOST_MAX + 1];
    TimestampTz joined_at;
    TimestampTz last_poll;
    TimestampTz lease_expiry;  // Lease and Kafka members: gone after this
};

struct MemberRef {
    int32 slot;  // -1: none
    uint32 serial;
};

LWLock *coordinator_lock();
GroupSlot *group_at(int32 slot);
MemberSlot *member_at(int32 slot);
PartitionSlot *partition_of(const GroupSlot &g, int32 partition);
// The member `ref` names, or nullptr if it left or was removed (fenced) meanwhile.
MemberSlot *live_member(MemberRef ref);
int32 group_slot_of(const MemberSlot *member);

// With the lock held exclusively. Finds or makes the group (53400 when pgtopic.max_groups or
// pgtopic.max_group_partitions is reached), then a member of `kind` in it (53400 at
// pgtopic.max_members). The group's partition table follows the topic's partition count.
MemberRef coordinator_add_member(const Topic &topic, int32 group_id, const char *name, MemberKind kind,
                                 const char *member_id);
// The group slot of (this database, topic, name), or -1.
int32 coordinator_find_group(const Topic &topic, const char *name);
// Every group of a dropped topic (its members lose everything at once). Lock not held.
void coordinator_forget_topic(Oid database, Oid topic_root);
// The lease member of that group with this member_id, or none.
MemberRef coordinator_find_lease(int32 group_slot, const char *member_id);
// With the lock held exclusively: removes a member; its partitions become free (positions
// unknown: the next owner reads the committed offsets). The group is freed with its last member.
void coordinator_remove_member(int32 member_slot);
// With the lock held exclusively: the group's partition table grows to `partitions`.
void coordinator_resize(int32 group_slot, int32 partitions);
void coordinator_remove_session_members(int32 pid);  // at backend exit
// Removes lease members whose lease expired (lock not held). Returns how many.
int coordinator_expire_leases();

LOCKTAG member_anchor_tag(int32 group_id, int32 member_slot);

// ---- assignment (group_assign.cpp) ----------------------------------------------------------
// Rebalances member `me` of its group (lock held exclusively): gives partitions above its fair
// share to `give` (released when the caller's transaction commits), takes free ones, and fences
// idle or dead members that hold partitions it needs. Returns how many it gave (into give[]).
int rebalance_member(MemberRef me, int32 *give);
// Dead or anchor-less session members that hold partitions of the group: removed (lock not held).
void remove_dead_members(int32 group_slot);

// ---- this backend's memberships and positions (group_positions.cpp) ------------------------
struct Membership {
    bool in_use;
    Oid database;
    int32 topic_id;
    Oid topic_root;
    int32 group_id;
    int32 group_slot;
    MemberRef member;
    char topic_name[TOPIC_NAME_MAX + 1];
    char group_name[GROUP_NAME_MAX + 1];
    char member_id[MEMBER_ID_MAX + 1];  // empty: the session is the member
    bool created_in_xact;                  // this transaction inserted the group row ...
    SubTransactionId created_in_subxact;  // ... in this subtransaction (moves up on subcommit)
    uint32 next_start;                     // round-robin start among owned partitions
};

void groups_positions_init();
// drop_topic: the topic's groups are removed from the coordinator when the transaction commits.
void groups_forget_topic_at_commit(Oid topic_root);
// The session's membership of the group (joined first, with its catalog row and anchor).
// member_id: a lease member, or nullptr for the session.
Membership &join_group(const Topic &topic, text *topic_name, text *group_name, const char *member_id);
// The existing membership, or nullptr.
Membership *find_membership(const Topic &topic, text *group_name, const char *member_id);
bool leave_dropped_topic(text *topic_name, text *group_name, const char *member_id);
// The membership, or 55000 "not a member" (for commit).
Membership &existing_membership(const Topic &topic, text *topic_name, text *group_name, const char *member_id);
void leave_group(Membership &m, bool commit_first);
// Remembers the member's positions for ROLLBACK (TO SAVEPOINT), once per subtransaction.
void save_for_rollback(const Membership &m);
// Writes the positions that moved since the catalog last saw them. explicit_commit: an error
// if the member was fenced; else (auto-commit) the fenced member's partitions are skipped.
void commit_positions(Membership &m, bool explicit_commit);
// Rebalances, then reads committed offsets of owned partitions whose position is unknown.
void assign_and_load(Membership &m, const Topic &topic);
// Reads up to max_messages from the owned partitions into rsinfo; registers the rows as a
// delivery whose positions advance by what the caller actually reads from `result` (the
// caller's tuplestore: rsinfo's, or one the rows are converted into, row for row).
int64 read_owned(Membership &m, const Topic &topic, int64 max_messages, ReturnSetInfo *rsinfo,
                 Tuplestorestate *result);
// True if an owned partition has a message at or after its position (or a position to load).
bool messages_available(Membership &m, const Topic &topic, TupleDesc desc);
// Deliveries of this membership still being read (a cursor): 55000.
void require_no_open_delivery(const Membership &m);
// seek from the owner: its position and committed offset become `to`.
bool seek_owned(Membership &m, int32 partition, int64 to);
void store_offsets(int32 group_id, Datum *parts, Datum *offsets, int n);
// The group's id in pgtopic.catalog_groups, inserting its row when there is none (created: this
// call inserted it) — unless may_create is false: then 0 when the group does not exist.
int32 group_id_for(const Topic &topic, text *group_name, bool *created, bool may_create = true);
void check_group_name(text *name);
// NULL or a valid member_id as a C string (22023 when empty, too long or with control chars).
const char *member_id_arg(FunctionCallInfo fcinfo, int argno);

}  // namespace pgtopic
