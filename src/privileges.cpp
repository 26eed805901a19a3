// Who may do what (ARCHITECTURE.md, "Privileges"), and how pgtopic runs its own SQL.
//
//  * Roles created by the extension: pgtopic_admin (every right on every topic, creates topics),
//    pgtopic_producer and pgtopic_consumer (EXECUTE on their functions). Rights on one topic come
//    from pgtopic.catalog_grants (grant_topic / revoke_topic): produce, consume, admin.
//  * Message storage and the catalog belong to the extension's owner and are granted to nobody:
//    the C functions check the caller's rights, then read and write them directly, or through
//    internal SQL run with internal_begin(): as the owner, with search_path pinned to
//    pg_catalog, pg_temp, so no object of the caller's can be picked up on the way.
#include "guard.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "catalog/pg_extension.h"
#include "utils/acl.h"
#include "utils/elog.h"
}

namespace pgtopic {
namespace {

const char *right_name(Right right)
{
    switch (right) {
    case Right::Produce:
        return "produce";
    case Right::Consume:
        return "consume";
    case Right::Admin:
        return "admin";
    }
    return "?";
}

Oid extension_owner()
{
    Relation rel = table_open(ExtensionRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ, CStringGetDatum("pgtopic"));
    SysScanDesc scan = systable_beginscan(rel, ExtensionNameIndexId, true, nullptr, 1, &key);
    HeapTuple tuple = systable_getnext(scan);
    Oid owner = HeapTupleIsValid(tuple) ? reinterpret_cast<Form_pg_extension>(GETSTRUCT(tuple))->extowner
                                        : BOOTSTRAP_SUPERUSERID;
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    return owner;
}

bool is_global_admin(Oid role)
{
    if (superuser_arg(role))
        return true;
    Oid admin = get_role_oid("pgtopic_admin", true);
    return OidIsValid(admin) && has_privs_of_role(role, admin);
}

}  // namespace

InternalScope internal_begin()
{
    InternalScope scope;
    GetUserIdAndSecContext(&scope.user, &scope.sec_context);
    SetUserIdAndSecContext(extension_owner(), scope.sec_context | SECURITY_LOCAL_USERID_CHANGE);
    scope.guc_level = NewGUCNestLevel();
    (void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                             true, 0, false);
    SPI_connect();
    return scope;
}

void internal_end(const InternalScope &scope)
{
    SPI_finish();
    AtEOXact_GUC(true, scope.guc_level);
    SetUserIdAndSecContext(scope.user, scope.sec_context);
}

namespace {

// Session cache of rights by (topic, role): a produce or consume by a role holding only grants
// costs a hash probe instead of a scan of catalog_grants. Emptied when catalog_grants changes (a
// statement trigger sends a relcache invalidation for it, as for catalog_topics), when role
// memberships or roles change (syscache callbacks), and filled with a fresh snapshot, so a cached
// answer is never older than the invalidations already accepted.
struct RightsKey {
    int32 topic_id;
    Oid role;
};
struct RightsEntry {
    RightsKey key;
    uint8 allowed;  // bit per Right
};

HTAB *rights_cache = nullptr;
Oid cached_grants_relid = InvalidOid;

void rights_cache_reset()
{
    if (rights_cache == nullptr)
        return;
    HASH_SEQ_STATUS status;
    hash_seq_init(&status, rights_cache);
    while (auto *e = static_cast<RightsEntry *>(hash_seq_search(&status)))
        (void) hash_search(rights_cache, &e->key, HASH_REMOVE, nullptr);
}

void rights_relcache_callback(Datum, Oid relid)
{
    if (!OidIsValid(relid) || relid == cached_grants_relid)
        rights_cache_reset();
}

void rights_syscache_callback(Datum, int, uint32)
{
    rights_cache_reset();
}

uint8 right_bit(Right right)
{
    return static_cast<uint8>(1u << static_cast<int>(right));
}

// Every right `role` has on the topic, read from catalog_grants.
uint8 read_rights(Relation grants, Oid index, int32 topic_id, Oid role)
{
    ScanKeyData key;
    ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(topic_id));
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    SysScanDesc scan = systable_beginscan(grants, index, true, snapshot, 1, &key);
    uint8 allowed = 0;
    TupleDesc desc = RelationGetDescr(grants);
    while (HeapTuple tuple = systable_getnext(scan)) {
        bool isnull = false;
        Oid grantee = DatumGetObjectId(heap_getattr(tuple, 2, desc, &isnull));
        char *privilege = TextDatumGetCString(heap_getattr(tuple, 3, desc, &isnull));
        if (!has_privs_of_role(role, grantee))
            continue;
        for (Right r : {Right::Produce, Right::Consume, Right::Admin})
            if (strcmp(privilege, right_name(r)) == 0 || strcmp(privilege, "admin") == 0)
                allowed |= right_bit(r);
    }
    systable_endscan(scan);
    UnregisterSnapshot(snapshot);
    return allowed;
}

}  // namespace

bool has_topic_right(int32 topic_id, Oid role, Right right)
{
    if (is_global_admin(role))
        return true;
    RightsKey key{topic_id, role};
    if (rights_cache != nullptr) {
        if (auto *e = static_cast<RightsEntry *>(hash_search(rights_cache, &key, HASH_FIND, nullptr)))
            return (e->allowed & right_bit(right)) != 0;
    }
    Oid ns = get_namespace_oid("pgtopic", false);
    Oid grants = get_relname_relid("catalog_grants", ns);
    Oid index = get_relname_relid("catalog_grants_pkey", ns);
    if (!OidIsValid(grants) || !OidIsValid(index))
        return false;
    Relation rel = table_open(grants, AccessShareLock);
    uint8 allowed = read_rights(rel, index, topic_id, role);
    bool cacheable = rel->rd_rel->relhastriggers;  // the invalidation trigger (from 0.3.0 on)
    table_close(rel, AccessShareLock);
    if (cacheable) {
        if (rights_cache == nullptr) {
            HASHCTL ctl;
            ctl.keysize = sizeof(RightsKey);
            ctl.entrysize = sizeof(RightsEntry);
            ctl.hcxt = CacheMemoryContext;
            rights_cache = hash_create("pgtopic rights", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
            CacheRegisterRelcacheCallback(rights_relcache_callback, Datum(0));
            CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, rights_syscache_callback, Datum(0));
            CacheRegisterSyscacheCallback(AUTHOID, rights_syscache_callback, Datum(0));
        }
        if (cached_grants_relid != grants)
            rights_cache_reset();
        cached_grants_relid = grants;
        auto *e = static_cast<RightsEntry *>(hash_search(rights_cache, &key, HASH_ENTER, nullptr));
        e->allowed = allowed;
    }
    return (allowed & right_bit(right)) != 0;
}

// ---- hints for PostgreSQL's own denials ---------------------------------------------------
namespace {

emit_log_hook_type prev_emit_log_hook = nullptr;

// The extension role that gives a pgtopic function, by the function's name.
const char *role_for_function(const char *name)
{
    static const char *const consumer_prefixes[] = {"fetch", "consume", "commit", "leave", "seek", "offset_for_time"};
    if (strncmp(name, "produce", 7) == 0)
        return "pgtopic_producer";
    for (const char *prefix : consumer_prefixes)
        if (strncmp(name, prefix, strlen(prefix)) == 0)
            return "pgtopic_consumer";
    if (strcmp(name, "create_topic") == 0)
        return "pgtopic_admin";
    return nullptr;
}

// The word after "pgtopic." or the last word of a message such as "permission denied for function
// produce" (the object's name comes last in every translation of aclcheck_error's messages that
// matter here, and is never translated).
const char *object_name(const char *message, char *buf, size_t size)
{
    const char *end = message + strlen(message);
    const char *start = end;
    while (start > message && start[-1] != ' ' && start[-1] != '"' && start[-1] != '.')
        start--;
    size_t len = Min(static_cast<size_t>(end - start), size - 1);
    memcpy(buf, start, len);
    buf[len] = '\0';
    return buf;
}

// Runs for every message of every backend: only a 42501 ERROR from aclcheck_error about one of
// pgtopic's objects, without a hint, is touched (before the transaction is aborted).
void add_denial_hint(ErrorData *edata)
{
    if (prev_emit_log_hook != nullptr)
        prev_emit_log_hook(edata);
    if (edata->elevel != ERROR || edata->sqlerrcode != ERRCODE_INSUFFICIENT_PRIVILEGE || edata->hint != nullptr ||
        edata->message_id == nullptr || edata->message == nullptr)
        return;
    const char *id = edata->message_id;
    bool function = strcmp(id, "permission denied for function %s") == 0;
    bool schema = strcmp(id, "permission denied for schema %s") == 0;
    bool relation = strcmp(id, "permission denied for view %s") == 0 || strcmp(id, "permission denied for table %s") == 0;
    if (!function && !schema && !relation)
        return;
    char name[NAMEDATALEN];
    object_name(edata->message, name, sizeof name);
    // The ACL check that failed has just looked the role up: its name is in the syscache.
    const char *role = IsTransactionState() ? GetUserNameFromId(GetUserId(), true) : nullptr;
    if (role == nullptr)
        role = "<role>";
    if (schema && strcmp(name, "pgtopic") == 0) {
        edata->hint = psprintf("pgtopic's functions need membership in one of its roles: GRANT pgtopic_producer TO %s; "
                               "(produce), GRANT pgtopic_consumer TO %s; (fetch, consume) or GRANT pgtopic_admin TO "
                               "%s; (everything), then a right on each topic (pgtopic.grant_topic).",
                               role, role, role);
    } else if (schema && strcmp(name, "pgtopic_data") == 0) {
        edata->hint = pstrdup("Message storage is not readable directly: read with pgtopic.fetch() or pgtopic.consume().");
    } else if (function && role_for_function(name) != nullptr && strstr(edata->message, name) != nullptr) {
        edata->hint = psprintf("%s() needs membership in %s: GRANT %s TO %s;", name, role_for_function(name),
                               role_for_function(name), role);
    } else if (relation && (strcmp(name, "topics") == 0 || strcmp(name, "partitions") == 0 ||
                            strcmp(name, "consumer_lag") == 0 || strcmp(name, "group_members") == 0 ||
                            strcmp(name, "lso_holders") == 0)) {
        edata->hint = psprintf("pgtopic's views need membership in one of its roles, e.g. GRANT pgtopic_consumer TO %s;",
                               role);
    } else if (relation && strncmp(name, "catalog_", 8) == 0) {
        edata->hint = pstrdup("pgtopic's catalog is changed only through its functions (create_topic, grant_topic, ...).");
    }
}

}  // namespace

void privileges_init_hint_hook()
{
    prev_emit_log_hook = emit_log_hook;
    emit_log_hook = add_denial_hint;
}

void require_topic_right(const Topic &topic, text *topic_name, Right right)
{
    if (has_topic_right(topic.id, GetUserId(), right))
        return;
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("permission denied: %s on topic \"%s\" is required", right_name(right),
                           text_to_cstring(topic_name)),
                    errhint("An admin can run: SELECT pgtopic.grant_topic('%s', '%s', '%s');",
                            text_to_cstring(topic_name), GetUserNameFromId(GetUserId(), false), right_name(right))));
}

void require_any_topic_right(const Topic &topic, text *topic_name)
{
    Oid role = GetUserId();
    if (has_topic_right(topic.id, role, Right::Consume) || has_topic_right(topic.id, role, Right::Produce))
        return;
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("permission denied: produce or consume on topic \"%s\" is required",
                           text_to_cstring(topic_name)),
                    errhint("An admin can run: SELECT pgtopic.grant_topic('%s', '%s', 'consume');",
                            text_to_cstring(topic_name), GetUserNameFromId(GetUserId(), false))));
}

void require_global_admin()
{
    if (is_global_admin(GetUserId()))
        return;
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("permission denied: creating topics requires membership in pgtopic_admin"),
                    errhint("GRANT pgtopic_admin TO %s;", GetUserNameFromId(GetUserId(), false))));
}

namespace {

// Runs `sql` (which calls one internal function) as the owner with the caller's arguments.
void call_internal(const char *sql, int nargs, Oid *argtypes, FunctionCallInfo fcinfo)
{
    Datum *values = static_cast<Datum *>(palloc(sizeof(Datum) * nargs));
    char *nulls = static_cast<char *>(palloc(nargs + 1));
    for (int i = 0; i < nargs; i++) {
        values[i] = PG_ARGISNULL(i) ? Datum(0) : PG_GETARG_DATUM(i);
        nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
    }
    nulls[nargs] = '\0';
    // Errors of the internal SQL reach the caller as they are, without its CONTEXT lines (the
    // internal function is an implementation detail). The transaction is aborting anyway, which
    // also restores the user and the settings internal_begin changed.
    MemoryContext caller_context = CurrentMemoryContext;
    InternalScope scope = internal_begin();
    PG_TRY();
    {
        int rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 0);
        if (rc < 0)
            ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                            errmsg("\"%s\" failed: %s", sql, SPI_result_code_string(rc))));
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        ErrorData *error = CopyErrorData();
        FlushErrorState();
        error->context = nullptr;
        ReThrowError(error);
    }
    PG_END_TRY();
    internal_end(scope);
}

Right parse_right(text *privilege)
{
    char *p = text_to_cstring(privilege);
    if (strcmp(p, "produce") == 0)
        return Right::Produce;
    if (strcmp(p, "consume") == 0)
        return Right::Consume;
    if (strcmp(p, "admin") == 0)
        return Right::Admin;
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("unknown topic privilege \"%s\"", p),
                    errhint("Use produce, consume or admin.")));
    pg_unreachable();
}

}  // namespace
}  // namespace pgtopic

using namespace pgtopic;

PGTOPIC_FUNCTION(pgtopic_create_topic)
{
    require_arg(fcinfo, 0, "topic");
    check_topic_name(PG_GETARG_TEXT_PP(0));
    require_global_admin();
    // 0.3.0: if_not_exists (a NOTICE and nothing else when the topic is there, whatever its settings)
    Topic existing{};
    if (PG_NARGS() >= 7 && !PG_ARGISNULL(6) && PG_GETARG_BOOL(6) && find_topic(PG_GETARG_TEXT_PP(0), existing)) {
        ereport(NOTICE, (errcode(ERRCODE_DUPLICATE_OBJECT),
                         errmsg("topic \"%s\" already exists, skipping", text_to_cstring(PG_GETARG_TEXT_PP(0)))));
        PG_RETURN_VOID();
    }
    // 0.2.0 added max_message_bytes; the 0.1.0 SQL declaration has one argument fewer.
    Oid argtypes[6] = {TEXTOID, INT4OID, INTERVALOID, INT8OID, INT8OID, INT4OID};
    if (PG_NARGS() >= 6)
        call_internal("SELECT pgtopic._create_topic($1, $2, $3, $4, $5, $6)", 6, argtypes, fcinfo);
    else
        call_internal("SELECT pgtopic._create_topic($1, $2, $3, $4, $5)", 5, argtypes, fcinfo);
    PG_RETURN_VOID();
}

PGTOPIC_FUNCTION(pgtopic_alter_topic)
{
    require_arg(fcinfo, 0, "topic");
    text *name = PG_GETARG_TEXT_PP(0);
    Topic topic = lookup_topic(name, AccessShareLock);
    require_topic_right(topic, name, Right::Admin);
    Oid argtypes[5] = {TEXTOID, INT4OID, INTERVALOID, INT8OID, INT4OID};
    if (PG_NARGS() >= 5)
        call_internal("SELECT pgtopic._alter_topic($1, $2, $3, $4, $5)", 5, argtypes, fcinfo);
    else
        call_internal("SELECT pgtopic._alter_topic($1, $2, $3, $4)", 4, argtypes, fcinfo);
    wake_readers_at_commit(topic);  // long polls look the topic up again: its new partitions
    PG_RETURN_VOID();
}

PGTOPIC_FUNCTION(pgtopic_drop_topic)
{
    require_arg(fcinfo, 0, "topic");
    text *name = PG_GETARG_TEXT_PP(0);
    // 0.3.0: if_exists
    Topic existing{};
    if (PG_NARGS() >= 2 && !PG_ARGISNULL(1) && PG_GETARG_BOOL(1) && !find_topic(name, existing)) {
        ereport(NOTICE, (errcode(ERRCODE_UNDEFINED_OBJECT),
                         errmsg("topic \"%s\" does not exist, skipping", text_to_cstring(name))));
        PG_RETURN_VOID();
    }
    Topic topic = lookup_topic(name, AccessShareLock);
    require_topic_right(topic, name, Right::Admin);
    Oid argtypes[1] = {TEXTOID};
    call_internal("SELECT pgtopic._drop_topic($1)", 1, argtypes, fcinfo);
    PG_RETURN_VOID();
}

// grant_topic(topic, role, privilege) / revoke_topic(topic, role, privilege)
static Datum change_grant(FunctionCallInfo fcinfo, bool grant)
{
    require_args(fcinfo, {"topic", "role", "privilege"});
    refuse_during_recovery(grant ? "grant a topic right" : "revoke a topic right");
    text *name = PG_GETARG_TEXT_PP(0);
    Right right = parse_right(PG_GETARG_TEXT_PP(2));
    // regrole from 0.3.0 on (text before)
    Oid role = get_fn_expr_argtype(fcinfo->flinfo, 1) == REGROLEOID
                   ? PG_GETARG_OID(1)
                   : get_role_oid(text_to_cstring(PG_GETARG_TEXT_PP(1)), false);
    Topic topic = lookup_topic(name, AccessShareLock);
    require_topic_right(topic, name, Right::Admin);
    (void) right;
    Oid argtypes[3] = {INT4OID, OIDOID, TEXTOID};
    Datum values[3] = {Int32GetDatum(topic.id), ObjectIdGetDatum(role), PG_GETARG_DATUM(2)};
    InternalScope scope = internal_begin();
    int rc = SPI_execute_with_args(
        grant ? "INSERT INTO pgtopic.catalog_grants (topic_id, grantee, privilege) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
              : "DELETE FROM pgtopic.catalog_grants WHERE topic_id = $1 AND grantee = $2 AND privilege = $3",
        3, argtypes, values, nullptr, false, 0);
    if (rc < 0)
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not change the grant")));
    uint64 changed = SPI_processed;
    internal_end(scope);
    PG_RETURN_BOOL(changed > 0);
}

PGTOPIC_FUNCTION(pgtopic_grant_topic) { return change_grant(fcinfo, true); }
PGTOPIC_FUNCTION(pgtopic_revoke_topic) { return change_grant(fcinfo, false); }

PGTOPIC_FUNCTION(pgtopic_has_topic_privilege)
{
    require_args(fcinfo, {"topic", "privilege"});
    Right right = parse_right(PG_GETARG_TEXT_PP(1));
    // A topic that does not exist answers false, as one the caller has no right on: the answer
    // must not tell a role which topics exist.
    Topic topic{};
    if (!find_topic(PG_GETARG_TEXT_PP(0), topic))
        PG_RETURN_BOOL(false);
    PG_RETURN_BOOL(has_topic_right(topic.id, GetUserId(), right));
}
