// pgtopic's internal interfaces, one section per concept (one .cpp each).
#pragma once

#include "pg.hpp"

#include <initializer_list>

namespace pgtopic {

// ---- settings (pgtopic.cpp) -------------------------------------------------------------
extern int max_message_bytes;             // pgtopic.max_message_bytes
extern int max_partitions;                // pgtopic.max_partitions (per topic)
extern int shared_partitions;             // pgtopic.shared_partitions (shared-memory slots)
extern int max_partitions_per_transaction;  // pgtopic.max_partitions_per_transaction
extern int max_poll_interval_ms;          // pgtopic.max_poll_interval
extern int max_batch_messages;            // pgtopic.max_batch_messages
extern int max_batch_bytes;               // pgtopic.max_batch_bytes
extern int max_poll_messages;             // pgtopic.max_poll_messages
extern int max_poll_bytes;                // pgtopic.max_poll_bytes
extern int auto_offset_reset;             // pgtopic.auto_offset_reset
enum AutoOffsetReset { RESET_EARLIEST, RESET_LATEST };

// ---- catalog (catalog.cpp) --------------------------------------------------------------
constexpr int TOPIC_NAME_MAX = 249;  // Kafka's limit on topic names, in bytes

struct Topic {
    int32 id;            // catalog_topics.topic_id
    int32 partitions;    // current partition count
    int64 segment_size;  // offsets per segment
    int32 max_message_bytes;  // the topic's limit, else pgtopic.max_message_bytes
    Oid root_relid;      // pgtopic_data.topic_<id>, locked by lookup_topic
};

// Raises 22004 for NULL and 22023 for a name outside Kafka's rule.
void check_topic_name(text *name);
// Finds a topic and locks its storage table in `lockmode` (42704 when unknown).
Topic lookup_topic(text *name, LOCKMODE lockmode);
// The topic's catalog row without locking its storage: false when there is no such topic.
bool find_topic(text *name, Topic &topic);
// 22023 unless 0 <= partition < topic.partitions.
void check_partition(const Topic &topic, int32 partition);
// Raises 22004 naming the argument when it is NULL.
void require_arg(FunctionCallInfo fcinfo, int argno, const char *name);
// The same for arguments 0, 1, ... named in order.
void require_args(FunctionCallInfo fcinfo, std::initializer_list<const char *> names);
// Starts a set-returning function's result in materialize mode. Its row type comes from the
// caller's expected descriptor when there is one (a function scan: no look-up of the function's
// OUT parameters on every call), else from the function's declaration.
void begin_materialized_result(FunctionCallInfo fcinfo);
// 22023 "<name> must not be negative".
void require_nonnegative(int64 value, const char *name);

// Durable per-partition bounds: pgtopic.catalog_partitions, changed only in place (not
// transactional, WAL-logged, so standbys and a promoted standby know them). The values are
// the table's attribute numbers.
enum class Bound { LogStart = 3, Reserved = 4, Stable = 5 };
struct PartitionBounds {
    bool present;       // false: no row (a topic of an older SQL version, or none)
    int64 log_start;    // the log start offset never goes below it (retention raises it)
    int64 reserved;     // offsets below it may have been handed out; a restart resumes above
    int64 stable;       // the primary's last stable offset when last logged (for standbys)
};
PartitionBounds read_partition_bounds(int32 topic_id, int32 partition);
// Raises one bound to at least `value`, WAL-logged and flushed before it returns. Returns the
// bound now stored, or -1 when the partition has no row.
int64 raise_partition_bound(int32 topic_id, int32 partition, Bound bound, int64 value);
// pgtopic's own message and hint for what a hot standby cannot do (25006).
void refuse_during_recovery(const char *what);

// ---- privileges (privileges.cpp) -------------------------------------------------------
// PostgreSQL's own denials of pgtopic's schema, functions and views (EXECUTE, USAGE, SELECT)
// get a HINT naming the extension role to grant (an emit_log_hook).
void privileges_init_hint_hook();
enum class Right { Produce, Consume, Admin };
bool has_topic_right(int32 topic_id, Oid role, Right right);
// 42501 naming the missing right unless the current user has it on the topic.
void require_topic_right(const Topic &topic, text *topic_name, Right right);
void require_any_topic_right(const Topic &topic, text *topic_name);
void require_global_admin();
// SPI as the extension's owner with search_path = pg_catalog, pg_temp (SPI_connect included).
struct InternalScope {
    Oid user;
    int sec_context;
    int guc_level;
};
InternalScope internal_begin();
void internal_end(const InternalScope &scope);

// ---- offsets (offsets.cpp) --------------------------------------------------------------
void offsets_shmem_request();
void offsets_shmem_startup();  // with AddinShmemInitLock held
void offsets_init_backend_callbacks();
// Takes `count` consecutive offsets of a partition for the current transaction and registers
// them as in flight until the transaction ends. Never waits for other producers.
int64 allocate_offsets(const Topic &topic, int32 partition, int64 count);
struct PartitionOffsets {
    int64 high_watermark;      // next offset to be allocated
    int64 last_stable_offset;  // every offset below it is committed or aborted for good
};
PartitionOffsets partition_offsets(const Topic &topic, int32 partition);
// The topic's shared-memory state is freed when the current transaction commits (kept if it
// rolls back). Called for every drop of a topic's storage table (object access hook).
void forget_topic_at_commit(Oid root_relid);
bool offsets_object_access(Oid relid);  // true: it was a topic's storage root
// The LWLock that serialises in-place changes of catalog_partitions.
LWLock *bounds_lock();
// Writes the last stable offset of this database's partitions whose LSO moved since the last
// call into catalog_partitions (what a hot standby may read up to); returns how many.
int log_stable_offsets();
// Segment creation requests for the maintenance worker (which needs no background-worker slot):
// true when the worker serves this database and the request was queued.
bool request_segments(const Topic &topic, int32 partition, int64 from_segment, int64 upto_segment);
bool maintenance_serves_database();
struct SegmentWanted {
    int32 topic_id;
    int32 partition;
    int64 from_segment;
    int64 upto_segment;
};
// The maintenance worker: announces itself, and takes the queued requests (at most `max`).
// `from_segment` .. `upto_segment` are wanted.
void set_maintenance_database(Oid database);
int take_segment_requests(SegmentWanted *out, int max);
// True for the one backend that should start the creator of this segment (first to ask).
bool claim_segment_request(const Topic &topic, int32 partition, int64 segment);
// Long-polling readers of the topic wake when the current transaction commits (alter_topic).
void wake_readers_at_commit(const Topic &topic);
// The condition variable broadcast whenever a producer transaction on the topic ends.
ConditionVariable *topic_changed(const Topic &topic);
// For the maintenance worker: its latch (set on producer commits), and the storage tables of
// this database's topics that had commits since the last call.
void set_maintenance_latch(Latch *latch);
// The Kafka listener's latch, set like the maintenance worker's when a producer transaction
// commits (its parked Fetch requests look again).
void set_kafka_latch(Latch *latch);
// The partition's last stable offset from shared memory, without a transaction or a catalog
// read: false when the partition has no initialised entry (or was dropped).
bool peek_last_stable_offset(Oid root_relid, int32 partition, int64 *lso);
// LISTEN pgtopic in this backend (the ProcessUtility hook); whether any backend has done so.
void note_listener();
// DROP DATABASE succeeded: frees that database's shared-memory entries.
void forget_database(Oid database);
bool listeners_present();
int topics_to_notify(Oid *relids, int max);

// ---- long polls (consume and fetch with wait_ms) ------------------------------------------
// Returns once has_data() is true or wait_ms has passed. Asleep, the caller holds no lock on the
// topic (DDL and other readers do not wait for it): every producer transaction on the topic
// broadcasts the topic's condition variable when it ends, and a sleep lasts at most a second,
// after which relookup() takes the topic again (42704 once it was dropped; new partitions).
// has_data and relookup are lambdas capturing by reference (nothing with a destructor).
template <typename HasData, typename Relookup>
void long_poll(Topic &topic, int32 wait_ms, HasData has_data, Relookup relookup)
{
    if (wait_ms <= 0)
        return;
    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
    for (;;) {
        ConditionVariable *changed = topic_changed(topic);
        ConditionVariablePrepareToSleep(changed);  // before looking: no wake-up is lost
        if (has_data()) {
            ConditionVariableCancelSleep();
            return;
        }
        long remaining = static_cast<long>((deadline - GetCurrentTimestamp()) / 1000);
        if (remaining <= 0) {
            ConditionVariableCancelSleep();
            return;
        }
        UnlockRelationOid(topic.root_relid, AccessShareLock);
        (void) ConditionVariableTimedSleep(changed, Min(remaining, 1000L), PG_WAIT_EXTENSION);
        ConditionVariableCancelSleep();
        relookup();
    }
}

// ---- values as text or jsonb (convert.cpp) -----------------------------------------------
enum class ValueAs { Bytes, Text, Json };
// The row shape a reader stores before converting: the result's own for Bytes, else the stored
// columns (partition, msg_offset, key, value bytea, headers, produced_at).
TupleDesc stored_row_desc_for(ValueAs as, TupleDesc result_desc);
// Appends the rows of `stored` (ended here) to rsinfo's result, the value converted, with the
// error and raw columns (NULL, or the reason and the stored bytes of a value that does not convert).
void emit_converted(ReturnSetInfo *rsinfo, Tuplestorestate *stored, TupleDesc stored_desc, ValueAs as);
// Kafka headers (keys text[], values bytea[]) as the jsonb object the text-key readers return:
// later duplicates win, a value that is not text in the database encoding becomes JSON null.
Datum headers_jsonb_from_arrays(Datum keys, Datum values);
// A jsonb headers object as Kafka headers, as jsonb_each_text reads it (strings unquoted, null
// as NULL, other values as their JSON text).
void header_arrays_from_jsonb(Datum headers, Datum *keys, Datum *values);

// ---- reading (fetch.cpp) ----------------------------------------------------------------
struct ReadResult {
    int64 count;        // rows appended to the result
    int64 next_offset;  // where the next read of this partition starts
};
// Starts a read of at most pgtopic.max_poll_bytes of values (and max_messages, checked here:
// 54000 above pgtopic.max_poll_messages); read_partition stops when the byte budget is spent,
// after at least one message.
void begin_poll(int32 max_messages);
bool poll_budget_spent();
// From now on, read_partition writes the offset of every row it appends to buffer[0, 1, ...]
// (room for the poll's max_messages); nullptr stops it.
void log_rows(int64 *buffer);
int64 rows_logged();
// Whether [from, lso) holds a visible message, without returning it; *next_offset: where a read
// would resume if not (past rolled-back offsets). Keeps no lock on segments that held nothing.
bool peek_partition(const Topic &topic, int32 partition, int64 from, int64 lso, TupleDesc desc, int64 *next_offset);
// Appends up to `limit` messages of [from, lso) to rsinfo's tuplestore, in offset order.
// `lso` must have been read before `snapshot` was taken.
ReadResult read_partition(const Topic &topic, int32 partition, int64 from, int64 limit, int64 lso,
                          Snapshot snapshot, ReturnSetInfo *rsinfo);

// ---- consumer groups (group_*.cpp, groups.hpp) ------------------------------------------
void members_shmem_request();
void members_shmem_startup();
void groups_init_backend_callbacks();
// For the maintenance worker: removes members whose lease expired; returns how many.
int expire_idle_members();

// ---- maintenance worker (maintenance.cpp) ----------------------------------------------
extern char *maintenance_database;      // pgtopic.database
extern int maintenance_interval_ms;     // pgtopic.maintenance_interval
extern int notify_interval_ms;          // pgtopic.notify_interval
extern bool maintenance_worker_enabled; // pgtopic.maintenance_worker
void register_maintenance_worker();
// The worker's counters in shared memory (pgtopic.maintenance_status()): since the server started.
void maintenance_shmem_request();
void maintenance_shmem_startup();

// ---- produce (produce.cpp) -------------------------------------------------------------
// Kafka's default partitioner for a text key (hashed as UTF-8) and for a bytea key (its bytes).
int32 partition_for_key(Datum key, int32 partitions);
int32 partition_for_key_bytes(Datum key, int32 partitions);

// Column numbers (0-based) of a topic's storage table (pgtopic._create_topic). A message keeps
// what a Kafka client sent byte for byte: a key that is text in the database encoding (no zero
// byte) is stored in `key`, any other key in `key_bytes`; headers from SQL stay the jsonb object
// they were given (`headers`), a Kafka record's headers are stored in order, duplicates and
// null values kept, as the arrays header_keys / header_values; created_at is the client's
// timestamp (Kafka's CreateTime), NULL when it gave none.
enum StoredColumn {
    COL_PARTITION, COL_OFFSET, COL_KEY, COL_VALUE, COL_HEADERS, COL_PRODUCED_AT,
    COL_CREATED_AT, COL_KEY_BYTES, COL_HEADER_KEYS, COL_HEADER_VALUES, N_STORED_COLUMNS,
    N_STORED_COLUMNS_BEFORE_030 = COL_CREATED_AT  // until ALTER EXTENSION pgtopic UPDATE
};

// One message to write; absent fields are null.
struct StoredMessage {
    Datum key = 0, value = 0, headers = 0, key_bytes = 0, header_keys = 0, header_values = 0;
    bool key_null = true, value_null = true, headers_null = true, key_bytes_null = true;
    bool header_keys_null = true, header_values_null = true;
    TimestampTz created_at = 0;
    bool created_at_null = true;
    int32 partition = 0;
};
// Sets m's key from raw bytes: into `key` when they are text in the database encoding without
// a zero byte, else into `key_bytes` (palloc'd in the current memory context).
void set_message_key(StoredMessage &m, const char *data, int len);
// n messages to the partition a Kafka client chose (src/kafka_produce.cpp), consecutive
// offsets; the produce right, the partition, pgtopic.max_batch_messages, sizes and headers are
// checked as produce_batch does. Returns the first offset.
int64 produce_to_partition(text *topic_name, int32 partition, StoredMessage *msgs, int n);

// ---- segments and storage (segments.cpp) ------------------------------------------------
// pgtopic_data's OID (cached until a schema changes); InvalidOid when missing and missing_ok.
Oid data_namespace(bool missing_ok = false);
// Locks a relation found by an earlier look-up and checks it still exists (a DROP may have
// committed while we waited for the lock): false, and the lock released, when it is gone.
bool lock_existing_relation(Oid relid, LOCKMODE lockmode);
// The topic's storage root (pgtopic_data.topic_<id>), locked in `lockmode`; InvalidOid if the
// topic is gone (also when drop_topic committed while we waited for the lock).
Oid lock_topic_root(int32 topic_id, LOCKMODE lockmode);
Oid segment_relid(const Topic &topic, int32 partition, int64 segment);
// The segment's relation, created first (by a background worker, or in this transaction as
// a fallback) when it does not exist yet.
Oid ensure_segment(const Topic &topic, int32 partition, int64 segment);
// Has the segments after `segment` created in the background if they are missing (called by a
// producer that wrote into `segment`; past_middle: its last offset is in the second half).
void prepare_next_segment(const Topic &topic, int32 partition, int64 segment, bool past_middle);
// Where a partition's offsets resume after a restart: above every stored message and every
// committed group offset.
int64 stored_next_offset(const Topic &topic, int32 partition);
// Kafka's log start offset: the base offset of the partition's lowest segment, or the last
// stable offset when that is lower or no segment exists. Never the first *visible* message: an
// open transaction may hold lower offsets, and a consumer starting above them would skip them.
int64 log_start_offset(const Topic &topic, int32 partition, int64 last_stable_offset);
// Kafka's offsetsForTimes (fetch.cpp): the first offset below the last stable offset whose
// message was produced at or after ts, or the last stable offset. Rights not checked.
int64 offset_for_time(const Topic &topic, int32 partition, TimestampTz ts);
void segments_register_worker_library();

}  // namespace pgtopic
