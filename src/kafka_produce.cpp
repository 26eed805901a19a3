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
#include "utils/jsonb.h"
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
    b->values = static_cast<Datum *>(palloc0(sizeof(Datum) * n));
    b->value_nulls = static_cast<bool *>(palloc0(sizeof(bool) * n));
    b->keys = static_cast<Datum *>(palloc0(sizeof(Datum) * n));
    b->key_nulls = static_cast<bool *>(palloc0(sizeof(bool) * n));
    b->headers = static_cast<Datum *>(palloc0(sizeof(Datum) * n));
    b->header_nulls = static_cast<bool *>(palloc0(sizeof(bool) * n));
}

bool produce_batch_add(ProduceBatch *b, const char *key, int key_len, const char *value, int value_len,
                       const char *headers_json)
{
    int i = b->n;
    b->key_nulls[i] = key == nullptr;
    if (key != nullptr) {
        // Keys are stored as text (until the storage change): bytes of the database encoding.
        if (!pg_verifymbstr(key, key_len, true))
            return false;
        b->keys[i] = PointerGetDatum(cstring_to_text_with_len(key, key_len));
    }
    b->value_nulls[i] = value == nullptr;
    if (value != nullptr) {
        bytea *v = static_cast<bytea *>(palloc(VARHDRSZ + value_len));
        SET_VARSIZE(v, VARHDRSZ + value_len);
        memcpy(VARDATA(v), value, value_len);
        b->values[i] = PointerGetDatum(v);
    }
    b->header_nulls[i] = headers_json == nullptr;
    if (headers_json != nullptr) {
        MemoryContext cx = CurrentMemoryContext;
        volatile bool ok = true;
        PG_TRY();
        {
            b->headers[i] = DirectFunctionCall1(jsonb_in, CStringGetDatum(headers_json));
        }
        PG_CATCH();
        {
            MemoryContextSwitchTo(cx);
            FlushErrorState();
            ok = false;
        }
        PG_END_TRY();
        if (!ok)
            return false;
    }
    b->n = i + 1;
    return true;
}

void produce_begin()
{
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
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
        *first = produce_to_partition(name, partition, b->values, b->value_nulls, b->keys, b->key_nulls, b->headers,
                                      b->header_nulls, b->n);
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
