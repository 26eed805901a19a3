// produce and produce_batch: offsets from shared memory, rows straight into the leaf segment
// with table_multi_insert and index insertion (as COPY does): no planner, no SPI per message.
#include "guard.hpp"
#include "murmur2.hpp"
#include "pgtopic.hpp"

#include <numeric>
#include <vector>

namespace pgtopic {
namespace {

enum class ValueKind { Bytea, Text, Jsonb };

using Message = StoredMessage;

// Round-robin for messages with neither key nor partition, starting where the backend's
// process id points so that many short sessions still spread.
uint32 round_robin = 0;
bool round_robin_seeded = false;

int32 spread_partition(int32 partitions)
{
    if (!round_robin_seeded) {
        round_robin = static_cast<uint32>(MyProcPid);
        round_robin_seeded = true;
    }
    return static_cast<int32>(round_robin++ % static_cast<uint32>(partitions));
}

}  // namespace

int32 partition_for_key(Datum key, int32 partitions)
{
    text *t = DatumGetTextPP(key);
    int len = VARSIZE_ANY_EXHDR(t);
    const char *utf8 = pg_server_to_any(VARDATA_ANY(t), len, PG_UTF8);
    if (utf8 != VARDATA_ANY(t))
        len = static_cast<int>(strlen(utf8));
    return key_partition(reinterpret_cast<const unsigned char *>(utf8), static_cast<size_t>(len), partitions);
}

int32 partition_for_key_bytes(Datum key, int32 partitions)
{
    bytea *b = DatumGetByteaPP(key);
    return key_partition(reinterpret_cast<const unsigned char *>(VARDATA_ANY(b)),
                         static_cast<size_t>(VARSIZE_ANY_EXHDR(b)), partitions);
}

void set_message_key(StoredMessage &m, const char *data, int len)
{
    // text and bytea share their varlena layout: one copy serves as either.
    struct varlena *v = static_cast<struct varlena *>(palloc(VARHDRSZ + len));
    SET_VARSIZE(v, VARHDRSZ + len);
    memcpy(VARDATA(v), data, len);
    bool is_text = pg_verifymbstr(data, len, true) && memchr(data, 0, len) == nullptr;
    m.key = is_text ? PointerGetDatum(v) : Datum(0);
    m.key_null = !is_text;
    m.key_bytes = is_text ? Datum(0) : PointerGetDatum(v);
    m.key_bytes_null = is_text;
}

namespace {

[[noreturn]] void too_large(Size bytes, int index, int32 limit)
{
    ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                    index < 0 ? errmsg("message of %zu bytes exceeds the topic's max_message_bytes (%d)", bytes, limit)
                              : errmsg("message %d of %zu bytes exceeds the topic's max_message_bytes (%d)",
                                       index + 1, bytes, limit),
                    errhint("Raise the topic's max_message_bytes (alter_topic) or pgtopic.max_message_bytes, "
                            "or send smaller messages.")));
}

// Size of a datum without detoasting it (a compressed or out-of-line value stays where it is).
Size raw_size(Datum d)
{
    return toast_raw_datum_size(d) - VARHDRSZ;
}

// Checks the message's size before anything is copied, and turns its value into the bytes
// that are stored: text as is, jsonb as its text form.
void prepare_message(Message &m, ValueKind kind, int index, int32 limit)
{
    Size bytes = 0;
    if (!m.key_null)
        bytes += raw_size(m.key);
    if (!m.key_bytes_null)
        bytes += raw_size(m.key_bytes);
    if (m.header_keys_null != m.header_values_null)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("header_keys and header_values must both be given or both be NULL")));
    if (!m.header_keys_null) {
        ArrayType *keys = DatumGetArrayTypeP(m.header_keys);
        ArrayType *values = DatumGetArrayTypeP(m.header_values);
        int nkeys = ArrayGetNItems(ARR_NDIM(keys), ARR_DIMS(keys));
        int nvalues = ArrayGetNItems(ARR_NDIM(values), ARR_DIMS(values));
        if (ARR_NDIM(keys) > 1 || ARR_NDIM(values) > 1)
            ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                            errmsg("header_keys and header_values must be one-dimensional arrays")));
        if (nkeys != nvalues)
            ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                            errmsg("header_keys has %d elements but header_values has %d", nkeys, nvalues)));
        if (array_contains_nulls(keys))
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("a header key must not be NULL"),
                            errdetail("Kafka record headers have a key; their value may be NULL.")));
        if (nkeys == 0) {  // no headers: stored as none
            m.header_keys_null = m.header_values_null = true;
        } else {
            m.header_keys = PointerGetDatum(keys);
            m.header_values = PointerGetDatum(values);
            bytes += raw_size(m.header_keys) + raw_size(m.header_values);
        }
    }
    if (!m.headers_null) {
        bytes += raw_size(m.headers);
        Jsonb *headers = DatumGetJsonbP(m.headers);
        if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("headers must be a JSON object"),
                            errdetail("Kafka record headers are name/value pairs, e.g. {\"trace-id\": \"abc\"}.")));
    }
    if (!m.value_null) {
        Size value_bytes = raw_size(m.value);
        if (bytes + value_bytes > static_cast<Size>(limit))
            too_large(bytes + value_bytes, index, limit);
        if (kind == ValueKind::Jsonb) {
            Jsonb *jb = DatumGetJsonbP(m.value);
            char *json = JsonbToCString(nullptr, &jb->root, VARSIZE(jb));
            value_bytes = strlen(json);
            m.value = PointerGetDatum(cstring_to_text_with_len(json, static_cast<int>(value_bytes)));
        }
        bytes += value_bytes;
    }
    if (bytes > static_cast<Size>(limit))
        too_large(bytes, index, limit);
}

// Writes messages [0, n) of one partition, which hold offsets first .. first + n - 1.
void insert_into_segment(Oid leaf, int32 partition, int64 first, Message *msgs, int n, TimestampTz now)
{
    Relation rel = table_open(leaf, RowExclusiveLock);
    EState *estate = CreateExecutorState();
    ResultRelInfo *rri = makeNode(ResultRelInfo);
    InitResultRelInfo(rri, rel, 1, nullptr, 0);
    ExecOpenIndices(rri, false);

    // The slots share an unpinned copy of the descriptor: slots made from the relation's own
    // descriptor would each pin it in the resource owner, whose bookkeeping of n pins of one
    // descriptor is quadratic (it dominated produce_batch of 1000 in the profile).
    TupleDesc desc = CreateTupleDescCopy(RelationGetDescr(rel));
    // A topic created before 0.3.0 whose extension was not updated yet has the first six
    // columns only: what needs the others is refused until ALTER EXTENSION pgtopic UPDATE.
    const bool before_030 = desc->natts == N_STORED_COLUMNS_BEFORE_030;
    if (!before_030 && desc->natts != N_STORED_COLUMNS)
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("segment \"%s\" has %d columns, not pgtopic's %d", RelationGetRelationName(rel),
                               desc->natts, static_cast<int>(N_STORED_COLUMNS))));
    for (int i = 0; before_030 && i < n; i++)
        if (!msgs[i].key_bytes_null || !msgs[i].header_keys_null)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("a binary key or Kafka headers need pgtopic 0.3.0's storage"),
                            errhint("Run ALTER EXTENSION pgtopic UPDATE.")));
    const TupleTableSlotOps *ops = table_slot_callbacks(rel);
    TupleTableSlot **slots = static_cast<TupleTableSlot **>(palloc(sizeof(TupleTableSlot *) * n));
    for (int i = 0; i < n; i++) {
        TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, ops);
        ExecClearTuple(slot);
        Datum *v = slot->tts_values;
        bool *isnull = slot->tts_isnull;
        const Message &m = msgs[i];
        v[COL_PARTITION] = Int32GetDatum(partition);
        isnull[COL_PARTITION] = false;
        v[COL_OFFSET] = Int64GetDatum(first + i);
        isnull[COL_OFFSET] = false;
        v[COL_KEY] = m.key;
        isnull[COL_KEY] = m.key_null;
        v[COL_VALUE] = m.value;
        isnull[COL_VALUE] = m.value_null;
        v[COL_HEADERS] = m.headers;
        isnull[COL_HEADERS] = m.headers_null;
        v[COL_PRODUCED_AT] = TimestampTzGetDatum(now);
        isnull[COL_PRODUCED_AT] = false;
        if (before_030) {
            ExecStoreVirtualTuple(slot);
            slots[i] = slot;
            continue;
        }
        v[COL_CREATED_AT] = TimestampTzGetDatum(m.created_at);
        isnull[COL_CREATED_AT] = m.created_at_null;
        v[COL_KEY_BYTES] = m.key_bytes;
        isnull[COL_KEY_BYTES] = m.key_bytes_null;
        v[COL_HEADER_KEYS] = m.header_keys;
        isnull[COL_HEADER_KEYS] = m.header_keys_null;
        v[COL_HEADER_VALUES] = m.header_values;
        isnull[COL_HEADER_VALUES] = m.header_values_null;
        ExecStoreVirtualTuple(slot);
        slots[i] = slot;
    }

    // One message takes heap_insert's path (a smaller WAL record than a multi-insert of one).
    BulkInsertState bistate = n > 1 ? GetBulkInsertState() : nullptr;
    if (n == 1)
        table_tuple_insert(rel, slots[0], GetCurrentCommandId(true), 0, nullptr);
    else
        table_multi_insert(rel, slots, n, GetCurrentCommandId(true), 0, bistate);
    for (int i = 0; i < n; i++)
        if (rri->ri_NumIndices > 0)
            (void) ExecInsertIndexTuples(rri, slots[i], estate, false, false, nullptr, NIL);

    if (bistate != nullptr)
        FreeBulkInsertState(bistate);
    for (int i = 0; i < n; i++)
        ExecDropSingleTupleTableSlot(slots[i]);
    pfree(slots);
    FreeTupleDesc(desc);
    ExecCloseIndices(rri);
    FreeExecutorState(estate);
    table_close(rel, NoLock);
}

// Writes the messages of one partition: one offset range, cut at segment boundaries.
int64 write_partition(const Topic &topic, int32 partition, Message *msgs, int n, TimestampTz now)
{
    int64 first = allocate_offsets(topic, partition, n);
    int done = 0;
    while (done < n) {
        int64 offset = first + done;
        int64 segment = offset / topic.segment_size;
        int64 segment_end = (segment + 1) * topic.segment_size;
        int chunk = static_cast<int>(Min(static_cast<int64>(n - done), segment_end - offset));
        insert_into_segment(ensure_segment(topic, partition, segment), partition, offset, msgs + done, chunk, now);
        done += chunk;
    }
    int64 last = first + n - 1;
    int64 segment = last / topic.segment_size;
    prepare_next_segment(topic, partition, segment, last - segment * topic.segment_size >= topic.segment_size / 2);
    return first;
}

// Writes one prepared message to its partition; the result row (partition, msg_offset).
Datum write_one(FunctionCallInfo fcinfo, const Topic &topic, Message &m)
{
    int64 offset = write_partition(topic, m.partition, &m, 1, GetCurrentTimestamp());
    begin_materialized_result(fcinfo);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    Datum values[2] = {Int32GetDatum(m.partition), Int64GetDatum(offset)};
    bool nulls[2] = {false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    return Datum(0);
}

Datum produce_one(FunctionCallInfo fcinfo, ValueKind kind)
{
    refuse_during_recovery("produce to a topic");
    PreventCommandIfReadOnly("pgtopic.produce");
    require_arg(fcinfo, 0, "topic");
    Message m{};
    m.value_null = PG_ARGISNULL(1);  // a NULL value is a tombstone, as in Kafka
    m.value = m.value_null ? Datum(0) : PG_GETARG_DATUM(1);
    m.key_null = PG_ARGISNULL(2);
    m.key = m.key_null ? Datum(0) : PG_GETARG_DATUM(2);
    m.headers_null = PG_ARGISNULL(3);
    m.headers = m.headers_null ? Datum(0) : PG_GETARG_DATUM(3);

    Topic topic = lookup_topic(PG_GETARG_TEXT_PP(0), RowExclusiveLock);
    require_topic_right(topic, PG_GETARG_TEXT_PP(0), Right::Produce);
    prepare_message(m, kind, -1, topic.max_message_bytes);
    if (!PG_ARGISNULL(4)) {
        m.partition = PG_GETARG_INT32(4);
        check_partition(topic, m.partition);
    } else if (!m.key_null) {
        m.partition = partition_for_key(m.key, topic.partitions);
    } else {
        m.partition = spread_partition(topic.partitions);
    }

    return write_one(fcinfo, topic, m);
}

// produce_record(topic, value bytea, key bytea, header_keys text[], header_values bytea[],
// partition, created_at): a message as a Kafka client sends it (binary key, headers in order
// with duplicates and null values, the client's timestamp).
Datum produce_record(FunctionCallInfo fcinfo)
{
    refuse_during_recovery("produce to a topic");
    PreventCommandIfReadOnly("pgtopic.produce_record");
    require_arg(fcinfo, 0, "topic");
    Message m{};
    m.value_null = PG_ARGISNULL(1);
    m.value = m.value_null ? Datum(0) : PG_GETARG_DATUM(1);
    if (!PG_ARGISNULL(2)) {
        bytea *key = PG_GETARG_BYTEA_PP(2);
        set_message_key(m, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
    }
    m.header_keys_null = PG_ARGISNULL(3);
    m.header_keys = m.header_keys_null ? Datum(0) : PG_GETARG_DATUM(3);
    m.header_values_null = PG_ARGISNULL(4);
    m.header_values = m.header_values_null ? Datum(0) : PG_GETARG_DATUM(4);
    m.created_at_null = PG_ARGISNULL(6);
    m.created_at = m.created_at_null ? 0 : PG_GETARG_TIMESTAMPTZ(6);
    if (!m.created_at_null && TIMESTAMP_NOT_FINITE(m.created_at))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("created_at must be a finite timestamp")));

    Topic topic = lookup_topic(PG_GETARG_TEXT_PP(0), RowExclusiveLock);
    require_topic_right(topic, PG_GETARG_TEXT_PP(0), Right::Produce);
    prepare_message(m, ValueKind::Bytea, -1, topic.max_message_bytes);
    if (!PG_ARGISNULL(5)) {
        m.partition = PG_GETARG_INT32(5);
        check_partition(topic, m.partition);
    } else if (!PG_ARGISNULL(2)) {
        m.partition = partition_for_key_bytes(PG_GETARG_DATUM(2), topic.partitions);
    } else {
        m.partition = spread_partition(topic.partitions);
    }

    return write_one(fcinfo, topic, m);
}

// Elements of a one-dimensional array argument (NULL array -> count 0 and nulls).
struct ArrayArg {
    Datum *values = nullptr;
    bool *nulls = nullptr;
    int count = 0;
    bool present = false;
};

ArrayArg array_arg(FunctionCallInfo fcinfo, int argno, const char *name)
{
    ArrayArg a;
    if (PG_ARGISNULL(argno))
        return a;
    ArrayType *arr = PG_GETARG_ARRAYTYPE_P(argno);
    if (ARR_NDIM(arr) > 1)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("%s must be a one-dimensional array", name)));
    int16 typlen;
    bool typbyval;
    char typalign;
    get_typlenbyvalalign(ARR_ELEMTYPE(arr), &typlen, &typbyval, &typalign);
    deconstruct_array(arr, ARR_ELEMTYPE(arr), typlen, typbyval, typalign, &a.values, &a.nulls, &a.count);
    a.present = true;
    return a;
}

// produce_batch (returns the count) and produce_batch_offsets (returns each message's partition
// and offset, in the order of the array).
Datum produce_many(FunctionCallInfo fcinfo, ValueKind kind, bool return_offsets)
{
    refuse_during_recovery("produce to a topic");
    PreventCommandIfReadOnly("pgtopic.produce_batch");
    require_arg(fcinfo, 0, "topic");
    require_arg(fcinfo, 1, "messages");
    // The byte limit first, from the arrays' raw sizes (messages, keys and headers): nothing is
    // detoasted or copied yet.
    Size array_bytes = 0;
    for (int argno = 1; argno <= 3; argno++)
        if (argno < PG_NARGS() && !PG_ARGISNULL(argno))
            array_bytes += toast_raw_datum_size(PG_GETARG_DATUM(argno));
    if (array_bytes > static_cast<Size>(max_batch_bytes))
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("messages, keys and headers arrays of %zu bytes exceed pgtopic.max_batch_bytes (%d)",
                               array_bytes, max_batch_bytes)));
    Topic topic = lookup_topic(PG_GETARG_TEXT_PP(0), RowExclusiveLock);
    require_topic_right(topic, PG_GETARG_TEXT_PP(0), Right::Produce);
    ArrayArg messages = array_arg(fcinfo, 1, "messages");
    if (messages.count > max_batch_messages)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("produce_batch of %d messages exceeds pgtopic.max_batch_messages (%d)", messages.count,
                               max_batch_messages)));
    ArrayArg keys = array_arg(fcinfo, 2, "keys");
    ArrayArg headers = array_arg(fcinfo, 3, "headers");
    if (keys.present && keys.count != messages.count)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("keys has %d elements but messages has %d", keys.count, messages.count)));
    if (headers.present && headers.count != messages.count)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("headers has %d elements but messages has %d", headers.count, messages.count)));

    int n = messages.count;
    auto *msgs = static_cast<Message *>(palloc0(sizeof(Message) * Max(n, 1)));
    for (int i = 0; i < n; i++) {
        Message &m = msgs[i];
        m = Message{};
        m.value = messages.values[i];
        m.value_null = messages.nulls[i];
        m.key_null = !keys.present || keys.nulls[i];
        m.key = m.key_null ? Datum(0) : keys.values[i];
        m.headers_null = !headers.present || headers.nulls[i];
        m.headers = m.headers_null ? Datum(0) : headers.values[i];
        prepare_message(m, kind, i, topic.max_message_bytes);
    }

    if (return_offsets)
        begin_materialized_result(fcinfo);
    if (n == 0) {
        if (return_offsets)
            return Datum(0);
        PG_RETURN_INT64(0);
    }

    // Partition each message, then group by partition keeping the array order (a stable
    // counting sort): messages with one key keep their order within their partition.
    // This frame owns std::vectors, so it calls PostgreSQL only through pg_call.
    const int32 parts = topic.partitions;
    std::vector<int> starts(static_cast<size_t>(parts) + 1, 0);
    for (int i = 0; i < n; i++) {
        Message &m = msgs[i];
        m.partition = m.key_null ? spread_partition(parts)
                                 : pg_call([&] { return partition_for_key(m.key, parts); });
        starts[static_cast<size_t>(m.partition) + 1]++;
    }
    std::partial_sum(starts.begin(), starts.end(), starts.begin());
    std::vector<int> fill(starts.begin(), starts.end() - 1);
    std::vector<Message> sorted(static_cast<size_t>(n));
    std::vector<int> position(static_cast<size_t>(n));  // sorted index of each array element
    for (int i = 0; i < n; i++) {
        int at = fill[static_cast<size_t>(msgs[i].partition)]++;
        sorted[static_cast<size_t>(at)] = msgs[i];
        position[static_cast<size_t>(i)] = at;
    }

    const TimestampTz now = GetCurrentTimestamp();
    std::vector<int64> first(static_cast<size_t>(parts), -1);
    for (int32 p = 0; p < parts; p++) {
        int begin = starts[static_cast<size_t>(p)], end = starts[static_cast<size_t>(p) + 1];
        if (end > begin)
            first[static_cast<size_t>(p)] =
                pg_call([&] { return write_partition(topic, p, sorted.data() + begin, end - begin, now); });
    }
    if (!return_offsets)
        PG_RETURN_INT64(n);

    // One partition's messages got consecutive offsets, in array order.
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    pg_call([&] {
        for (int i = 0; i < n; i++) {
            int32 p = msgs[i].partition;
            int64 offset = first[static_cast<size_t>(p)] + (position[static_cast<size_t>(i)] - starts[static_cast<size_t>(p)]);
            Datum values[3] = {Int32GetDatum(i + 1), Int32GetDatum(p), Int64GetDatum(offset)};
            bool nulls[3] = {false, false, false};
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        }
    });
    return Datum(0);
}

}  // namespace

int64 produce_to_partition(text *topic_name, int32 partition, StoredMessage *msgs, int n)
{
    refuse_during_recovery("produce to a topic");
    PreventCommandIfReadOnly("pgtopic.produce_batch");
    Topic topic = lookup_topic(topic_name, RowExclusiveLock);
    require_topic_right(topic, topic_name, Right::Produce);
    check_partition(topic, partition);
    if (n > max_batch_messages)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("a batch of %d messages exceeds pgtopic.max_batch_messages (%d)", n, max_batch_messages)));
    for (int i = 0; i < n; i++) {
        msgs[i].partition = partition;
        prepare_message(msgs[i], ValueKind::Bytea, i, topic.max_message_bytes);
    }
    return n > 0 ? write_partition(topic, partition, msgs, n, GetCurrentTimestamp()) : -1;
}

}  // namespace pgtopic

using pgtopic::ValueKind;

PGTOPIC_FUNCTION(pgtopic_produce_bytea) { return pgtopic::produce_one(fcinfo, ValueKind::Bytea); }
PGTOPIC_FUNCTION(pgtopic_produce_text) { return pgtopic::produce_one(fcinfo, ValueKind::Text); }
PGTOPIC_FUNCTION(pgtopic_produce_jsonb) { return pgtopic::produce_one(fcinfo, ValueKind::Jsonb); }
PGTOPIC_FUNCTION(pgtopic_produce_record) { return pgtopic::produce_record(fcinfo); }
PGTOPIC_FUNCTION(pgtopic_produce_batch_bytea) { return pgtopic::produce_many(fcinfo, ValueKind::Bytea, false); }
PGTOPIC_FUNCTION(pgtopic_produce_batch_text) { return pgtopic::produce_many(fcinfo, ValueKind::Text, false); }
PGTOPIC_FUNCTION(pgtopic_produce_batch_jsonb) { return pgtopic::produce_many(fcinfo, ValueKind::Jsonb, false); }
PGTOPIC_FUNCTION(pgtopic_produce_batch_offsets_bytea) { return pgtopic::produce_many(fcinfo, ValueKind::Bytea, true); }
PGTOPIC_FUNCTION(pgtopic_produce_batch_offsets_text) { return pgtopic::produce_many(fcinfo, ValueKind::Text, true); }
PGTOPIC_FUNCTION(pgtopic_produce_batch_offsets_jsonb) { return pgtopic::produce_many(fcinfo, ValueKind::Jsonb, true); }
