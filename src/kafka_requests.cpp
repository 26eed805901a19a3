// Kafka requests the listener serves today: ApiVersions (0-3) and Metadata (0-4). Every other
// API closes the connection (what a Kafka broker does with an API it does not know); clients
// only send what ApiVersions advertised. See docs/kafka.md.
//
// C++ frames here hold codec objects (vectors, strings), so PostgreSQL is called only through
// pg_call, from lambdas that themselves hold nothing with a destructor.
#include "guard.hpp"
#include "kafka/messages.hpp"
#include "kafka_server.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "access/xlog.h"
#include "commands/extension.h"
}

#include <cinttypes>
#include <cstdio>

namespace pgtopic::kafka_server {

namespace {

using namespace pgtopic::kafka;

// The node id of the one broker pgtopic presents (every partition's leader).
constexpr std::int32_t node_id = 1;

// What the listener answers, a subset of what the codec can decode.
const ApiVersionsResponse::Api served_apis[] = {
    {static_cast<std::int16_t>(ApiKey::metadata), 0, 4},
    {static_cast<std::int16_t>(ApiKey::api_versions), 0, 3},
};

ApiVersionsResponse api_versions(std::int16_t error)
{
    ApiVersionsResponse r;
    r.error_code = error;
    for (const auto &a : served_apis)
        r.api_keys.push_back(a);
    return r;
}

bool serves(std::int16_t key, std::int16_t version)
{
    for (const auto &a : served_apis)
        if (a.api_key == key && version >= a.min_version && version <= a.max_version)
            return true;
    return false;
}

// Topics visible to the listener's role (pgtopic.topics applies its rights), copied into the
// current memory context.
struct TopicRow {
    char *name;
    int32 partitions;
};

void read_topics(TopicRow **rows_out, int *count_out)
{
    MemoryContext request_context = CurrentMemoryContext;
    *rows_out = nullptr;
    *count_out = 0;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pgtopic kafka: Metadata");
    if (OidIsValid(get_extension_oid("pgtopic", true))) {
        SPI_connect();
        // Never let a client's request queue the loop behind a lock for long.
        (void) SPI_execute("SET LOCAL lock_timeout = '200ms'", false, 0);
        int rc = SPI_execute("SELECT topic, partitions FROM pgtopic.topics ORDER BY topic", true, 0);
        if (rc == SPI_OK_SELECT && SPI_processed > 0) {
            TopicRow *rows =
                static_cast<TopicRow *>(MemoryContextAlloc(request_context, sizeof(TopicRow) * SPI_processed));
            for (uint64 i = 0; i < SPI_processed; i++) {
                bool isnull;
                char *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
                Datum parts = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
                rows[i].name = MemoryContextStrdup(request_context, name ? name : "");
                rows[i].partitions = isnull ? 0 : DatumGetInt32(parts);
            }
            *rows_out = rows;
            *count_out = static_cast<int>(SPI_processed);
        }
        SPI_finish();
    }
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
    MemoryContextSwitchTo(request_context);
}

MetadataResponse metadata(std::int16_t version, const MetadataRequest &req)
{
    TopicRow *rows = nullptr;
    int count = 0;
    pg_call([&] { read_topics(&rows, &count); });

    MetadataResponse r;
    r.brokers.push_back({node_id, advertised_host_name(), port, std::nullopt});
    char cluster[64];
    std::snprintf(cluster, sizeof cluster, "pgtopic-%" PRIu64, static_cast<std::uint64_t>(GetSystemIdentifier()));
    r.cluster_id = std::string(cluster);
    r.controller_id = node_id;
    auto add = [&](const TopicRow &row) {
        MetadataResponse::Topic t;
        t.name = row.name;
        for (int32 p = 0; p < row.partitions; p++)
            t.partitions.push_back({0, p, node_id, {node_id}, {node_id}});
        r.topics.push_back(std::move(t));
    };
    if (!req.topics) {
        for (int i = 0; i < count; i++)
            add(rows[i]);
    } else {
        for (std::string_view name : *req.topics) {
            const TopicRow *found = nullptr;
            for (int i = 0; i < count && !found; i++)
                if (name == rows[i].name)
                    found = &rows[i];
            if (found) {
                add(*found);
            } else {
                MetadataResponse::Topic t;
                t.error_code = code(ErrorCode::unknown_topic_or_partition);
                t.name = std::string(name);
                r.topics.push_back(std::move(t));
            }
        }
    }
    (void) version;
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

}  // namespace

bool handle_frame(std::string_view payload, std::string &out)
{
    char why[256] = "";
    char detail[512] = "";
    ErrorData *pg_error = nullptr;
    try {
        RequestHeader header;
        try {
            Request req = decode_request(payload, &header);
            if (!serves(req.header.api_key, req.header.api_version)) {
                std::snprintf(why, sizeof why, "API key %d version %d is not served", req.header.api_key,
                              req.header.api_version);
            } else if (std::holds_alternative<ApiVersionsRequest>(req.body)) {
                append(out, encode_response(req.header.api_key, req.header.api_version, req.header.correlation_id,
                                            api_versions(0)));
                return true;
            } else if (auto *m = std::get_if<MetadataRequest>(&req.body)) {
                append(out, encode_response(req.header.api_key, req.header.api_version, req.header.correlation_id,
                                            metadata(req.header.api_version, *m)));
                return true;
            }
        } catch (const DecodeError &e) {
            // An ApiVersions request is answered even when its version is unknown (KIP-511: v0
            // body, the error, our ranges) so that the client retries with a version we know.
            if (header.api_key == static_cast<std::int16_t>(ApiKey::api_versions) &&
                e.error() == ErrorCode::unsupported_version) {
                append(out, encode_response(header.api_key, header.api_version, header.correlation_id,
                                            api_versions(code(ErrorCode::unsupported_version))));
                return true;
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
    return false;
}

}  // namespace pgtopic::kafka_server
