// RecordBatch v2; see record_batch.hpp.
#include "record_batch.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

#include <limits>

namespace pgtopic::kafka {

namespace {

// Length varint + attributes + timestamp delta + offset delta + key length + value length +
// header count: the smallest record is 7 bytes.
constexpr std::size_t min_record_bytes = 7;

[[noreturn]] void corrupt(const char *what) { throw DecodeError(ErrorCode::corrupt_message, what); }
[[noreturn]] void invalid(const char *what) { throw DecodeError(ErrorCode::invalid_record, what); }

Record decode_record(Reader &in)
{
    std::int32_t length = in.varint();
    if (length < 0)
        corrupt("negative record length");
    if (static_cast<std::size_t>(length) > in.remaining())
        corrupt("record length exceeds the batch");
    Reader body(in.raw(static_cast<std::size_t>(length)));
    Record r;
    r.attributes = body.int8();
    r.timestamp_delta = body.varlong();
    r.offset_delta = body.varint();
    r.key = body.varint_bytes();
    r.value = body.varint_bytes();
    // each header: key length varint + value length varint at least
    std::int32_t headers = body.varint_count(2);
    r.headers.reserve(static_cast<std::size_t>(headers));
    for (std::int32_t i = 0; i < headers; i++) {
        RecordHeader &h = r.headers.emplace_back();
        NullableBytes key = body.varint_bytes();
        if (!key)
            corrupt("null record header key");
        h.key = *key;
        h.value = body.varint_bytes();
    }
    if (!body.empty())
        corrupt("record length does not match its fields");
    return r;
}

}  // namespace

BatchHeader decode_batch_header(Reader &in, Crc32cFn crc)
{
    if (in.remaining() < record_batch_header_bytes)
        corrupt("truncated record batch header");
    const unsigned char *start = in.position();
    std::int32_t batch_length = static_cast<std::int32_t>(read_be32(start + batch_length_at));
    if (batch_length < static_cast<std::int32_t>(record_batch_header_bytes - 12))
        corrupt("record batch length below the header size");
    if (static_cast<std::size_t>(batch_length) > in.remaining() - 12)
        corrupt("record batch length exceeds the bytes present");
    std::int8_t magic = static_cast<std::int8_t>(start[batch_magic_at]);
    if (magic != 2)
        invalid("record batch magic is not 2 (message format v2 is required)");

    const std::size_t total = 12 + static_cast<std::size_t>(batch_length);
    Reader batch(in.raw(total));
    BatchHeader h;
    RecordBatch &b = h.fields;
    b.base_offset = batch.int64();
    (void)batch.int32();  // batch length, checked above
    b.partition_leader_epoch = batch.int32();
    (void)batch.int8();  // magic, checked above
    std::uint32_t stored_crc = batch.uint32();
    std::uint32_t computed = crc(start + batch_attributes_at, total - batch_attributes_at);
    if (stored_crc != computed)
        corrupt("record batch CRC-32C mismatch");
    b.attributes = batch.int16();
    b.last_offset_delta = batch.int32();
    b.base_timestamp = batch.int64();
    b.max_timestamp = batch.int64();
    b.producer_id = batch.int64();
    b.producer_epoch = batch.int16();
    b.base_sequence = batch.int32();
    std::int32_t count = batch.int32();

    int compression = b.compression();
    if (compression > 4)
        corrupt("unknown compression type");
    if (compression != 0)
        throw DecodeError(ErrorCode::unsupported_compression_type, "compressed record batches are not supported yet");
    if (count < 0)
        corrupt("negative record count");
    if (static_cast<std::size_t>(count) > batch.remaining() / min_record_bytes)
        invalid("record count exceeds the bytes in the batch");
    if (b.last_offset_delta < 0)
        invalid("negative last offset delta");
    h.record_count = count;
    h.records = batch.raw(batch.remaining());
    return h;
}

RecordReader::RecordReader(const BatchHeader &batch, BatchRules rules)
    : in_(batch.records), count_(batch.record_count), last_offset_delta_(batch.fields.last_offset_delta),
      control_(batch.fields.control()), rules_(rules)
{
}

bool RecordReader::next(Record &out)
{
    if (index_ == count_) {
        if (!in_.empty())
            invalid("record batch holds more bytes than its record count");
        if (rules_.produce) {
            if (count_ == 0)
                invalid("record batch has no records");
            if (last_offset_delta_ != count_ - 1)
                invalid("last offset delta does not match the record count");
            if (control_)
                invalid("control batches cannot be produced");
        }
        return false;
    }
    out = decode_record(in_);
    if (out.offset_delta <= previous_delta_ || out.offset_delta > last_offset_delta_)
        invalid("record offset deltas are not increasing within the batch");
    if (rules_.produce && out.offset_delta != index_)
        invalid("record offset deltas are not consecutive from 0");
    previous_delta_ = out.offset_delta;
    index_++;
    return true;
}

std::int32_t validate_records(const BatchHeader &batch, BatchRules rules)
{
    RecordReader reader(batch, rules);
    Record r;
    std::int32_t n = 0;
    while (reader.next(r))
        n++;
    return n;
}

RecordBatch decode_record_batch(Reader &in, Crc32cFn crc, BatchRules rules)
{
    BatchHeader h = decode_batch_header(in, crc);
    RecordBatch b = h.fields;
    b.records.reserve(static_cast<std::size_t>(h.record_count));
    RecordReader reader(h, rules);
    Record r;
    while (reader.next(r))
        b.records.push_back(r);
    return b;
}

BatchHeader check_produce_records(NullableBytes records, Crc32cFn crc)
{
    if (!records || records->empty())
        invalid("produce partition without records");
    Reader in(*records);
    BatchHeader h = decode_batch_header(in, crc);
    if (!in.empty())
        invalid("more than one record batch for a partition");
    validate_records(h, BatchRules{true});
    return h;
}

RecordBatch decode_produce_records(NullableBytes records, Crc32cFn crc)
{
    (void)check_produce_records(records, crc);
    Reader in(*records);
    return decode_record_batch(in, crc, BatchRules{true});
}

std::vector<RecordBatch> decode_record_batches(std::string_view bytes, Crc32cFn crc)
{
    std::vector<RecordBatch> batches;
    Reader in(bytes);
    while (in.remaining() >= record_batch_header_bytes) {
        std::int32_t length = static_cast<std::int32_t>(read_be32(in.position() + batch_length_at));
        if (length >= 0 && static_cast<std::size_t>(length) > in.remaining() - 12)
            break;  // partial trailing batch
        batches.push_back(decode_record_batch(in, crc));
    }
    return batches;
}

void encode_record_batch(Writer &out, const RecordBatch &b, Crc32cFn crc)
{
    if (b.compression() != 0)
        throw EncodeError("the encoder writes uncompressed batches only");
    if (b.records.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw EncodeError("too many records in a batch");
    const std::size_t start = out.size();
    out.int64(b.base_offset);
    out.int32(0);  // batch length, patched
    out.int32(b.partition_leader_epoch);
    out.int8(2);
    out.uint32(0);  // CRC, patched
    out.int16(b.attributes);
    out.int32(b.last_offset_delta);
    out.int64(b.base_timestamp);
    out.int64(b.max_timestamp);
    out.int64(b.producer_id);
    out.int16(b.producer_epoch);
    out.int32(b.base_sequence);
    out.int32(static_cast<std::int32_t>(b.records.size()));
    std::int64_t previous = -1;
    Writer rec;
    for (const Record &r : b.records) {
        if (r.offset_delta <= previous || r.offset_delta > b.last_offset_delta)
            throw EncodeError("record offset deltas must increase and stay within last_offset_delta");
        previous = r.offset_delta;
        rec.buffer().clear();
        rec.int8(r.attributes);
        rec.varlong(r.timestamp_delta);
        rec.varint(r.offset_delta);
        rec.varint_bytes(r.key);
        rec.varint_bytes(r.value);
        if (r.headers.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
            throw EncodeError("too many record headers");
        rec.varint(static_cast<std::int32_t>(r.headers.size()));
        for (const RecordHeader &h : r.headers) {
            rec.varint_bytes(h.key);
            rec.varint_bytes(h.value);
        }
        if (rec.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
            throw EncodeError("record too large");
        out.varint(static_cast<std::int32_t>(rec.size()));
        out.raw(rec.view());
    }
    const std::size_t total = out.size() - start;
    if (total - 12 > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw EncodeError("record batch too large");
    out.patch_int32(start + batch_length_at, static_cast<std::int32_t>(total - 12));
    out.patch_uint32(start + batch_crc_at,
                     crc(out.buffer().data() + start + batch_attributes_at, total - batch_attributes_at));
}

}  // namespace pgtopic::kafka
