// Reading a partition in offset order, never above the last stable offset, straight from the
// leaf segments' primary-key indexes; and fetch, the raw read without a group.
#include "guard.hpp"
#include "pgtopic.hpp"

namespace pgtopic {
namespace {

// The two result shapes a read appends (StoredColumn in pgtopic.hpp is the stored one):
//  - text keys (fetch, consume and the converting readers' stored rows): partition, msg_offset,
//    key text, value bytea, headers jsonb, produced_at;
//  - records (fetch_records, consume_records): partition, msg_offset, key bytea, value bytea,
//    header_keys text[], header_values bytea[], created_at, produced_at.
constexpr int TEXT_KEY_COLUMNS = 6;
constexpr int RECORD_COLUMNS = 8;

// Bytes a poll may still return (begin_poll): keys, values and headers as the caller gets them,
// i.e. decompressed. A poll returns at least one message.
int64 poll_bytes_left = 0;
bool poll_returned_any = false;
// Offsets of the rows appended since log_rows() (consume needs them to know what the caller read).
int64 *row_log = nullptr;
int64 row_log_count = 0;
// peek_partition: a segment that had nothing to return gives its locks back at once.
bool unlock_if_empty = false;

void log_row(int64 offset)
{
    if (row_log != nullptr)
        row_log[row_log_count++] = offset;
}

// What one row costs the poll's budget: its key, value and headers as stored (raw size of a
// compressed or out-of-line datum, read from its header without decompressing it).
int64 returned_bytes(const Datum *values, const bool *nulls)
{
    static const int counted[] = {COL_KEY, COL_VALUE, COL_HEADERS, COL_KEY_BYTES, COL_HEADER_KEYS, COL_HEADER_VALUES};
    int64 bytes = 0;
    for (int i : counted)
        if (!nulls[i])
            bytes += static_cast<int64>(toast_raw_datum_size(values[i]));
    return bytes;
}

// A stored row (values fetched in line) in the result's shape; *derived: out[derived_at] was
// made here (the caller frees it).
void shape_row(const Datum *sv, const bool *sn, int result_natts, Datum *out, bool *on, int *derived_at)
{
    *derived_at = -1;
    out[0] = sv[COL_PARTITION];
    on[0] = sn[COL_PARTITION];
    out[1] = sv[COL_OFFSET];
    on[1] = sn[COL_OFFSET];
    out[3] = sv[COL_VALUE];
    on[3] = sn[COL_VALUE];
    if (result_natts == TEXT_KEY_COLUMNS) {
        out[2] = sv[COL_KEY];  // NULL for a key that is not text (it is in key_bytes)
        on[2] = sn[COL_KEY];
        out[4] = sv[COL_HEADERS];
        on[4] = sn[COL_HEADERS];
        if (sn[COL_HEADERS] && !sn[COL_HEADER_KEYS] && !sn[COL_HEADER_VALUES]) {
            out[4] = headers_jsonb_from_arrays(sv[COL_HEADER_KEYS], sv[COL_HEADER_VALUES]);
            on[4] = false;
            *derived_at = 4;
        }
        out[5] = sv[COL_PRODUCED_AT];
        on[5] = sn[COL_PRODUCED_AT];
        return;
    }
    // text and bytea share their varlena layout: a text key is returned as its bytes.
    bool bytes_key = !sn[COL_KEY_BYTES];
    out[2] = bytes_key ? sv[COL_KEY_BYTES] : sv[COL_KEY];
    on[2] = bytes_key ? false : sn[COL_KEY];
    out[4] = sv[COL_HEADER_KEYS];
    on[4] = sn[COL_HEADER_KEYS];
    out[5] = sv[COL_HEADER_VALUES];
    on[5] = sn[COL_HEADER_VALUES];
    if (on[4] && !sn[COL_HEADERS]) {
        header_arrays_from_jsonb(sv[COL_HEADERS], &out[4], &out[5]);
        on[4] = on[5] = false;
        *derived_at = 4;
    }
    out[6] = sv[COL_CREATED_AT];
    on[6] = sn[COL_CREATED_AT];
    out[7] = sv[COL_PRODUCED_AT];
    on[7] = sn[COL_PRODUCED_AT];
}

// Appends rows [from, below) of one segment to the result; returns how many.
int64 read_segment(Oid leaf, int32 partition, int64 from, int64 below, int64 limit, Snapshot snapshot,
                   ReturnSetInfo *rsinfo, int64 *last_offset)
{
    // Retention may drop the segment between its look-up by name and this lock (DROP TABLE
    // holds it meanwhile): then there is nothing left to read in it.
    if (!lock_existing_relation(leaf, AccessShareLock))
        return 0;
    Relation rel = table_open(leaf, NoLock);
    RelationGetIndexList(rel);  // fills rd_pkindex
    Oid pk = rel->rd_pkindex;
    if (!OidIsValid(pk))
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("segment \"%s\" has no primary key", RelationGetRelationName(rel))));
    Relation index = index_open(pk, AccessShareLock);

    ScanKeyData keys[3];
    ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(partition));
    ScanKeyInit(&keys[1], 2, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(from));
    ScanKeyInit(&keys[2], 2, BTLessStrategyNumber, F_INT8LT, Int64GetDatum(below));
    IndexScanDesc scan = index_beginscan(rel, index, snapshot, 3, 0);
    index_rescan(scan, keys, 3, nullptr, 0);
    TupleTableSlot *slot = table_slot_create(rel, nullptr);

    const int result_natts = rsinfo->setDesc->natts;
    const int stored_natts = RelationGetDescr(rel)->natts;  // 6 until ALTER EXTENSION pgtopic UPDATE
    if ((stored_natts != N_STORED_COLUMNS && stored_natts != N_STORED_COLUMNS_BEFORE_030) ||
        (result_natts != TEXT_KEY_COLUMNS && result_natts != RECORD_COLUMNS))
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                        errmsg("segment \"%s\" has %d columns, not pgtopic's %d", RelationGetRelationName(rel),
                               stored_natts, static_cast<int>(N_STORED_COLUMNS))));
    int64 count = 0;
    Datum values[N_STORED_COLUMNS];
    bool nulls[N_STORED_COLUMNS];
    Datum out[RECORD_COLUMNS];
    bool out_nulls[RECORD_COLUMNS];
    while (count < limit && (poll_bytes_left > 0 || !poll_returned_any) &&
           index_getnext_slot(scan, ForwardScanDirection, slot)) {
        slot_getallattrs(slot);
        bool fetched[N_STORED_COLUMNS] = {};
        bool any_fetched = false;
        for (int i = 0; i < N_STORED_COLUMNS; i++) {
            if (i >= stored_natts) {
                values[i] = Datum(0);
                nulls[i] = true;
                continue;
            }
            values[i] = slot->tts_values[i];
            nulls[i] = slot->tts_isnull[i];
            // Out-of-line values are fetched now, while the snapshot is registered.
            fetched[i] = !nulls[i] && i > COL_OFFSET && TupleDescAttr(slot->tts_tupleDescriptor, i)->attlen == -1 &&
                         VARATT_IS_EXTERNAL(DatumGetPointer(values[i]));
            if (fetched[i]) {
                values[i] = PointerGetDatum(detoast_external_attr(reinterpret_cast<struct varlena *>(DatumGetPointer(values[i]))));
                any_fetched = true;
            }
        }
        int derived_at;
        shape_row(values, nulls, result_natts, out, out_nulls, &derived_at);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, out_nulls);
        *last_offset = DatumGetInt64(values[COL_OFFSET]);
        log_row(*last_offset);
        poll_bytes_left -= returned_bytes(values, nulls);
        poll_returned_any = true;
        // The tuplestore has its own copy (spilled to disk past work_mem): a poll of many large
        // messages must not keep every fetched value in this call's memory.
        if (any_fetched)
            for (int i = 0; i < N_STORED_COLUMNS; i++)
                if (fetched[i])
                    pfree(DatumGetPointer(values[i]));
        if (derived_at >= 0) {
            pfree(DatumGetPointer(out[derived_at]));
            if (result_natts == RECORD_COLUMNS)
                pfree(DatumGetPointer(out[derived_at + 1]));
        }
        count++;
    }

    ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    LOCKMODE release = unlock_if_empty && count == 0 ? AccessShareLock : NoLock;
    index_close(index, release);
    table_close(rel, release);
    return count;
}

}  // namespace

void begin_poll(int32 max_messages)
{
    if (max_messages > max_poll_messages)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("max_messages %d exceeds pgtopic.max_poll_messages (%d)", max_messages,
                               max_poll_messages)));
    poll_bytes_left = max_poll_bytes;
    poll_returned_any = false;
}

void log_rows(int64 *buffer)
{
    row_log = buffer;
    row_log_count = 0;
}

int64 rows_logged()
{
    return row_log_count;
}

bool poll_budget_spent()
{
    return poll_returned_any && poll_bytes_left <= 0;
}

ReadResult read_partition(const Topic &topic, int32 partition, int64 from, int64 limit, int64 lso,
                          Snapshot snapshot, ReturnSetInfo *rsinfo)
{
    // The caller read `lso` before taking `snapshot`: everything below the LSO had ended before
    // the snapshot was taken, so the snapshot sees every committed message below it. Callers use
    // a fresh snapshot, also under REPEATABLE READ, where the transaction's snapshot may be older
    // than the LSO and would hide committed messages below it.
    ReadResult result{0, from};
    int64 offset = from;
    while (result.count < limit && offset < lso && !poll_budget_spent()) {
        int64 segment = offset / topic.segment_size;
        int64 segment_end = Min((segment + 1) * topic.segment_size, lso);
        Oid leaf = segment_relid(topic, partition, segment);
        int64 last = -1;
        if (OidIsValid(leaf))
            result.count += read_segment(leaf, partition, offset, segment_end, limit - result.count, snapshot,
                                         rsinfo, &last);
        if ((result.count >= limit || poll_bytes_left <= 0) && last >= 0) {
            result.next_offset = last + 1;
            return result;
        }
        offset = segment_end;
    }
    // Everything below the LSO has been read (gaps, rolled-back offsets, are skipped for good),
    // or the byte budget ran out at a segment boundary.
    result.next_offset = Max(from, Min(offset, lso));
    return result;
}

bool peek_partition(const Topic &topic, int32 partition, int64 from, int64 lso, TupleDesc desc, int64 *next_offset)
{
    ReturnSetInfo scratch;
    memset(&scratch, 0, sizeof scratch);
    scratch.type = T_ReturnSetInfo;
    scratch.setDesc = desc;
    scratch.setResult = tuplestore_begin_heap(false, false, work_mem);
    int64 saved_bytes = poll_bytes_left;
    bool saved_any = poll_returned_any;
    int64 *saved_log = row_log;
    row_log = nullptr;
    poll_bytes_left = 1;
    poll_returned_any = false;
    unlock_if_empty = true;
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    ReadResult r = read_partition(topic, partition, from, 1, lso, snapshot, &scratch);
    UnregisterSnapshot(snapshot);
    unlock_if_empty = false;
    poll_bytes_left = saved_bytes;
    poll_returned_any = saved_any;
    row_log = saved_log;
    tuplestore_end(scratch.setResult);
    *next_offset = r.next_offset;
    return r.count > 0;
}

}  // namespace pgtopic

using namespace pgtopic;

namespace pgtopic {
namespace {

// fetch, fetch_text and fetch_json: (topic, partition, from_offset, max_messages, wait_ms).
Datum fetch(FunctionCallInfo fcinfo, ValueAs as)
{
    require_args(fcinfo, {"topic", "partition", "from_offset", "max_messages"});
    text *topic_name = PG_GETARG_TEXT_PP(0);
    int32 partition = PG_GETARG_INT32(1);
    int64 from = PG_GETARG_INT64(2);
    int32 max_messages = PG_GETARG_INT32(3);
    // 0.3.0: wait_ms (the 0.2.0 declaration has one argument fewer)
    int32 wait_ms = PG_NARGS() >= 5 && !PG_ARGISNULL(4) ? PG_GETARG_INT32(4) : 0;
    require_nonnegative(from, "from_offset");
    require_nonnegative(max_messages, "max_messages");
    require_nonnegative(wait_ms, "wait_ms");

    Topic topic = lookup_topic(topic_name, AccessShareLock);
    require_topic_right(topic, topic_name, Right::Consume);
    check_partition(topic, partition);
    begin_poll(max_messages);

    begin_materialized_result(fcinfo);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    TupleDesc stored_desc = stored_row_desc_for(as, rsinfo->setDesc);

    long_poll(
        topic, wait_ms,
        [&] {
            int64 lso = partition_offsets(topic, partition).last_stable_offset;
            int64 next = from;
            return lso > from && peek_partition(topic, partition, from, lso, stored_desc, &next);
        },
        [&] {
            topic = lookup_topic(topic_name, AccessShareLock);
            require_topic_right(topic, topic_name, Right::Consume);
            check_partition(topic, partition);
        });

    // The LSO first, then the snapshot (see read_partition).
    int64 lso = partition_offsets(topic, partition).last_stable_offset;
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    if (as == ValueAs::Bytes) {
        (void) read_partition(topic, partition, from, max_messages, lso, snapshot, rsinfo);
    } else {
        ReturnSetInfo stored = *rsinfo;
        stored.setDesc = stored_desc;
        stored.setResult = tuplestore_begin_heap(false, false, work_mem);
        (void) read_partition(topic, partition, from, max_messages, lso, snapshot, &stored);
        emit_converted(rsinfo, stored.setResult, stored_desc, as);
    }
    UnregisterSnapshot(snapshot);
    return Datum(0);
}

}  // namespace
}  // namespace pgtopic

PGTOPIC_FUNCTION(pgtopic_fetch) { return pgtopic::fetch(fcinfo, pgtopic::ValueAs::Bytes); }
PGTOPIC_FUNCTION(pgtopic_fetch_text) { return pgtopic::fetch(fcinfo, pgtopic::ValueAs::Text); }
PGTOPIC_FUNCTION(pgtopic_fetch_json) { return pgtopic::fetch(fcinfo, pgtopic::ValueAs::Json); }
PGTOPIC_FUNCTION(pgtopic_fetch_records) { return pgtopic::fetch(fcinfo, pgtopic::ValueAs::Bytes); }

PGTOPIC_FUNCTION(pgtopic_partition_offsets)
{
    require_arg(fcinfo, 0, "topic");
    Topic topic = lookup_topic(PG_GETARG_TEXT_PP(0), AccessShareLock);
    require_any_topic_right(topic, PG_GETARG_TEXT_PP(0));
    begin_materialized_result(fcinfo);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (int32 p = 0; p < topic.partitions; p++) {
        PartitionOffsets o = partition_offsets(topic, p);
        Datum values[4] = {Int32GetDatum(p), Int64GetDatum(log_start_offset(topic, p, o.last_stable_offset)),
                           Int64GetDatum(o.high_watermark), Int64GetDatum(o.last_stable_offset)};
        bool nulls[4] = {false, false, false, false};
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return Datum(0);
}

// Kafka's offsetsForTimes: the first offset whose message's time (created_at, else produced_at)
// is at or after ts, or the last stable offset when there is none. Scans the partition (no index).
PGTOPIC_FUNCTION(pgtopic_offset_for_time)
{
    require_args(fcinfo, {"topic", "partition", "ts"});
    int32 partition = PG_GETARG_INT32(1);
    Topic topic = lookup_topic(PG_GETARG_TEXT_PP(0), AccessShareLock);
    require_topic_right(topic, PG_GETARG_TEXT_PP(0), Right::Consume);
    check_partition(topic, partition);
    PG_RETURN_INT64(offset_for_time(topic, partition, PG_GETARG_TIMESTAMPTZ(2)));
}

int64 pgtopic::offset_for_time(const Topic &topic, int32 partition, TimestampTz ts)
{
    int64 lso = partition_offsets(topic, partition).last_stable_offset;

    // A message's time is the client's CreateTime when it gave one (as Kafka's ListOffsets),
    // else produced_at; a table not yet updated to 0.3.0 has produced_at only.
    const bool has_created_at = get_attnum(topic.root_relid, "created_at") != InvalidAttrNumber;
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT min(msg_offset) FROM pgtopic_data.topic_%d_p%d WHERE %s >= $1 AND msg_offset < $2", topic.id,
             partition, has_created_at ? "coalesce(created_at, produced_at)" : "produced_at");
    Oid argtypes[2] = {TIMESTAMPTZOID, INT8OID};
    Datum values[2] = {TimestampTzGetDatum(ts), Int64GetDatum(lso)};
    InternalScope scope = internal_begin();
    int rc = SPI_execute_with_args(sql, 2, argtypes, values, nullptr, true, 1);
    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not search partition %d", partition)));
    bool isnull = false;
    Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    int64 result = isnull ? lso : DatumGetInt64(d);
    internal_end(scope);
    return result;
}
