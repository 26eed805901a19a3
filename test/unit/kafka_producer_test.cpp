// Kafka idempotent producers: InitProducerId v0-1 (InitProducerIdRequest.json /
// InitProducerIdResponse.json) and the per-producer sequence rules
// (src/kafka/producer_sequence.hpp, as Kafka's ProducerStateManager applies them).
#include "kafka/messages.hpp"
#include "kafka/producer_sequence.hpp"
#include "kafka_test_util.hpp"

#include <gtest/gtest.h>

#include <limits>

using namespace pgtopic::kafka;
using kafka_test::str;
using kafka_test::tohex;
using kafka_test::unhex;

namespace {

ErrorCode decode_error_of(const std::string &payload)
{
    try {
        decode_request(payload);
    } catch (const DecodeError &e) {
        return e.error();
    }
    return ErrorCode::none;
}

}  // namespace

TEST(KafkaInitProducerId, RequestV0AndV1)
{
    for (std::int16_t v = 0; v <= 1; v++) {
        // header v1: key 22, version, correlation id 7, client id "rdkafka"; body: null
        // transactional id, transaction timeout 60000
        std::string p = unhex("0016") + std::string(1, '\0') + std::string(1, static_cast<char>(v)) +
                        unhex("00000007" "0007") + "rdkafka" + unhex("ffff" "0000ea60");
        Request req = decode_request(p);
        const auto &b = std::get<InitProducerIdRequest>(req.body);
        EXPECT_FALSE(b.transactional_id.has_value());
        EXPECT_EQ(b.transaction_timeout_ms, 60000);
        EXPECT_EQ(req.header.correlation_id, 7);
        for (std::size_t n = 0; n < p.size(); n++)
            EXPECT_NE(decode_error_of(p.substr(0, n)), ErrorCode::none) << n;
        EXPECT_EQ(decode_error_of(p + '\0'), ErrorCode::invalid_request);
    }
    // A transactional id
    std::string t = unhex("00160001" "00000008" "ffff" "0003") + "txn" + unhex("00001388");
    Request treq = decode_request(t);
    const auto &tb = std::get<InitProducerIdRequest>(treq.body);
    ASSERT_TRUE(tb.transactional_id.has_value());
    EXPECT_EQ(*tb.transactional_id, "txn");
    EXPECT_EQ(tb.transaction_timeout_ms, 5000);
    // v2 is flexible and not decoded
    EXPECT_EQ(decode_error_of(unhex("00160002" "00000008" "ffff" "00" "00" "00001388" "00")),
              ErrorCode::unsupported_version);
}

TEST(KafkaInitProducerId, ResponseV0AndV1)
{
    InitProducerIdResponse r;
    r.producer_id = 0x0102030405060708;
    r.producer_epoch = 3;
    for (std::int16_t v = 0; v <= 1; v++) {
        std::vector<unsigned char> f = encode_response(22, v, 9, r);
        // size, correlation id, throttle time, error, producer id, epoch
        EXPECT_EQ(tohex(std::string(f.begin(), f.end())),
                  "00000014" "00000009" "00000000" "0000" "0102030405060708" "0003");
    }
    r.error_code = code(ErrorCode::transactional_id_authorization_failed);
    r.producer_id = -1;
    r.producer_epoch = -1;
    std::vector<unsigned char> f = encode_response(22, 1, 9, r);
    EXPECT_EQ(tohex(std::string(f.begin(), f.end())),
              "00000014" "00000009" "00000000" "0035" "ffffffffffffffff" "ffff");
    EXPECT_THROW(encode_response(22, 2, 9, r), DecodeError);
}

TEST(KafkaProducerSequence, WrapsAtInt32Max)
{
    constexpr std::int32_t max = std::numeric_limits<std::int32_t>::max();
    EXPECT_EQ(sequence_add(0, 4), 4);
    EXPECT_EQ(sequence_add(max, 1), 0);
    EXPECT_EQ(sequence_add(max - 1, 3), 1);
    EXPECT_EQ(sequence_add(max - 4, 4), max);
    EXPECT_EQ(sequence_add(5, 0), 5);
}

TEST(KafkaProducerSequence, UnknownProducerAcceptsAnySequence)
{
    ProducerPartitionState s;
    EXPECT_EQ(check_sequence(s, 0, 0, 10).kind, SequenceCheck::append);
    EXPECT_EQ(check_sequence(s, 0, 77, 10).kind, SequenceCheck::append);  // state expired: Kafka 2.5+ accepts
    EXPECT_EQ(check_sequence(s, 3, 77, 1).kind, SequenceCheck::append);
}

TEST(KafkaProducerSequence, InOrderDuplicateGapAndEpochs)
{
    ProducerPartitionState s;
    record_append(s, 0, 0, 10, 100);  // seq 0-9 at offsets 100-109
    EXPECT_EQ(s.last_sequence, 9);
    EXPECT_EQ(check_sequence(s, 0, 10, 5).kind, SequenceCheck::append);
    // the same batch again: a duplicate, acknowledged with its offset
    SequenceCheck d = check_sequence(s, 0, 0, 10);
    EXPECT_EQ(d.kind, SequenceCheck::duplicate);
    EXPECT_EQ(d.duplicate_offset, 100);
    // a gap, or a batch that only overlaps: out of order
    EXPECT_EQ(check_sequence(s, 0, 11, 1).error, ErrorCode::out_of_order_sequence_number);
    EXPECT_EQ(check_sequence(s, 0, 5, 5).error, ErrorCode::out_of_order_sequence_number);
    EXPECT_EQ(check_sequence(s, 0, 0, 9).error, ErrorCode::out_of_order_sequence_number);
    // an older epoch is fenced; a newer one must start at 0
    record_append(s, 2, 0, 1, 110);
    EXPECT_EQ(s.n_batches, 1);  // a new epoch forgets the old batches
    EXPECT_EQ(check_sequence(s, 1, 1, 1).error, ErrorCode::invalid_producer_epoch);
    EXPECT_EQ(check_sequence(s, 0, 0, 10).error, ErrorCode::invalid_producer_epoch);  // no duplicate across epochs
    EXPECT_EQ(check_sequence(s, 3, 1, 1).error, ErrorCode::out_of_order_sequence_number);
    EXPECT_EQ(check_sequence(s, 3, 0, 1).kind, SequenceCheck::append);
}

TEST(KafkaProducerSequence, LastFiveBatchesKept)
{
    ProducerPartitionState s;
    for (int i = 0; i < 7; i++)
        record_append(s, 0, i * 2, 2, 1000 + i * 2);  // seq 0-1, 2-3, ..., 12-13
    EXPECT_EQ(s.n_batches, producer_batches_kept);
    EXPECT_EQ(s.batches[0].first_sequence, 4);
    for (int i = 2; i < 7; i++) {
        SequenceCheck d = check_sequence(s, 0, i * 2, 2);
        EXPECT_EQ(d.kind, SequenceCheck::duplicate) << i;
        EXPECT_EQ(d.duplicate_offset, 1000 + i * 2);
    }
    // older than the last five: no longer recognised, out of order
    EXPECT_EQ(check_sequence(s, 0, 2, 2).error, ErrorCode::out_of_order_sequence_number);
    EXPECT_EQ(check_sequence(s, 0, 14, 1).kind, SequenceCheck::append);
}

TEST(KafkaProducerSequence, AcrossTheWrap)
{
    constexpr std::int32_t max = std::numeric_limits<std::int32_t>::max();
    ProducerPartitionState s;
    record_append(s, 0, max - 2, 5, 50);  // max-2, max-1, max, 0, 1
    EXPECT_EQ(s.last_sequence, 1);
    EXPECT_EQ(s.batches[0].last_sequence, 1);
    EXPECT_EQ(check_sequence(s, 0, 2, 1).kind, SequenceCheck::append);
    EXPECT_EQ(check_sequence(s, 0, max - 2, 5).kind, SequenceCheck::duplicate);
    ProducerPartitionState t;
    record_append(t, 0, max - 1, 2, 7);
    EXPECT_EQ(t.last_sequence, max);
    EXPECT_EQ(check_sequence(t, 0, 0, 3).kind, SequenceCheck::append);
}
