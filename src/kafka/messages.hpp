// Per-API request and response bodies for the versions pgtopic serves, field for field from
// Apache Kafka's message definitions (clients/src/main/resources/common/message/*.json):
//   ApiVersions 0-3 (v3 flexible), Metadata 0-4, Produce 3-7, Fetch 4-11, ListOffsets 1-2,
//   CreateTopics 0-4, DeleteTopics 0-1 (all non-flexible); the consumer-group APIs are in
//   group_messages.hpp.
// Requests are decoded (the broker side); responses are encoded. Decoders take the version
// and throw DecodeError with ErrorCode::unsupported_version outside the range in header.hpp;
// string_views in decoded requests point into the request frame.
// Pure C++: no PostgreSQL header may reach this file.
#pragma once

#include "group_messages.hpp"
#include "header.hpp"
#include "wire.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pgtopic::kafka {

// ---- ApiVersions (key 18)
struct ApiVersionsRequest {
    NullableBytes client_software_name;     // v3+
    NullableBytes client_software_version;  // v3+
};
struct ApiVersionsResponse {
    std::int16_t error_code = 0;
    struct Api {
        std::int16_t api_key, min_version, max_version;
    };
    std::vector<Api> api_keys;
    std::int32_t throttle_time_ms = 0;  // v1+
};

// ---- Metadata (key 3)
struct MetadataRequest {
    // nullopt = all topics (v0: an empty array; v1+: a null array).
    std::optional<std::vector<std::string_view>> topics;
    bool allow_auto_topic_creation = true;  // v4+
};
struct MetadataResponse {
    std::int32_t throttle_time_ms = 0;  // v3+
    struct Broker {
        std::int32_t node_id = 0;
        std::string host;
        std::int32_t port = 0;
        std::optional<std::string> rack;  // v1+
    };
    std::vector<Broker> brokers;
    std::optional<std::string> cluster_id;  // v2+
    std::int32_t controller_id = -1;        // v1+
    struct Partition {
        std::int16_t error_code = 0;
        std::int32_t partition_index = 0;
        std::int32_t leader_id = 0;
        std::vector<std::int32_t> replica_nodes;
        std::vector<std::int32_t> isr_nodes;
    };
    struct Topic {
        std::int16_t error_code = 0;
        std::string name;
        bool is_internal = false;  // v1+
        std::vector<Partition> partitions;
    };
    std::vector<Topic> topics;
};

// ---- Produce (key 0)
struct ProduceRequest {
    NullableBytes transactional_id;
    std::int16_t acks = 0;
    std::int32_t timeout_ms = 0;
    struct Partition {
        std::int32_t index = 0;
        NullableBytes records;  // RecordBatch bytes; decode with record_batch.hpp
    };
    struct Topic {
        std::string_view name;
        std::vector<Partition> partitions;
    };
    std::vector<Topic> topics;
};
struct ProduceResponse {
    struct Partition {
        std::int32_t index = 0;
        std::int16_t error_code = 0;
        std::int64_t base_offset = -1;
        std::int64_t log_append_time_ms = -1;  // v2+
        std::int64_t log_start_offset = -1;    // v5+
    };
    struct Topic {
        std::string name;
        std::vector<Partition> partitions;
    };
    std::vector<Topic> responses;
    std::int32_t throttle_time_ms = 0;
};

// ---- Fetch (key 1)
struct FetchRequest {
    std::int32_t replica_id = -1;
    std::int32_t max_wait_ms = 0;
    std::int32_t min_bytes = 0;
    std::int32_t max_bytes = 0x7fffffff;
    std::int8_t isolation_level = 0;  // 0 read_uncommitted, 1 read_committed
    std::int32_t session_id = 0;      // v7+
    std::int32_t session_epoch = -1;  // v7+
    struct Partition {
        std::int32_t partition = 0;
        std::int32_t current_leader_epoch = -1;  // v9+
        std::int64_t fetch_offset = 0;
        std::int64_t log_start_offset = -1;  // v5+
        std::int32_t partition_max_bytes = 0;
    };
    struct Topic {
        std::string_view topic;
        std::vector<Partition> partitions;
    };
    std::vector<Topic> topics;
    struct ForgottenTopic {
        std::string_view topic;
        std::vector<std::int32_t> partitions;
    };
    std::vector<ForgottenTopic> forgotten_topics;  // v7+
    std::string_view rack_id;                      // v11+
};
struct FetchResponse {
    std::int32_t throttle_time_ms = 0;
    std::int16_t error_code = 0;  // v7+
    std::int32_t session_id = 0;  // v7+
    struct AbortedTransaction {
        std::int64_t producer_id, first_offset;
    };
    struct Partition {
        std::int32_t partition_index = 0;
        std::int16_t error_code = 0;
        std::int64_t high_watermark = -1;
        std::int64_t last_stable_offset = -1;  // v4+
        std::int64_t log_start_offset = -1;    // v5+
        std::optional<std::vector<AbortedTransaction>> aborted_transactions;  // v4+
        std::int32_t preferred_read_replica = -1;                            // v11+
        NullableBytes records;  // not owned: the caller keeps the bytes alive until encoded
    };
    struct Topic {
        std::string topic;
        std::vector<Partition> partitions;
    };
    std::vector<Topic> responses;
};

// ---- ListOffsets (key 2)
struct ListOffsetsRequest {
    std::int32_t replica_id = -1;
    std::int8_t isolation_level = 0;  // v2+
    struct Partition {
        std::int32_t partition_index = 0;
        std::int64_t timestamp = 0;  // -2 earliest, -1 latest, else a timestamp in ms
    };
    struct Topic {
        std::string_view name;
        std::vector<Partition> partitions;
    };
    std::vector<Topic> topics;
};
struct ListOffsetsResponse {
    std::int32_t throttle_time_ms = 0;  // v2+
    struct Partition {
        std::int32_t partition_index = 0;
        std::int16_t error_code = 0;
        std::int64_t timestamp = -1;
        std::int64_t offset = -1;
    };
    struct Topic {
        std::string name;
        std::vector<Partition> partitions;
    };
    std::vector<Topic> topics;
};

// ---- CreateTopics (key 19)
struct CreateTopicsRequest {
    struct Assignment {
        std::int32_t partition_index = 0;
        std::vector<std::int32_t> broker_ids;
    };
    struct Config {
        std::string_view name;
        NullableBytes value;
    };
    struct Topic {
        std::string_view name;
        std::int32_t num_partitions = -1;      // -1: broker default (v4+)
        std::int16_t replication_factor = -1;  // -1: broker default (v4+)
        std::vector<Assignment> assignments;
        std::vector<Config> configs;
    };
    std::vector<Topic> topics;
    std::int32_t timeout_ms = 60000;
    bool validate_only = false;  // v1+
};
struct CreateTopicsResponse {
    std::int32_t throttle_time_ms = 0;  // v2+
    struct Topic {
        std::string name;
        std::int16_t error_code = 0;
        std::optional<std::string> error_message;  // v1+
    };
    std::vector<Topic> topics;
};

// ---- DeleteTopics (key 20)
struct DeleteTopicsRequest {
    std::vector<std::string_view> topic_names;
    std::int32_t timeout_ms = 0;
};
struct DeleteTopicsResponse {
    std::int32_t throttle_time_ms = 0;  // v1+
    struct Topic {
        std::string name;
        std::int16_t error_code = 0;
    };
    std::vector<Topic> responses;
};

// ---- InitProducerId (key 22), v0-1: a producer id for an idempotent producer
struct InitProducerIdRequest {
    NullableBytes transactional_id;  // null: idempotent only (pgtopic serves no transactions)
    std::int32_t transaction_timeout_ms = 0;
};
struct InitProducerIdResponse {
    std::int32_t throttle_time_ms = 0;
    std::int16_t error_code = 0;
    std::int64_t producer_id = -1;
    std::int16_t producer_epoch = -1;
};

// ---- SaslHandshake (key 17), v0-1, and SaslAuthenticate (key 36), v0-1 (v2+ is flexible).
// After a v0 handshake the client sends the mechanism's tokens as bare size-prefixed frames
// (no request header); from v1 it wraps them in SaslAuthenticate requests.
struct SaslHandshakeRequest {
    std::string_view mechanism;
};
struct SaslHandshakeResponse {
    std::int16_t error_code = 0;
    std::vector<std::string> mechanisms;
};
struct SaslAuthenticateRequest {
    std::string_view auth_bytes;
};
struct SaslAuthenticateResponse {
    std::int16_t error_code = 0;
    std::optional<std::string> error_message;
    std::string auth_bytes;
    std::int64_t session_lifetime_ms = 0;  // v1+ (0: the session does not expire)
};

// The parts of SASL messages the server needs before the mechanism runs. PLAIN (RFC 4616):
// authzid NUL authcid NUL passwd; false when malformed (a missing NUL, an empty user, a NUL in
// the password, or parts over 1024 bytes).
struct PlainCredentials {
    std::string_view authzid, user, password;
};
bool parse_sasl_plain(std::string_view message, PlainCredentials *out);
// SCRAM (RFC 5802) client-first-message: the user name of "gs2-header n=user,r=nonce,...", its
// "=2C" and "=3D" decoded; false when malformed (or over 1024 bytes).
bool scram_client_first_user(std::string_view message, std::string *user);

// Body decoders: read exactly one body of the given version (trailing bytes are an error).
ApiVersionsRequest decode_api_versions_request(Reader &in, std::int16_t version);
MetadataRequest decode_metadata_request(Reader &in, std::int16_t version);
ProduceRequest decode_produce_request(Reader &in, std::int16_t version);
FetchRequest decode_fetch_request(Reader &in, std::int16_t version);
ListOffsetsRequest decode_list_offsets_request(Reader &in, std::int16_t version);
CreateTopicsRequest decode_create_topics_request(Reader &in, std::int16_t version);
DeleteTopicsRequest decode_delete_topics_request(Reader &in, std::int16_t version);
InitProducerIdRequest decode_init_producer_id_request(Reader &in, std::int16_t version);
SaslHandshakeRequest decode_sasl_handshake_request(Reader &in, std::int16_t version);
SaslAuthenticateRequest decode_sasl_authenticate_request(Reader &in, std::int16_t version);

// Body encoders (no header, no size prefix). An ApiVersions response to a version the codec
// does not know is encoded as v0 (what Kafka brokers do with UNSUPPORTED_VERSION).
void encode_api_versions_response(Writer &out, std::int16_t version, const ApiVersionsResponse &r);
void encode_metadata_response(Writer &out, std::int16_t version, const MetadataResponse &r);
void encode_produce_response(Writer &out, std::int16_t version, const ProduceResponse &r);
void encode_fetch_response(Writer &out, std::int16_t version, const FetchResponse &r);
void encode_list_offsets_response(Writer &out, std::int16_t version, const ListOffsetsResponse &r);
void encode_create_topics_response(Writer &out, std::int16_t version, const CreateTopicsResponse &r);
void encode_delete_topics_response(Writer &out, std::int16_t version, const DeleteTopicsResponse &r);
void encode_init_producer_id_response(Writer &out, std::int16_t version, const InitProducerIdResponse &r);
void encode_sasl_handshake_response(Writer &out, std::int16_t version, const SaslHandshakeResponse &r);
void encode_sasl_authenticate_response(Writer &out, std::int16_t version, const SaslAuthenticateResponse &r);

// Throws DecodeError(unsupported_version) unless version is in the codec's range for key.
void check_version(ApiKey key, std::int16_t version);

// ---- Whole requests and responses

using RequestBody = std::variant<ApiVersionsRequest, MetadataRequest, ProduceRequest, FetchRequest,
                                 ListOffsetsRequest, CreateTopicsRequest, DeleteTopicsRequest, InitProducerIdRequest,
                                 SaslHandshakeRequest, SaslAuthenticateRequest,
                                 // consumer groups (group_messages.hpp)
                                 FindCoordinatorRequest, JoinGroupRequest, SyncGroupRequest, HeartbeatRequest,
                                 LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, DescribeGroupsRequest,
                                 ListGroupsRequest>;

struct Request {
    RequestHeader header;
    RequestBody body;
};

// Decodes one frame's payload (the bytes after the size prefix): header, then body. Throws
// DecodeError; when the header's first 8 bytes were readable, header_out (if given) holds
// them, so the caller can answer with the right correlation id.
Request decode_request(std::string_view payload, RequestHeader *header_out = nullptr);

using ResponseBody = std::variant<ApiVersionsResponse, MetadataResponse, ProduceResponse, FetchResponse,
                                  ListOffsetsResponse, CreateTopicsResponse, DeleteTopicsResponse, InitProducerIdResponse,
                                  SaslHandshakeResponse, SaslAuthenticateResponse,
                                  // consumer groups (group_messages.hpp)
                                  FindCoordinatorResponse, JoinGroupResponse, SyncGroupResponse, HeartbeatResponse,
                                  LeaveGroupResponse, OffsetCommitResponse, OffsetFetchResponse,
                                  DescribeGroupsResponse, ListGroupsResponse>;

// A complete response frame: size prefix, header for (api_key, api_version), body.
std::vector<unsigned char> encode_response(std::int16_t api_key, std::int16_t api_version, std::int32_t correlation_id,
                                           const ResponseBody &body);

}  // namespace pgtopic::kafka
