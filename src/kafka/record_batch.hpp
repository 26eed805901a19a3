// Kafka's RecordBatch, magic v2 (DefaultRecordBatch / DefaultRecord in the Java client):
//
//   BaseOffset int64 | BatchLength int32 | PartitionLeaderEpoch int32 | Magic int8 (=2) |
//   CRC uint32 (CRC-32C over Attributes..end) | Attributes int16 | LastOffsetDelta int32 |
//   BaseTimestamp int64 | MaxTimestamp int64 | ProducerId int64 | ProducerEpoch int16 |
//   BaseSequence int32 | RecordsCount int32 | Records
//   Record: Length varint | Attributes int8 | TimestampDelta varlong | OffsetDelta varint |
//           Key varint-bytes | Value varint-bytes | HeadersCount varint |
//           [HeaderKey varint-string | HeaderValue varint-bytes]
//
// Decoding validates the magic, the CRC, the batch and record lengths, the record count against
// the bytes present and the offset deltas; nothing is allocated from a length or count that
// has not been checked against the bytes left. Compressed batches are refused with
// UNSUPPORTED_COMPRESSION_TYPE (no compression library is wired in yet).
// Pure C++: no PostgreSQL header may reach this file.
#pragma once

#include "crc32c.hpp"
#include "wire.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

namespace pgtopic::kafka {

// Bytes before the records: through RecordsCount.
constexpr std::size_t record_batch_header_bytes = 61;
// Offsets of fields inside a batch.
constexpr std::size_t batch_length_at = 8;
constexpr std::size_t batch_magic_at = 16;
constexpr std::size_t batch_crc_at = 17;
constexpr std::size_t batch_attributes_at = 21;

struct RecordHeader {
    std::string_view key;
    NullableBytes value;
};

struct Record {
    std::int8_t attributes = 0;
    std::int64_t timestamp_delta = 0;
    std::int32_t offset_delta = 0;
    NullableBytes key;
    NullableBytes value;  // null = a tombstone
    std::vector<RecordHeader> headers;
};

struct RecordBatch {
    std::int64_t base_offset = 0;
    std::int32_t partition_leader_epoch = -1;
    std::int16_t attributes = 0;
    std::int32_t last_offset_delta = 0;
    std::int64_t base_timestamp = -1;
    std::int64_t max_timestamp = -1;
    std::int64_t producer_id = -1;
    std::int16_t producer_epoch = -1;
    std::int32_t base_sequence = -1;
    std::vector<Record> records;

    int compression() const noexcept { return attributes & 0x07; }  // 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
    bool log_append_time() const noexcept { return attributes & 0x08; }
    bool transactional() const noexcept { return attributes & 0x10; }
    bool control() const noexcept { return attributes & 0x20; }
};

struct BatchRules {
    // Produce: offset deltas exactly 0..n-1, last_offset_delta = n-1, at least one record, no
    // control batch. Otherwise deltas need only increase and stay <= last_offset_delta (the
    // gaps pgtopic's rolled-back offsets leave in fetched batches).
    bool produce = false;
};

// The fixed part of a batch, its CRC checked, and its records still encoded.
struct BatchHeader {
    RecordBatch fields;  // records left empty
    std::int32_t record_count = 0;
    std::string_view records;  // the encoded records (after RecordsCount)
};

// Reads and checks the batch at the reader's position (lengths, magic, CRC-32C, compression,
// the record count against the bytes present) and advances past it. Throws DecodeError:
// corrupt_message (truncated, bad lengths, CRC mismatch), invalid_record (wrong magic, record
// count impossible), unsupported_compression_type.
BatchHeader decode_batch_header(Reader &in, Crc32cFn crc);

// Streams a batch's records one at a time, so a big batch of small records is never held
// decoded in memory at once (a decoded Record is ~10x its encoded size). next() throws
// DecodeError for a malformed record, offset deltas that break the rules, or a count that
// disagrees with the bytes.
class RecordReader {
public:
    RecordReader(const BatchHeader &batch, BatchRules rules = {});
    // The next record into out (its views point into the batch); false after the last one,
    // once the batch-level rules were checked.
    bool next(Record &out);

private:
    Reader in_;
    std::int32_t count_;
    std::int32_t index_ = 0;
    std::int32_t last_offset_delta_;
    std::int64_t previous_delta_ = -1;
    bool control_;
    BatchRules rules_;
};

// Checks every record of a batch without keeping any (e.g. a Produce partition's batch, before
// its first record is stored). Returns the record count.
std::int32_t validate_records(const BatchHeader &batch, BatchRules rules = {});

// Decodes the batch at the reader's position, records included, and advances past it.
RecordBatch decode_record_batch(Reader &in, Crc32cFn crc, BatchRules rules = {});

// A Produce partition's records: exactly one v2 batch (what every current client sends),
// checked with BatchRules{produce}, records included. Null or empty records are invalid_record.
BatchHeader check_produce_records(NullableBytes records, Crc32cFn crc);
// The same, decoded into memory (tests, small batches).
RecordBatch decode_produce_records(NullableBytes records, Crc32cFn crc);

// Every whole batch in bytes (e.g. a Fetch response's records). A trailing partial batch, which
// brokers may send when a fetch hits max_bytes, is ignored like Kafka clients do.
std::vector<RecordBatch> decode_record_batches(std::string_view bytes, Crc32cFn crc);

// Appends one uncompressed batch with its length and CRC computed. Records' offset deltas must
// increase and stay <= last_offset_delta (EncodeError otherwise); attributes' compression bits
// must be 0.
void encode_record_batch(Writer &out, const RecordBatch &batch, Crc32cFn crc);

}  // namespace pgtopic::kafka
