// Kafka clients authenticated against PostgreSQL roles (docs/kafka.md, "Authentication"):
// SASL PLAIN checks the password with PostgreSQL's own check (plain_crypt_verify against the
// role's stored password or verifier), SCRAM-SHA-256 runs PostgreSQL's own SCRAM server
// (pg_be_scram_mech) against the role's stored verifier, so the password never reaches pgtopic.
// A role that does not exist, cannot log in or whose password expired fails like a wrong
// password (SCRAM then runs PostgreSQL's mock exchange, which reveals nothing). Each request of
// an authenticated connection then runs as that role (apply_request_role).
//
// Plain functions: no C++ object with a destructor lives in their frames; each catches
// PostgreSQL errors itself.
#include "kafka_server.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "catalog/pg_authid.h"
#include "libpq/crypt.h"
#include "libpq/libpq-be.h"
#include "libpq/sasl.h"
#include "libpq/scram.h"
#include "utils/syscache.h"
}

namespace pgtopic::kafka_server {

char *sasl_mechanisms = nullptr;
Oid request_role = InvalidOid;

namespace {

Oid worker_user = InvalidOid;
int worker_sec_context = 0;

bool listed(const char *mechanism)
{
    if (sasl_mechanisms == nullptr)
        return false;
    // A comma-separated, case-insensitive list.
    const char *p = sasl_mechanisms;
    size_t n = strlen(mechanism);
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',' && *p != ' ')
            p++;
        if (static_cast<size_t>(p - start) == n && pg_strncasecmp(start, mechanism, n) == 0)
            return true;
    }
    return false;
}

// The role a user name names when it may log in (InvalidOid otherwise), in a transaction.
Oid login_role(const char *user)
{
    HeapTuple tuple = SearchSysCache1(AUTHNAME, CStringGetDatum(user));
    if (!HeapTupleIsValid(tuple))
        return InvalidOid;
    auto *form = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tuple));
    Oid role = form->rolcanlogin ? form->oid : InvalidOid;
    ReleaseSysCache(tuple);
    return role;
}

void log_failure(const char *mechanism, const char *user, const char *detail)
{
    ereport(LOG, (errmsg("pgtopic kafka: %s authentication failed for user \"%s\"", mechanism, user),
                  detail ? errdetail_log("%s", detail) : 0));
}

}  // namespace

bool authentication_required()
{
    return sasl_mechanisms != nullptr && sasl_mechanisms[0] != '\0';
}

bool mechanism_offered(const char *mechanism, bool loopback)
{
    // SCRAM-SHA-256 runs PostgreSQL's SCRAM server (sasl_scram below), which refuses librdkafka
    // 2.0.2's final message (it repeats the client nonce before the combined one; Kafka's broker
    // only checks the suffix): not offered until pgtopic checks the proof itself.
    if (strcmp(mechanism, "SCRAM-SHA-256") == 0)
        return false;
    // PLAIN sends the password itself: never in clear beyond loopback (no TLS on the listener yet).
    if (strcmp(mechanism, "PLAIN") == 0)
        return listed(mechanism) && loopback;
    return false;
}

void remember_worker_user()
{
    GetUserIdAndSecContext(&worker_user, &worker_sec_context);
}

void apply_request_role()
{
    if (OidIsValid(request_role))
        SetUserIdAndSecContext(request_role, worker_sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void restore_worker_user()
{
    if (OidIsValid(worker_user))
        SetUserIdAndSecContext(worker_user, worker_sec_context);
}

AuthStep sasl_plain(ConnectionAuth *auth, const char *authzid, const char *user, const char *password)
{
    MemoryContext cx = CurrentMemoryContext;
    volatile AuthStep result = AuthStep::failed;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PG_TRY();
    {
        const char *logdetail = nullptr;
        Oid role = login_role(user);
        if (authzid[0] != '\0' && strcmp(authzid, user) != 0) {
            log_failure("PLAIN", user, "The authorization identity differs from the user name.");
        } else if (!OidIsValid(role)) {
            log_failure("PLAIN", user, "The role does not exist or cannot log in.");
        } else {
            char *shadow = get_role_password(user, &logdetail);
            if (shadow != nullptr && password[0] != '\0' &&
                plain_crypt_verify(user, shadow, password, &logdetail) == STATUS_OK) {
                auth->role = role;
                strlcpy(auth->user, user, sizeof auth->user);
                result = AuthStep::done;
            } else {
                log_failure("PLAIN", user, logdetail);
            }
        }
        CommitTransactionCommand();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(cx);
        EmitErrorReport();
        FlushErrorState();
        AbortCurrentTransaction();
        result = AuthStep::failed;
    }
    PG_END_TRY();
    MemoryContextSwitchTo(cx);
    return result;
}

AuthStep sasl_scram(ConnectionAuth *auth, const char *user, const char *message, int length, char **output,
                    int *output_length)
{
    MemoryContext cx = CurrentMemoryContext;
    volatile AuthStep result = AuthStep::failed;
    *output = nullptr;
    *output_length = 0;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PG_TRY();
    {
        if (auth->scram == nullptr) {
            // The first message: PostgreSQL's SCRAM server for this role, or its mock exchange
            // (for a user that does not exist, cannot log in or has no valid verifier), which
            // fails at the end exactly as a wrong password does.
            MemoryContextSwitchTo(auth->context);
            Port *port = static_cast<Port *>(palloc0(sizeof(Port)));
            port->user_name = pstrdup(user);
            const char *logdetail = nullptr;
            Oid role = login_role(user);
            char *shadow = OidIsValid(role) ? get_role_password(user, &logdetail) : nullptr;
            auth->scram = pg_be_scram_mech.init(port, "SCRAM-SHA-256", shadow);
            auth->role = InvalidOid;
            auth->pending_role = role;
            strlcpy(auth->user, user, sizeof auth->user);
            MemoryContextSwitchTo(cx);
        }
        // PostgreSQL's exchange wants a NUL-terminated message (a NUL inside is an error), and
        // keeps pointers into the first one (the client's nonce) until the second: both live in
        // the connection's context.
        MemoryContextSwitchTo(auth->context);
        char *input = static_cast<char *>(palloc(length + 1));
        memcpy(input, message, length);
        input[length] = '\0';
        const char *logdetail = nullptr;
        int status = pg_be_scram_mech.exchange(auth->scram, input, length, output, output_length, &logdetail);
        MemoryContextSwitchTo(cx);
        if (status == PG_SASL_EXCHANGE_CONTINUE) {
            result = AuthStep::continue_;
        } else if (status == PG_SASL_EXCHANGE_SUCCESS && OidIsValid(auth->pending_role)) {
            auth->role = auth->pending_role;
            result = AuthStep::done;
        } else {
            log_failure("SCRAM-SHA-256", auth->user, logdetail);
        }
        CommitTransactionCommand();
    }
    PG_CATCH();
    {
        // A malformed message: PostgreSQL's SCRAM code raises an error (logged here).
        MemoryContextSwitchTo(cx);
        EmitErrorReport();
        FlushErrorState();
        AbortCurrentTransaction();
        result = AuthStep::failed;
    }
    PG_END_TRY();
    MemoryContextSwitchTo(cx);
    if (result != AuthStep::continue_)
        auth->scram = nullptr;  // freed with the connection's context
    return result;
}

}  // namespace pgtopic::kafka_server
