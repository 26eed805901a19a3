// Topic catalog look-ups and argument checks shared by every SQL function.
#include "pgtopic.hpp"

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
    if (name.empty() || name.size() > 249 || name == "." || name == "..")
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

Topic lookup_topic(text *name, LOCKMODE lockmode)
{
    check_topic_name(name);

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
    Snapshot snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
    SysScanDesc scan = systable_beginscan(rel, index, true, snapshot, 1, &key);
    HeapTuple tuple = systable_getnext(scan);
    Topic topic{};
    bool found = HeapTupleIsValid(tuple);
    if (found) {
        bool isnull = false;
        TupleDesc desc = RelationGetDescr(rel);
        topic.id = DatumGetInt32(heap_getattr(tuple, ATTR_TOPIC_ID, desc, &isnull));
        topic.partitions = DatumGetInt32(heap_getattr(tuple, ATTR_PARTITIONS, desc, &isnull));
        topic.segment_size = DatumGetInt64(heap_getattr(tuple, ATTR_SEGMENT_SIZE, desc, &isnull));
        topic.max_message_bytes = max_message_bytes;
        if (desc->natts >= ATTR_MAX_MESSAGE_BYTES) {
            Datum limit = heap_getattr(tuple, ATTR_MAX_MESSAGE_BYTES, desc, &isnull);
            if (!isnull)
                topic.max_message_bytes = DatumGetInt32(limit);
        }
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);

    if (!found)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("topic \"%s\" does not exist", text_to_cstring(name))));

    char relname[NAMEDATALEN];
    snprintf(relname, sizeof relname, "topic_%d", topic.id);
    topic.root_relid = get_relname_relid(relname, data_namespace());
    if (OidIsValid(topic.root_relid))
        LockRelationOid(topic.root_relid, lockmode);
    // drop_topic may have committed while we waited for the lock.
    if (!OidIsValid(topic.root_relid) || !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(topic.root_relid)))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("topic \"%s\" does not exist", text_to_cstring(name)),
                        errdetail("It was dropped by a concurrent transaction.")));
    return topic;
}

void check_partition(const Topic &topic, int32 partition)
{
    if (partition < 0 || partition >= topic.partitions)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("partition %d is out of range", partition),
                        errdetail("The topic has %d partition%s (0 to %d).", topic.partitions,
                                  topic.partitions == 1 ? "" : "s", topic.partitions - 1)));
}

}  // namespace pgtopic
