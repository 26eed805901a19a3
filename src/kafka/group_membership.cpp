// JoinGroup (key 11) v0-5, SyncGroup (14) v0-3, Heartbeat (12) v0-3, LeaveGroup (13) v0-3, and
// the consumer protocol's subscription (ConsumerProtocolSubscription.json, the JoinGroup
// metadata of protocol type "consumer").
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

namespace {

NullableBytes optional_view(const std::optional<std::string> &s)
{
    return s ? NullableBytes(*s) : std::nullopt;
}

}  // namespace

JoinGroupRequest decode_join_group_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::join_group, version);
    JoinGroupRequest r;
    r.group_id = in.string();
    r.session_timeout_ms = in.int32();
    r.rebalance_timeout_ms = version >= 1 ? in.int32() : r.session_timeout_ms;
    r.member_id = in.string();
    if (version >= 5)
        r.group_instance_id = in.nullable_string();
    r.protocol_type = in.string();
    std::int32_t n = in.array_count(2 + 4);
    r.protocols.reserve(static_cast<std::size_t>(n));
    for (std::int32_t i = 0; i < n; i++) {
        JoinGroupRequest::Protocol &p = r.protocols.emplace_back();
        p.name = in.string();
        p.metadata = in.bytes();
    }
    in.expect_end("JoinGroup request");
    return r;
}

void encode_join_group_response(Writer &out, std::int16_t version, const JoinGroupResponse &r)
{
    check_version(ApiKey::join_group, version);
    if (version >= 2)
        out.int32(r.throttle_time_ms);
    out.int16(r.error_code);
    out.int32(r.generation_id);
    out.string(r.protocol_name);
    out.string(r.leader);
    out.string(r.member_id);
    out.array_count(r.members.size());
    for (const JoinGroupResponse::Member &m : r.members) {
        out.string(m.member_id);
        if (version >= 5)
            out.nullable_string(optional_view(m.group_instance_id));
        out.bytes(m.metadata);
    }
}

SyncGroupRequest decode_sync_group_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::sync_group, version);
    SyncGroupRequest r;
    r.group_id = in.string();
    r.generation_id = in.int32();
    r.member_id = in.string();
    if (version >= 3)
        r.group_instance_id = in.nullable_string();
    std::int32_t n = in.array_count(2 + 4);
    r.assignments.reserve(static_cast<std::size_t>(n));
    for (std::int32_t i = 0; i < n; i++) {
        SyncGroupRequest::Assignment &a = r.assignments.emplace_back();
        a.member_id = in.string();
        a.assignment = in.bytes();
    }
    in.expect_end("SyncGroup request");
    return r;
}

void encode_sync_group_response(Writer &out, std::int16_t version, const SyncGroupResponse &r)
{
    check_version(ApiKey::sync_group, version);
    if (version >= 1)
        out.int32(r.throttle_time_ms);
    out.int16(r.error_code);
    out.bytes(r.assignment);
}

HeartbeatRequest decode_heartbeat_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::heartbeat, version);
    HeartbeatRequest r;
    r.group_id = in.string();
    r.generation_id = in.int32();
    r.member_id = in.string();
    if (version >= 3)
        r.group_instance_id = in.nullable_string();
    in.expect_end("Heartbeat request");
    return r;
}

void encode_heartbeat_response(Writer &out, std::int16_t version, const HeartbeatResponse &r)
{
    check_version(ApiKey::heartbeat, version);
    if (version >= 1)
        out.int32(r.throttle_time_ms);
    out.int16(r.error_code);
}

LeaveGroupRequest decode_leave_group_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::leave_group, version);
    LeaveGroupRequest r;
    r.group_id = in.string();
    if (version <= 2) {
        r.members.push_back({in.string(), std::nullopt});
    } else {
        std::int32_t n = in.array_count(2 + 2);
        r.members.reserve(static_cast<std::size_t>(n));
        for (std::int32_t i = 0; i < n; i++) {
            LeaveGroupRequest::Member &m = r.members.emplace_back();
            m.member_id = in.string();
            m.group_instance_id = in.nullable_string();
        }
    }
    in.expect_end("LeaveGroup request");
    return r;
}

void encode_leave_group_response(Writer &out, std::int16_t version, const LeaveGroupResponse &r)
{
    check_version(ApiKey::leave_group, version);
    if (version >= 1)
        out.int32(r.throttle_time_ms);
    out.int16(r.error_code);
    if (version >= 3) {
        out.array_count(r.members.size());
        for (const LeaveGroupResponse::Member &m : r.members) {
            out.string(m.member_id);
            out.nullable_string(optional_view(m.group_instance_id));
            out.int16(m.error_code);
        }
    }
}

std::vector<std::string_view> consumer_subscription_topics(std::string_view metadata)
{
    Reader in(metadata);
    std::int16_t version = in.int16();
    if (version < 0)
        throw DecodeError(ErrorCode::inconsistent_group_protocol, "negative subscription version");
    std::int32_t n = in.array_count(2);
    std::vector<std::string_view> topics;
    topics.reserve(static_cast<std::size_t>(n));
    for (std::int32_t i = 0; i < n; i++)
        topics.push_back(in.string());
    // User data, owned partitions, generation and rack (v1-3, and later versions' additions)
    // do not matter to the broker: the leader's assignor reads them.
    return topics;
}

}  // namespace pgtopic::kafka
