// Kafka codec: wire primitives, framing and request headers (src/kafka/wire, framing, header).
// Varint vectors: Apache Kafka's ByteUtilsTest.
#include "kafka/framing.hpp"
#include "kafka/header.hpp"
#include "kafka/wire.hpp"
#include "kafka_test_util.hpp"

#include <gtest/gtest.h>

#include <climits>

using namespace pgtopic::kafka;
using kafka_test::str;
using kafka_test::tohex;
using kafka_test::unhex;

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

}  // namespace

TEST(KafkaWire, BigEndianIntegers)
{
    Writer w;
    w.int8(-2);
    w.int16(0x1234);
    w.int32(-2);
    w.int64(0x0102030405060708LL);
    w.boolean(true);
    EXPECT_EQ(tohex(w.view()), "fe1234fffffffe010203040506070801");
    Reader r(w.view());
    EXPECT_EQ(r.int8(), -2);
    EXPECT_EQ(r.int16(), 0x1234);
    EXPECT_EQ(r.int32(), -2);
    EXPECT_EQ(r.int64(), 0x0102030405060708LL);
    EXPECT_TRUE(r.boolean());
    EXPECT_TRUE(r.empty());
    EXPECT_EQ(decode_error([&] { r.int8(); }), ErrorCode::corrupt_message);
}

TEST(KafkaWire, UnsignedVarintKafkaVectors)
{
    const std::pair<std::uint32_t, const char *> cases[] = {
        {0, "00"},
        {0xffffffffu, "ffffffff0f"},
        {1, "01"},
        {63, "3f"},
        {static_cast<std::uint32_t>(-64), "c0ffffff0f"},
        {64, "40"},
        {8191, "ff3f"},
        {8192, "8040"},
        {1048575, "ffff3f"},
        {1048576, "808040"},
        {0x7fffffffu, "ffffffff07"},
        {0x80000000u, "8080808008"},
    };
    for (auto [value, hex] : cases) {
        Writer w;
        w.uvarint(value);
        EXPECT_EQ(tohex(w.view()), hex);
        std::string b = unhex(hex);
        Reader r(b);
        EXPECT_EQ(r.uvarint(), value);
        EXPECT_TRUE(r.empty());
    }
}

TEST(KafkaWire, ZigzagVarintKafkaVectors)
{
    const std::pair<std::int32_t, const char *> cases[] = {
        {0, "00"},          {-1, "01"},         {1, "02"},           {63, "7e"},         {-64, "7f"},
        {64, "8001"},       {-65, "8101"},      {8191, "fe7f"},      {-8192, "ff7f"},    {8192, "808001"},
        {-8193, "818001"},  {1048575, "feff7f"}, {-1048576, "ffff7f"}, {1048576, "80808001"},
        {-1048577, "81808001"}, {134217727, "feffff7f"}, {-134217728, "ffffff7f"}, {134217728, "8080808001"},
        {-134217729, "8180808001"}, {INT_MAX, "feffffff0f"}, {INT_MIN, "ffffffff0f"},
    };
    for (auto [value, hex] : cases) {
        Writer w;
        w.varint(value);
        EXPECT_EQ(tohex(w.view()), hex) << value;
        std::string b = unhex(hex);
        Reader r(b);
        EXPECT_EQ(r.varint(), value);
        EXPECT_TRUE(r.empty());
        // varlong agrees on 32-bit values
        Writer wl;
        wl.varlong(value);
        EXPECT_EQ(tohex(wl.view()), hex);
        Reader rl(b);
        EXPECT_EQ(rl.varlong(), value);
    }
    const std::pair<std::int64_t, const char *> longs[] = {
        {17179869183LL, "feffffff7f"},
        {-17179869184LL, "ffffffff7f"},
        {17179869184LL, "808080808001"},
        {-17179869185LL, "818080808001"},
        {LLONG_MAX, "feffffffffffffffff01"},
        {LLONG_MIN, "ffffffffffffffffff01"},
    };
    for (auto [value, hex] : longs) {
        Writer w;
        w.varlong(value);
        EXPECT_EQ(tohex(w.view()), hex);
        std::string b = unhex(hex);
        Reader r(b);
        EXPECT_EQ(r.varlong(), value);
    }
}

TEST(KafkaWire, OverlongAndTruncatedVarintsRejected)
{
    // 32 bits overflowed, more than 5 bytes, truncated
    for (const char *hex : {"ffffffff1f", "8080808080", "80", "", "808080"}) {
        std::string b = unhex(hex);
        Reader r(b);
        EXPECT_EQ(decode_error([&] { r.uvarint(); }), ErrorCode::corrupt_message) << hex;
        Reader r2(b);
        EXPECT_EQ(decode_error([&] { r2.varint(); }), ErrorCode::corrupt_message) << hex;
    }
    // 64 bits overflowed, more than 10 bytes, truncated
    for (const char *hex : {"ffffffffffffffffff02", "ffffffffffffffffffff01", "80", ""}) {
        std::string b = unhex(hex);
        Reader r(b);
        EXPECT_EQ(decode_error([&] { r.varlong(); }), ErrorCode::corrupt_message) << hex;
    }
}

TEST(KafkaWire, NullableStringsAndBytes)
{
    Writer w;
    w.nullable_string(std::nullopt);
    w.string("");
    w.string("abc");
    w.nullable_bytes(std::nullopt);
    w.bytes(std::string_view("\0\1", 2));
    w.compact_nullable_string(std::nullopt);
    w.compact_string("xy");
    w.varint_bytes(std::nullopt);
    w.varint_bytes(std::string_view(""));
    w.varint_bytes(std::string_view("k"));
    EXPECT_EQ(tohex(w.view()), "ffff00000003616263ffffffff000000020001000378790100"
                               "02"
                               "6b");
    Reader r(w.view());
    EXPECT_FALSE(r.nullable_string().has_value());
    EXPECT_EQ(r.string(), "");
    EXPECT_EQ(r.string(), "abc");
    EXPECT_FALSE(r.nullable_bytes().has_value());
    EXPECT_EQ(r.bytes(), std::string_view("\0\1", 2));
    EXPECT_FALSE(r.compact_nullable_string().has_value());
    EXPECT_EQ(r.compact_string(), "xy");
    EXPECT_FALSE(r.varint_bytes().has_value());
    EXPECT_EQ(*r.varint_bytes(), "");
    EXPECT_EQ(*r.varint_bytes(), "k");
    EXPECT_TRUE(r.empty());
}

TEST(KafkaWire, BadLengthsRejected)
{
    // string length -2, string longer than the bytes left, null where required
    for (const char *hex : {"fffe", "000561", "7fff"}) {
        std::string b = unhex(hex);
        Reader r(b);
        EXPECT_EQ(decode_error([&] { r.nullable_string(); }), ErrorCode::corrupt_message) << hex;
    }
    {
        std::string b = unhex("ffff");
        Reader r(b);
        EXPECT_EQ(decode_error([&] { r.string(); }), ErrorCode::invalid_request);
    }
    for (const char *hex : {"fffffffe", "80000000", "7fffffff00", "00000002ff"}) {
        std::string b = unhex(hex);
        Reader r(b);
        EXPECT_EQ(decode_error([&] { r.nullable_bytes(); }), ErrorCode::corrupt_message) << hex;
    }
    // varint lengths: -2, and 63 with nothing behind it
    for (const char *hex : {"03", "7e"}) {
        std::string b = unhex(hex);
        Reader r(b);
        EXPECT_EQ(decode_error([&] { r.varint_bytes(); }), ErrorCode::corrupt_message) << hex;
    }
    // compact string of 2^32-2 bytes claimed
    std::string b = unhex("ffffffff0f");
    Reader r(b);
    EXPECT_EQ(decode_error([&] { r.compact_string(); }), ErrorCode::corrupt_message);
}

TEST(KafkaWire, ArrayCountsCheckedBeforeAllocating)
{
    // 2^31-1 elements of at least 4 bytes in a 4-byte buffer: refused from the count alone.
    std::string b = unhex("7fffffff00000000");
    Reader r(b);
    EXPECT_EQ(decode_error([&] { r.array_count(4); }), ErrorCode::corrupt_message);
    std::string neg = unhex("fffffffe");
    Reader rn(neg);
    EXPECT_EQ(decode_error([&] { rn.array_count(1); }), ErrorCode::corrupt_message);
    std::string null = unhex("ffffffff");
    Reader rnull(null);
    EXPECT_FALSE(rnull.nullable_array_count(1).has_value());
    Reader rnull2(null);
    EXPECT_EQ(decode_error([&] { rnull2.array_count(1); }), ErrorCode::invalid_request);
    // exactly fitting is fine
    std::string ok = unhex("000000020000000100000002");
    Reader rok(ok);
    EXPECT_EQ(rok.array_count(4), 2);
    // compact: 0 = null, n+1 = n
    std::string c = unhex("0003");
    Reader rc(c);
    EXPECT_FALSE(rc.compact_nullable_array_count(1).has_value());
    EXPECT_EQ(decode_error([&] { rc.compact_array_count(1); }), ErrorCode::corrupt_message);  // 2 claimed, 0 left
}

TEST(KafkaWire, TaggedFieldsSkipped)
{
    // two tagged fields: tag 0 size 2, tag 5 size 0
    std::string b = unhex("020002abcd0500ee");
    Reader r(b);
    r.skip_tagged_fields();
    EXPECT_EQ(r.remaining(), 1u);
    std::string bad = unhex("010005ab");  // size 5, 1 byte left
    Reader rb(bad);
    EXPECT_EQ(decode_error([&] { rb.skip_tagged_fields(); }), ErrorCode::corrupt_message);
    std::string many = unhex("ffffffff0f");  // 2^32-1 fields claimed
    Reader rm(many);
    EXPECT_EQ(decode_error([&] { rm.skip_tagged_fields(); }), ErrorCode::corrupt_message);
}

TEST(KafkaWire, EncodeLimits)
{
    Writer w;
    EXPECT_THROW(w.string(std::string(40000, 'x')), EncodeError);
    EXPECT_NO_THROW(w.string(std::string(32767, 'x')));
}

TEST(KafkaFraming, SizesCheckedBeforeBuffering)
{
    EXPECT_EQ(frame_status("").kind, FrameStatus::need_more);
    EXPECT_EQ(frame_status(unhex("0000")).bytes, 4u);
    FrameStatus s = frame_status(unhex("0000000a0102"));
    EXPECT_EQ(s.kind, FrameStatus::need_more);
    EXPECT_EQ(s.bytes, 14u);
    std::string whole = unhex("0000000a") + std::string(10, '\0') + "extra";
    s = frame_status(whole);
    EXPECT_EQ(s.kind, FrameStatus::complete);
    EXPECT_EQ(s.bytes, 10u);
    EXPECT_EQ(decode_error([] { frame_status(unhex("ffffffff")); }), ErrorCode::invalid_request);  // negative
    EXPECT_EQ(decode_error([] { frame_status(unhex("80000000")); }), ErrorCode::invalid_request);
    EXPECT_EQ(decode_error([] { frame_status(unhex("00000003")); }), ErrorCode::invalid_request);  // < a header
    EXPECT_EQ(decode_error([] { frame_status(unhex("00800001")); }), ErrorCode::invalid_request);  // 8 MiB + 1
    EXPECT_EQ(frame_status(unhex("00800000")).kind, FrameStatus::need_more);                       // 8 MiB: ok
    EXPECT_EQ(frame_status(unhex("06400000"), 100 * 1024 * 1024).kind, FrameStatus::need_more);   // 100 MiB with a higher cap
    EXPECT_EQ(decode_error([] { frame_status(unhex("00001001"), 4096); }), ErrorCode::invalid_request);
}

TEST(KafkaHeader, VersionsAndFlexibility)
{
    EXPECT_EQ(request_header_version(18, 3), 2);
    EXPECT_EQ(request_header_version(18, 2), 1);
    EXPECT_EQ(response_header_version(18, 3), 0);  // ApiVersions: always v0
    EXPECT_EQ(request_header_version(3, 4), 1);
    EXPECT_EQ(request_header_version(3, 9), 2);
    EXPECT_EQ(response_header_version(3, 9), 1);
    EXPECT_EQ(request_header_version(1, 11), 1);
    EXPECT_EQ(request_header_version(1, 12), 2);
    EXPECT_EQ(request_header_version(0, 9), 2);
    EXPECT_EQ(request_header_version(999, 50), 1);
    EXPECT_EQ(find_version_range(42), nullptr);
}

TEST(KafkaHeader, RequestHeaderV1AndV2)
{
    // v1: Metadata v4 from librdkafka
    std::string b = unhex(kafka_test::captured::metadata_v4_all);
    Reader r(b);
    RequestHeader h = read_request_header(r);
    EXPECT_EQ(h.api_key, 3);
    EXPECT_EQ(h.api_version, 4);
    EXPECT_EQ(h.correlation_id, 3);
    EXPECT_EQ(*h.client_id, "rdkafka");
    EXPECT_EQ(r.remaining(), 5u);
    // v2: ApiVersions v3 (tagged fields after the int16-length client id)
    std::string a = unhex(kafka_test::captured::api_versions_v3);
    Reader ra(a);
    h = read_request_header(ra);
    EXPECT_EQ(h.api_key, 18);
    EXPECT_EQ(h.api_version, 3);
    EXPECT_EQ(h.correlation_id, 1);
    EXPECT_EQ(*h.client_id, "rdkafka");
    EXPECT_EQ(tohex(ra.raw(ra.remaining())), "0b6c696272646b61666b6106322e302e3200");
    // null client id
    std::string n = unhex("00030001000000ffffff");
    Reader rn(n);
    EXPECT_FALSE(read_request_header(rn).client_id.has_value());
}

TEST(KafkaHeader, ResponseHeaders)
{
    Writer w0;
    write_response_header(w0, 3, 4, 7);
    EXPECT_EQ(tohex(w0.view()), "00000007");
    Writer w1;
    write_response_header(w1, 3, 9, 7);
    EXPECT_EQ(tohex(w1.view()), "0000000700");
    Writer wa;
    write_response_header(wa, 18, 3, 7);
    EXPECT_EQ(tohex(wa.view()), "00000007");
}
