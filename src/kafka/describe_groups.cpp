// DescribeGroups (key 15) v0-4 and ListGroups (key 16) v0-2: DescribeGroupsRequest.json,
// DescribeGroupsResponse.json, ListGroupsRequest.json, ListGroupsResponse.json.
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

DescribeGroupsRequest decode_describe_groups_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::describe_groups, version);
    DescribeGroupsRequest r;
    std::int32_t n = in.array_count(2);
    r.groups.reserve(static_cast<std::size_t>(n));
    for (std::int32_t i = 0; i < n; i++)
        r.groups.push_back(in.string());
    if (version >= 3)
        r.include_authorized_operations = in.boolean();
    in.expect_end("DescribeGroups request");
    return r;
}

void encode_describe_groups_response(Writer &out, std::int16_t version, const DescribeGroupsResponse &r)
{
    check_version(ApiKey::describe_groups, version);
    if (version >= 1)
        out.int32(r.throttle_time_ms);
    out.array_count(r.groups.size());
    for (const DescribeGroupsResponse::Group &g : r.groups) {
        out.int16(g.error_code);
        out.string(g.group_id);
        out.string(g.group_state);
        out.string(g.protocol_type);
        out.string(g.protocol_data);
        out.array_count(g.members.size());
        for (const DescribeGroupsResponse::Member &m : g.members) {
            out.string(m.member_id);
            if (version >= 4)
                out.nullable_string(m.group_instance_id ? NullableBytes(*m.group_instance_id) : std::nullopt);
            out.string(m.client_id);
            out.string(m.client_host);
            out.bytes(m.member_metadata);
            out.bytes(m.member_assignment);
        }
        if (version >= 3)
            out.int32(g.authorized_operations);
    }
}

ListGroupsRequest decode_list_groups_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::list_groups, version);
    in.expect_end("ListGroups request");
    return ListGroupsRequest{};
}

void encode_list_groups_response(Writer &out, std::int16_t version, const ListGroupsResponse &r)
{
    check_version(ApiKey::list_groups, version);
    if (version >= 1)
        out.int32(r.throttle_time_ms);
    out.int16(r.error_code);
    out.array_count(r.groups.size());
    for (const ListGroupsResponse::Group &g : r.groups) {
        out.string(g.group_id);
        out.string(g.protocol_type);
    }
}

}  // namespace pgtopic::kafka
