// The consumer groups' SQL entry points: consume (and its text/JSON forms), commit, leave, seek.
#include "guard.hpp"
#include "groups.hpp"

extern "C" {
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/jsonb.h"
}

namespace pgtopic {
namespace {

bool topic_exists(text *topic_name)
{
    Oid argtypes[1] = {TEXTOID};
    Datum values[1] = {PointerGetDatum(topic_name)};
    InternalScope scope = internal_begin();
    int rc = SPI_execute_with_args("SELECT 1 FROM pgtopic.catalog_topics WHERE topic = $1", 1, argtypes, values,
                                   nullptr, true, 1);
    bool exists = rc == SPI_OK_SELECT && SPI_processed == 1;
    internal_end(scope);
    return exists;
}


// consume, consume_text and consume_json: (topic, group_name, max_messages, wait_ms, member_id).
Datum consume(FunctionCallInfo fcinfo, ValueAs as)
{
    require_args(fcinfo, {"topic", "group_name", "max_messages", "wait_ms"});
    text *topic_name = PG_GETARG_TEXT_PP(0);
    text *group_name = PG_GETARG_TEXT_PP(1);
    int32 max_messages = PG_GETARG_INT32(2);
    int32 wait_ms = PG_GETARG_INT32(3);
    check_group_name(group_name);
    const char *member_id = member_id_arg(fcinfo, 4);
    require_nonnegative(max_messages, "max_messages");
    require_nonnegative(wait_ms, "wait_ms");
    refuse_during_recovery("consume from a group");  // a group commits offsets

    Topic topic = lookup_topic(topic_name, AccessShareLock);
    require_topic_right(topic, topic_name, Right::Consume);
    begin_poll(max_messages);
    Membership *m = &join_group(topic, topic_name, group_name, member_id);
    require_no_open_delivery(*m);

    // Long poll, before this call writes anything: asleep, it holds no row lock and no lock on
    // the topic (DDL and fetch do not wait for it). Every producer transaction on the topic
    // broadcasts its condition variable when it ends; a sleep lasts at most a second, after
    // which the topic is looked up again (alter_topic's new partitions, a drop).
    begin_materialized_result(fcinfo);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    // The stored row shape: the result's own for consume, a separate one for the converting forms.
    TupleDesc stored_desc = stored_row_desc_for(as, rsinfo->setDesc);
    long_poll(
        topic, wait_ms, [&] { return messages_available(*m, topic, stored_desc); },
        [&] {
            topic = lookup_topic(topic_name, AccessShareLock);
            m = &join_group(topic, topic_name, group_name, member_id);
        });

    save_for_rollback(*m);
    commit_positions(*m, false);  // Kafka's auto-commit: what this member's previous call handed out
    assign_and_load(*m, topic);
    save_for_rollback(*m);  // partitions just taken, with their loaded positions

    if (as == ValueAs::Bytes) {
        (void) read_owned(*m, topic, max_messages, rsinfo, rsinfo->setResult);
        return Datum(0);
    }
    ReturnSetInfo stored = *rsinfo;
    stored.setDesc = stored_desc;
    stored.setResult = tuplestore_begin_heap(false, false, work_mem);
    (void) read_owned(*m, topic, max_messages, &stored, rsinfo->setResult);
    emit_converted(rsinfo, stored.setResult, stored_desc, as);
    return Datum(0);
}

}  // namespace
}  // namespace pgtopic

using namespace pgtopic;

PGTOPIC_FUNCTION(pgtopic_consume)
{
    return consume(fcinfo, ValueAs::Bytes);
}

PGTOPIC_FUNCTION(pgtopic_consume_text)
{
    return consume(fcinfo, ValueAs::Text);
}

PGTOPIC_FUNCTION(pgtopic_consume_json)
{
    return consume(fcinfo, ValueAs::Json);
}

PGTOPIC_FUNCTION(pgtopic_consume_records)
{
    return consume(fcinfo, ValueAs::Bytes);  // the result's shape: records (fetch.cpp)
}

PGTOPIC_FUNCTION(pgtopic_commit)
{
    require_args(fcinfo, {"topic", "group_name"});
    refuse_during_recovery("commit a group's offsets");
    text *topic_name = PG_GETARG_TEXT_PP(0);
    text *group_name = PG_GETARG_TEXT_PP(1);
    check_group_name(group_name);
    const char *member_id = member_id_arg(fcinfo, 2);
    Topic topic = lookup_topic(topic_name, AccessShareLock);
    require_topic_right(topic, topic_name, Right::Consume);
    Membership &m = existing_membership(topic, topic_name, group_name, member_id);
    save_for_rollback(m);
    commit_positions(m, true);
    PG_RETURN_VOID();
}

PGTOPIC_FUNCTION(pgtopic_leave)
{
    require_args(fcinfo, {"topic", "group_name"});
    refuse_during_recovery("leave a group");
    text *topic_name = PG_GETARG_TEXT_PP(0);
    text *group_name = PG_GETARG_TEXT_PP(1);
    check_group_name(group_name);
    const char *member_id = member_id_arg(fcinfo, 2);
    // Memberships of a dropped topic of that name go first (nothing to commit any more); if the
    // name has no topic now, that is the answer (no 42704 for a topic the member was in).
    if (leave_dropped_topic(topic_name, group_name, member_id) && !topic_exists(topic_name))
        PG_RETURN_BOOL(true);
    Topic topic = lookup_topic(topic_name, AccessShareLock);
    require_topic_right(topic, topic_name, Right::Consume);
    Membership *m = find_membership(topic, group_name, member_id);
    if (m == nullptr && member_id != nullptr) {
        // A lease member that consumed through another backend.
        char name[GROUP_NAME_MAX + 1];
        text_to_cstring_buffer(group_name, name, sizeof name);
        LWLockAcquire(coordinator_lock(), LW_SHARED);
        int32 gs = coordinator_find_group(topic, name);
        bool exists = gs >= 0 && coordinator_find_lease(gs, member_id).slot >= 0;
        LWLockRelease(coordinator_lock());
        if (exists)
            m = &join_group(topic, topic_name, group_name, member_id);
    }
    if (m == nullptr)
        PG_RETURN_BOOL(false);
    leave_group(*m, true);
    PG_RETURN_BOOL(true);
}

namespace pgtopic {
namespace {

// Moves the group's position on one partition to to_offset: from the owning member it moves its
// position; from elsewhere it needs the partition to be unowned. Either way the offset is
// committed in the caller's transaction (a member that takes the partition meanwhile waits for
// that row, then reads the sought offset). A group that does not exist is an error unless
// create_group (then its row is made, as consume would).
void seek_partition(const Topic &topic, text *topic_name, text *group_name, const char *member_id, int32 partition,
                    int64 to_offset, bool create_group)
{
    int64 high_watermark = partition_offsets(topic, partition).high_watermark;
    if (to_offset > high_watermark)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("offset " INT64_FORMAT " is beyond the end of partition %d", to_offset, partition),
                        errdetail("The partition's high watermark is " INT64_FORMAT ".", high_watermark),
                        errhint("Use pgtopic.seek_to_end() to skip everything.")));

    Membership *m = find_membership(topic, group_name, member_id);
    int32 group_id;
    bool owner = false;
    if (m != nullptr) {
        save_for_rollback(*m);
        owner = seek_owned(*m, partition, to_offset);
        group_id = m->group_id;
    }
    if (!owner) {
        char name[GROUP_NAME_MAX + 1];
        text_to_cstring_buffer(group_name, name, sizeof name);
        // The coordinator's id when the group has members (no wait for an uncommitted row).
        group_id = 0;
        LWLockAcquire(coordinator_lock(), LW_SHARED);
        int32 known = coordinator_find_group(topic, name);
        if (known >= 0)
            group_id = group_at(known)->group_id;
        LWLockRelease(coordinator_lock());
        bool created = false;
        if (group_id == 0)
            group_id = group_id_for(topic, group_name, &created, create_group);
        if (group_id == 0)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                            errmsg("consumer group \"%s\" of topic \"%s\" does not exist", name,
                                   text_to_cstring(topic_name)),
                            errhint("Check the group's name; to create the group at this position (as Kafka's offset "
                                    "reset of a new group does), pass create_group => true.")));
        int32 owner_pid = 0;
        const char *owner_member = "";
        LWLockAcquire(coordinator_lock(), LW_SHARED);
        int32 gs = coordinator_find_group(topic, name);
        if (gs >= 0 && group_at(gs)->group_id == group_id && partition < group_at(gs)->n_partitions) {
            int32 o = partition_of(*group_at(gs), partition)->owner;
            if (o > 0) {
                owner_pid = member_at(o - 1)->pid;
                owner_member = pstrdup(member_at(o - 1)->member_id);
            }
        }
        LWLockRelease(coordinator_lock());
        if (owner_pid != 0)
            ereport(ERROR, (errcode(ERRCODE_OBJECT_IN_USE),
                            errmsg("partition %d of topic \"%s\" is owned by another member of group \"%s\"",
                                   partition, text_to_cstring(topic_name), text_to_cstring(group_name)),
                            owner_member[0] != '\0'
                                ? errdetail("The owner is member_id \"%s\".", owner_member)
                                : errdetail("The owner is the session with pid %d.", owner_pid),
                            errhint("Call seek from the owning member, or make it leave the group first.")));
    }
    Datum part = Int32GetDatum(partition), offset = Int64GetDatum(to_offset);
    store_offsets(group_id, &part, &offset, 1);
}

enum class SeekTarget { Earliest, Latest, Time };

// seek_to_beginning / seek_to_end / seek_to_time (Kafka's seekToBeginning / seekToEnd /
// offsetsForTimes) for one partition or all (NULL): each partition through seek_partition.
Datum seek_to(FunctionCallInfo fcinfo, SeekTarget target)
{
    require_args(fcinfo, {"topic", "group_name"});
    int argno = 2;
    TimestampTz ts = 0;
    if (target == SeekTarget::Time) {
        if (PG_ARGISNULL(2))
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("ts must not be NULL")));
        ts = PG_GETARG_TIMESTAMPTZ(2);
        argno = 3;
    }
    bool all = PG_ARGISNULL(argno);
    int32 only = all ? 0 : PG_GETARG_INT32(argno);
    bool create_group = !PG_ARGISNULL(argno + 1) && PG_GETARG_BOOL(argno + 1);
    refuse_during_recovery("seek in a group");
    text *topic_name = PG_GETARG_TEXT_PP(0);
    text *group_name = PG_GETARG_TEXT_PP(1);
    check_group_name(group_name);
    Topic topic = lookup_topic(topic_name, AccessShareLock);
    require_topic_right(topic, topic_name, Right::Consume);
    if (!all)
        check_partition(topic, only);
    for (int32 p = all ? 0 : only; p < (all ? topic.partitions : only + 1); p++) {
        int64 lso = partition_offsets(topic, p).last_stable_offset;
        int64 to = target == SeekTarget::Earliest ? log_start_offset(topic, p, lso)
                   : target == SeekTarget::Latest ? lso
                                                  : offset_for_time(topic, p, ts);
        seek_partition(topic, topic_name, group_name, nullptr, p, to, create_group);
    }
    PG_RETURN_VOID();
}

}  // namespace
}  // namespace pgtopic

// seek: the next consume of this group on that partition starts at to_offset.
PGTOPIC_FUNCTION(pgtopic_seek)
{
    require_args(fcinfo, {"topic", "group_name", "partition", "to_offset"});
    refuse_during_recovery("seek in a group");
    text *topic_name = PG_GETARG_TEXT_PP(0);
    text *group_name = PG_GETARG_TEXT_PP(1);
    int32 partition = PG_GETARG_INT32(2);
    int64 to_offset = PG_GETARG_INT64(3);
    check_group_name(group_name);
    const char *member_id = member_id_arg(fcinfo, 4);
    bool create_group = PG_NARGS() > 5 && !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);
    require_nonnegative(to_offset, "to_offset");
    Topic topic = lookup_topic(topic_name, AccessShareLock);
    require_topic_right(topic, topic_name, Right::Consume);
    check_partition(topic, partition);
    seek_partition(topic, topic_name, group_name, member_id, partition, to_offset, create_group);
    PG_RETURN_VOID();
}

PGTOPIC_FUNCTION(pgtopic_seek_to_beginning) { return seek_to(fcinfo, SeekTarget::Earliest); }
PGTOPIC_FUNCTION(pgtopic_seek_to_end) { return seek_to(fcinfo, SeekTarget::Latest); }
PGTOPIC_FUNCTION(pgtopic_seek_to_time) { return seek_to(fcinfo, SeekTarget::Time); }
