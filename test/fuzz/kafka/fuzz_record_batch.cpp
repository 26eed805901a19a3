// libFuzzer target: RecordBatch v2 decoding. The first input byte picks the mode: bit 0 fixes
// up the CRC-32C of the batch before decoding (so mutations reach the record parser instead of
// all failing the CRC), bit 1 applies the Produce rules. What decodes is re-encoded and
// decoded again and must come back field for field.
// Build and run: make fuzz-kafka (docs/kafka.md).
#include "kafka/crc32c.hpp"
#include "kafka/record_batch.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace pgtopic::kafka;

namespace {

void check(bool ok)
{
    if (!ok)
        std::abort();
}

void same(const RecordBatch &a, const RecordBatch &b)
{
    check(a.base_offset == b.base_offset && a.partition_leader_epoch == b.partition_leader_epoch &&
          a.attributes == b.attributes && a.last_offset_delta == b.last_offset_delta &&
          a.base_timestamp == b.base_timestamp && a.max_timestamp == b.max_timestamp &&
          a.producer_id == b.producer_id && a.producer_epoch == b.producer_epoch &&
          a.base_sequence == b.base_sequence && a.records.size() == b.records.size());
    for (std::size_t i = 0; i < a.records.size(); i++) {
        const Record &x = a.records[i], &y = b.records[i];
        check(x.attributes == y.attributes && x.timestamp_delta == y.timestamp_delta &&
              x.offset_delta == y.offset_delta && x.key == y.key && x.value == y.value &&
              x.headers.size() == y.headers.size());
        for (std::size_t j = 0; j < x.headers.size(); j++)
            check(x.headers[j].key == y.headers[j].key && x.headers[j].value == y.headers[j].value);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    if (size < 1)
        return 0;
    const int mode = data[0];
    std::string bytes(reinterpret_cast<const char *>(data + 1), size - 1);
    if ((mode & 1) && bytes.size() >= record_batch_header_bytes) {
        std::uint32_t c = postgres_crc32c(bytes.data() + batch_attributes_at, bytes.size() - batch_attributes_at);
        for (int i = 0; i < 4; i++)
            bytes[batch_crc_at + i] = static_cast<char>(c >> (24 - 8 * i));
    }
    try {
        if (mode & 2) {
            BatchHeader h = check_produce_records(bytes, postgres_crc32c);
            check(h.record_count >= 1);
        }
        Reader in(bytes);
        while (!in.empty()) {
            RecordBatch b = decode_record_batch(in, postgres_crc32c, BatchRules{(mode & 2) != 0});
            Writer w;
            encode_record_batch(w, b, postgres_crc32c);
            Reader again(w.view());
            RecordBatch b2 = decode_record_batch(again, postgres_crc32c, BatchRules{(mode & 2) != 0});
            check(again.empty());
            same(b, b2);
        }
    } catch (const DecodeError &) {
    }
    return 0;
}
