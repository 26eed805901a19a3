// Kafka codec: RecordBatch v2 (src/kafka/record_batch) with PostgreSQL's CRC-32C, against a
// batch librdkafka 2.0.2 (kcat -P) produced and batches built here.
#include "kafka/messages.hpp"
#include "kafka/record_batch.hpp"
#include "kafka_test_util.hpp"

#include <gtest/gtest.h>

using namespace pgtopic::kafka;
using kafka_test::crc;
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

// The records field of the captured Produce v7 frame.
std::string kcat_batch()
{
    std::string frame = unhex(kafka_test::captured::produce_v7);
    Request req = decode_request(frame);
    const auto &p = std::get<ProduceRequest>(req.body);
    return std::string(*p.topics.at(0).partitions.at(0).records);
}

void fix_crc(std::string &batch)
{
    std::uint32_t c = crc(batch.data() + batch_attributes_at, batch.size() - batch_attributes_at);
    for (int i = 0; i < 4; i++)
        batch[batch_crc_at + i] = static_cast<char>(c >> (24 - 8 * i));
}

RecordBatch sample_batch()
{
    RecordBatch b;
    b.base_offset = 100;
    b.base_timestamp = 1700000000000;
    b.max_timestamp = 1700000000005;
    b.last_offset_delta = 2;
    Record r0;
    r0.offset_delta = 0;
    r0.key = std::string_view("\x00\xff\x01", 3);  // binary key
    r0.value = std::string_view("v0");
    r0.headers = {{"h", std::string_view("1")}, {"h", std::string_view("2")}, {"n", std::nullopt}};
    Record r1;
    r1.offset_delta = 1;
    r1.timestamp_delta = 5;
    r1.key = std::nullopt;
    r1.value = std::string_view("");  // empty, not null
    Record r2;
    r2.offset_delta = 2;
    r2.key = std::string_view("k");
    r2.value = std::nullopt;  // tombstone
    b.records = {r0, r1, r2};
    return b;
}

std::string encode(const RecordBatch &b)
{
    Writer w;
    encode_record_batch(w, b, crc);
    return str(w);
}

}  // namespace

TEST(KafkaCrc32c, PostgresImplementationKnownVectors)
{
    EXPECT_EQ(crc("123456789", 9), 0xe3069283u);
    EXPECT_EQ(crc("", 0), 0x00000000u);
    std::string zeros(32, '\0');
    EXPECT_EQ(crc(zeros.data(), zeros.size()), 0x8a9136aau);  // RFC 3720 B.4: 32 bytes of zeros
    std::string ones(32, '\xff');
    EXPECT_EQ(crc(ones.data(), ones.size()), 0x62a8ab43u);  // 32 bytes of 0xff
}

TEST(KafkaRecordBatch, DecodesLibrdkafkaBatch)
{
    std::string bytes = kcat_batch();
    ASSERT_EQ(bytes.size(), 121u);
    RecordBatch b = decode_produce_records(bytes, crc);
    EXPECT_EQ(b.base_offset, 0);
    EXPECT_EQ(b.partition_leader_epoch, 0);
    EXPECT_EQ(b.attributes, 0);
    EXPECT_EQ(b.last_offset_delta, 1);
    EXPECT_EQ(b.base_timestamp, 0x1a2351caeeeLL);
    EXPECT_EQ(b.max_timestamp, 0x1a2351caeeeLL);
    EXPECT_EQ(b.producer_id, -1);
    EXPECT_EQ(b.producer_epoch, -1);
    EXPECT_EQ(b.base_sequence, -1);
    ASSERT_EQ(b.records.size(), 2u);
    const char *values[] = {"hello", "world"};
    for (int i = 0; i < 2; i++) {
        const Record &r = b.records[i];
        EXPECT_EQ(r.offset_delta, i);
        EXPECT_EQ(r.timestamp_delta, 0);
        EXPECT_EQ(*r.key, "key1");
        EXPECT_EQ(*r.value, values[i]);
        ASSERT_EQ(r.headers.size(), 3u);  // in order, duplicates kept
        EXPECT_EQ(r.headers[0].key, "h1");
        EXPECT_EQ(*r.headers[0].value, "x");
        EXPECT_EQ(r.headers[1].key, "h1");
        EXPECT_EQ(*r.headers[1].value, "y");
        EXPECT_EQ(r.headers[2].key, "h2");
        ASSERT_TRUE(r.headers[2].value.has_value());
        EXPECT_EQ(*r.headers[2].value, "");
    }
    // Re-encoding the decoded batch gives librdkafka's bytes back, CRC included.
    EXPECT_EQ(tohex(encode(b)), tohex(bytes));
}

TEST(KafkaRecordBatch, RoundTripKeepsBytesNullsAndGaps)
{
    RecordBatch b = sample_batch();
    std::string bytes = encode(b);
    Reader in(bytes);
    RecordBatch d = decode_record_batch(in, crc);
    EXPECT_TRUE(in.empty());
    EXPECT_EQ(d.base_offset, 100);
    ASSERT_EQ(d.records.size(), 3u);
    EXPECT_EQ(*d.records[0].key, std::string_view("\x00\xff\x01", 3));
    ASSERT_EQ(d.records[0].headers.size(), 3u);
    EXPECT_FALSE(d.records[0].headers[2].value.has_value());
    EXPECT_FALSE(d.records[1].key.has_value());
    EXPECT_EQ(*d.records[1].value, "");
    EXPECT_EQ(d.records[1].timestamp_delta, 5);
    EXPECT_FALSE(d.records[2].value.has_value());
    EXPECT_NO_THROW(decode_produce_records(bytes, crc));

    // A rolled-back offset inside the batch: deltas 0, 2, 3 (fetch side). Readable, but not
    // acceptable as a produce.
    b.records[1].offset_delta = 2;
    b.records[2].offset_delta = 3;
    b.last_offset_delta = 3;
    std::string gap = encode(b);
    Reader gin(gap);
    RecordBatch g = decode_record_batch(gin, crc);
    EXPECT_EQ(g.records[2].offset_delta, 3);
    EXPECT_EQ(decode_error([&] { decode_produce_records(gap, crc); }), ErrorCode::invalid_record);

    // The encoder refuses deltas that do not increase.
    b.records[2].offset_delta = 2;
    Writer w;
    EXPECT_THROW(encode_record_batch(w, b, crc), EncodeError);
}

TEST(KafkaRecordBatch, CrcMismatchIsCorruptMessage)
{
    std::string bytes = kcat_batch();
    for (std::size_t at : {batch_attributes_at + 2, std::size_t(70), bytes.size() - 1}) {
        std::string bad = bytes;
        bad[at] ^= 0x01;
        EXPECT_EQ(decode_error([&] { decode_produce_records(bad, crc); }), ErrorCode::corrupt_message) << at;
    }
    std::string bad = bytes;
    bad[batch_crc_at] ^= 0x80;
    EXPECT_EQ(decode_error([&] { decode_produce_records(bad, crc); }), ErrorCode::corrupt_message);
    // The partition leader epoch is outside the CRC: a broker may rewrite it.
    std::string epoch = bytes;
    epoch[12] = 0x7f;
    EXPECT_NO_THROW(decode_produce_records(epoch, crc));
}

TEST(KafkaRecordBatch, MagicCompressionAndHeaderChecks)
{
    std::string bytes = kcat_batch();
    for (char magic : {'\0', '\1', '\3'}) {
        std::string bad = bytes;
        bad[batch_magic_at] = magic;
        EXPECT_EQ(decode_error([&] { decode_produce_records(bad, crc); }), ErrorCode::invalid_record);
    }
    for (char codec = 1; codec <= 4; codec++) {  // gzip, snappy, lz4, zstd
        std::string comp = bytes;
        comp[batch_attributes_at + 1] = codec;
        fix_crc(comp);
        EXPECT_EQ(decode_error([&] { decode_produce_records(comp, crc); }), ErrorCode::unsupported_compression_type);
    }
    std::string unknown = bytes;
    unknown[batch_attributes_at + 1] = 5;
    fix_crc(unknown);
    EXPECT_EQ(decode_error([&] { decode_produce_records(unknown, crc); }), ErrorCode::corrupt_message);
    std::string control = bytes;
    control[batch_attributes_at + 1] = 0x20;
    fix_crc(control);
    EXPECT_EQ(decode_error([&] { decode_produce_records(control, crc); }), ErrorCode::invalid_record);
    // batch length below the header, above the bytes present, negative
    for (std::uint32_t len : {48u, 110u, 0xffffffffu, 0x7fffffffu}) {
        std::string bad = bytes;
        for (int i = 0; i < 4; i++)
            bad[batch_length_at + i] = static_cast<char>(len >> (24 - 8 * i));
        EXPECT_EQ(decode_error([&] { decode_produce_records(bad, crc); }), ErrorCode::corrupt_message) << len;
    }
    EXPECT_EQ(decode_error([&] { decode_produce_records(std::nullopt, crc); }), ErrorCode::invalid_record);
    EXPECT_EQ(decode_error([&] { decode_produce_records(std::string_view(""), crc); }), ErrorCode::invalid_record);
    // two batches for one partition
    std::string two = bytes + bytes;
    EXPECT_EQ(decode_error([&] { decode_produce_records(two, crc); }), ErrorCode::invalid_record);
}

TEST(KafkaRecordBatch, RecordCountsAndLengthsChecked)
{
    std::string bytes = kcat_batch();
    auto with_count = [&](std::uint32_t n) {
        std::string b = bytes;
        for (int i = 0; i < 4; i++)
            b[57 + i] = static_cast<char>(n >> (24 - 8 * i));
        fix_crc(b);
        return b;
    };
    // More records claimed than present: the third record is truncated.
    EXPECT_EQ(decode_error([&] { decode_produce_records(with_count(3), crc); }), ErrorCode::corrupt_message);
    // Fewer: bytes left over.
    EXPECT_EQ(decode_error([&] { decode_produce_records(with_count(1), crc); }), ErrorCode::invalid_record);
    // Far more than could fit: refused before reserving.
    EXPECT_EQ(decode_error([&] { decode_produce_records(with_count(0x7fffffff), crc); }), ErrorCode::invalid_record);
    EXPECT_EQ(decode_error([&] { decode_produce_records(with_count(0xffffffff), crc); }), ErrorCode::corrupt_message);
    // Zero records with last_offset_delta 1.
    EXPECT_NE(decode_error([&] { decode_produce_records(with_count(0), crc); }), ErrorCode::none);
    // last_offset_delta disagreeing with the count
    std::string lod = bytes;
    lod[26] = 5;
    fix_crc(lod);
    EXPECT_EQ(decode_error([&] { decode_produce_records(lod, crc); }), ErrorCode::invalid_record);
    // The first record's length varint (at 61): negative, and past the batch.
    std::string neg = bytes;
    neg[61] = 0x03;
    fix_crc(neg);
    EXPECT_EQ(decode_error([&] { decode_produce_records(neg, crc); }), ErrorCode::corrupt_message);
    std::string past = bytes;
    past[61] = 0x7e;
    fix_crc(past);
    EXPECT_EQ(decode_error([&] { decode_produce_records(past, crc); }), ErrorCode::corrupt_message);
    // A record shorter than its fields (length 28 for 29 bytes of fields)
    std::string shortrec = bytes;
    shortrec[61] = 0x38;
    fix_crc(shortrec);
    EXPECT_EQ(decode_error([&] { decode_produce_records(shortrec, crc); }), ErrorCode::corrupt_message);
}

TEST(KafkaRecordBatch, EveryTruncationRejected)
{
    std::string bytes = kcat_batch();
    for (std::size_t n = 0; n < bytes.size(); n++) {
        std::string cut = bytes.substr(0, n);
        EXPECT_NE(decode_error([&] { decode_produce_records(cut, crc); }), ErrorCode::none) << n;
    }
}

TEST(KafkaRecordBatch, StreamingReaderChecksTheWholeBatch)
{
    std::string bytes = kcat_batch();
    BatchHeader h = check_produce_records(bytes, crc);
    EXPECT_EQ(h.record_count, 2);
    EXPECT_EQ(h.fields.last_offset_delta, 1);
    EXPECT_TRUE(h.fields.records.empty());
    RecordReader reader(h, BatchRules{true});
    Record r;
    ASSERT_TRUE(reader.next(r));
    EXPECT_EQ(*r.value, "hello");
    ASSERT_TRUE(reader.next(r));
    EXPECT_EQ(*r.value, "world");
    EXPECT_FALSE(reader.next(r));
    // a batch whose second record is malformed fails the up-front check, not mid-way
    std::string bad = bytes;
    bad[bad.size() - 1] = 0x02;  // the last header value length runs past the record
    fix_crc(bad);
    EXPECT_EQ(decode_error([&] { check_produce_records(bad, crc); }), ErrorCode::corrupt_message);
    Reader in(bad);
    BatchHeader hb = decode_batch_header(in, crc);
    RecordReader rb(hb, BatchRules{true});
    EXPECT_TRUE(rb.next(r));
    EXPECT_EQ(decode_error([&] { rb.next(r); }), ErrorCode::corrupt_message);
}

TEST(KafkaRecordBatch, ManyBatchesWithPartialTail)
{
    RecordBatch a = sample_batch();
    RecordBatch b = sample_batch();
    b.base_offset = 103;
    std::string bytes = encode(a) + encode(b);
    std::string third = encode(sample_batch());
    std::vector<RecordBatch> all = decode_record_batches(bytes + third.substr(0, 70), crc);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[1].base_offset, 103);
    EXPECT_EQ(decode_record_batches("", crc).size(), 0u);
}
