// GoogleTest suite for pgtopic's pure C++ parts (no server needed): Kafka's murmur2 and the
// default partitioner, against the Java client's published vectors (UtilsTest.testMurmur2).
#include "../../src/murmur2.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

std::int32_t murmur2(const std::string &s)
{
    return pgtopic::murmur2(reinterpret_cast<const unsigned char *>(s.data()), s.size());
}

std::int32_t partition(const std::string &s, std::int32_t partitions)
{
    return pgtopic::key_partition(reinterpret_cast<const unsigned char *>(s.data()), s.size(), partitions);
}

TEST(Murmur2, KafkaVectors)
{
    EXPECT_EQ(murmur2("21"), -973932308);
    EXPECT_EQ(murmur2("foobar"), -790332482);
    EXPECT_EQ(murmur2("a-little-bit-long-string"), -985981536);
    EXPECT_EQ(murmur2("a-little-bit-longer-string"), -1486304829);
    EXPECT_EQ(murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
    EXPECT_EQ(murmur2("abc"), 479470107);
}

TEST(Murmur2, EveryTailLength)
{
    // 0..3 trailing bytes take different branches; the hash must differ and be stable.
    EXPECT_NE(murmur2("abcd"), murmur2("abcde"));
    EXPECT_NE(murmur2("abcde"), murmur2("abcdef"));
    EXPECT_NE(murmur2("abcdef"), murmur2("abcdefg"));
    EXPECT_EQ(murmur2("abcdefg"), murmur2(std::string("abcdefg")));
}

TEST(KeyPartition, ToPositiveModulo)
{
    // Utils.toPositive(murmur2) % n: the sign bit is masked, not abs().
    EXPECT_EQ(partition("foobar", 7), static_cast<std::int32_t>((-790332482 & 0x7fffffff) % 7));
    EXPECT_EQ(partition("21", 10), static_cast<std::int32_t>((-973932308 & 0x7fffffff) % 10));
    for (int n = 1; n <= 64; n++) {
        std::int32_t p = partition("some-key", n);
        EXPECT_GE(p, 0);
        EXPECT_LT(p, n);
    }
}

TEST(KeyPartition, HighBytesAreUnsigned)
{
    // Java's (data[i] & 0xff): bytes >= 0x80 must not sign-extend. UTF-8 of "ключ".
    const std::string utf8 = "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87";
    EXPECT_EQ(murmur2(utf8), murmur2(std::string(utf8)));
    EXPECT_NE(murmur2(utf8), murmur2("\x50\x3a\x50\x3b\x51\x0e\x51\x07"));
}

}  // namespace
