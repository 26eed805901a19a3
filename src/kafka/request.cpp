// Whole requests and responses: header + body dispatch; see messages.hpp.
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

Request decode_request(std::string_view payload, RequestHeader *header_out)
{
    Reader in(payload);
    Request req;
    // Key, version and correlation id first: with them the caller can still answer.
    req.header.api_key = in.int16();
    req.header.api_version = in.int16();
    req.header.correlation_id = in.int32();
    if (header_out)
        *header_out = req.header;
    req.header.client_id = in.nullable_string();
    if (request_header_version(req.header.api_key, req.header.api_version) >= 2)
        in.skip_tagged_fields();
    if (header_out)
        *header_out = req.header;

    const std::int16_t v = req.header.api_version;
    switch (static_cast<ApiKey>(req.header.api_key)) {
    case ApiKey::api_versions:
        req.body = decode_api_versions_request(in, v);
        break;
    case ApiKey::metadata:
        req.body = decode_metadata_request(in, v);
        break;
    case ApiKey::produce:
        req.body = decode_produce_request(in, v);
        break;
    case ApiKey::fetch:
        req.body = decode_fetch_request(in, v);
        break;
    case ApiKey::list_offsets:
        req.body = decode_list_offsets_request(in, v);
        break;
    case ApiKey::create_topics:
        req.body = decode_create_topics_request(in, v);
        break;
    case ApiKey::delete_topics:
        req.body = decode_delete_topics_request(in, v);
        break;
    case ApiKey::init_producer_id:
        req.body = decode_init_producer_id_request(in, v);
        break;
    case ApiKey::sasl_handshake:
        req.body = decode_sasl_handshake_request(in, v);
        break;
    case ApiKey::sasl_authenticate:
        req.body = decode_sasl_authenticate_request(in, v);
        break;
    case ApiKey::find_coordinator:
        req.body = decode_find_coordinator_request(in, v);
        break;
    case ApiKey::join_group:
        req.body = decode_join_group_request(in, v);
        break;
    case ApiKey::sync_group:
        req.body = decode_sync_group_request(in, v);
        break;
    case ApiKey::heartbeat:
        req.body = decode_heartbeat_request(in, v);
        break;
    case ApiKey::leave_group:
        req.body = decode_leave_group_request(in, v);
        break;
    case ApiKey::offset_commit:
        req.body = decode_offset_commit_request(in, v);
        break;
    case ApiKey::offset_fetch:
        req.body = decode_offset_fetch_request(in, v);
        break;
    case ApiKey::describe_groups:
        req.body = decode_describe_groups_request(in, v);
        break;
    case ApiKey::list_groups:
        req.body = decode_list_groups_request(in, v);
        break;
    default:
        throw DecodeError(ErrorCode::unsupported_version, "unknown API key");
    }
    return req;
}

namespace {

template <typename T> const T &body_as(const ResponseBody &body, ApiKey expected, std::int16_t api_key)
{
    const T *b = std::get_if<T>(&body);
    if (!b || static_cast<std::int16_t>(expected) != api_key)
        throw EncodeError("response body does not match the API key");
    return *b;
}

}  // namespace

std::vector<unsigned char> encode_response(std::int16_t api_key, std::int16_t api_version, std::int32_t correlation_id,
                                           const ResponseBody &body)
{
    Writer out;
    out.int32(0);  // size, patched below
    // An ApiVersions response to an unsupported version is a v0 body; its header is v0 anyway.
    write_response_header(out, api_key, api_version, correlation_id);
    switch (static_cast<ApiKey>(api_key)) {
    case ApiKey::api_versions:
        encode_api_versions_response(out, api_version,
                                     body_as<ApiVersionsResponse>(body, ApiKey::api_versions, api_key));
        break;
    case ApiKey::metadata:
        encode_metadata_response(out, api_version, body_as<MetadataResponse>(body, ApiKey::metadata, api_key));
        break;
    case ApiKey::produce:
        encode_produce_response(out, api_version, body_as<ProduceResponse>(body, ApiKey::produce, api_key));
        break;
    case ApiKey::fetch:
        encode_fetch_response(out, api_version, body_as<FetchResponse>(body, ApiKey::fetch, api_key));
        break;
    case ApiKey::list_offsets:
        encode_list_offsets_response(out, api_version,
                                     body_as<ListOffsetsResponse>(body, ApiKey::list_offsets, api_key));
        break;
    case ApiKey::create_topics:
        encode_create_topics_response(out, api_version,
                                      body_as<CreateTopicsResponse>(body, ApiKey::create_topics, api_key));
        break;
    case ApiKey::delete_topics:
        encode_delete_topics_response(out, api_version,
                                      body_as<DeleteTopicsResponse>(body, ApiKey::delete_topics, api_key));
        break;
    case ApiKey::init_producer_id:
        encode_init_producer_id_response(out, api_version,
                                         body_as<InitProducerIdResponse>(body, ApiKey::init_producer_id, api_key));
        break;
    case ApiKey::sasl_handshake:
        encode_sasl_handshake_response(out, api_version,
                                       body_as<SaslHandshakeResponse>(body, ApiKey::sasl_handshake, api_key));
        break;
    case ApiKey::sasl_authenticate:
        encode_sasl_authenticate_response(out, api_version,
                                          body_as<SaslAuthenticateResponse>(body, ApiKey::sasl_authenticate, api_key));
        break;
    case ApiKey::find_coordinator:
        encode_find_coordinator_response(out, api_version, body_as<FindCoordinatorResponse>(body, ApiKey::find_coordinator, api_key));
        break;
    case ApiKey::join_group:
        encode_join_group_response(out, api_version, body_as<JoinGroupResponse>(body, ApiKey::join_group, api_key));
        break;
    case ApiKey::sync_group:
        encode_sync_group_response(out, api_version, body_as<SyncGroupResponse>(body, ApiKey::sync_group, api_key));
        break;
    case ApiKey::heartbeat:
        encode_heartbeat_response(out, api_version, body_as<HeartbeatResponse>(body, ApiKey::heartbeat, api_key));
        break;
    case ApiKey::leave_group:
        encode_leave_group_response(out, api_version, body_as<LeaveGroupResponse>(body, ApiKey::leave_group, api_key));
        break;
    case ApiKey::offset_commit:
        encode_offset_commit_response(out, api_version, body_as<OffsetCommitResponse>(body, ApiKey::offset_commit, api_key));
        break;
    case ApiKey::offset_fetch:
        encode_offset_fetch_response(out, api_version, body_as<OffsetFetchResponse>(body, ApiKey::offset_fetch, api_key));
        break;
    case ApiKey::describe_groups:
        encode_describe_groups_response(out, api_version, body_as<DescribeGroupsResponse>(body, ApiKey::describe_groups, api_key));
        break;
    case ApiKey::list_groups:
        encode_list_groups_response(out, api_version, body_as<ListGroupsResponse>(body, ApiKey::list_groups, api_key));
        break;
    default:
        throw EncodeError("unknown API key");
    }
    if (out.size() - 4 > static_cast<std::size_t>(INT32_MAX))
        throw EncodeError("response larger than 2 GiB");
    out.patch_int32(0, static_cast<std::int32_t>(out.size() - 4));
    return std::move(out.buffer());
}

}  // namespace pgtopic::kafka
