// Kafka requests the listener serves today: ApiVersions (0-3), Metadata (0-4), ListOffsets
// (1-2), CreateTopics (0-4) and DeleteTopics (0-1). Every other API closes the connection (what
// a Kafka broker does with an API it does not know); clients only send what ApiVersions
// advertised. Each SQL step runs in a transaction of its own as pgtopic.kafka_role, so that
// role's rights apply, and has committed before its response is queued. See docs/kafka.md.
//
// C++ frames here hold codec objects (vectors, strings), so PostgreSQL is called only through
// pg_call, from lambdas that themselves hold nothing with a destructor.
#include "guard.hpp"
#include "kafka/messages.hpp"
#include "kafka/record_batch.hpp"
#include "kafka_server.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "access/xlog.h"
#include "utils/timeout.h"
}

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <limits>
#include <stdexcept>

namespace pgtopic::kafka_server {

namespace {

using namespace pgtopic::kafka;

// The node id of the one broker pgtopic presents (every partition's leader).
constexpr std::int32_t node_id = 1;

// What the listener answers, a subset of what the codec can decode.
const ApiVersionsResponse::Api served_apis[] = {
    {static_cast<std::int16_t>(ApiKey::produce), 3, 7},
    {static_cast<std::int16_t>(ApiKey::fetch), 4, 11},
    {static_cast<std::int16_t>(ApiKey::list_offsets), 1, 2},
    {static_cast<std::int16_t>(ApiKey::metadata), 0, 4},
    {static_cast<std::int16_t>(ApiKey::api_versions), 0, 3},
    {static_cast<std::int16_t>(ApiKey::create_topics), 0, 4},
    {static_cast<std::int16_t>(ApiKey::delete_topics), 0, 1},
    {static_cast<std::int16_t>(ApiKey::init_producer_id), 0, 1},
};

// Served (and advertised) when pgtopic.kafka_sasl_mechanisms is set.
const ApiVersionsResponse::Api sasl_apis[] = {
    {static_cast<std::int16_t>(ApiKey::sasl_handshake), 0, 1},
    {static_cast<std::int16_t>(ApiKey::sasl_authenticate), 0, 1},
};

ApiVersionsResponse api_versions(std::int16_t error)
{
    ApiVersionsResponse r;
    r.error_code = error;
    for (const auto &a : served_apis)
        r.api_keys.push_back(a);
    if (authentication_required())
        for (const auto &a : sasl_apis)
            r.api_keys.push_back(a);
    return r;
}

bool serves(std::int16_t key, std::int16_t version)
{
    for (const auto &a : served_apis)
        if (a.api_key == key && version >= a.min_version && version <= a.max_version)
            return true;
    if (authentication_required())
        for (const auto &a : sasl_apis)
            if (a.api_key == key && version >= a.min_version && version <= a.max_version)
                return true;
    return false;
}

// ---- one SQL statement in its own transaction ---------------------------------------------

constexpr int max_sql_args = 6;
constexpr int statement_timeout_ms = 5000;

// What one request may ask for: each topic of CreateTopics/DeleteTopics and each partition of
// ListOffsets, Fetch and Produce costs SQL run by the event loop, and each requested Metadata topic a response
// entry, so a small frame must not make the loop work (or allocate) for long. Over a limit the
// connection is closed, as for a malformed request.
constexpr std::size_t max_topics_per_request = 10000;
constexpr std::size_t max_sql_entries_per_request = 1000;

void check_request_size(std::size_t entries, std::size_t limit, const char *what)
{
    if (entries > limit)
        throw std::runtime_error(std::string(what) + ": more than " + std::to_string(limit) + " entries in one request");
}

// A statement's outcome: sqlstate 0 and the rows as text (palloc'd in the request context,
// nullptr for NULL), or the error's SQLSTATE and message. Trivially destructible.
struct SqlResult {
    int sqlstate = 0;
    char message[256] = "";
    int rows = 0;
    int cols = 0;
    char **values = nullptr;
    const char *value(int row, int col) const { return values[row * cols + col]; }
};

// A SQL step's transaction: begin_step starts it (SPI connected), end_step commits or rolls it back.
// A request never holds the loop behind a lock for long, nor runs long (offset_for_time scans a
// partition): 55P03 and 57014 become REQUEST_TIMED_OUT, which clients retry. A statement_timeout
// setting is armed only by a client backend's own query loop: the worker arms the timer itself
// (disarmed by end_step, or by run_step's error path).
void begin_step(const char *activity)
{
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    apply_request_role();  // the authenticated role's rights (an abort restores the worker's user)
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, activity);
    SPI_connect();
    (void) SPI_execute("SET LOCAL lock_timeout = '200ms'", false, 0);
    enable_timeout_after(STATEMENT_TIMEOUT, statement_timeout_ms);
}

void end_step(bool commit, MemoryContext request_context)
{
    disable_timeout(STATEMENT_TIMEOUT, false);
    SPI_finish();
    PopActiveSnapshot();
    restore_worker_user();
    if (commit)
        CommitTransactionCommand();
    else
        AbortCurrentTransaction();  // CreateTopics validate_only
    pgstat_report_activity(STATE_IDLE, nullptr);
    MemoryContextSwitchTo(request_context);
}

void execute_step(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
    int rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
    if (rc < 0)
        elog(ERROR, "pgtopic kafka: SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
}

void run_sql_impl(const char *sql, int nargs, const char *const *args, bool commit, SqlResult *out)
{
    MemoryContext request_context = CurrentMemoryContext;
    begin_step(sql);
    Oid types[max_sql_args];
    Datum values[max_sql_args];
    char nulls[max_sql_args];
    for (int i = 0; i < nargs; i++) {
        types[i] = TEXTOID;
        values[i] = args[i] ? CStringGetTextDatum(args[i]) : (Datum) 0;
        nulls[i] = args[i] ? ' ' : 'n';
    }
    execute_step(sql, nargs, types, values, nulls);
    if (SPI_tuptable != nullptr && SPI_processed > 0) {
        int cols = SPI_tuptable->tupdesc->natts;
        char **cells =
            static_cast<char **>(MemoryContextAllocZero(request_context, sizeof(char *) * cols * SPI_processed));
        for (uint64 r = 0; r < SPI_processed; r++)
            for (int c = 0; c < cols; c++) {
                char *v = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1);
                cells[r * cols + c] = v ? MemoryContextStrdup(request_context, v) : nullptr;
            }
        out->values = cells;
        out->rows = static_cast<int>(SPI_processed);
        out->cols = cols;
    }
    end_step(commit, request_context);
}

// Runs one SQL step (impl fills its result) in its own transaction. An ERROR becomes the
// result's SQLSTATE and message: its transaction is aborted and the request's memory context is
// current again (the abort leaves TopMemoryContext current, where the request's next steps would
// leak). Result is trivially destructible, with `sqlstate` and `message`.
template <typename Result, typename Impl>
Result run_step(Impl impl)
{
    Result result;
    ErrorData *error = nullptr;
    MemoryContext request_context = CurrentMemoryContext;
    try {
        pg_call([&] { impl(&result); });
    } catch (const PgError &e) {
        error = e.data();
    }
    if (error != nullptr) {
        result = Result();
        result.sqlstate = error->sqlerrcode;
        std::snprintf(result.message, sizeof result.message, "%s", error->message ? error->message : "");
        pg_call([request_context] {
            disable_timeout(STATEMENT_TIMEOUT, false);
            AbortCurrentTransaction();
            pgstat_report_activity(STATE_IDLE, nullptr);
            MemoryContextSwitchTo(request_context);
        });
    }
    return result;
}

SqlResult run_sql(const char *sql, std::initializer_list<const char *> args, bool commit = true)
{
    const char *argv[max_sql_args];
    int nargs = 0;
    for (const char *a : args)
        if (nargs < max_sql_args)
            argv[nargs++] = a;
    return run_step<SqlResult>([&](SqlResult *out) { run_sql_impl(sql, nargs, argv, commit, out); });
}

// The Kafka error for a failed statement: rights, unknown topics and timeouts have their own
// codes; the others depend on the request.
std::int16_t kafka_error_code(int sqlstate, ErrorCode otherwise)
{
    switch (sqlstate) {
    case ERRCODE_INSUFFICIENT_PRIVILEGE:
        return code(ErrorCode::topic_authorization_failed);
    case ERRCODE_UNDEFINED_OBJECT:
        return code(ErrorCode::unknown_topic_or_partition);
    case ERRCODE_DUPLICATE_OBJECT:
        return code(ErrorCode::topic_already_exists);
    case ERRCODE_LOCK_NOT_AVAILABLE:
    case ERRCODE_QUERY_CANCELED:
        return code(ErrorCode::request_timed_out);  // retriable
    default:
        return code(otherwise);
    }
}

std::int16_t kafka_error(const SqlResult &r, ErrorCode otherwise)
{
    return kafka_error_code(r.sqlstate, otherwise);
}

std::int64_t to_int64(const char *v, std::int64_t otherwise = -1)
{
    return v ? static_cast<std::int64_t>(std::strtoll(v, nullptr, 10)) : otherwise;
}

// Kafka's topic name rule: 1-249 of [a-zA-Z0-9._-], not "." or "..".
bool valid_topic_name(std::string_view name)
{
    if (name.empty() || name.size() > 249 || name == "." || name == "..")
        return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    return true;
}

// ---- Metadata: one broker, leader of every partition; the topics pgtopic.topics shows the role.
// With pgtopic.kafka_auto_create_partitions > 0, a requested unknown topic is created (when the
// request allows it: always before v4) with that many partitions.
MetadataResponse metadata(const MetadataRequest &req)
{
    if (req.topics)
        check_request_size(req.topics->size(), max_topics_per_request, "Metadata");
    SqlResult topics = run_sql("SELECT topic, partitions FROM pgtopic.topics ORDER BY topic", {});
    if (topics.sqlstate == ERRCODE_INVALID_SCHEMA_NAME || topics.sqlstate == ERRCODE_UNDEFINED_TABLE)
        topics = SqlResult();  // no CREATE EXTENSION pgtopic in this database (yet): no topics
    else if (topics.sqlstate != 0)
        throw std::runtime_error(std::string("Metadata: ") + topics.message);  // the client reconnects

    MetadataResponse r;
    r.brokers.push_back({node_id, advertised_host_name(), port, std::nullopt});
    char cluster[64];
    std::snprintf(cluster, sizeof cluster, "pgtopic-%" PRIu64, static_cast<std::uint64_t>(GetSystemIdentifier()));
    r.cluster_id = std::string(cluster);
    r.controller_id = node_id;
    auto add = [&](int row) {
        MetadataResponse::Topic t;
        t.name = topics.value(row, 0);
        std::int64_t partitions = to_int64(topics.value(row, 1), 0);
        for (std::int32_t p = 0; p < partitions; p++)
            t.partitions.push_back({0, p, node_id, {node_id}, {node_id}});
        r.topics.push_back(std::move(t));
    };
    if (!req.topics) {
        for (int i = 0; i < topics.rows; i++)
            add(i);
    } else {
        for (std::string_view name : *req.topics) {
            int found = -1;
            for (int i = 0; i < topics.rows && found < 0; i++)
                if (name == topics.value(i, 0))
                    found = i;
            if (found >= 0) {
                add(found);
                continue;
            }
            MetadataResponse::Topic t;
            t.error_code = code(ErrorCode::unknown_topic_or_partition);
            t.name = std::string(name);
            if (auto_create_partitions > 0 && req.allow_auto_topic_creation && valid_topic_name(name)) {
                char parts[16];
                std::snprintf(parts, sizeof parts, "%d", auto_create_partitions);
                SqlResult created = run_sql("SELECT pgtopic.create_topic($1, $2::integer)", {t.name.c_str(), parts});
                if (created.sqlstate == 0) {
                    t.error_code = 0;
                    for (std::int32_t p = 0; p < auto_create_partitions; p++)
                        t.partitions.push_back({0, p, node_id, {node_id}, {node_id}});
                } else if (created.sqlstate == ERRCODE_DUPLICATE_OBJECT) {
                    t.error_code = code(ErrorCode::leader_not_available);  // created meanwhile: ask again
                } else {
                    t.error_code = kafka_error(created, ErrorCode::unknown_topic_or_partition);
                }
            }
            r.topics.push_back(std::move(t));
        }
    }
    return r;
}

// ---- ListOffsets: -2 the log start offset, -1 the last stable offset (pgtopic's high
// watermark for every client), else the first offset produced at or after the time.
ListOffsetsResponse list_offsets(const ListOffsetsRequest &req)
{
    std::size_t entries = 0;
    for (const auto &t : req.topics)
        entries += 1 + t.partitions.size();
    check_request_size(entries, max_sql_entries_per_request, "ListOffsets");
    ListOffsetsResponse r;
    for (const auto &t : req.topics) {
        std::string name(t.name);
        SqlResult parts = run_sql("SELECT \"partition\", log_start_offset, last_stable_offset "
                                  "FROM pgtopic.partitions WHERE topic = $1",
                                  {name.c_str()});
        auto &rt = r.topics.emplace_back();
        rt.name = name;
        for (const auto &p : t.partitions) {
            ListOffsetsResponse::Partition out{p.partition_index, 0, -1, -1};
            int row = -1;
            for (int i = 0; i < parts.rows && row < 0; i++)
                if (to_int64(parts.value(i, 0)) == p.partition_index)
                    row = i;
            if (parts.sqlstate != 0) {
                out.error_code = kafka_error(parts, ErrorCode::unknown_server_error);
            } else if (row < 0) {
                out.error_code = code(ErrorCode::unknown_topic_or_partition);
            } else if (p.timestamp == -2) {
                out.offset = to_int64(parts.value(row, 1));
            } else if (p.timestamp == -1) {
                out.offset = to_int64(parts.value(row, 2));
            } else if (p.timestamp < 0) {
                out.error_code = code(ErrorCode::invalid_request);
            } else {
                char partition[16], ts[32];
                std::snprintf(partition, sizeof partition, "%d", p.partition_index);
                std::snprintf(ts, sizeof ts, "%lld", static_cast<long long>(p.timestamp));
                // No message at or after the time: offset and timestamp -1, as Kafka answers.
                SqlResult found = run_sql(
                    "WITH t AS (SELECT pgtopic.offset_for_time($1, $2::integer, to_timestamp($3::bigint / 1000.0)) AS o) "
                    "SELECT t.o, (SELECT floor(extract(epoch FROM coalesce(f.created_at, f.produced_at)) * 1000)::bigint "
                    "               FROM pgtopic.fetch_records($1, $2::integer, t.o, 1) f WHERE f.msg_offset = t.o) FROM t",
                    {name.c_str(), partition, ts});
                if (found.sqlstate != 0) {
                    out.error_code = kafka_error(found, ErrorCode::unknown_server_error);
                } else if (found.rows == 1 && found.value(0, 1) != nullptr) {
                    out.offset = to_int64(found.value(0, 0));
                    out.timestamp = to_int64(found.value(0, 1));
                }
            }
            rt.partitions.push_back(out);
        }
    }
    return r;
}

// ---- CreateTopics: pgtopic.create_topic (pgtopic_admin membership required), one
// transaction per topic; validate_only rolls it back. Configs: retention.ms, retention.bytes
// and max.message.bytes (-1 = no limit); others are INVALID_CONFIG.
CreateTopicsResponse create_topics(std::int16_t version, const CreateTopicsRequest &req)
{
    check_request_size(req.topics.size(), max_sql_entries_per_request, "CreateTopics");
    CreateTopicsResponse r;
    for (const auto &t : req.topics) {
        CreateTopicsResponse::Topic out{std::string(t.name), 0, std::nullopt};
        auto fail = [&](ErrorCode e, const std::string &message) {
            out.error_code = code(e);
            out.error_message = message;
        };
        std::optional<std::string> retention_ms, retention_bytes, max_message_bytes;
        for (const auto &c : t.configs) {
            std::optional<std::string> v;
            if (c.value && *c.value != "-1")
                v = std::string(*c.value);
            if (c.name == "retention.ms")
                retention_ms = v;
            else if (c.name == "retention.bytes")
                retention_bytes = v;
            else if (c.name == "max.message.bytes")
                max_message_bytes = v;
            else if (out.error_code == 0)
                fail(ErrorCode::invalid_config, "config " + std::string(c.name) + " is not supported by pgtopic");
        }
        std::int32_t partitions = t.num_partitions == -1 ? 1 : t.num_partitions;
        if (out.error_code != 0) {
            // an unsupported config, reported above
        } else if (!valid_topic_name(t.name)) {
            fail(ErrorCode::invalid_topic_exception, "topic names are 1-249 of [a-zA-Z0-9._-]");
        } else if (!t.assignments.empty()) {
            fail(ErrorCode::invalid_replica_assignment, "manual replica assignments are not supported");
        } else if (partitions < 1) {
            fail(ErrorCode::invalid_partitions, "partitions must be at least 1");
        } else if (t.replication_factor != -1 && t.replication_factor != 1) {
            fail(ErrorCode::invalid_replication_factor, "pgtopic has one broker: replication factor 1 (or -1)");
        } else {
            char parts[16];
            std::snprintf(parts, sizeof parts, "%d", partitions);
            std::string name(t.name);
            SqlResult done = run_sql(
                "SELECT pgtopic.create_topic($1, $2::integer, retention => $3::bigint * interval '1 millisecond', "
                "retention_bytes => $4::bigint, max_message_bytes => $5::integer)",
                {name.c_str(), parts, retention_ms ? retention_ms->c_str() : nullptr,
                 retention_bytes ? retention_bytes->c_str() : nullptr,
                 max_message_bytes ? max_message_bytes->c_str() : nullptr},
                !req.validate_only);
            if (done.sqlstate != 0) {
                bool bad_value = done.sqlstate == ERRCODE_INVALID_PARAMETER_VALUE ||
                                 done.sqlstate == ERRCODE_INVALID_TEXT_REPRESENTATION ||
                                 done.sqlstate == ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
                ErrorCode otherwise = !bad_value ? ErrorCode::unknown_server_error
                                      : std::strncmp(done.message, "partitions", 10) == 0
                                          ? ErrorCode::invalid_partitions
                                          : ErrorCode::invalid_config;
                out.error_code = kafka_error(done, otherwise);
                out.error_message = std::string(done.message);
            }
        }
        if (version < 1)
            out.error_message.reset();
        r.topics.push_back(std::move(out));
    }
    return r;
}

// ---- DeleteTopics: pgtopic.drop_topic (the admin right on the topic), one transaction each.
DeleteTopicsResponse delete_topics(const DeleteTopicsRequest &req)
{
    check_request_size(req.topic_names.size(), max_sql_entries_per_request, "DeleteTopics");
    DeleteTopicsResponse r;
    for (std::string_view t : req.topic_names) {
        std::string name(t);
        SqlResult done = run_sql("SELECT pgtopic.drop_topic($1)", {name.c_str()});
        r.responses.push_back(
            {name, done.sqlstate == 0 ? std::int16_t(0) : kafka_error(done, ErrorCode::unknown_server_error)});
    }
    return r;
}

void append(std::string &out, const std::vector<unsigned char> &frame)
{
    out.append(reinterpret_cast<const char *>(frame.data()), frame.size());
}

// Logged after the catch blocks have closed.
void log_closing(const char *why, const char *detail)
{
    pg_call([&] {
        ereport(LOG, (errmsg("pgtopic kafka: closing a connection: %s", why),
                      detail && detail[0] ? errdetail_internal("%s", detail) : 0));
    });
}

// ---- Fetch: each partition through pgtopic.fetch (the consume right applies), never above
// the last stable offset, read before the messages (every offset below it is committed or
// rolled back for good, so what the read misses below it is a gap). One RecordBatch v2 per
// partition; rolled-back offsets are gaps in the offset deltas (a trailing gap up to the LSO is
// covered by last_offset_delta, so clients move past it).

// One fetched message, copied into the request context (trivially destructible).
struct FetchedRow {
    std::int64_t offset;
    std::int64_t timestamp_ms;
    const char *key;  // nullptr: no key
    int key_len;
    const char *value;  // nullptr: NULL value
    int value_len;
    int n_headers;
    const char **header_keys;
    int *header_key_lens;
    const char **header_values;  // entries nullptr for a null value
    int *header_value_lens;
};

struct FetchedPartition {
    int sqlstate = 0;
    char message[256] = "";
    bool found = false;  // the partition exists and the role sees the topic
    Oid root_relid = InvalidOid;  // the topic's storage root (a parked Fetch watches its LSO)
    std::int64_t log_start = -1;
    std::int64_t lso = -1;
    int rows = 0;
    FetchedRow *row = nullptr;
    bool more_below_lso = true;  // messages remain in [last row + 1, lso)
};

const char *const fetch_bounds_sql =
    "SELECT log_start_offset, last_stable_offset FROM pgtopic.partitions WHERE topic = $1 AND \"partition\" = $2";
const char *const fetch_rows_sql =
    "SELECT f.msg_offset, floor(extract(epoch FROM coalesce(f.created_at, f.produced_at)) * 1000)::bigint, "
    "       f.key, f.value, f.header_keys, f.header_values "
    "  FROM pgtopic.fetch_records($1, $2, $3, $4) f";
const char *const fetch_probe_sql = "SELECT 1 FROM pgtopic.fetch($1, $2, $3, 1)";

void copy_text_datum(MemoryContext cx, Datum d, const char **data, int *len)
{
    text *t = DatumGetTextPP(d);
    *len = VARSIZE_ANY_EXHDR(t);
    char *copy = static_cast<char *>(MemoryContextAlloc(cx, *len + 1));
    memcpy(copy, VARDATA_ANY(t), *len);
    copy[*len] = '\0';
    *data = copy;
}

// The elements of a text[] or bytea[] (same varlena layout), copied; NULL elements stay nullptr.
void copy_text_array(MemoryContext cx, Datum d, Oid element_type, int *n, const char ***data, int **lens)
{
    ArrayType *a = DatumGetArrayTypeP(d);
    Datum *elems;
    bool *nulls;
    int count;
    deconstruct_array(a, element_type, -1, false, TYPALIGN_INT, &elems, &nulls, &count);
    *n = count;
    *data = static_cast<const char **>(MemoryContextAllocZero(cx, sizeof(char *) * (count + 1)));
    *lens = static_cast<int *>(MemoryContextAllocZero(cx, sizeof(int) * (count + 1)));
    for (int i = 0; i < count; i++)
        if (!nulls[i])
            copy_text_datum(cx, elems[i], &(*data)[i], &(*lens)[i]);
}

// Reads [from, lso) of one partition, at most `limit` messages, in one transaction.
void fetch_partition_impl(const char *topic, std::int32_t partition, std::int64_t from, int limit,
                          FetchedPartition *out)
{
    MemoryContext cx = CurrentMemoryContext;
    begin_step(fetch_rows_sql);  // the timeout covers the whole read
    Oid types[4] = {TEXTOID, INT4OID, INT8OID, INT4OID};
    Datum args[4] = {CStringGetTextDatum(topic), Int32GetDatum(partition), Int64GetDatum(from), Int32GetDatum(limit)};
    execute_step(fetch_bounds_sql, 2, types, args, nullptr);
    if (SPI_processed == 1) {
        bool null1, null2;
        Datum start = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &null1);
        Datum lso = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &null2);
        out->found = !null1 && !null2;
        if (out->found) {
            out->log_start = DatumGetInt64(start);
            out->lso = DatumGetInt64(lso);
            Topic t;
            if (find_topic(cstring_to_text(topic), t))
                out->root_relid = t.root_relid;
        }
    }
    if (out->found && from >= out->log_start && from < out->lso) {
        execute_step(fetch_rows_sql, 4, types, args, nullptr);
        int n = static_cast<int>(SPI_processed);
        out->row = static_cast<FetchedRow *>(MemoryContextAllocZero(cx, sizeof(FetchedRow) * (n + 1)));
        for (int i = 0; i < n; i++) {
            HeapTuple tuple = SPI_tuptable->vals[i];
            TupleDesc desc = SPI_tuptable->tupdesc;
            FetchedRow &r = out->row[i];
            bool isnull;
            r.offset = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
            if (r.offset >= out->lso)
                break;  // committed after the LSO was read: the next fetch gets it
            Datum ts = SPI_getbinval(tuple, desc, 2, &isnull);
            r.timestamp_ms = isnull ? -1 : DatumGetInt64(ts);
            Datum key = SPI_getbinval(tuple, desc, 3, &isnull);
            if (!isnull)
                copy_text_datum(cx, key, &r.key, &r.key_len);
            Datum value = SPI_getbinval(tuple, desc, 4, &isnull);
            if (!isnull) {
                bytea *b = DatumGetByteaPP(value);
                r.value_len = VARSIZE_ANY_EXHDR(b);
                char *copy = static_cast<char *>(MemoryContextAlloc(cx, r.value_len + 1));
                memcpy(copy, VARDATA_ANY(b), r.value_len);
                r.value = copy;
            }
            int nkeys = 0, nvalues = 0;
            Datum hk = SPI_getbinval(tuple, desc, 5, &isnull);
            if (!isnull)
                copy_text_array(cx, hk, TEXTOID, &nkeys, &r.header_keys, &r.header_key_lens);
            Datum hv = SPI_getbinval(tuple, desc, 6, &isnull);
            if (!isnull)
                copy_text_array(cx, hv, BYTEAOID, &nvalues, &r.header_values, &r.header_value_lens);
            r.n_headers = Min(nkeys, nvalues);
            out->rows = i + 1;
        }
        std::int64_t next = out->rows > 0 ? out->row[out->rows - 1].offset + 1 : from;
        if (out->rows > 0 && next < out->lso) {
            // Anything committed below the LSO is visible to this later snapshot.
            args[2] = Int64GetDatum(next);
            execute_step(fetch_probe_sql, 3, types, args, nullptr);
            out->more_below_lso = SPI_processed > 0;
        } else {
            out->more_below_lso = next < out->lso;
        }
    }
    end_step(true, cx);
}

FetchedPartition fetch_partition(const char *topic, std::int32_t partition, std::int64_t from, int limit)
{
    return run_step<FetchedPartition>(
        [&](FetchedPartition *out) { fetch_partition_impl(topic, partition, from, limit, out); });
}

// Bytes a record takes in a batch, roughly (for the max_bytes budgets).
std::size_t record_size(const FetchedRow &r)
{
    std::size_t n = 24 + static_cast<std::size_t>(r.key_len) + static_cast<std::size_t>(r.value_len);
    for (int h = 0; h < r.n_headers; h++)
        n += 10 + static_cast<std::size_t>(r.header_key_lens[h]) +
             (r.header_values[h] ? static_cast<std::size_t>(r.header_value_lens[h]) : 0);
    return n;
}

// ---- Produce: each partition's one RecordBatch v2 checked (magic, CRC-32C, counts, offset
// deltas 0..n-1; compressed: UNSUPPORTED_COMPRESSION_TYPE) before anything is written, then
// every valid partition written in one transaction (a subtransaction each) through
// produce_to_partition, the partition the client chose kept, consecutive offsets; the response
// is queued only after the commit. acks=0: no response.

struct ProducePartitionWork {
    std::int32_t index = 0;
    std::int16_t error = 0;
    char message[200] = "";
    ProduceBatch batch{};
    std::int64_t base_offset = -1;
    ProducerIds producer{-1, -1, -1, 0};  // an idempotent producer's batch: producer_id >= 0
};

// Turns one partition's batch into palloc'd datums; sets error (and a message for the log)
// when a record cannot be stored as it is today.
void prepare_produce_partition(NullableBytes records, ProducePartitionWork &w)
{
    BatchHeader batch;
    try {
        batch = check_produce_records(records, postgres_crc32c);
    } catch (const DecodeError &e) {
        w.error = code(e.error());
        std::snprintf(w.message, sizeof w.message, "%s", e.what());
        return;
    }
    pg_call([&] { produce_batch_init(&w.batch, batch.record_count); });
    RecordReader reader(batch, BatchRules{true});
    Record rec;
    std::vector<HeaderBytes> headers;
    int index = 0;
    while (reader.next(rec)) {
        index++;
        // Stored as sent (src/produce.cpp): the key's bytes, the headers in order with
        // duplicates and null values, the record's timestamp (base + delta; -1 for none).
        headers.clear();
        for (const RecordHeader &h : rec.headers)
            headers.push_back({h.key.data(), static_cast<int>(h.key.size()), h.value ? h.value->data() : nullptr,
                               h.value ? static_cast<int>(h.value->size()) : 0});
        const char *key = rec.key ? rec.key->data() : nullptr;
        int key_len = rec.key ? static_cast<int>(rec.key->size()) : 0;
        const char *value = rec.value ? rec.value->data() : nullptr;
        int value_len = rec.value ? static_cast<int>(rec.value->size()) : 0;
        if (key == nullptr && rec.key)
            key = "";
        if (value == nullptr && rec.value)
            value = "";
        for (std::size_t h = 0; h < headers.size(); h++)
            if (headers[h].value == nullptr && rec.headers[h].value)
                headers[h].value = "";  // an empty value is not a null one
        std::int64_t timestamp = batch.fields.base_timestamp < 0 ? -1 : batch.fields.base_timestamp + rec.timestamp_delta;
        const char *why = nullptr;
        bool ok = pg_call([&] {
            return produce_batch_add(&w.batch, key, key_len, value, value_len, headers.data(),
                                     static_cast<int>(headers.size()), timestamp, &why);
        });
        if (!ok) {
            w.error = code(ErrorCode::invalid_record);
            std::snprintf(w.message, sizeof w.message, "record %d: %s", index, why ? why : "not valid");
            return;
        }
    }
}

// The producer fields of a checked batch (kafka_producers.cpp applies Kafka's sequence rules
// to those with a producer id). A producer id without a sequence is INVALID_RECORD.
void read_producer_ids(NullableBytes records, ProducePartitionWork &w)
{
    if (!records || records->size() < record_batch_header_bytes)
        return;
    const auto *b = reinterpret_cast<const unsigned char *>(records->data());
    std::int64_t producer_id = static_cast<std::int64_t>((static_cast<std::uint64_t>(read_be32(b + 43)) << 32) |
                                                         static_cast<std::uint32_t>(read_be32(b + 47)));
    if (producer_id < 0)
        return;  // not idempotent
    auto sequence = static_cast<std::int32_t>(read_be32(b + 53));
    auto count = static_cast<std::int32_t>(read_be32(b + 57));
    if (sequence < 0 || count < 1) {
        w.error = code(ErrorCode::invalid_record);
        std::snprintf(w.message, sizeof w.message, "producer id %lld without a base sequence",
                      static_cast<long long>(producer_id));
        return;
    }
    w.producer = {producer_id, static_cast<std::int16_t>((b[51] << 8) | b[52]), sequence, count};
}

// ---- InitProducerId: a fresh producer id (epoch 0) for an idempotent producer. A transactional
// id is refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED (pgtopic serves no Kafka
// transactions; clients report the error as fatal, with that name, instead of retrying).
InitProducerIdResponse init_producer_id(const InitProducerIdRequest &req)
{
    InitProducerIdResponse r;
    if (req.transactional_id) {
        r.error_code = code(ErrorCode::transactional_id_authorization_failed);
        return r;
    }
    std::int64_t id = -1;
    int sqlstate = 0;
    char message[256] = "";
    if (pg_call([&] { return allocate_producer_id(&id, &sqlstate, message, sizeof message); })) {
        r.producer_id = id;
        r.producer_epoch = 0;
    } else {
        pg_call([&] {
            ereport(LOG, (errmsg("pgtopic kafka: InitProducerId failed: %s", message)));
        });
        r.error_code = code(ErrorCode::request_timed_out);  // retriable: the client asks again
    }
    return r;
}

// nullopt: acks=0, no response.
std::optional<ProduceResponse> produce(const ProduceRequest &req)
{
    std::size_t entries = 0;
    for (const auto &t : req.topics)
        entries += t.partitions.size();
    check_request_size(entries, max_sql_entries_per_request, "Produce");
    ProduceResponse r;
    std::vector<std::vector<ProducePartitionWork>> work(req.topics.size());
    bool bad_acks = req.acks != 0 && req.acks != 1 && req.acks != -1;
    for (std::size_t t = 0; t < req.topics.size(); t++) {
        for (const auto &p : req.topics[t].partitions) {
            auto &w = work[t].emplace_back();
            w.index = p.index;
            if (bad_acks)
                w.error = code(ErrorCode::invalid_required_acks);
            else if (req.transactional_id)
                w.error = code(ErrorCode::invalid_request);  // Kafka transactions are not served
            else
                prepare_produce_partition(p.records, w);
            if (w.error == 0)
                read_producer_ids(p.records, w);
            if (w.error != 0 && w.message[0] != '\0') {
                std::string topic(req.topics[t].name);
                pg_call([&] {
                    ereport(LOG, (errmsg("pgtopic kafka: Produce to %s partition %d refused (Kafka error %d): %s",
                                         topic.c_str(), w.index, w.error, w.message)));
                });
            }
        }
    }
    bool any = false;
    for (auto &parts : work)
        for (auto &w : parts)
            any = any || w.error == 0;
    if (any) {
        pg_call([] { produce_begin(); });
        for (std::size_t t = 0; t < req.topics.size(); t++) {
            std::string topic(req.topics[t].name);
            for (auto &w : work[t]) {
                if (w.error != 0)
                    continue;
                int sqlstate = 0;
                char message[256] = "";
                bool ok;
                if (w.producer.producer_id >= 0) {
                    std::int16_t refused = 0;
                    IdempotentOutcome o = pg_call([&] {
                        return produce_partition_idempotent(topic.c_str(), w.index, w.producer, &w.batch,
                                                            &w.base_offset, &refused, &sqlstate, message, sizeof message);
                    });
                    if (o == IdempotentOutcome::refused) {
                        w.error = refused;
                        continue;
                    }
                    ok = o != IdempotentOutcome::failed;
                } else {
                    ok = pg_call([&] {
                        return produce_partition(topic.c_str(), w.index, &w.batch, &w.base_offset, &sqlstate, message,
                                                 sizeof message);
                    });
                }
                if (!ok)
                    w.error = sqlstate == ERRCODE_INVALID_PARAMETER_VALUE ? code(ErrorCode::unknown_topic_or_partition)
                              : sqlstate == ERRCODE_PROGRAM_LIMIT_EXCEEDED ? code(ErrorCode::message_too_large)
                                                                           : kafka_error_code(sqlstate, ErrorCode::unknown_server_error);
            }
        }
        int sqlstate = 0;
        char message[256] = "";
        bool uncertain = false;
        bool committed = pg_call([&] { return produce_commit(&sqlstate, message, sizeof message, &uncertain); });
        if (committed && uncertain)  // never acknowledge what may not be replicated: the client retries
            throw std::runtime_error("Produce committed, but its wait for synchronous replication was cut short");
        if (!committed)
            for (auto &parts : work)
                for (auto &w : parts)
                    if (w.error == 0)
                        w.error = kafka_error_code(sqlstate, ErrorCode::unknown_server_error);
    }
    if (req.acks == 0)
        return std::nullopt;
    for (std::size_t t = 0; t < req.topics.size(); t++) {
        auto &rt = r.responses.emplace_back();
        rt.name = std::string(req.topics[t].name);
        for (auto &w : work[t])
            rt.partitions.push_back({w.index, w.error, w.error == 0 ? w.base_offset : -1, -1, -1});
    }
    return r;
}

enum class FetchOutcome { answered, wait };

// The partitions the last parked Fetch waits on (take_fetch_watch).
std::vector<FetchWatch> fetch_watch;
bool fetch_watch_all = true;

FetchOutcome fetch(std::int16_t version, const FetchRequest &req, bool may_wait, std::string &out,
                   std::int32_t correlation_id)
{
    std::size_t entries = 0;
    for (const auto &t : req.topics)
        entries += t.partitions.size();
    check_request_size(entries, max_sql_entries_per_request, "Fetch");
    FetchResponse r;
    std::deque<std::string> batches;  // the records' bytes, alive until encoded
    if (req.session_id != 0) {
        // pgtopic creates no fetch sessions (a response's session id is 0): a client asking for
        // one it thinks it has gets FETCH_SESSION_ID_NOT_FOUND and starts over with full fetches.
        r.error_code = 70;
        append(out, encode_response(static_cast<std::int16_t>(ApiKey::fetch), version, correlation_id, r));
        return FetchOutcome::answered;
    }
    std::int64_t budget = req.max_bytes > 0 ? req.max_bytes : 0;
    std::int64_t total = 0;
    bool any_records = false;
    fetch_watch.clear();
    fetch_watch_all = false;
    int limit = Max(1, Min(max_poll_messages, 100000));
    for (const auto &t : req.topics) {
        std::string name(t.topic);
        auto &rt = r.responses.emplace_back();
        rt.topic = name;
        for (const auto &p : t.partitions) {
            auto &out_p = rt.partitions.emplace_back();
            out_p.partition_index = p.partition;
            out_p.records = std::string_view();
            if (req.isolation_level == 1)
                out_p.aborted_transactions.emplace();
            if (any_records && total >= budget)
                continue;  // the response is full: this partition's data waits for the next fetch
            // Read no more messages than the byte budgets can take (a record is over 24 bytes).
            std::int64_t room = p.partition_max_bytes > 0 ? p.partition_max_bytes : 0;
            if (any_records)
                room = Min(room, budget - total);
            int rows_wanted = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(limit, room / 24 + 1)));
            FetchedPartition f = fetch_partition(name.c_str(), p.partition, p.fetch_offset, rows_wanted);
            if (f.sqlstate == 0 && f.found && OidIsValid(f.root_relid))
                fetch_watch.push_back({f.root_relid, p.partition, f.lso});
            else
                fetch_watch_all = true;
            if (f.sqlstate != 0) {
                out_p.error_code = f.sqlstate == ERRCODE_INVALID_PARAMETER_VALUE
                                       ? code(ErrorCode::unknown_topic_or_partition)
                                       : kafka_error_code(f.sqlstate, ErrorCode::unknown_server_error);
                continue;
            }
            if (!f.found) {
                out_p.error_code = code(ErrorCode::unknown_topic_or_partition);
                continue;
            }
            out_p.high_watermark = f.lso;
            out_p.last_stable_offset = f.lso;
            out_p.log_start_offset = f.log_start;
            if (p.fetch_offset < f.log_start || p.fetch_offset > f.lso) {
                out_p.error_code = code(ErrorCode::offset_out_of_range);
                continue;
            }
            if (f.rows == 0)
                continue;
            RecordBatch batch;
            batch.base_offset = f.row[0].offset;
            batch.partition_leader_epoch = 0;
            batch.base_timestamp = f.row[0].timestamp_ms;
            batch.max_timestamp = f.row[0].timestamp_ms;
            std::int64_t part_budget = p.partition_max_bytes > 0 ? p.partition_max_bytes : 0;
            std::int64_t part_bytes = 61;
            bool cut = false;
            for (int i = 0; i < f.rows; i++) {
                const FetchedRow &row = f.row[i];
                std::int64_t size = static_cast<std::int64_t>(record_size(row));
                if (row.offset - batch.base_offset > std::numeric_limits<std::int32_t>::max()) {
                    cut = true;  // beyond an int32 offset delta: the next batch
                    break;
                }
                // At least one whole record (batch) in the response, even over max_bytes.
                if (!batch.records.empty() || any_records) {
                    if (part_bytes + size > part_budget || total + part_bytes + size > budget) {
                        cut = true;
                        break;
                    }
                }
                Record rec;
                rec.timestamp_delta = row.timestamp_ms - batch.base_timestamp;
                rec.offset_delta = static_cast<std::int32_t>(row.offset - batch.base_offset);
                if (row.key)
                    rec.key = std::string_view(row.key, row.key_len);
                if (row.value)
                    rec.value = std::string_view(row.value, row.value_len);
                for (int h = 0; h < row.n_headers; h++) {
                    RecordHeader hdr;
                    hdr.key = std::string_view(row.header_keys[h] ? row.header_keys[h] : "", row.header_key_lens[h]);
                    if (row.header_values[h])
                        hdr.value = std::string_view(row.header_values[h], row.header_value_lens[h]);
                    rec.headers.push_back(hdr);
                }
                batch.max_timestamp = Max(batch.max_timestamp, row.timestamp_ms);
                batch.records.push_back(std::move(rec));
                part_bytes += size;
            }
            if (batch.records.empty())
                continue;  // its first record does not fit in what is left of max_bytes
            std::int64_t last = batch.base_offset + batch.records.back().offset_delta;
            if (!cut && !f.more_below_lso)
                last = Min(f.lso - 1, batch.base_offset + std::numeric_limits<std::int32_t>::max());  // only rolled-back offsets up to the LSO: the client moves past them
            batch.last_offset_delta = static_cast<std::int32_t>(last - batch.base_offset);
            Writer w;
            encode_record_batch(w, batch, postgres_crc32c);
            batches.emplace_back(w.view());
            out_p.records = std::string_view(batches.back());
            total += static_cast<std::int64_t>(batches.back().size());
            any_records = true;
        }
    }
    if (may_wait && req.max_wait_ms > 0 && total < Max(req.min_bytes, 1))
        return FetchOutcome::wait;
    append(out, encode_response(static_cast<std::int16_t>(ApiKey::fetch), version, correlation_id, r));
    return FetchOutcome::answered;
}

}  // namespace

void take_fetch_watch(std::vector<FetchWatch> &out, bool *all)
{
    out.swap(fetch_watch);
    *all = fetch_watch_all;
    fetch_watch.clear();
    fetch_watch_all = true;  // a later parked request that records nothing: run it on every commit
}

bool fetch_watch_changed(const std::vector<FetchWatch> &watch)
{
    for (const FetchWatch &w : watch) {
        std::int64_t lso = -1;
        if (!peek_last_stable_offset(w.root_relid, w.partition, &lso) || lso != w.lso)
            return true;
    }
    return false;
}

// ---- SASL: SaslHandshake, then the mechanism's messages, bare (after a v0 handshake) or in
// SaslAuthenticate requests (v1). The checks themselves are PostgreSQL's (kafka_auth.cpp).

// One client message of the chosen mechanism; *reply: the server's message.
AuthStep sasl_step(ConnectionAuth *auth, std::string_view message, std::string *reply)
{
    reply->clear();
    if (auth->plain) {
        PlainCredentials c;
        if (!parse_sasl_plain(message, &c))
            return AuthStep::failed;
        std::string authzid(c.authzid), user(c.user), password(c.password);
        return pg_call([&] { return sasl_plain(auth, authzid.c_str(), user.c_str(), password.c_str()); });
    }
    std::string user;
    if (auth->scram == nullptr && !scram_client_first_user(message, &user))
        return AuthStep::failed;
    if (message.size() > 4096)
        return AuthStep::failed;
    char *output = nullptr;
    int output_length = 0;
    AuthStep step = pg_call([&] {
        return sasl_scram(auth, user.c_str(), message.data(), static_cast<int>(message.size()), &output,
                          &output_length);
    });
    if (output != nullptr && output_length > 0)
        reply->assign(output, static_cast<std::size_t>(output_length));
    return step;
}

SaslHandshakeResponse sasl_handshake(const SaslHandshakeRequest &req, std::int16_t version, ConnectionAuth *auth,
                                     bool *close)
{
    SaslHandshakeResponse r;
    for (const char *m : {"SCRAM-SHA-256", "PLAIN"})
        if (mechanism_offered(m, auth->loopback))
            r.mechanisms.emplace_back(m);
    std::string mechanism(req.mechanism);
    if (auth->stage != ConnectionAuth::Stage::start) {
        r.error_code = code(ErrorCode::illegal_sasl_state);
        *close = true;
    } else if (!mechanism_offered(mechanism.c_str(), auth->loopback)) {
        r.error_code = code(ErrorCode::unsupported_sasl_mechanism);
    } else {
        auth->plain = mechanism == "PLAIN";
        auth->stage = version == 0 ? ConnectionAuth::Stage::raw_token : ConnectionAuth::Stage::authenticate;
    }
    return r;
}

SaslAuthenticateResponse sasl_authenticate(const SaslAuthenticateRequest &req, ConnectionAuth *auth, bool *close)
{
    SaslAuthenticateResponse r;
    if (auth->stage != ConnectionAuth::Stage::authenticate) {
        r.error_code = code(ErrorCode::illegal_sasl_state);
        r.error_message = "SaslAuthenticate without a SaslHandshake v1 first, or after authentication";
        *close = true;
        return r;
    }
    AuthStep step = sasl_step(auth, req.auth_bytes, &r.auth_bytes);
    if (step == AuthStep::failed) {
        r.error_code = code(ErrorCode::sasl_authentication_failed);
        r.error_message = "Authentication failed: invalid user name or password";  // the log says more
        r.auth_bytes.clear();
        *close = true;
    } else if (step == AuthStep::done) {
        auth->stage = ConnectionAuth::Stage::done;
    }
    return r;
}

// After a SaslHandshake v0: a bare token in, a bare token out (PLAIN's success: an empty one).
FrameResult sasl_raw_token(std::string_view token, std::string &out, ConnectionAuth *auth)
{
    std::string reply;
    AuthStep step = sasl_step(auth, token, &reply);
    if (step == AuthStep::failed)
        return FrameResult::closed;  // what Kafka does with a failed v0 exchange
    Writer frame;
    frame.bytes(reply);  // an int32 size, then the token
    out.append(frame.view());
    if (step == AuthStep::done)
        auth->stage = ConnectionAuth::Stage::done;
    return FrameResult::answered;
}

FrameResult handle_frame(std::string_view payload, std::string &out, bool may_wait, int *wait_ms, ConnectionAuth *auth)
{
    request_role = auth->role;  // InvalidOid until authenticated, or without SASL: pgtopic.kafka_role
    if (auth->stage == ConnectionAuth::Stage::raw_token) {
        FrameResult r = sasl_raw_token(payload, out, auth);
        if (r == FrameResult::closed)
            log_closing("SASL authentication failed", auth->user);
        return r;
    }
    char why[256] = "";
    char detail[512] = "";
    ErrorData *pg_error = nullptr;
    try {
        RequestHeader header;
        try {
            Request req = decode_request(payload, &header);
            const bool before_auth = authentication_required() && auth->stage != ConnectionAuth::Stage::done;
            if (!serves(req.header.api_key, req.header.api_version)) {
                std::snprintf(why, sizeof why, "API key %d version %d is not served", req.header.api_key,
                              req.header.api_version);
            } else if (before_auth && !std::holds_alternative<ApiVersionsRequest>(req.body) &&
                       !std::holds_alternative<SaslHandshakeRequest>(req.body) &&
                       !std::holds_alternative<SaslAuthenticateRequest>(req.body)) {
                std::snprintf(why, sizeof why, "API key %d before SASL authentication", req.header.api_key);
            } else if (auto *sh = std::get_if<SaslHandshakeRequest>(&req.body)) {
                bool close = false;
                append(out, encode_response(req.header.api_key, req.header.api_version, req.header.correlation_id,
                                            sasl_handshake(*sh, req.header.api_version, auth, &close)));
                return close ? FrameResult::answered_then_close : FrameResult::answered;
            } else if (auto *sa = std::get_if<SaslAuthenticateRequest>(&req.body)) {
                bool close = false;
                append(out, encode_response(req.header.api_key, req.header.api_version, req.header.correlation_id,
                                            sasl_authenticate(*sa, auth, &close)));
                if (close)
                    log_closing("SASL authentication failed", auth->user);
                return close ? FrameResult::answered_then_close : FrameResult::answered;
            } else if (std::holds_alternative<ApiVersionsRequest>(req.body)) {
                append(out, encode_response(req.header.api_key, req.header.api_version, req.header.correlation_id,
                                            api_versions(0)));
                return FrameResult::answered;
            } else if (auto *m = std::get_if<MetadataRequest>(&req.body)) {
                append(out, encode_response(req.header.api_key, req.header.api_version, req.header.correlation_id,
                                            metadata(*m)));
                return FrameResult::answered;
            } else if (auto *l = std::get_if<ListOffsetsRequest>(&req.body)) {
                append(out, encode_response(req.header.api_key, req.header.api_version, req.header.correlation_id,
                                            list_offsets(*l)));
                return FrameResult::answered;
            } else if (auto *c = std::get_if<CreateTopicsRequest>(&req.body)) {
                append(out, encode_response(req.header.api_key, req.header.api_version, req.header.correlation_id,
                                            create_topics(req.header.api_version, *c)));
                return FrameResult::answered;
            } else if (auto *pr = std::get_if<ProduceRequest>(&req.body)) {
                std::optional<ProduceResponse> resp = produce(*pr);
                if (resp)
                    append(out, encode_response(req.header.api_key, req.header.api_version,
                                                req.header.correlation_id, *resp));
                return FrameResult::answered;
            } else if (auto *f = std::get_if<FetchRequest>(&req.body)) {
                if (fetch(req.header.api_version, *f, may_wait, out, req.header.correlation_id) ==
                    FetchOutcome::wait) {
                    *wait_ms = f->max_wait_ms;
                    return FrameResult::waiting;
                }
                return FrameResult::answered;
            } else if (auto *ip = std::get_if<InitProducerIdRequest>(&req.body)) {
                append(out, encode_response(req.header.api_key, req.header.api_version, req.header.correlation_id,
                                            init_producer_id(*ip)));
                return FrameResult::answered;
            } else if (auto *d = std::get_if<DeleteTopicsRequest>(&req.body)) {
                append(out, encode_response(req.header.api_key, req.header.api_version, req.header.correlation_id,
                                            delete_topics(*d)));
                return FrameResult::answered;
            }
        } catch (const DecodeError &e) {
            // An ApiVersions request is answered even when its version is unknown (KIP-511: v0
            // body, the error, our ranges) so that the client retries with a version we know.
            if (header.api_key == static_cast<std::int16_t>(ApiKey::api_versions) &&
                e.error() == ErrorCode::unsupported_version) {
                append(out, encode_response(header.api_key, header.api_version, header.correlation_id,
                                            api_versions(code(ErrorCode::unsupported_version))));
                return FrameResult::answered;
            }
            std::snprintf(why, sizeof why, "malformed request (Kafka error %d)", code(e.error()));
            std::snprintf(detail, sizeof detail, "API key %d version %d: %s", header.api_key, header.api_version,
                          e.what());
        }
    } catch (const PgError &e) {
        pg_error = e.data();
    } catch (const std::bad_alloc &) {
        std::snprintf(why, sizeof why, "out of memory");
    } catch (const std::exception &e) {
        std::snprintf(why, sizeof why, "internal error");
        std::snprintf(detail, sizeof detail, "%s", e.what());
    } catch (...) {
        std::snprintf(why, sizeof why, "unknown internal error");
    }
    if (pg_error != nullptr) {
        // The request's transaction (if any) is aborted; the loop goes on with the next client.
        try {
            pg_call([&] {
                AbortCurrentTransaction();
                pgstat_report_activity(STATE_IDLE, nullptr);
            });
        } catch (...) {
        }
        std::snprintf(why, sizeof why, "error while serving a request");
        std::snprintf(detail, sizeof detail, "%s", pg_error->message ? pg_error->message : "");
    }
    try {
        log_closing(why, detail);
    } catch (...) {
    }
    return FrameResult::closed;
}

}  // namespace pgtopic::kafka_server
