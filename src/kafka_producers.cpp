// Idempotent Kafka producers in the listener (docs/kafka.md, "Idempotent producers"):
// InitProducerId hands out producer ids from pgtopic.kafka_producer_id_seq (never reused: a
// sequence is WAL-logged ahead of the values it returns, and the allocating transaction's commit
// flushes it); a Produce batch that carries a producer id is checked against the producer's
// state on its partition (src/kafka/producer_sequence.hpp: Kafka's rules) before its records are
// written, and the new state is written to pgtopic.catalog_kafka_producers in the same
// subtransaction as the records, inside the request's transaction: records and state commit or
// roll back together, so a retry after a crash or a lost response finds the batch and gets its
// original base offset.
//
// The listener keeps a cache of the state (a hash table bounded by
// pgtopic.kafka_producer_cache_size, least recently used entries dropped), filled lazily from
// the table (so after a restart). A transaction's changes are kept beside the cached state and
// become it only when the transaction commits (a transaction callback that allocates nothing).
// State idle for pgtopic.kafka_producer_expiration is deleted by the listener (expire_producers)
// and treated as absent before that; a dropped topic's state goes with it (a trigger).
//
// These are plain functions (no C++ object with a destructor lives in their frames); the ones
// that run in the request's transaction catch PostgreSQL errors themselves.
#include "kafka/producer_sequence.hpp"
#include "kafka_server.hpp"
#include "pgtopic.hpp"

namespace pgtopic::kafka_server {

int producer_expiration_ms = 7 * 24 * 3600 * 1000;
int producer_cache_size = 100000;

namespace {

using kafka::ProducerPartitionState;

struct ProducerKey {
    int64 producer_id;
    int32 topic_id;
    int32 partition;
};

struct ProducerEntry {
    ProducerKey key;
    bool valid;  // state holds the committed state (else: read the table)
    bool has_pending;
    ProducerPartitionState state;
    ProducerPartitionState pending;  // written by the current transaction
    TimestampTz updated;             // when state was last written
    uint64 used;
};

HTAB *cache = nullptr;
uint64 use_counter = 0;
ProducerEntry **pending = nullptr;  // entries with has_pending, in the listener's context
int n_pending = 0;
int pending_capacity = 0;
int64 max_allocated = 0;  // the highest producer id known to be handed out

void at_transaction_end(XactEvent event, void *)
{
    if (n_pending == 0)
        return;
    // No allocation here (an error after the commit record is a PANIC).
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) {
        TimestampTz now = GetCurrentTimestamp();
        for (int i = 0; i < n_pending; i++) {
            pending[i]->state = pending[i]->pending;
            pending[i]->valid = true;
            pending[i]->has_pending = false;
            pending[i]->updated = now;
        }
        n_pending = 0;
    } else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT) {
        for (int i = 0; i < n_pending; i++)
            pending[i]->has_pending = false;
        n_pending = 0;
    }
}

void ensure_cache()
{
    if (cache != nullptr)
        return;
    HASHCTL ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.keysize = sizeof(ProducerKey);
    ctl.entrysize = sizeof(ProducerEntry);
    ctl.hcxt = AllocSetContextCreate(TopMemoryContext, "pgtopic kafka producers", ALLOCSET_DEFAULT_SIZES);
    cache = hash_create("pgtopic kafka producers", 1024, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    pending_capacity = 16;
    pending = static_cast<ProducerEntry **>(MemoryContextAlloc(ctl.hcxt, sizeof(ProducerEntry *) * pending_capacity));
    RegisterXactCallback(at_transaction_end, nullptr);
}

// Drops the least recently used half when the cache is over its size (never an entry the
// current transaction changed).
void evict()
{
    long n = hash_get_num_entries(cache);
    if (n <= producer_cache_size)
        return;
    uint64 keep_after = use_counter - static_cast<uint64>(Max(producer_cache_size / 2, 1));
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, cache);
    while (auto *e = static_cast<ProducerEntry *>(hash_seq_search(&status)))
        if (!e->has_pending && e->used <= keep_after)
            (void) hash_search(cache, &e->key, HASH_REMOVE, nullptr);
}

bool expired(TimestampTz updated)
{
    return producer_expiration_ms > 0 &&
           updated < TimestampTzPlusMilliseconds(GetCurrentTimestamp(), -static_cast<int64>(producer_expiration_ms));
}

// The table's row for the key, as the extension's owner: false when there is none.
bool read_state(const ProducerKey &key, ProducerPartitionState *st, TimestampTz *updated)
{
    InternalScope scope = internal_begin();
    Oid types[3] = {INT8OID, INT4OID, INT4OID};
    Datum args[3] = {Int64GetDatum(key.producer_id), Int32GetDatum(key.topic_id), Int32GetDatum(key.partition)};
    int rc = SPI_execute_with_args("SELECT producer_epoch, last_sequence, batches, updated_at "
                                   "FROM pgtopic.catalog_kafka_producers "
                                   "WHERE producer_id = $1 AND topic_id = $2 AND \"partition\" = $3",
                                   3, types, args, nullptr, true, 1);
    if (rc != SPI_OK_SELECT)
        elog(ERROR, "pgtopic kafka: reading producer state failed: %s", SPI_result_code_string(rc));
    bool found = SPI_processed == 1;
    if (found) {
        HeapTuple tuple = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool isnull;
        *st = ProducerPartitionState();
        st->epoch = DatumGetInt16(SPI_getbinval(tuple, desc, 1, &isnull));
        st->last_sequence = DatumGetInt32(SPI_getbinval(tuple, desc, 2, &isnull));
        ArrayType *a = DatumGetArrayTypeP(SPI_getbinval(tuple, desc, 3, &isnull));
        Datum *elems;
        bool *nulls;
        int count;
        deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &count);
        for (int i = 0; i + 2 < count && st->n_batches < kafka::producer_batches_kept; i += 3) {
            auto &b = st->batches[st->n_batches++];
            b.first_sequence = static_cast<int32>(DatumGetInt64(elems[i]));
            b.last_sequence = static_cast<int32>(DatumGetInt64(elems[i + 1]));
            b.first_offset = DatumGetInt64(elems[i + 2]);
        }
        *updated = DatumGetTimestampTz(SPI_getbinval(tuple, desc, 4, &isnull));
    }
    internal_end(scope);
    return found;
}

void write_state(const ProducerKey &key, const ProducerPartitionState &st)
{
    Datum triples[3 * kafka::producer_batches_kept];
    for (int i = 0; i < st.n_batches; i++) {
        triples[3 * i] = Int64GetDatum(st.batches[i].first_sequence);
        triples[3 * i + 1] = Int64GetDatum(st.batches[i].last_sequence);
        triples[3 * i + 2] = Int64GetDatum(st.batches[i].first_offset);
    }
    ArrayType *batches = construct_array(triples, 3 * st.n_batches, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
    InternalScope scope = internal_begin();
    Oid types[6] = {INT8OID, INT4OID, INT4OID, INT2OID, INT4OID, INT8ARRAYOID};
    Datum args[6] = {Int64GetDatum(key.producer_id), Int32GetDatum(key.topic_id), Int32GetDatum(key.partition),
                     Int16GetDatum(st.epoch),         Int32GetDatum(st.last_sequence), PointerGetDatum(batches)};
    int rc = SPI_execute_with_args(
        "INSERT INTO pgtopic.catalog_kafka_producers AS p "
        "  (producer_id, topic_id, \"partition\", producer_epoch, last_sequence, batches, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, statement_timestamp()) "
        "ON CONFLICT (producer_id, topic_id, \"partition\") DO UPDATE SET producer_epoch = EXCLUDED.producer_epoch, "
        "  last_sequence = EXCLUDED.last_sequence, batches = EXCLUDED.batches, updated_at = EXCLUDED.updated_at",
        6, types, args, nullptr, false, 0);
    if (rc != SPI_OK_INSERT)
        elog(ERROR, "pgtopic kafka: writing producer state failed: %s", SPI_result_code_string(rc));
    internal_end(scope);
}

// The highest producer id handed out so far, from the sequence.
int64 sequence_last_value()
{
    InternalScope scope = internal_begin();
    int rc = SPI_execute("SELECT coalesce(pg_catalog.pg_sequence_last_value('pgtopic.kafka_producer_id_seq'), 0)",
                         true, 1);
    int64 v = 0;
    if (rc == SPI_OK_SELECT && SPI_processed == 1) {
        bool isnull;
        v = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    }
    internal_end(scope);
    return v;
}

// The state the current transaction sees: its own change, the cached state, or the table's.
ProducerEntry *lookup(const ProducerKey &key, ProducerPartitionState *st)
{
    ensure_cache();
    evict();
    bool found;
    auto *e = static_cast<ProducerEntry *>(hash_search(cache, &key, HASH_ENTER, &found));
    if (!found) {
        e->valid = false;
        e->has_pending = false;
    }
    e->used = ++use_counter;
    if (!e->valid) {
        TimestampTz updated = 0;
        ProducerPartitionState loaded;
        if (!read_state(key, &loaded, &updated))
            loaded = ProducerPartitionState();
        e->state = loaded;
        e->updated = updated;
        e->valid = true;
    }
    if (e->has_pending)
        *st = e->pending;
    else if (expired(e->updated))
        *st = ProducerPartitionState();  // as if unknown (the listener deletes its row)
    else
        *st = e->state;
    return e;
}

void add_pending(ProducerEntry *e, const ProducerPartitionState &st)
{
    if (!e->has_pending) {
        if (n_pending == pending_capacity) {
            pending = static_cast<ProducerEntry **>(repalloc(pending, sizeof(ProducerEntry *) * pending_capacity * 2));
            pending_capacity *= 2;
        }
        pending[n_pending++] = e;
        e->has_pending = true;
    }
    e->pending = st;
}

void copy_error(int *sqlstate, char *message, std::size_t size, MemoryContext cx)
{
    MemoryContextSwitchTo(cx);
    ErrorData *e = CopyErrorData();
    FlushErrorState();
    *sqlstate = e->sqlerrcode;
    strlcpy(message, e->message ? e->message : "", size);
    FreeErrorData(e);
}

}  // namespace

bool allocate_producer_id(int64 *producer_id, int *sqlstate, char *message, std::size_t message_size)
{
    MemoryContext cx = CurrentMemoryContext;
    volatile bool ok = true;
    PG_TRY();
    {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        PushActiveSnapshot(GetTransactionSnapshot());
        pgstat_report_activity(STATE_RUNNING, "pgtopic kafka: InitProducerId");
        refuse_during_recovery("allocate a Kafka producer id");
        InternalScope scope = internal_begin();
        int rc = SPI_execute("SELECT pg_catalog.nextval('pgtopic.kafka_producer_id_seq')", false, 1);
        if (rc != SPI_OK_SELECT || SPI_processed != 1)
            elog(ERROR, "pgtopic kafka: nextval failed: %s", SPI_result_code_string(rc));
        bool isnull;
        *producer_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        internal_end(scope);
        PopActiveSnapshot();
        CommitTransactionCommand();  // flushes the sequence's WAL record before the id is handed out
        max_allocated = Max(max_allocated, *producer_id);
    }
    PG_CATCH();
    {
        copy_error(sqlstate, message, message_size, cx);
        AbortCurrentTransaction();
        ok = false;
    }
    PG_END_TRY();
    pgstat_report_activity(STATE_IDLE, nullptr);
    MemoryContextSwitchTo(cx);
    return ok;
}

IdempotentOutcome produce_partition_idempotent(const char *topic, std::int32_t partition, const ProducerIds &ids,
                                               const ProduceBatch *b, std::int64_t *first, std::int16_t *kafka_error,
                                               int *sqlstate, char *message, std::size_t message_size)
{
    MemoryContext cx = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    volatile IdempotentOutcome outcome = IdempotentOutcome::failed;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(cx);
    PG_TRY();
    {
        text *name = cstring_to_text(topic);
        Topic t = lookup_topic(name, RowExclusiveLock);
        require_topic_right(t, name, Right::Produce);  // a duplicate needs the right as much as a write
        check_partition(t, partition);
        ProducerKey key{ids.producer_id, t.id, partition};
        ProducerPartitionState st;
        ProducerEntry *e = lookup(key, &st);
        if (st.epoch < 0 && ids.producer_id > max_allocated)
            max_allocated = Max(max_allocated, sequence_last_value());
        kafka::SequenceCheck check;
        if (st.epoch < 0 && ids.producer_id > max_allocated) {
            check.kind = kafka::SequenceCheck::refuse;  // an id pgtopic never handed out
            check.error = kafka::ErrorCode::unknown_producer_id;
        } else {
            check = kafka::check_sequence(st, ids.epoch, ids.base_sequence, ids.count);
        }
        if (check.kind == kafka::SequenceCheck::duplicate) {
            *first = check.duplicate_offset;
            outcome = IdempotentOutcome::duplicate;
        } else if (check.kind == kafka::SequenceCheck::refuse) {
            *kafka_error = kafka::code(check.error);
            outcome = IdempotentOutcome::refused;
        } else if (!produce_partition(topic, partition, b, first, sqlstate, message, message_size)) {
            outcome = IdempotentOutcome::failed;  // its own subtransaction was rolled back
        } else {
            kafka::record_append(st, ids.epoch, ids.base_sequence, ids.count, *first);
            write_state(key, st);
            add_pending(e, st);
            outcome = IdempotentOutcome::written;
        }
        ReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(cx);
        CurrentResourceOwner = owner;
    }
    PG_CATCH();
    {
        copy_error(sqlstate, message, message_size, cx);
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(cx);
        CurrentResourceOwner = owner;
        outcome = IdempotentOutcome::failed;
    }
    PG_END_TRY();
    return outcome;
}

long expire_producers()
{
    static TimestampTz next_run = 0;
    static int last_expiration_ms = -1;
    TimestampTz now = GetCurrentTimestamp();
    if (producer_expiration_ms <= 0)
        return -1;
    if (producer_expiration_ms != last_expiration_ms)
        next_run = 0;  // the setting changed (reload): a pass now
    last_expiration_ms = producer_expiration_ms;
    if (now < next_run)
        return static_cast<long>((next_run - now + 999) / 1000);
    // Once a minute, or a tenth of the expiration when that is shorter (tests).
    long every_ms = Min(60000L, Max(100L, static_cast<long>(producer_expiration_ms / 10)));
    next_run = TimestampTzPlusMilliseconds(now, every_ms);
    MemoryContext cx = CurrentMemoryContext;
    PG_TRY();
    {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        PushActiveSnapshot(GetTransactionSnapshot());
        pgstat_report_activity(STATE_RUNNING, "pgtopic kafka: expire producer state");
        (void) set_config_option("lock_timeout", "200ms", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
                                 false);
        if (!RecoveryInProgress() && OidIsValid(get_namespace_oid("pgtopic", true)) &&
            OidIsValid(get_relname_relid("catalog_kafka_producers", get_namespace_oid("pgtopic", true)))) {
            InternalScope scope = internal_begin();
            Oid types[1] = {INT8OID};
            Datum args[1] = {Int64GetDatum(producer_expiration_ms)};
            int rc = SPI_execute_with_args("DELETE FROM pgtopic.catalog_kafka_producers "
                                           "WHERE updated_at < statement_timestamp() - $1 * interval '1 millisecond'",
                                           1, types, args, nullptr, false, 0);
            if (rc == SPI_OK_DELETE && SPI_processed > 0)
                ereport(DEBUG1, (errmsg("pgtopic kafka: expired the state of %llu producer partitions",
                                        static_cast<unsigned long long>(SPI_processed))));
            internal_end(scope);
        }
        PopActiveSnapshot();
        CommitTransactionCommand();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(cx);
        EmitErrorReport();  // e.g. a lock timeout: the next pass tries again
        FlushErrorState();
        AbortCurrentTransaction();
    }
    PG_END_TRY();
    pgstat_report_activity(STATE_IDLE, nullptr);
    MemoryContextSwitchTo(cx);
    if (cache != nullptr) {
        HASH_SEQ_STATUS status;
        hash_seq_init(&status, cache);
        while (auto *e = static_cast<ProducerEntry *>(hash_seq_search(&status)))
            if (!e->has_pending && e->valid && expired(e->updated))
                (void) hash_search(cache, &e->key, HASH_REMOVE, nullptr);
    }
    return every_ms;
}

void define_producer_settings()
{
    DefineCustomIntVariable("pgtopic.kafka_producer_expiration",
                            "Idle time after which an idempotent Kafka producer's state is forgotten.",
                            "Kafka's transactional.id.expiration.ms. A producer idle for longer is treated as "
                            "new: its next batch is accepted whatever its sequence. 0 keeps the state forever.",
                            &producer_expiration_ms, 7 * 24 * 3600 * 1000, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("pgtopic.kafka_producer_cache_size",
                            "Producer partitions whose sequence state the Kafka listener keeps in memory.",
                            "Others are read from pgtopic.catalog_kafka_producers when they produce.",
                            &producer_cache_size, 100000, 16, 10000000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
}

}  // namespace pgtopic::kafka_server
