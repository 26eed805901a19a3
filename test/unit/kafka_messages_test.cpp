// Kafka codec: per-API request decoding and response encoding (src/kafka/messages.hpp), with
// frames librdkafka 2.0.2 sent (kafka_test::captured) and frames built field by field from
// Apache Kafka's message definitions.
#include "kafka/messages.hpp"
#include "kafka_test_util.hpp"

#include <gtest/gtest.h>

#include <functional>

using namespace pgtopic::kafka;
using kafka_test::str;
using kafka_test::tohex;
using kafka_test::unhex;
namespace captured = kafka_test::captured;

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

// A request payload: header v1 (client id "kcat-test") + body.
std::string request(std::int16_t key, std::int16_t version, const std::function<void(Writer &)> &body)
{
    Writer w;
    w.int16(key);
    w.int16(version);
    w.int32(42);
    w.string("kcat-test");
    body(w);
    return str(w);
}

// A response frame without its size prefix (checked here).
std::string response(std::int16_t key, std::int16_t version, const ResponseBody &body)
{
    std::vector<unsigned char> f = encode_response(key, version, 42, body);
    std::string frame(f.begin(), f.end());
    EXPECT_GE(frame.size(), 4u);
    Reader size(frame);
    EXPECT_EQ(static_cast<std::size_t>(size.int32()), frame.size() - 4);
    return frame.substr(4);
}

// Every strict prefix of a valid payload is rejected with DecodeError, and so is one extra byte.
void expect_truncations_rejected(const std::string &payload)
{
    ASSERT_NO_THROW(decode_request(payload));
    for (std::size_t n = 0; n < payload.size(); n++)
        EXPECT_NE(decode_error([&] { decode_request(payload.substr(0, n)); }), ErrorCode::none) << n;
    EXPECT_EQ(decode_error([&] { decode_request(payload + '\0'); }), ErrorCode::invalid_request);
}

}  // namespace

TEST(KafkaApiVersions, LibrdkafkaV3Request)
{
    std::string p = unhex(captured::api_versions_v3);
    Request req = decode_request(p);
    EXPECT_EQ(req.header.correlation_id, 1);
    const auto &b = std::get<ApiVersionsRequest>(req.body);
    EXPECT_EQ(*b.client_software_name, "librdkafka");
    EXPECT_EQ(*b.client_software_version, "2.0.2");
    expect_truncations_rejected(p);
}

TEST(KafkaApiVersions, V0ToV2RequestsAreEmpty)
{
    for (std::int16_t v = 0; v <= 2; v++) {
        std::string p = request(18, v, [](Writer &) {});
        EXPECT_NO_THROW(decode_request(p));
        EXPECT_EQ(decode_error([&] { decode_request(p + "x"); }), ErrorCode::invalid_request);
    }
}

TEST(KafkaApiVersions, ResponsesByVersion)
{
    ApiVersionsResponse r;
    r.api_keys = {{18, 0, 3}, {3, 0, 4}};
    // v0: error, int32 count, (key, min, max)*
    EXPECT_EQ(tohex(response(18, 0, r)), "0000002a" "0000" "00000002" "001200000003" "000300000004");
    // v1/v2: + throttle time
    EXPECT_EQ(tohex(response(18, 2, r)),
              "0000002a" "0000" "00000002" "001200000003" "000300000004" "00000000");
    // v3: compact array, tagged fields per entry and at the end; the header stays v0
    EXPECT_EQ(tohex(response(18, 3, r)),
              "0000002a" "0000" "03" "00120000000300" "00030000000400" "00000000" "00");
}

TEST(KafkaApiVersions, UnsupportedVersionAnsweredInV0)
{
    // ApiVersions v4 (a newer client): the header is still readable, the body refused, and the
    // answer is a v0 body with UNSUPPORTED_VERSION and our ranges (KIP-511).
    std::string p = unhex(captured::api_versions_v3);
    p[3] = 4;
    RequestHeader h;
    EXPECT_EQ(decode_error([&] { decode_request(p, &h); }), ErrorCode::unsupported_version);
    EXPECT_EQ(h.api_key, 18);
    EXPECT_EQ(h.api_version, 4);
    EXPECT_EQ(h.correlation_id, 1);
    ApiVersionsResponse r;
    r.error_code = code(ErrorCode::unsupported_version);
    r.api_keys = {{18, 0, 3}};
    EXPECT_EQ(tohex(response(18, 4, r)), "0000002a" "0023" "00000001" "001200000003");
}

TEST(KafkaRequest, UnknownKeysAndVersionsRefused)
{
    RequestHeader h;
    EXPECT_EQ(decode_error([&] { decode_request(request(42, 0, [](Writer &) {}), &h); }),
              ErrorCode::unsupported_version);
    EXPECT_EQ(h.api_key, 42);
    EXPECT_EQ(decode_error([&] { decode_request(request(3, 5, [](Writer &) {})); }), ErrorCode::unsupported_version);
    EXPECT_EQ(decode_error([&] { decode_request(request(0, 2, [](Writer &) {})); }), ErrorCode::unsupported_version);
    EXPECT_EQ(decode_error([&] { decode_request(request(1, 12, [](Writer &w) { w.no_tagged_fields(); })); }), ErrorCode::unsupported_version);
    EXPECT_EQ(decode_error([&] { decode_request(unhex("0003")); }), ErrorCode::corrupt_message);
    // A body that does not match its key
    MetadataResponse m;
    EXPECT_THROW(encode_response(0, 7, 1, ResponseBody{m}), EncodeError);
    EXPECT_THROW(encode_response(3, 9, 1, ResponseBody{m}), DecodeError);  // version outside the codec
}

TEST(KafkaMetadata, LibrdkafkaV4Requests)
{
    std::string p = unhex(captured::metadata_v4_empty);
    Request req = decode_request(p);
    const auto &empty = std::get<MetadataRequest>(req.body);
    ASSERT_TRUE(empty.topics.has_value());  // v1+: empty = no topics
    EXPECT_TRUE(empty.topics->empty());
    EXPECT_FALSE(empty.allow_auto_topic_creation);
    expect_truncations_rejected(p);

    std::string all = unhex(captured::metadata_v4_all);
    Request m_req = decode_request(all);
    const auto &m = std::get<MetadataRequest>(m_req.body);
    EXPECT_FALSE(m.topics.has_value());  // null = all topics
    EXPECT_TRUE(m.allow_auto_topic_creation);
    expect_truncations_rejected(all);
}

TEST(KafkaMetadata, V0EmptyMeansAllAndNullIsInvalid)
{
    std::string v0 = request(3, 0, [](Writer &w) { w.int32(0); });
    EXPECT_FALSE(std::get<MetadataRequest>(decode_request(v0).body).topics.has_value());
    std::string v0null = request(3, 0, [](Writer &w) { w.int32(-1); });
    EXPECT_EQ(decode_error([&] { decode_request(v0null); }), ErrorCode::invalid_request);
    std::string named = request(3, 1, [](Writer &w) {
        w.int32(2);
        w.string("a");
        w.string("bb");
    });
    Request m_req = decode_request(named);
    const auto &m = std::get<MetadataRequest>(m_req.body);
    ASSERT_EQ(m.topics->size(), 2u);
    EXPECT_EQ((*m.topics)[1], "bb");
    expect_truncations_rejected(named);
    // v4 without its allow_auto_topic_creation byte
    std::string v4 = request(3, 4, [](Writer &w) { w.int32(-1); });
    EXPECT_EQ(decode_error([&] { decode_request(v4); }), ErrorCode::corrupt_message);
}

TEST(KafkaMetadata, ResponsesByVersion)
{
    MetadataResponse r;
    r.brokers = {{1, "h", 9092, std::nullopt}};
    r.cluster_id = "c";
    r.controller_id = 1;
    MetadataResponse::Topic t;
    t.name = "t";
    t.partitions = {{0, 0, 1, {1}, {1}}};
    r.topics = {t};
    const std::string partition = "0000" "00000000" "00000001" "00000001" "00000001" "00000001" "00000001";
    EXPECT_EQ(tohex(response(3, 0, r)), "0000002a" "00000001" "00000001" "000168" "00002384"
                                        "00000001" "0000" "000174" "00000001" + partition);
    // v1: rack, controller id, is_internal; v2: cluster id; v3/v4: throttle time first
    EXPECT_EQ(tohex(response(3, 4, r)), "0000002a" "00000000" "00000001" "00000001" "000168" "00002384"
                                        "ffff" "000163" "00000001" "00000001" "0000" "000174" "00" "00000001" +
                                            partition);
    EXPECT_EQ(tohex(response(3, 1, r)), "0000002a" "00000001" "00000001" "000168" "00002384" "ffff"
                                        "00000001" "00000001" "0000" "000174" "00" "00000001" + partition);
}

TEST(KafkaProduce, LibrdkafkaV7Request)
{
    std::string p = unhex(captured::produce_v7);
    Request req = decode_request(p);
    const auto &b = std::get<ProduceRequest>(req.body);
    EXPECT_FALSE(b.transactional_id.has_value());
    EXPECT_EQ(b.acks, -1);
    EXPECT_EQ(b.timeout_ms, 30000);
    ASSERT_EQ(b.topics.size(), 1u);
    EXPECT_EQ(b.topics[0].name, "t");
    ASSERT_EQ(b.topics[0].partitions.size(), 1u);
    EXPECT_EQ(b.topics[0].partitions[0].index, 0);
    EXPECT_EQ(b.topics[0].partitions[0].records->size(), 121u);
    expect_truncations_rejected(p);
    // Every supported version has the same layout; 8 is refused.
    for (std::int16_t v = 3; v <= 7; v++) {
        std::string q = p;
        q[3] = static_cast<char>(v);
        EXPECT_NO_THROW(decode_request(q));
    }
    std::string v8 = p;
    v8[3] = 8;
    EXPECT_EQ(decode_error([&] { decode_request(v8); }), ErrorCode::unsupported_version);
    // A partition count no frame could hold
    std::string huge = request(0, 7, [](Writer &w) {
        w.nullable_string(std::nullopt);
        w.int16(1);
        w.int32(1000);
        w.int32(1);
        w.string("t");
        w.int32(0x10000000);
    });
    EXPECT_EQ(decode_error([&] { decode_request(huge); }), ErrorCode::corrupt_message);
}

TEST(KafkaProduce, ResponsesByVersion)
{
    ProduceResponse r;
    r.responses = {{"t", {{0, 0, 5, -1, 0}}}};
    const std::string head = "0000002a" "00000001" "000174" "00000001" "00000000" "0000" "0000000000000005"
                             "ffffffffffffffff";
    EXPECT_EQ(tohex(response(0, 3, r)), head + "00000000");
    EXPECT_EQ(tohex(response(0, 7, r)), head + "0000000000000000" "00000000");
}

TEST(KafkaFetch, LibrdkafkaV11Request)
{
    std::string p = unhex(captured::fetch_v11);
    Request f_req = decode_request(p);
    const auto &f = std::get<FetchRequest>(f_req.body);
    EXPECT_EQ(f.replica_id, -1);
    EXPECT_EQ(f.max_wait_ms, 500);
    EXPECT_EQ(f.min_bytes, 1);
    EXPECT_EQ(f.max_bytes, 52428800);
    EXPECT_EQ(f.isolation_level, 1);
    EXPECT_EQ(f.session_id, 0);
    EXPECT_EQ(f.session_epoch, -1);
    ASSERT_EQ(f.topics.size(), 1u);
    EXPECT_EQ(f.topics[0].topic, "t");
    ASSERT_EQ(f.topics[0].partitions.size(), 1u);
    const auto &part = f.topics[0].partitions[0];
    EXPECT_EQ(part.partition, 0);
    EXPECT_EQ(part.current_leader_epoch, -1);
    EXPECT_EQ(part.fetch_offset, 0);
    EXPECT_EQ(part.log_start_offset, -1);
    EXPECT_EQ(part.partition_max_bytes, 1048576);
    EXPECT_TRUE(f.forgotten_topics.empty());
    EXPECT_EQ(f.rack_id, "");
    expect_truncations_rejected(p);
}

TEST(KafkaFetch, V4RequestAndIsolationLevel)
{
    auto v4 = [](std::int8_t isolation) {
        return request(1, 4, [isolation](Writer &w) {
            w.int32(-1);
            w.int32(100);
            w.int32(1);
            w.int32(1000000);
            w.int8(isolation);
            w.int32(1);
            w.string("t");
            w.int32(1);
            w.int32(3);
            w.int64(77);
            w.int32(65536);
        });
    };
    std::string p = v4(0);
    Request f_req = decode_request(p);
    const auto &f = std::get<FetchRequest>(f_req.body);
    EXPECT_EQ(f.topics[0].partitions[0].partition, 3);
    EXPECT_EQ(f.topics[0].partitions[0].fetch_offset, 77);
    EXPECT_EQ(f.topics[0].partitions[0].partition_max_bytes, 65536);
    expect_truncations_rejected(p);
    EXPECT_EQ(decode_error([&] { decode_request(v4(2)); }), ErrorCode::invalid_request);
}

TEST(KafkaFetch, ResponsesByVersion)
{
    FetchResponse r;
    FetchResponse::Partition part;
    part.partition_index = 0;
    part.high_watermark = 10;
    part.last_stable_offset = 9;
    part.log_start_offset = 0;
    part.records = std::string_view("\x01\x02", 2);
    r.responses = {{"t", {part}}};
    EXPECT_EQ(tohex(response(1, 4, r)), "0000002a" "00000000" "00000001" "000174" "00000001" "00000000"
                                        "0000" "000000000000000a" "0000000000000009" "ffffffff" "00000002" "0102");
    r.responses[0].partitions[0].aborted_transactions.emplace();
    r.responses[0].partitions[0].aborted_transactions->push_back({7, 3});
    EXPECT_EQ(tohex(response(1, 11, r)), "0000002a" "00000000" "0000" "00000000" "00000001" "000174"
                                         "00000001" "00000000" "0000" "000000000000000a" "0000000000000009"
                                         "0000000000000000" "00000001" "0000000000000007" "0000000000000003"
                                         "ffffffff" "00000002" "0102");
}

TEST(KafkaListOffsets, LibrdkafkaV2Requests)
{
    std::string p = unhex(captured::list_offsets_v2_earliest);
    Request l_req = decode_request(p);
    const auto &l = std::get<ListOffsetsRequest>(l_req.body);
    EXPECT_EQ(l.replica_id, -1);
    EXPECT_EQ(l.isolation_level, 1);
    EXPECT_EQ(l.topics.at(0).name, "t");
    EXPECT_EQ(l.topics.at(0).partitions.at(0).timestamp, -2);
    expect_truncations_rejected(p);
    std::string q = unhex(captured::list_offsets_v2_time);
    EXPECT_EQ(std::get<ListOffsetsRequest>(decode_request(q).body).topics.at(0).partitions.at(0).timestamp,
              1700000000000LL);
    // v1: no isolation level
    std::string v1 = request(2, 1, [](Writer &w) {
        w.int32(-1);
        w.int32(1);
        w.string("t");
        w.int32(1);
        w.int32(0);
        w.int64(-1);
    });
    EXPECT_EQ(std::get<ListOffsetsRequest>(decode_request(v1).body).topics.at(0).partitions.at(0).timestamp, -1);
    expect_truncations_rejected(v1);
}

TEST(KafkaListOffsets, ResponsesByVersion)
{
    ListOffsetsResponse r;
    r.topics = {{"t", {{0, 0, -1, 12}}}};
    const std::string body = "00000001" "000174" "00000001" "00000000" "0000" "ffffffffffffffff" "000000000000000c";
    EXPECT_EQ(tohex(response(2, 1, r)), "0000002a" + body);
    EXPECT_EQ(tohex(response(2, 2, r)), "0000002a" "00000000" + body);
}

TEST(KafkaCreateTopics, RequestsByVersion)
{
    auto req = [](std::int16_t v) {
        return request(19, v, [v](Writer &w) {
            w.int32(1);
            w.string("new");
            w.int32(3);
            w.int16(-1);
            w.int32(1);  // one assignment
            w.int32(0);
            w.int32(1);
            w.int32(1);
            w.int32(2);  // two configs
            w.string("retention.ms");
            w.nullable_string(std::string_view("1000"));
            w.string("x");
            w.nullable_string(std::nullopt);
            w.int32(5000);
            if (v >= 1)
                w.boolean(true);
        });
    };
    for (std::int16_t v = 0; v <= 4; v++) {
        std::string p = req(v);
        Request c_req = decode_request(p);
    const auto &c = std::get<CreateTopicsRequest>(c_req.body);
        ASSERT_EQ(c.topics.size(), 1u);
        EXPECT_EQ(c.topics[0].name, "new");
        EXPECT_EQ(c.topics[0].num_partitions, 3);
        EXPECT_EQ(c.topics[0].replication_factor, -1);
        EXPECT_EQ(c.topics[0].assignments.at(0).broker_ids.at(0), 1);
        EXPECT_EQ(c.topics[0].configs.at(0).name, "retention.ms");
        EXPECT_EQ(*c.topics[0].configs.at(0).value, "1000");
        EXPECT_FALSE(c.topics[0].configs.at(1).value.has_value());
        EXPECT_EQ(c.timeout_ms, 5000);
        EXPECT_EQ(c.validate_only, v >= 1);
        expect_truncations_rejected(p);
    }
    EXPECT_EQ(decode_error([&] { decode_request(req(5)); }), ErrorCode::unsupported_version);
}

TEST(KafkaCreateTopics, ResponsesByVersion)
{
    CreateTopicsResponse r;
    r.topics = {{"new", code(ErrorCode::topic_already_exists), std::string("exists")}};
    EXPECT_EQ(tohex(response(19, 0, r)), "0000002a" "00000001" "00036e6577" "0024");
    EXPECT_EQ(tohex(response(19, 1, r)), "0000002a" "00000001" "00036e6577" "0024" "0006657869737473");
    EXPECT_EQ(tohex(response(19, 4, r)),
              "0000002a" "00000000" "00000001" "00036e6577" "0024" "0006657869737473");
    r.topics[0].error_message.reset();
    EXPECT_EQ(tohex(response(19, 2, r)), "0000002a" "00000000" "00000001" "00036e6577" "0024" "ffff");
}

TEST(KafkaDeleteTopics, RequestsAndResponses)
{
    for (std::int16_t v = 0; v <= 1; v++) {
        std::string p = request(20, v, [](Writer &w) {
            w.int32(2);
            w.string("a");
            w.string("b");
            w.int32(1000);
        });
        Request d_req = decode_request(p);
    const auto &d = std::get<DeleteTopicsRequest>(d_req.body);
        ASSERT_EQ(d.topic_names.size(), 2u);
        EXPECT_EQ(d.topic_names[1], "b");
        EXPECT_EQ(d.timeout_ms, 1000);
        expect_truncations_rejected(p);
    }
    DeleteTopicsResponse r;
    r.responses = {{"a", 0}, {"b", code(ErrorCode::unknown_topic_or_partition)}};
    EXPECT_EQ(tohex(response(20, 0, r)), "0000002a" "00000002" "000161" "0000" "000162" "0003");
    EXPECT_EQ(tohex(response(20, 1, r)), "0000002a" "00000000" "00000002" "000161" "0000" "000162" "0003");
}
