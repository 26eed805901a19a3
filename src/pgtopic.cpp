// Module entry: _PG_init, settings, and the small SQL functions that belong to no subsystem.
#include "groups.hpp"
#include "guard.hpp"
#include "kafka_server.hpp"
#include "murmur2.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "catalog/objectaccess.h"
#include "commands/dbcommands.h"
#include "catalog/pg_class.h"

PG_MODULE_MAGIC;
void _PG_init(void);
}

namespace pgtopic {

int max_message_bytes = 1024 * 1024;
int max_partitions = 1000;
int default_segment_size = 100000;
int shared_partitions = 8192;
int max_partitions_per_transaction = 256;
int max_poll_interval_ms = 300000;
int max_batch_messages = 100000;
int max_batch_bytes = 256 * 1024 * 1024;
int max_poll_messages = 100000;
int max_poll_bytes = 64 * 1024 * 1024;
int auto_offset_reset = RESET_EARLIEST;

namespace {

void define_settings()
{
    DefineCustomIntVariable("pgtopic.max_message_bytes",
                            "Largest message (key + value + headers) that produce accepts.", nullptr,
                            &max_message_bytes, 1024 * 1024, 1, MaxAllocSize - 1024, PGC_SUSET, GUC_UNIT_BYTE,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.max_batch_messages", "Most messages one produce_batch call accepts.", nullptr,
                            &max_batch_messages, 100000, 1, INT_MAX, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.max_batch_bytes", "Largest messages array one produce_batch call accepts.",
                            nullptr, &max_batch_bytes, 256 * 1024 * 1024, 1024, MaxAllocSize - 1024, PGC_SUSET,
                            GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.max_poll_messages", "Largest max_messages of one consume or fetch call.",
                            nullptr, &max_poll_messages, 100000, 1, INT_MAX, PGC_SUSET, 0, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("pgtopic.max_poll_bytes",
                            "Value bytes after which one consume or fetch call stops (at least one message).",
                            nullptr, &max_poll_bytes, 64 * 1024 * 1024, 1, MaxAllocSize - 1024, PGC_SUSET,
                            GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.max_partitions", "Most partitions a topic may have.", nullptr,
                            &max_partitions, 1000, 1, 100000, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.default_segment_size",
                            "Offsets per segment (storage table) for topics created without segment_size.",
                            nullptr, &default_segment_size, 100000, 1, INT_MAX, PGC_SUSET, 0, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("pgtopic.shared_partitions",
                            "Topic partitions whose offsets shared memory can track (all databases).", nullptr,
                            &shared_partitions, 8192, 16, 1000000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.max_partitions_per_transaction",
                            "Partitions one transaction may produce to.", nullptr,
                            &max_partitions_per_transaction, 256, 1, 100000, PGC_POSTMASTER, 0, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.max_poll_interval",
                            "A group member that has not called consume for this long loses its partitions.",
                            "When another member needs them, the idle member is fenced: its next commit is "
                            "rejected, its next consume joins again (Kafka's max.poll.interval.ms). 0 disables.",
                            &max_poll_interval_ms, 300000, 0, INT_MAX, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("pgtopic.session_timeout",
                            "A member_id member whose calls stop for this long loses its partitions.",
                            "Each consume, commit or seek with the member_id renews its lease (Kafka's "
                            "session.timeout.ms).",
                            &session_timeout_ms, 45000, 1000, 3600 * 1000, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("pgtopic.max_groups", "Consumer groups with members, all databases (shared memory).",
                            nullptr, &max_groups, 1024, 1, 1000000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.max_members", "Consumer group members, all databases (shared memory).",
                            nullptr, &max_members, 4096, 1, 1000000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.max_group_partitions",
                            "Partition assignments of all consumer groups with members: a group takes one per "
                            "partition of its topic (shared memory).",
                            nullptr, &max_group_partitions, 131072, 1, 100000000, PGC_POSTMASTER, 0, nullptr,
                            nullptr, nullptr);
    static const struct config_enum_entry reset_options[] = {
        {"earliest", RESET_EARLIEST, false}, {"latest", RESET_LATEST, false}, {nullptr, 0, false}};
    DefineCustomEnumVariable("pgtopic.auto_offset_reset",
                             "Where a group starts on a partition it has no committed offset for.", nullptr,
                             &auto_offset_reset, RESET_EARLIEST, reset_options, PGC_USERSET, 0, nullptr, nullptr,
                             nullptr);
    DefineCustomStringVariable("pgtopic.database", "Database the maintenance worker connects to.",
                               "Retention, segment pre-creation and NOTIFY happen for topics of this database.",
                               &maintenance_database, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("pgtopic.maintenance_worker", "Starts the maintenance background worker.", nullptr,
                             &maintenance_worker_enabled, true, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.maintenance_interval",
                            "Pause between maintenance passes (segments ahead of need, retention).", nullptr,
                            &maintenance_interval_ms, 5000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.notify_interval",
                            "Shortest pause between two NOTIFY pgtopic rounds (at most one per topic each).",
                            nullptr, &notify_interval_ms, 10, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                            nullptr);
    kafka_server::define_settings();
    MarkGUCPrefixReserved("pgtopic");
}

ProcessUtility_hook_type prev_process_utility_hook = nullptr;

// Sees LISTEN pgtopic (note_listener); everything else passes through untouched.
void process_utility(PlannedStmt *pstmt, const char *query_string, bool read_only_tree,
                     ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *query_env,
                     DestReceiver *dest, QueryCompletion *qc)
{
    Node *stmt = pstmt->utilityStmt;
    if (stmt != nullptr && IsA(stmt, ListenStmt) &&
        strcmp(reinterpret_cast<ListenStmt *>(stmt)->conditionname, "pgtopic") == 0)
        note_listener();
    Oid dropped_database = stmt != nullptr && IsA(stmt, DropdbStmt)
                               ? get_database_oid(reinterpret_cast<DropdbStmt *>(stmt)->dbname, true)
                               : InvalidOid;
    if (prev_process_utility_hook)
        prev_process_utility_hook(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
    else
        standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
    if (OidIsValid(dropped_database))
        forget_database(dropped_database);  // (an ERROR above skips this: the database is still there)
}

object_access_hook_type prev_object_access_hook = nullptr;

// Frees a dropped topic's shared memory when the dropping transaction commits, however the
// topic's storage goes (drop_topic, DROP EXTENSION, DROP SCHEMA ... CASCADE).
void object_access(ObjectAccessType access, Oid class_id, Oid object_id, int sub_id, void *arg)
{
    if (prev_object_access_hook)
        prev_object_access_hook(access, class_id, object_id, sub_id, arg);
    // (the groups of a dropped topic lose their members at commit too, however the topic goes:
    // drop_topic, DROP EXTENSION, DROP SCHEMA ... CASCADE)
    if (access == OAT_DROP && class_id == RelationRelationId && sub_id == 0 && offsets_object_access(object_id))
        groups_forget_topic_at_commit(object_id);
}

shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

void shmem_request()
{
    if (prev_shmem_request_hook)
        prev_shmem_request_hook();
    offsets_shmem_request();
    members_shmem_request();
    maintenance_shmem_request();
}

void shmem_startup()
{
    if (prev_shmem_startup_hook)
        prev_shmem_startup_hook();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    offsets_shmem_startup();
    members_shmem_startup();
    maintenance_shmem_startup();
    LWLockRelease(AddinShmemInitLock);
}

}  // namespace
}  // namespace pgtopic

void _PG_init(void)
{
    if (!process_shared_preload_libraries_in_progress)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("pgtopic must be loaded via shared_preload_libraries"),
                        errhint("Add 'pgtopic' to shared_preload_libraries in postgresql.conf and restart "
                                "the server, then run CREATE EXTENSION pgtopic.")));
    pgtopic::define_settings();
    pgtopic::prev_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = pgtopic::shmem_request;
    pgtopic::prev_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = pgtopic::shmem_startup;
    pgtopic::prev_object_access_hook = object_access_hook;
    object_access_hook = pgtopic::object_access;
    pgtopic::prev_process_utility_hook = ProcessUtility_hook;
    ProcessUtility_hook = pgtopic::process_utility;
    pgtopic::offsets_init_backend_callbacks();
    pgtopic::groups_init_backend_callbacks();
    pgtopic::privileges_init_hint_hook();
    pgtopic::register_maintenance_worker();
    pgtopic::kafka_server::register_worker();
}

using namespace pgtopic;

PGTOPIC_FUNCTION(pgtopic_murmur2)
{
    bytea *data = PG_GETARG_BYTEA_PP(0);
    PG_RETURN_INT32(murmur2(reinterpret_cast<const unsigned char *>(VARDATA_ANY(data)), VARSIZE_ANY_EXHDR(data)));
}

PGTOPIC_FUNCTION(pgtopic_key_partition)
{
    int32 partitions = PG_GETARG_INT32(1);
    if (partitions < 1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("partitions must be positive")));
    PG_RETURN_INT32(partition_for_key(PG_GETARG_DATUM(0), partitions));
}

// pgtopic's advisory-lock key space: field4 (objsubid in pg_locks) names the use.
// 1 and 2 are PostgreSQL's own (pg_advisory_lock with one bigint / two int4 keys).
static constexpr uint16 LOCK_SPACE_PARTITION_DDL = 0x7401;

PGTOPIC_FUNCTION(pgtopic_lock_partition_ddl)
{
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(PG_GETARG_INT32(0)),
                         static_cast<uint32>(PG_GETARG_INT32(1)), LOCK_SPACE_PARTITION_DDL);
    (void) LockAcquire(&tag, ExclusiveLock, false, false);
    // Whoever held the lock may just have created the segment: see its catalog rows (as
    // LockRelationOid does after waiting), or the caller's existence check would miss it.
    AcceptInvalidationMessages();
    PG_RETURN_VOID();
}

// Kept for the SQL of older versions: the object access hook does the same for every drop.
PGTOPIC_FUNCTION(pgtopic_forget_topic)
{
    forget_topic_at_commit(PG_GETARG_OID(0));
    groups_forget_topic_at_commit(PG_GETARG_OID(0));
    PG_RETURN_VOID();
}

PGTOPIC_FUNCTION(pgtopic_key_partition_bytes)
{
    int32 partitions = PG_GETARG_INT32(1);
    if (partitions < 1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("partitions must be positive")));
    PG_RETURN_INT32(partition_for_key_bytes(PG_GETARG_DATUM(0), partitions));
}
