// Produce (key 0) v3-7: ProduceRequest.json / ProduceResponse.json. The records of each
// partition stay raw bytes here; record_batch.hpp decodes and validates them.
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

ProduceRequest decode_produce_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::produce, version);
    ProduceRequest r;
    r.transactional_id = in.nullable_string();
    r.acks = in.int16();
    r.timeout_ms = in.int32();
    std::int32_t topics = in.array_count(2 + 4);
    r.topics.reserve(static_cast<std::size_t>(topics));
    for (std::int32_t i = 0; i < topics; i++) {
        ProduceRequest::Topic &t = r.topics.emplace_back();
        t.name = in.string();
        std::int32_t parts = in.array_count(4 + 4);
        t.partitions.reserve(static_cast<std::size_t>(parts));
        for (std::int32_t j = 0; j < parts; j++) {
            ProduceRequest::Partition &p = t.partitions.emplace_back();
            p.index = in.int32();
            p.records = in.nullable_bytes();
        }
    }
    in.expect_end("Produce request");
    return r;
}

void encode_produce_response(Writer &out, std::int16_t version, const ProduceResponse &r)
{
    check_version(ApiKey::produce, version);
    out.array_count(r.responses.size());
    for (const ProduceResponse::Topic &t : r.responses) {
        out.string(t.name);
        out.array_count(t.partitions.size());
        for (const ProduceResponse::Partition &p : t.partitions) {
            out.int32(p.index);
            out.int16(p.error_code);
            out.int64(p.base_offset);
            out.int64(p.log_append_time_ms);  // v2+
            if (version >= 5)
                out.int64(p.log_start_offset);
        }
    }
    out.int32(r.throttle_time_ms);  // v1+
}

}  // namespace pgtopic::kafka
