// Helpers for the Kafka codec's GoogleTest suites.
#pragma once

#include "kafka/crc32c.hpp"
#include "kafka/wire.hpp"

#include <stdexcept>
#include <string>
#include <string_view>

namespace kafka_test {

// "00ff10" -> the bytes 0x00 0xff 0x10.
inline std::string unhex(std::string_view hex)
{
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9')
            return c - '0';
        if (c >= 'a' && c <= 'f')
            return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
            return c - 'A' + 10;
        throw std::invalid_argument("bad hex digit");
    };
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
    return out;
}

inline std::string tohex(std::string_view bytes)
{
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

inline std::string str(const pgtopic::kafka::Writer &w) { return std::string(w.view()); }

inline const pgtopic::kafka::Crc32cFn crc = pgtopic::kafka::postgres_crc32c;

// Frames captured from kcat 1.7.1 / librdkafka 2.0.2 talking to a scripted fake broker on
// loopback (the payload after the 4-byte size prefix).
namespace captured {
// kcat -L: ApiVersions v3 (request header v2, client id "rdkafka", software "librdkafka" 2.0.2)
inline const char api_versions_v3[] = "0012000300000001000772646b61666b61000b6c696272646b61666b6106322e302e3200";
// kcat -L: Metadata v4, the bootstrap's empty topic list (allow_auto_topic_creation false)
inline const char metadata_v4_empty[] = "0003000400000002000772646b61666b610000000000";
// kcat -L: Metadata v4, all topics (null array, allow_auto_topic_creation true)
inline const char metadata_v4_all[] = "0003000400000003000772646b61666b61ffffffff01";
// kcat -P -t t -p 0 -k key1 -H h1=x -H h1=y -H h2= with the lines "hello" and "world":
// Produce v7, acks -1, timeout 30000, one RecordBatch v2 of two records.
inline const char produce_v7[] =
    "0000000700000003000772646b61666b61ffffffff000075300000000100017400000001000000000000007900000000000000000000"
    "006d0000000002dc1d4d6f000000000001000001a2351caeee000001a2351caeeeffffffffffffffffffffffffffff000000023a00"
    "0000086b6579310a68656c6c6f0604683102780468310279046832003a000002086b6579310a776f726c6406046831027804683102"
    "7904683200";
// kcat -C -t t -p 0 -o beginning -e: Fetch v11, read_committed, max_wait 500, max_bytes 52428800
inline const char fetch_v11[] =
    "0001000b00000005000772646b61666b61ffffffff000001f400000001032000000100000000ffffffff0000000100017400000001"
    "00000000ffffffff0000000000000000ffffffffffffffff00100000000000000000";
// kcat -C -o beginning: ListOffsets v2 for the log start (-2)
inline const char list_offsets_v2_earliest[] =
    "0002000200000004000772646b61666b61ffffffff01000000010001740000000100000000fffffffffffffffe";
// kcat -Q -t t:0:1700000000000: ListOffsets v2 for a timestamp
inline const char list_offsets_v2_time[] =
    "0002000200000003000772646b61666b61ffffffff010000000100017400000001000000000000018bcfe56800";
}  // namespace captured

}  // namespace kafka_test
