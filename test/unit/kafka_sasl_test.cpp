// Kafka codec: SaslHandshake 0-1 and SaslAuthenticate 0-1 (src/kafka/sasl.cpp), field by field
// from SaslHandshake*.json / SaslAuthenticate*.json, and the PLAIN / SCRAM message parsing.
#include "kafka/messages.hpp"
#include "kafka_test_util.hpp"

#include <gtest/gtest.h>

using namespace pgtopic::kafka;
using kafka_test::str;
using kafka_test::tohex;
using kafka_test::unhex;

namespace {

std::string request(std::int16_t key, std::int16_t version, std::string_view body_hex)
{
    Writer w;
    w.int16(key);
    w.int16(version);
    w.int32(7);
    w.string("rdkafka");
    return str(w) + unhex(body_hex);
}

std::string response(std::int16_t key, std::int16_t version, const ResponseBody &body)
{
    std::vector<unsigned char> f = encode_response(key, version, 7, body);
    return std::string(f.begin(), f.end()).substr(4);
}

}  // namespace

TEST(KafkaSasl, HandshakeRequestAndResponse)
{
    for (std::int16_t v : {0, 1}) {
        Request r = decode_request(request(17, v, "000d" "5343524"  "14d2d5348412d323536"));
        EXPECT_EQ(std::get<SaslHandshakeRequest>(r.body).mechanism, "SCRAM-SHA-256") << v;
    }
    SaslHandshakeResponse h;
    h.error_code = 33;  // UNSUPPORTED_SASL_MECHANISM
    h.mechanisms = {"PLAIN", "SCRAM-SHA-256"};
    // header v0 (correlation id), error, int32 count, strings
    EXPECT_EQ(tohex(response(17, 1, h)), "00000007" "0021" "00000002" "0005504c41494e" "000d5343524"
                                         "14d2d5348412d323536");
    EXPECT_THROW(decode_request(request(17, 2, "0005504c41494e")), DecodeError);
    // trailing bytes, truncation
    EXPECT_THROW(decode_request(request(17, 1, "0005504c41494e00")), DecodeError);
    EXPECT_THROW(decode_request(request(17, 1, "0005504c41")), DecodeError);
}

TEST(KafkaSasl, AuthenticateRequestAndResponse)
{
    Request r = decode_request(request(36, 1, "00000007" "00757365720070"));
    EXPECT_EQ(std::get<SaslAuthenticateRequest>(r.body).auth_bytes, std::string("\0user\0p", 7));
    SaslAuthenticateResponse a;
    a.auth_bytes = "r=abc";
    // v0: error, nullable string (-1), bytes
    EXPECT_EQ(tohex(response(36, 0, a)), "00000007" "0000" "ffff" "00000005" "723d616263");
    // v1: + session lifetime
    a.error_code = 58;  // SASL_AUTHENTICATION_FAILED
    a.error_message = "bad";
    a.auth_bytes.clear();
    EXPECT_EQ(tohex(response(36, 1, a)), "00000007" "003a" "0003626164" "00000000" "0000000000000000");
    EXPECT_THROW(decode_request(request(36, 2, "0100")), DecodeError);  // v2 is flexible: not decoded
    EXPECT_THROW(decode_request(request(36, 0, "000000ff00")), DecodeError);  // length past the end
}

TEST(KafkaSasl, PlainMessages)
{
    PlainCredentials c;
    ASSERT_TRUE(parse_sasl_plain(std::string("\0alice\0s3cret", 13), &c));
    EXPECT_EQ(c.authzid, "");
    EXPECT_EQ(c.user, "alice");
    EXPECT_EQ(c.password, "s3cret");
    ASSERT_TRUE(parse_sasl_plain(std::string("alice\0alice\0pw", 14), &c));  // kafka-python's form
    EXPECT_EQ(c.authzid, "alice");
    EXPECT_EQ(c.password, "pw");
    EXPECT_TRUE(parse_sasl_plain(std::string("\0a\0", 3), &c));  // an empty password parses (the check refuses it)
    EXPECT_FALSE(parse_sasl_plain("alice", &c));
    EXPECT_FALSE(parse_sasl_plain(std::string("\0alice", 6), &c));
    EXPECT_FALSE(parse_sasl_plain(std::string("\0\0pw", 4), &c));           // no user
    EXPECT_FALSE(parse_sasl_plain(std::string("\0a\0p\0w", 6), &c));        // a NUL in the password
    EXPECT_FALSE(parse_sasl_plain(std::string("\0a\0", 3) + std::string(1025, 'x'), &c));
}

TEST(KafkaSasl, ScramClientFirstUser)
{
    std::string user;
    ASSERT_TRUE(scram_client_first_user("n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL", &user));
    EXPECT_EQ(user, "alice");
    ASSERT_TRUE(scram_client_first_user("n,,n=a=2Cb=3Dc,r=x", &user));
    EXPECT_EQ(user, "a,b=c");
    ASSERT_TRUE(scram_client_first_user("y,a=alice,n=bob,r=x", &user));
    EXPECT_EQ(user, "bob");
    EXPECT_FALSE(scram_client_first_user("n,,r=x", &user));
    EXPECT_FALSE(scram_client_first_user("n,,n=,r=x", &user));
    EXPECT_FALSE(scram_client_first_user("n,,n=a=2x,r=x", &user));
    EXPECT_FALSE(scram_client_first_user("n,n=alice", &user));
    EXPECT_FALSE(scram_client_first_user(std::string("n,,n=a\0b,r=x", 12), &user));
    EXPECT_FALSE(scram_client_first_user("n,,n=" + std::string(1100, 'a') + ",r=x", &user));
}
