// ListOffsets (key 2) v1-2: ListOffsetsRequest.json / ListOffsetsResponse.json.
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

ListOffsetsRequest decode_list_offsets_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::list_offsets, version);
    ListOffsetsRequest r;
    r.replica_id = in.int32();
    if (version >= 2) {
        r.isolation_level = in.int8();
        if (r.isolation_level != 0 && r.isolation_level != 1)
            throw DecodeError(ErrorCode::invalid_request, "unknown isolation level");
    }
    std::int32_t topics = in.array_count(2 + 4);
    r.topics.reserve(static_cast<std::size_t>(topics));
    for (std::int32_t i = 0; i < topics; i++) {
        ListOffsetsRequest::Topic &t = r.topics.emplace_back();
        t.name = in.string();
        std::int32_t parts = in.array_count(4 + 8);
        t.partitions.reserve(static_cast<std::size_t>(parts));
        for (std::int32_t j = 0; j < parts; j++) {
            ListOffsetsRequest::Partition &p = t.partitions.emplace_back();
            p.partition_index = in.int32();
            p.timestamp = in.int64();
        }
    }
    in.expect_end("ListOffsets request");
    return r;
}

void encode_list_offsets_response(Writer &out, std::int16_t version, const ListOffsetsResponse &r)
{
    check_version(ApiKey::list_offsets, version);
    if (version >= 2)
        out.int32(r.throttle_time_ms);
    out.array_count(r.topics.size());
    for (const ListOffsetsResponse::Topic &t : r.topics) {
        out.string(t.name);
        out.array_count(t.partitions.size());
        for (const ListOffsetsResponse::Partition &p : t.partitions) {
            out.int32(p.partition_index);
            out.int16(p.error_code);
            out.int64(p.timestamp);
            out.int64(p.offset);
        }
    }
}

}  // namespace pgtopic::kafka
