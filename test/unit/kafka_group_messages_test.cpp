// Kafka codec: the consumer-group APIs (src/kafka/group_messages.hpp), request frames built
// field by field from Apache Kafka's message definitions, response bytes per version, version
// guards, truncated inputs.
#include "kafka/messages.hpp"
#include "kafka_test_util.hpp"

#include <gtest/gtest.h>

#include <functional>

using namespace pgtopic::kafka;
using kafka_test::str;
using kafka_test::tohex;

namespace {

template <typename F> ErrorCode decode_error(F &&f)
{
    try {
        f();
    } catch (const DecodeError &e) {
        return e.error();
    }
    ADD_FAILURE() << "no DecodeError";
    return ErrorCode::none;
}

std::string request(std::int16_t key, std::int16_t version, const std::function<void(Writer &)> &body)
{
    Writer w;
    w.int16(key);
    w.int16(version);
    w.int32(42);
    w.string("rdkafka");
    body(w);
    return str(w);
}

std::string response(std::int16_t key, std::int16_t version, const ResponseBody &body)
{
    std::vector<unsigned char> f = encode_response(key, version, 42, body);
    std::string frame(f.begin(), f.end());
    Reader size(frame);
    EXPECT_EQ(static_cast<std::size_t>(size.int32()), frame.size() - 4);
    return frame.substr(4);
}

void expect_truncations_rejected(const std::string &payload)
{
    ASSERT_NO_THROW(decode_request(payload));
    for (std::size_t n = 0; n < payload.size(); n++)
        EXPECT_NE(decode_error([&] { decode_request(payload.substr(0, n)); }), ErrorCode::none) << n;
    EXPECT_EQ(decode_error([&] { decode_request(payload + '\0'); }), ErrorCode::invalid_request);
}

void expect_version_refused(std::int16_t key, std::int16_t version)
{
    bool flexible = is_flexible(key, version);  // header v2: an (empty) tagged-field section
    EXPECT_EQ(decode_error([&] { decode_request(request(key, version, [&](Writer &w) { if (flexible) w.no_tagged_fields(); })); }),
              ErrorCode::unsupported_version)
        << key << " v" << version;
}

}  // namespace

TEST(KafkaGroups, VersionGuards)
{
    // Below and above the served (non-flexible) ranges.
    expect_version_refused(10, 3);
    expect_version_refused(11, 6);
    expect_version_refused(14, 4);
    expect_version_refused(12, 4);
    expect_version_refused(13, 4);
    expect_version_refused(8, 1);
    expect_version_refused(8, 8);
    expect_version_refused(9, 0);
    expect_version_refused(9, 6);
    expect_version_refused(15, 5);
    expect_version_refused(16, 3);
    for (int key : {8, 9, 10, 11, 12, 13, 14, 15, 16})
        EXPECT_FALSE(is_flexible(static_cast<std::int16_t>(key), find_version_range(static_cast<std::int16_t>(key))->max));
    FindCoordinatorResponse f;
    EXPECT_THROW(encode_response(10, 3, 1, ResponseBody{f}), DecodeError);
    EXPECT_THROW(encode_response(11, 0, 1, ResponseBody{f}), EncodeError);  // body of another API
}

TEST(KafkaFindCoordinator, RequestsAndResponses)
{
    std::string v0 = request(10, 0, [](Writer &w) { w.string("g1"); });
    Request r0 = decode_request(v0);
    EXPECT_EQ(std::get<FindCoordinatorRequest>(r0.body).key, "g1");
    EXPECT_EQ(std::get<FindCoordinatorRequest>(r0.body).key_type, 0);
    expect_truncations_rejected(v0);
    std::string v2 = request(10, 2, [](Writer &w) {
        w.string("tx");
        w.int8(1);
    });
    EXPECT_EQ(std::get<FindCoordinatorRequest>(decode_request(v2).body).key_type, 1);
    expect_truncations_rejected(v2);

    FindCoordinatorResponse r;
    r.node_id = 1;
    r.host = "h";
    r.port = 9092;
    EXPECT_EQ(tohex(response(10, 0, r)), "0000002a" "0000" "00000001" "000168" "00002384");
    EXPECT_EQ(tohex(response(10, 1, r)), "0000002a" "00000000" "0000" "ffff" "00000001" "000168" "00002384");
    r.error_message = "x";
    EXPECT_EQ(tohex(response(10, 2, r)), "0000002a" "00000000" "0000" "000178" "00000001" "000168" "00002384");
}

TEST(KafkaJoinGroup, RequestsByVersion)
{
    for (std::int16_t v = 0; v <= 5; v++) {
        std::string p = request(11, v, [v](Writer &w) {
            w.string("grp");
            w.int32(10000);
            if (v >= 1)
                w.int32(30000);
            w.string("");
            if (v >= 5)
                w.nullable_string(std::nullopt);
            w.string("consumer");
            w.int32(2);
            w.string("range");
            w.bytes(std::string_view("\x00\x01", 2));
            w.string("roundrobin");
            w.bytes("");
        });
        Request req = decode_request(p);
        const auto &j = std::get<JoinGroupRequest>(req.body);
        EXPECT_EQ(j.group_id, "grp");
        EXPECT_EQ(j.session_timeout_ms, 10000);
        EXPECT_EQ(j.rebalance_timeout_ms, v >= 1 ? 30000 : 10000);
        EXPECT_TRUE(j.member_id.empty());
        EXPECT_FALSE(j.group_instance_id.has_value());
        EXPECT_EQ(j.protocol_type, "consumer");
        ASSERT_EQ(j.protocols.size(), 2u);
        EXPECT_EQ(j.protocols[0].metadata.size(), 2u);
        EXPECT_EQ(j.protocols[1].name, "roundrobin");
        expect_truncations_rejected(p);
    }
    // An impossible protocol count
    std::string bad = request(11, 0, [](Writer &w) {
        w.string("g");
        w.int32(1);
        w.string("");
        w.string("consumer");
        w.int32(100000);
    });
    EXPECT_NE(decode_error([&] { decode_request(bad); }), ErrorCode::none);
}

TEST(KafkaJoinGroup, ResponsesByVersion)
{
    JoinGroupResponse r;
    r.generation_id = 3;
    r.protocol_name = "range";
    r.leader = "m1";
    r.member_id = "m1";
    r.members.push_back({"m1", std::nullopt, std::string("\x00\x01", 2)});
    const std::string tail = "00000003" "000572616e6765" "00026d31" "00026d31" "00000001" "00026d31";
    EXPECT_EQ(tohex(response(11, 0, r)), "0000002a" "0000" + tail + "00000002" "0001");
    EXPECT_EQ(tohex(response(11, 2, r)), "0000002a" "00000000" "0000" + tail + "00000002" "0001");
    EXPECT_EQ(tohex(response(11, 5, r)), "0000002a" "00000000" "0000" + tail + "ffff" "00000002" "0001");
}

TEST(KafkaSyncGroup, RequestsAndResponses)
{
    for (std::int16_t v = 0; v <= 3; v++) {
        std::string p = request(14, v, [v](Writer &w) {
            w.string("grp");
            w.int32(7);
            w.string("m1");
            if (v >= 3)
                w.nullable_string(std::string_view("inst"));
            w.int32(1);
            w.string("m2");
            w.bytes("abc");
        });
        Request req = decode_request(p);
        const auto &s = std::get<SyncGroupRequest>(req.body);
        EXPECT_EQ(s.generation_id, 7);
        EXPECT_EQ(s.member_id, "m1");
        EXPECT_EQ(s.group_instance_id.has_value(), v >= 3);
        ASSERT_EQ(s.assignments.size(), 1u);
        EXPECT_EQ(s.assignments[0].assignment, "abc");
        expect_truncations_rejected(p);
    }
    SyncGroupResponse r;  // no assignment: empty bytes, never null
    EXPECT_EQ(tohex(response(14, 0, r)), "0000002a" "0000" "00000000");
    r.assignment = "ab";
    r.error_code = code(ErrorCode::rebalance_in_progress);
    EXPECT_EQ(tohex(response(14, 1, r)), "0000002a" "00000000" "001b" "00000002" "6162");
}

TEST(KafkaHeartbeatLeaveGroup, RequestsAndResponses)
{
    for (std::int16_t v = 0; v <= 3; v++) {
        std::string p = request(12, v, [v](Writer &w) {
            w.string("grp");
            w.int32(2);
            w.string("m1");
            if (v >= 3)
                w.nullable_string(std::nullopt);
        });
        Request req = decode_request(p);
        EXPECT_EQ(std::get<HeartbeatRequest>(req.body).generation_id, 2);
        expect_truncations_rejected(p);
    }
    HeartbeatResponse h{0, code(ErrorCode::rebalance_in_progress)};
    EXPECT_EQ(tohex(response(12, 0, h)), "0000002a" "001b");
    EXPECT_EQ(tohex(response(12, 3, h)), "0000002a" "00000000" "001b");

    std::string v1 = request(13, 1, [](Writer &w) {
        w.string("grp");
        w.string("m1");
    });
    Request l1 = decode_request(v1);
    ASSERT_EQ(std::get<LeaveGroupRequest>(l1.body).members.size(), 1u);
    EXPECT_EQ(std::get<LeaveGroupRequest>(l1.body).members[0].member_id, "m1");
    expect_truncations_rejected(v1);
    std::string v3 = request(13, 3, [](Writer &w) {
        w.string("grp");
        w.int32(2);
        w.string("m1");
        w.nullable_string(std::nullopt);
        w.string("m2");
        w.nullable_string(std::string_view("i2"));
    });
    Request l3 = decode_request(v3);
    const auto &l = std::get<LeaveGroupRequest>(l3.body);
    ASSERT_EQ(l.members.size(), 2u);
    EXPECT_EQ(l.members[1].member_id, "m2");
    EXPECT_EQ(*l.members[1].group_instance_id, "i2");
    expect_truncations_rejected(v3);
    LeaveGroupResponse r;
    r.members.push_back({"m1", std::nullopt, code(ErrorCode::unknown_member_id)});
    EXPECT_EQ(tohex(response(13, 0, r)), "0000002a" "0000");
    EXPECT_EQ(tohex(response(13, 2, r)), "0000002a" "00000000" "0000");
    EXPECT_EQ(tohex(response(13, 3, r)), "0000002a" "00000000" "0000" "00000001" "00026d31" "ffff" "0019");
}

TEST(KafkaOffsetCommit, RequestsByVersion)
{
    for (std::int16_t v = 2; v <= 7; v++) {
        std::string p = request(8, v, [v](Writer &w) {
            w.string("grp");
            w.int32(4);
            w.string("m1");
            if (v >= 7)
                w.nullable_string(std::nullopt);
            if (v <= 4)
                w.int64(-1);
            w.int32(1);
            w.string("t");
            w.int32(2);
            w.int32(0);
            w.int64(17);
            if (v >= 6)
                w.int32(-1);
            w.nullable_string(std::string_view("meta"));
            w.int32(3);
            w.int64(0);
            if (v >= 6)
                w.int32(5);
            w.nullable_string(std::nullopt);
        });
        Request req = decode_request(p);
        const auto &c = std::get<OffsetCommitRequest>(req.body);
        EXPECT_EQ(c.generation_id, 4);
        EXPECT_EQ(c.member_id, "m1");
        ASSERT_EQ(c.topics.size(), 1u);
        ASSERT_EQ(c.topics[0].partitions.size(), 2u);
        EXPECT_EQ(c.topics[0].partitions[0].committed_offset, 17);
        EXPECT_EQ(*c.topics[0].partitions[0].committed_metadata, "meta");
        EXPECT_FALSE(c.topics[0].partitions[1].committed_metadata.has_value());
        EXPECT_EQ(c.topics[0].partitions[1].committed_leader_epoch, v >= 6 ? 5 : -1);
        expect_truncations_rejected(p);
    }
    OffsetCommitResponse r;
    r.topics.push_back({"t", {{0, 0}, {3, code(ErrorCode::illegal_generation)}}});
    const std::string body = "00000001" "000174" "00000002" "00000000" "0000" "00000003" "0016";
    EXPECT_EQ(tohex(response(8, 2, r)), "0000002a" + body);
    EXPECT_EQ(tohex(response(8, 3, r)), "0000002a" "00000000" + body);
}

TEST(KafkaOffsetFetch, RequestsAndResponses)
{
    for (std::int16_t v = 1; v <= 5; v++) {
        std::string p = request(9, v, [](Writer &w) {
            w.string("grp");
            w.int32(1);
            w.string("t");
            w.int32(2);
            w.int32(0);
            w.int32(1);
        });
        Request req = decode_request(p);
        const auto &f = std::get<OffsetFetchRequest>(req.body);
        ASSERT_TRUE(f.topics.has_value());
        EXPECT_EQ((*f.topics)[0].partition_indexes.size(), 2u);
        expect_truncations_rejected(p);
        std::string all = request(9, v, [](Writer &w) {
            w.string("grp");
            w.int32(-1);
        });
        if (v >= 2)
            EXPECT_FALSE(std::get<OffsetFetchRequest>(decode_request(all).body).topics.has_value());
        else
            EXPECT_EQ(decode_error([&] { decode_request(all); }), ErrorCode::invalid_request);
    }
    OffsetFetchResponse r;
    r.topics.push_back({"t", {{0, 17, -1, std::string("m"), 0}, {1, -1, -1, std::nullopt, 0}}});
    const std::string p0 = "00000000" "0000000000000011";
    const std::string p1 = "00000001" "ffffffffffffffff";
    EXPECT_EQ(tohex(response(9, 1, r)), "0000002a" "00000001" "000174" "00000002" + p0 + "00016d" "0000" + p1 + "ffff" "0000");
    EXPECT_EQ(tohex(response(9, 2, r)),
              "0000002a" "00000001" "000174" "00000002" + p0 + "00016d" "0000" + p1 + "ffff" "0000" "0000");
    EXPECT_EQ(tohex(response(9, 5, r)), "0000002a" "00000000" "00000001" "000174" "00000002" + p0 + "ffffffff" "00016d" "0000" +
                                            p1 + "ffffffff" "ffff" "0000" "0000");
}

TEST(KafkaDescribeListGroups, RequestsAndResponses)
{
    for (std::int16_t v = 0; v <= 4; v++) {
        std::string p = request(15, v, [v](Writer &w) {
            w.int32(2);
            w.string("a");
            w.string("b");
            if (v >= 3)
                w.boolean(true);
        });
        Request req = decode_request(p);
        const auto &d = std::get<DescribeGroupsRequest>(req.body);
        ASSERT_EQ(d.groups.size(), 2u);
        EXPECT_EQ(d.include_authorized_operations, v >= 3);
        expect_truncations_rejected(p);
    }
    DescribeGroupsResponse r;
    DescribeGroupsResponse::Group g;
    g.group_id = "g";
    g.group_state = "Stable";
    g.protocol_type = "consumer";
    g.protocol_data = "range";
    g.members.push_back({"m", std::nullopt, "c", "/h", "M", "A"});
    r.groups.push_back(g);
    const std::string head = "0000" "000167" "0006537461626c65" "0008636f6e73756d6572" "000572616e6765" "00000001" "00016d";
    const std::string tail = "000163" "00022f68" "000000014d" "0000000141";
    EXPECT_EQ(tohex(response(15, 0, r)), "0000002a" "00000001" + head + tail);
    EXPECT_EQ(tohex(response(15, 3, r)), "0000002a" "00000000" "00000001" + head + tail + "80000000");
    EXPECT_EQ(tohex(response(15, 4, r)), "0000002a" "00000000" "00000001" + head + "ffff" + tail + "80000000");

    for (std::int16_t v = 0; v <= 2; v++) {
        std::string p = request(16, v, [](Writer &) {});
        EXPECT_NO_THROW(decode_request(p));
        EXPECT_EQ(decode_error([&] { decode_request(p + '\0'); }), ErrorCode::invalid_request);
    }
    ListGroupsResponse l;
    l.groups.push_back({"g", "consumer"});
    EXPECT_EQ(tohex(response(16, 0, l)), "0000002a" "0000" "00000001" "000167" "0008636f6e73756d6572");
    EXPECT_EQ(tohex(response(16, 1, l)), "0000002a" "00000000" "0000" "00000001" "000167" "0008636f6e73756d6572");
}

TEST(KafkaConsumerProtocol, SubscriptionTopics)
{
    Writer w;
    w.int16(1);
    w.int32(2);
    w.string("orders");
    w.string("audit");
    w.nullable_bytes(std::nullopt);
    w.int32(0);  // v1 owned partitions
    std::vector<std::string_view> t = consumer_subscription_topics(w.view());
    ASSERT_EQ(t.size(), 2u);
    EXPECT_EQ(t[1], "audit");
    std::string s(w.view());
    for (std::size_t n = 0; n < 2 + 4 + 8 + 2; n++)
        EXPECT_THROW(consumer_subscription_topics(s.substr(0, n)), DecodeError) << n;
    EXPECT_THROW(consumer_subscription_topics(std::string_view("\xff\xff\x00\x00\x00\x00", 6)), DecodeError);
}
