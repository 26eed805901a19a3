// Consumer-group request and response bodies (issue 15), field for field from Apache Kafka's
// message definitions (clients/src/main/resources/common/message/*.json), non-flexible versions
// only: FindCoordinator 0-2, JoinGroup 0-5, SyncGroup 0-3, Heartbeat 0-3, LeaveGroup 0-3,
// OffsetCommit 2-7, OffsetFetch 1-5, DescribeGroups 0-4, ListGroups 0-2.
// Decoders take the version and throw DecodeError(unsupported_version) outside the range in
// header.hpp; string_views in decoded requests point into the request frame.
// Pure C++: no PostgreSQL header may reach this file.
#pragma once

#include "header.hpp"
#include "wire.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgtopic::kafka {

// ---- FindCoordinator (key 10)
struct FindCoordinatorRequest {
    std::string_view key;
    std::int8_t key_type = 0;  // v1+: 0 group, 1 transaction
};
struct FindCoordinatorResponse {
    std::int32_t throttle_time_ms = 0;          // v1+
    std::int16_t error_code = 0;
    std::optional<std::string> error_message;   // v1+
    std::int32_t node_id = -1;
    std::string host;
    std::int32_t port = -1;
};

// ---- JoinGroup (key 11)
struct JoinGroupRequest {
    std::string_view group_id;
    std::int32_t session_timeout_ms = 0;
    std::int32_t rebalance_timeout_ms = -1;  // v1+ (v0: the session timeout)
    std::string_view member_id;
    NullableBytes group_instance_id;  // v5+
    std::string_view protocol_type;
    struct Protocol {
        std::string_view name;
        std::string_view metadata;
    };
    std::vector<Protocol> protocols;
};
struct JoinGroupResponse {
    std::int32_t throttle_time_ms = 0;  // v2+
    std::int16_t error_code = 0;
    std::int32_t generation_id = -1;
    std::string protocol_name;
    std::string leader;
    std::string member_id;
    struct Member {
        std::string member_id;
        std::optional<std::string> group_instance_id;  // v5+
        std::string metadata;
    };
    std::vector<Member> members;
};

// ---- SyncGroup (key 14)
struct SyncGroupRequest {
    std::string_view group_id;
    std::int32_t generation_id = -1;
    std::string_view member_id;
    NullableBytes group_instance_id;  // v3+
    struct Assignment {
        std::string_view member_id;
        std::string_view assignment;
    };
    std::vector<Assignment> assignments;
};
struct SyncGroupResponse {
    std::int32_t throttle_time_ms = 0;  // v1+
    std::int16_t error_code = 0;
    std::string assignment;  // never null: empty bytes when there is none
};

// ---- Heartbeat (key 12)
struct HeartbeatRequest {
    std::string_view group_id;
    std::int32_t generation_id = -1;
    std::string_view member_id;
    NullableBytes group_instance_id;  // v3+
};
struct HeartbeatResponse {
    std::int32_t throttle_time_ms = 0;  // v1+
    std::int16_t error_code = 0;
};

// ---- LeaveGroup (key 13)
struct LeaveGroupRequest {
    std::string_view group_id;
    struct Member {
        std::string_view member_id;
        NullableBytes group_instance_id;
    };
    std::vector<Member> members;  // v0-2: the one member_id; v3+: members[]
};
struct LeaveGroupResponse {
    std::int32_t throttle_time_ms = 0;  // v1+
    std::int16_t error_code = 0;
    struct Member {
        std::string member_id;
        std::optional<std::string> group_instance_id;
        std::int16_t error_code = 0;
    };
    std::vector<Member> members;  // v3+
};

// ---- OffsetCommit (key 8)
struct OffsetCommitRequest {
    std::string_view group_id;
    std::int32_t generation_id = -1;
    std::string_view member_id;
    NullableBytes group_instance_id;      // v7+
    std::int64_t retention_time_ms = -1;  // v2-4
    struct Partition {
        std::int32_t partition_index = 0;
        std::int64_t committed_offset = 0;
        std::int32_t committed_leader_epoch = -1;  // v6+
        NullableBytes committed_metadata;
    };
    struct Topic {
        std::string_view name;
        std::vector<Partition> partitions;
    };
    std::vector<Topic> topics;
};
struct OffsetCommitResponse {
    std::int32_t throttle_time_ms = 0;  // v3+
    struct Partition {
        std::int32_t partition_index = 0;
        std::int16_t error_code = 0;
    };
    struct Topic {
        std::string name;
        std::vector<Partition> partitions;
    };
    std::vector<Topic> topics;
};

// ---- OffsetFetch (key 9)
struct OffsetFetchRequest {
    std::string_view group_id;
    struct Topic {
        std::string_view name;
        std::vector<std::int32_t> partition_indexes;
    };
    std::optional<std::vector<Topic>> topics;  // nullopt (v2+): every committed offset of the group
};
struct OffsetFetchResponse {
    std::int32_t throttle_time_ms = 0;  // v3+
    struct Partition {
        std::int32_t partition_index = 0;
        std::int64_t committed_offset = -1;
        std::int32_t committed_leader_epoch = -1;  // v5+
        std::optional<std::string> metadata;
        std::int16_t error_code = 0;
    };
    struct Topic {
        std::string name;
        std::vector<Partition> partitions;
    };
    std::vector<Topic> topics;
    std::int16_t error_code = 0;  // v2+
};

// ---- DescribeGroups (key 15)
struct DescribeGroupsRequest {
    std::vector<std::string_view> groups;
    bool include_authorized_operations = false;  // v3+
};
struct DescribeGroupsResponse {
    std::int32_t throttle_time_ms = 0;  // v1+
    struct Member {
        std::string member_id;
        std::optional<std::string> group_instance_id;  // v4+
        std::string client_id;
        std::string client_host;
        std::string member_metadata;
        std::string member_assignment;
    };
    struct Group {
        std::int16_t error_code = 0;
        std::string group_id;
        std::string group_state;
        std::string protocol_type;
        std::string protocol_data;
        std::vector<Member> members;
        std::int32_t authorized_operations = INT32_MIN;  // v3+
    };
    std::vector<Group> groups;
};

// ---- ListGroups (key 16)
struct ListGroupsRequest {};
struct ListGroupsResponse {
    std::int32_t throttle_time_ms = 0;  // v1+
    std::int16_t error_code = 0;
    struct Group {
        std::string group_id;
        std::string protocol_type;
    };
    std::vector<Group> groups;
};

FindCoordinatorRequest decode_find_coordinator_request(Reader &in, std::int16_t version);
JoinGroupRequest decode_join_group_request(Reader &in, std::int16_t version);
SyncGroupRequest decode_sync_group_request(Reader &in, std::int16_t version);
HeartbeatRequest decode_heartbeat_request(Reader &in, std::int16_t version);
LeaveGroupRequest decode_leave_group_request(Reader &in, std::int16_t version);
OffsetCommitRequest decode_offset_commit_request(Reader &in, std::int16_t version);
OffsetFetchRequest decode_offset_fetch_request(Reader &in, std::int16_t version);
DescribeGroupsRequest decode_describe_groups_request(Reader &in, std::int16_t version);
ListGroupsRequest decode_list_groups_request(Reader &in, std::int16_t version);

void encode_find_coordinator_response(Writer &out, std::int16_t version, const FindCoordinatorResponse &r);
void encode_join_group_response(Writer &out, std::int16_t version, const JoinGroupResponse &r);
void encode_sync_group_response(Writer &out, std::int16_t version, const SyncGroupResponse &r);
void encode_heartbeat_response(Writer &out, std::int16_t version, const HeartbeatResponse &r);
void encode_leave_group_response(Writer &out, std::int16_t version, const LeaveGroupResponse &r);
void encode_offset_commit_response(Writer &out, std::int16_t version, const OffsetCommitResponse &r);
void encode_offset_fetch_response(Writer &out, std::int16_t version, const OffsetFetchResponse &r);
void encode_describe_groups_response(Writer &out, std::int16_t version, const DescribeGroupsResponse &r);
void encode_list_groups_response(Writer &out, std::int16_t version, const ListGroupsResponse &r);

// The consumer protocol's subscription (JoinGroup protocol metadata, "consumer" type:
// ConsumerProtocolSubscription.json): version, topics, user data; later fields ignored.
// Throws DecodeError on malformed bytes.
std::vector<std::string_view> consumer_subscription_topics(std::string_view metadata);

}  // namespace pgtopic::kafka
