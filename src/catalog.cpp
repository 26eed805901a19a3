// Topic catalog look-ups and argument checks shared by every SQL function.
#include "guard.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "access/xlog.h"
#include "replication/syncrep.h"
}

#include <string_view>

namespace pgtopic {
namespace {

constexpr AttrNumber ATTR_TOPIC_ID = 1;
constexpr AttrNumber ATTR_TOPIC = 2;
constexpr AttrNumber ATTR_PARTITIONS = 3;
constexpr AttrNumber ATTR_SEGMENT_SIZE = 4;
constexpr AttrNumber ATTR_MAX_MESSAGE_BYTES = 8;  // since 0.2.0

// Kafka's rule: 1 to 249 characters of [A-Za-z0-9._-], and not "." or "..".
bool valid_topic_name(std::string_view name) noexcept
{
    if (name.empty() || name.size() > static_cast<std::size_t>(TOPIC_NAME_MAX) || name == "." || name == "..")
        return false;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

}  // namespace

void require_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
    if (PG_ARGISNULL(argno))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", name)));
}

void require_args(FunctionCallInfo fcinfo, std::initializer_list<const char *> names)
{
    int argno = 0;
    for (const char *name : names)
        require_arg(fcinfo, argno++, name);
}

void begin_materialized_result(FunctionCallInfo fcinfo)
{
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    bool expected = rsinfo != nullptr && IsA(rsinfo, ReturnSetInfo) && rsinfo->expectedDesc != nullptr;
    InitMaterializedSRF(fcinfo, expected ? MAT_SRF_USE_EXPECTED_DESC : 0);
}

void require_nonnegative(int64 value, const char *name)
{
    if (value < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s must not be negative", name)));
}

void check_topic_name(text *name)
{
    std::size_t len = VARSIZE_ANY_EXHDR(name);
    if (!valid_topic_name(std::string_view(VARDATA_ANY(name), len)))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("invalid topic name \"%s\"", text_to_cstring(name)),
                        errdetail("A topic name is 1 to 249 characters of [A-Za-z0-9._-], and not \".\" or \"..\".")));
}

namespace {

// Backend-local cache of catalog_topics rows by name: a produce call then costs one hash probe
// instead of a catalog index scan (the largest part of pgtopic's own CPU per one-message
// transaction in the profile). A statement trigger on catalog_topics (pgtopic._topics_changed)
// sends a relcache invalidation for it on every change, which empties every session's cache.
struct TopicCacheEntry {
    char name[TOPIC_NAME_MAX + 1];  // hash key
    Topic topic;                    // root_relid: set once a call has locked it, checked on every call
};

HTAB *topic_cache = nullptr;
Oid cached_catalog_relid = InvalidOid;
uint64 topic_cache_generation = 0;

void topic_cache_invalidate(Datum, Oid relid)
{
    if (topic_cache == nullptr || (OidIsValid(relid) && relid != cached_catalog_relid))
        return;
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, topic_cache);
    while (auto *e = static_cast<TopicCacheEntry *>(hash_seq_search(&status)))
        (void) hash_search(topic_cache, e->name, HASH_REMOVE, nullptr);
    topic_cache_generation++;
}

using TopicCacheKey = char[TOPIC_NAME_MAX + 1];

void topic_cache_key(text *name, TopicCacheKey &key)
{
    memset(key, 0, sizeof key);
    memcpy(key, VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));  // checked: at most 249 bytes
}

TopicCacheEntry *cached_topic(const TopicCacheKey &key)
{
    return topic_cache == nullptr ? nullptr
                                  : static_cast<TopicCacheEntry *>(hash_search(topic_cache, key, HASH_FIND, nullptr));
}

// Reads the topic's row from catalog_topics with a fresh snapshot (as PostgreSQL reads its own
// catalogs), so that what is cached is never older than the invalidations already processed.
// Caches it when catalog_topics carries the invalidation trigger (from 0.2.0 on).
bool read_topic_row(text *name, const TopicCacheKey &cache_key, Topic &topic)
{
    Oid ns = get_namespace_oid("pgtopic", false);
    Oid catalog = get_relname_relid("catalog_topics", ns);
    Oid index = get_relname_relid("catalog_topics_topic_key", ns);
    if (!OidIsValid(catalog) || !OidIsValid(index))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("pgtopic catalog is missing"),
                        errhint("Re-create the extension: DROP EXTENSION pgtopic; CREATE EXTENSION pgtopic;")));

    Relation rel = table_open(catalog, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, ATTR_TOPIC, BTEqualStrategyNumber, F_TEXTEQ, PointerGetDatum(name));
    key.sk_collation = DEFAULT_COLLATION_OID;
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    SysScanDesc scan = systable_beginscan(rel, index, true, snapshot, 1, &key);
    HeapTuple tuple = systable_getnext(scan);
    topic = Topic{};
    bool found = HeapTupleIsValid(tuple);
    if (found) {
        bool isnull = false;
        TupleDesc desc = RelationGetDescr(rel);
        topic.id = DatumGetInt32(heap_getattr(tuple, ATTR_TOPIC_ID, desc, &isnull));
        topic.partitions = DatumGetInt32(heap_getattr(tuple, ATTR_PARTITIONS, desc, &isnull));
        topic.segment_size = DatumGetInt64(heap_getattr(tuple, ATTR_SEGMENT_SIZE, desc, &isnull));
        topic.max_message_bytes = -1;  // pgtopic.max_message_bytes, read at each call
        if (desc->natts >= ATTR_MAX_MESSAGE_BYTES) {
            Datum limit = heap_getattr(tuple, ATTR_MAX_MESSAGE_BYTES, desc, &isnull);
            if (!isnull)
                topic.max_message_bytes = DatumGetInt32(limit);
        }
    }
    systable_endscan(scan);
    UnregisterSnapshot(snapshot);
    bool cacheable = rel->rd_rel->relhastriggers;
    table_close(rel, AccessShareLock);

    if (found && cacheable) {
        if (topic_cache == nullptr) {
            HASHCTL ctl;
            ctl.keysize = TOPIC_NAME_MAX + 1;
            ctl.entrysize = sizeof(TopicCacheEntry);
            ctl.hcxt = CacheMemoryContext;
            topic_cache = hash_create("pgtopic topics", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
            CacheRegisterRelcacheCallback(topic_cache_invalidate, Datum(0));
        }
        if (cached_catalog_relid != catalog)
            topic_cache_invalidate(Datum(0), InvalidOid);
        cached_catalog_relid = catalog;
        auto *e = static_cast<TopicCacheEntry *>(hash_search(topic_cache, cache_key, HASH_ENTER, nullptr));
        e->topic = topic;
    }
    return found;
}

}  // namespace

Topic lookup_topic(text *name, LOCKMODE lockmode)
{
    check_topic_name(name);
    // Changes committed by others before this point are seen (as a new statement would).
    AcceptInvalidationMessages();
    TopicCacheKey key;
    topic_cache_key(name, key);

    for (int attempt = 0;; attempt++) {
        Topic topic{};
        bool cached = false;
        if (attempt == 0) {
            if (TopicCacheEntry *e = cached_topic(key)) {
                topic = e->topic;
                cached = true;
            }
        }
        if (!cached && !read_topic_row(name, key, topic))
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                            errmsg("topic \"%s\" does not exist", text_to_cstring(name))));
        if (topic.max_message_bytes < 0)
            topic.max_message_bytes = max_message_bytes;

        uint64 generation = topic_cache_generation;
        const bool root_cached = cached && OidIsValid(topic.root_relid);
        if (root_cached) {
            // The storage table this session locked before: lock it by OID and check it is
            // still there (drop_topic also empties the cache, through the trigger).
            if (!lock_existing_relation(topic.root_relid, lockmode))
                topic.root_relid = InvalidOid;
        } else {
            topic.root_relid = lock_topic_root(topic.id, lockmode);
        }
        bool present = OidIsValid(topic.root_relid);
        // A cached row that changed meanwhile (alter_topic or drop_topic committed while we
        // waited for the lock, or just before): read the catalog again.
        if (attempt == 0 && ((cached && !present) || generation != topic_cache_generation))
            continue;
        if (!present)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                            errmsg("topic \"%s\" does not exist", text_to_cstring(name)),
                            errdetail("It was dropped by a concurrent transaction.")));
        if (!root_cached && generation == topic_cache_generation) {
            TopicCacheEntry *e = cached_topic(key);
            if (e != nullptr && e->topic.id == topic.id)
                e->topic.root_relid = topic.root_relid;
        }
        return topic;
    }
}

bool find_topic(text *name, Topic &topic)
{
    check_topic_name(name);
    AcceptInvalidationMessages();
    TopicCacheKey key;
    topic_cache_key(name, key);
    if (TopicCacheEntry *e = cached_topic(key)) {
        topic = e->topic;
        return true;
    }
    return read_topic_row(name, key, topic);
}

// The trigger on pgtopic.catalog_topics: every session's topic cache forgets the table's rows
// when the changing transaction commits (or, in this session, at once).
Datum topics_changed(FunctionCallInfo fcinfo)
{
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("pgtopic._topics_changed() must be called as a trigger")));
    auto *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    CacheInvalidateRelcacheByRelid(RelationGetRelid(trigger->tg_relation));
    return PointerGetDatum(nullptr);
}

void check_partition(const Topic &topic, int32 partition)
{
    if (partition < 0 || partition >= topic.partitions)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("partition %d is out of range", partition),
                        errdetail("The topic has %d partition%s (0 to %d).", topic.partitions,
                                  topic.partitions == 1 ? "" : "s", topic.partitions - 1)));
}

// ---- durable partition bounds ---------------------------------------------------------
//
// pgtopic.catalog_partitions holds one row per topic partition (inserted by _create_partition,
// deleted with the topic), whose bigint columns are only ever changed in place
// (heap_inplace_update, as VACUUM updates pg_class.relfrozenxid): not transactional, WAL-logged,
// replayed by standbys, dumped by pg_dump. No transactional UPDATE ever touches them, so an
// in-place change is never lost to a newer row version. Writers serialise on one LWLock (the
// read-modify-write of a row), readers take it shared (no torn reads of a value being written).

namespace {

constexpr AttrNumber ATTR_BOUNDS_TOPIC_ID = 1;
constexpr AttrNumber ATTR_BOUNDS_PARTITION = 2;

// catalog_partitions and its primary key, locked in `mode` (the index in AccessShareLock), or
// false when this SQL version of the extension has no such table. Locks are taken here, before
// the caller takes the bounds LWLock: never wait for a heavyweight lock holding an LWLock.
bool open_bounds(Relation &rel, Oid &index, LOCKMODE mode)
{
    Oid ns = get_namespace_oid("pgtopic", true);
    if (!OidIsValid(ns))
        return false;
    Oid relid = get_relname_relid("catalog_partitions", ns);
    index = get_relname_relid("catalog_partitions_pkey", ns);
    if (!OidIsValid(relid) || !OidIsValid(index))
        return false;
    rel = table_open(relid, mode);
    LockRelationOid(index, AccessShareLock);
    return true;
}

HeapTuple find_bounds_row(Relation rel, Oid index, int32 topic_id, int32 partition, SysScanDesc &scan)
{
    ScanKeyData keys[2];
    ScanKeyInit(&keys[0], ATTR_BOUNDS_TOPIC_ID, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(topic_id));
    ScanKeyInit(&keys[1], ATTR_BOUNDS_PARTITION, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(partition));
    // SnapshotSelf: the committed row, or the one this transaction inserted (create_topic and
    // produce in one transaction), also while drop_topic deletes it in an open transaction.
    scan = systable_beginscan(rel, index, true, SnapshotSelf, 2, keys);
    return systable_getnext(scan);
}

int64 bound_of(HeapTuple tuple, TupleDesc desc, Bound bound)
{
    bool isnull = false;
    Datum d = heap_getattr(tuple, static_cast<AttrNumber>(bound), desc, &isnull);
    return isnull ? 0 : DatumGetInt64(d);
}

}  // namespace

PartitionBounds read_partition_bounds(int32 topic_id, int32 partition)
{
    PartitionBounds result{false, 0, 0, 0};
    Relation rel;
    Oid index;
    if (!open_bounds(rel, index, AccessShareLock))
        return result;
    LWLockAcquire(bounds_lock(), LW_SHARED);
    SysScanDesc scan;
    HeapTuple tuple = find_bounds_row(rel, index, topic_id, partition, scan);
    if (HeapTupleIsValid(tuple)) {
        TupleDesc desc = RelationGetDescr(rel);
        result.present = true;
        result.log_start = bound_of(tuple, desc, Bound::LogStart);
        result.reserved = bound_of(tuple, desc, Bound::Reserved);
        result.stable = bound_of(tuple, desc, Bound::Stable);
    }
    systable_endscan(scan);
    LWLockRelease(bounds_lock());
    UnlockRelationOid(index, AccessShareLock);
    table_close(rel, AccessShareLock);
    return result;
}

int64 raise_partition_bound(int32 topic_id, int32 partition, Bound bound, int64 value)
{
    if (RecoveryInProgress())
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("cannot change a pgtopic partition's bounds during recovery")));
    Relation rel;
    Oid index;
    if (!open_bounds(rel, index, RowExclusiveLock))
        return -1;
    LWLockAcquire(bounds_lock(), LW_EXCLUSIVE);
    SysScanDesc scan;
    HeapTuple tuple = find_bounds_row(rel, index, topic_id, partition, scan);
    int64 stored = -1;
    bool written = false;
    if (HeapTupleIsValid(tuple)) {
        TupleDesc desc = RelationGetDescr(rel);
        stored = bound_of(tuple, desc, bound);
        if (stored < value) {
            Datum values[8] = {};
            bool nulls[8] = {};
            bool replace[8] = {};
            int column = static_cast<int>(bound) - 1;
            values[column] = Int64GetDatum(value);
            replace[column] = true;
            HeapTuple changed = heap_modify_tuple(tuple, desc, values, nulls, replace);
            heap_inplace_update(rel, changed);
            heap_freetuple(changed);
            stored = value;
            written = true;
        }
    }
    systable_endscan(scan);
    LWLockRelease(bounds_lock());
    UnlockRelationOid(index, AccessShareLock);
    table_close(rel, RowExclusiveLock);
    // A reservation is durable before any offset below it is handed out (one may be passed by
    // readers although its transaction aborts and nothing else flushes the WAL). The other
    // bounds need no flush: the log start goes with the DROP's commit, a stable offset only
    // matters to a standby, which receives flushed WAL only.
    if (written && bound == Bound::Reserved) {
        XLogFlush(XactLastRecEnd);
        // And on the synchronous standby, as a commit would be: a standby promoted by a failover
        // must know every reservation the old primary handed offsets out from.
        SyncRepWaitForLSN(XactLastRecEnd, false);
    }
    return stored;
}

void refuse_during_recovery(const char *what)
{
    if (RecoveryInProgress())
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("cannot %s on a standby", what),
                        errdetail("This server is in recovery (a hot standby): topics are read-only here."),
                        errhint("Connect to the primary (for example with target_session_attrs=read-write).")));
}

}  // namespace pgtopic

PGTOPIC_FUNCTION(pgtopic_topics_changed) { return pgtopic::topics_changed(fcinfo); }
