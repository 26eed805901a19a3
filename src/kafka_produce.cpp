// The PostgreSQL side of the Kafka listener's Produce (docs/kafka.md): one transaction per
// request, a subtransaction per partition (so that one partition's error, e.g. a missing right
// or a lock timeout, leaves the others written), and the commit before any response is queued.
// These are plain functions (no C++ object with a destructor lives in their frames); each
// catches PostgreSQL errors itself and reports the SQLSTATE and message.
#include "kafka_server.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "access/xlog.h"
#include "replication/syncrep.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "utils/guc.h"
#include "datatype/timestamp.h"
}

namespace pgtopic::kafka_server {

namespace {

void copy_error(int *sqlstate, char *message, std::size_t size, MemoryContext cx)
{
    MemoryContextSwitchTo(cx);
    ErrorData *e = CopyErrorData();
    FlushErrorState();
    *sqlstate = e->sqlerrcode;
    strlcpy(message, e->message ? e->message : "", size);
    FreeErrorData(e);
}

// After a commit: did the synchronous standbys confirm it (as synchronous_commit asks)? False
// when the wait was cut short (SyncRepWaitForLSN lets a commit through on a cancel, which it
// clears, or when the process is told to die).
bool commit_replicated()
{
    if (ProcDiePending)
        return false;
    if (!SyncRepRequested())
        return true;
    int mode = synchronous_commit == SYNCHRONOUS_COMMIT_REMOTE_WRITE   ? SYNC_REP_WAIT_WRITE
               : synchronous_commit == SYNCHRONOUS_COMMIT_REMOTE_APPLY ? SYNC_REP_WAIT_APPLY
                                                                       : SYNC_REP_WAIT_FLUSH;
    LWLockAcquire(SyncRepLock, LW_SHARED);
    bits8 status = WalSndCtl->sync_standbys_status;
    XLogRecPtr confirmed = WalSndCtl->lsn[mode];
    LWLockRelease(SyncRepLock);
    bool defined = (status & SYNC_STANDBY_INIT)
                       ? (status & SYNC_STANDBY_DEFINED) != 0
                       : SyncRepStandbyNames != nullptr && SyncRepStandbyNames[0] != '\0';
    return !defined || confirmed >= XactLastCommitEnd;
}

}  // namespace

void produce_batch_init(ProduceBatch *b, int capacity)
{
    int n = capacity > 0 ? capacity : 1;
    b->n = 0;
    b->msgs = static_cast<StoredMessage *>(palloc(sizeof(StoredMessage) * n));
}

namespace {

bytea *bytes_datum(const char *data, int len)
{
    bytea *v = static_cast<bytea *>(palloc(VARHDRSZ + len));
    SET_VARSIZE(v, VARHDRSZ + len);
    memcpy(VARDATA(v), data, len);
    return v;
}

}  // namespace

bool produce_batch_add(ProduceBatch *b, const char *key, int key_len, const char *value, int value_len,
                       const HeaderBytes *headers, int n_headers, std::int64_t timestamp_ms, const char **why)
{
    StoredMessage &m = b->msgs[b->n];
    m = StoredMessage{};
    if (key != nullptr)
        set_message_key(m, key, key_len);
    if (value != nullptr) {
        m.value = PointerGetDatum(bytes_datum(value, value_len));
        m.value_null = false;
    }
    if (n_headers > 0) {
        Datum *keys = static_cast<Datum *>(palloc(sizeof(Datum) * n_headers));
        Datum *values = static_cast<Datum *>(palloc(sizeof(Datum) * n_headers));
        bool *value_nulls = static_cast<bool *>(palloc(sizeof(bool) * n_headers));
        for (int h = 0; h < n_headers; h++) {
            const HeaderBytes &hb = headers[h];
            if (!pg_verifymbstr(hb.key, hb.key_len, true)) {
                *why = "a header key is not text in the database encoding";
                return false;
            }
            keys[h] = PointerGetDatum(cstring_to_text_with_len(hb.key, hb.key_len));
            value_nulls[h] = hb.value == nullptr;
            values[h] = hb.value ? PointerGetDatum(bytes_datum(hb.value, hb.value_len)) : Datum(0);
        }
        int dims[1] = {n_headers};
        int lbs[1] = {1};
        m.header_keys = PointerGetDatum(construct_array(keys, n_headers, TEXTOID, -1, false, TYPALIGN_INT));
        m.header_values = PointerGetDatum(
            construct_md_array(values, value_nulls, 1, dims, lbs, BYTEAOID, -1, false, TYPALIGN_INT));
        m.header_keys_null = m.header_values_null = false;
    }
    if (timestamp_ms >= 0) {
        // Kafka's milliseconds since 1970 as a timestamptz (microseconds since 2000).
        constexpr int64 epoch_shift_ms = static_cast<int64>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * 86400 * 1000;
        if (timestamp_ms > (END_TIMESTAMP / 1000) + epoch_shift_ms) {
            *why = "the record's timestamp is beyond PostgreSQL's timestamptz range";
            return false;
        }
        m.created_at = (timestamp_ms - epoch_shift_ms) * 1000;
        m.created_at_null = false;
    }
    b->n++;
    return true;
}

void produce_begin()
{
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    apply_request_role();
    PushActiveSnapshot(GetTransactionSnapshot());
    // A request never holds the loop behind a lock for long: 55P03 becomes REQUEST_TIMED_OUT.
    (void) set_config_option("lock_timeout", "200ms", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
    pgstat_report_activity(STATE_RUNNING, "pgtopic kafka: Produce");
}

bool produce_partition(const char *topic, std::int32_t partition, const ProduceBatch *b, std::int64_t *first,
                       int *sqlstate, char *message, std::size_t message_size)
{
    MemoryContext cx = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    volatile bool ok = true;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(cx);
    PG_TRY();
    {
        text *name = cstring_to_text(topic);
        *first = produce_to_partition(name, partition, b->msgs, b->n);
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
        ok = false;
    }
    PG_END_TRY();
    return ok;
}

bool produce_commit(int *sqlstate, char *message, std::size_t message_size, bool *uncertain)
{
    MemoryContext cx = CurrentMemoryContext;
    volatile bool ok = true;
    *uncertain = false;
    PG_TRY();
    {
        CHECK_FOR_INTERRUPTS();  // a pending cancel fails the request here, not the replication wait
        PopActiveSnapshot();
        restore_worker_user();
        CommitTransactionCommand();  // synchronous_commit (and synchronous replication) applies
        // SyncRepWaitForLSN stops waiting, and lets the commit through unreplicated, when the
        // process is told to die or to cancel (or the postmaster is gone): then no acknowledgement.
        *uncertain = !commit_replicated();
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

}  // namespace pgtopic::kafka_server
