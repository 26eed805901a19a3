// Metadata (key 3) v0-4: MetadataRequest.json / MetadataResponse.json.
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

MetadataRequest decode_metadata_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::metadata, version);
    MetadataRequest r;
    // Topics: nullable from v1 (null = all topics); in v0 an empty array means all topics.
    std::optional<std::int32_t> n = in.nullable_array_count(2);
    if (!n && version == 0)
        throw DecodeError(ErrorCode::invalid_request, "null topic array in Metadata v0");
    if (n && !(version == 0 && *n == 0)) {
        r.topics.emplace();
        r.topics->reserve(static_cast<std::size_t>(*n));
        for (std::int32_t i = 0; i < *n; i++)
            r.topics->push_back(in.string());
    }
    if (version >= 4)
        r.allow_auto_topic_creation = in.boolean();
    in.expect_end("Metadata request");
    return r;
}

void encode_metadata_response(Writer &out, std::int16_t version, const MetadataResponse &r)
{
    check_version(ApiKey::metadata, version);
    if (version >= 3)
        out.int32(r.throttle_time_ms);
    out.array_count(r.brokers.size());
    for (const MetadataResponse::Broker &b : r.brokers) {
        out.int32(b.node_id);
        out.string(b.host);
        out.int32(b.port);
        if (version >= 1)
            out.nullable_string(b.rack ? NullableBytes(*b.rack) : std::nullopt);
    }
    if (version >= 2)
        out.nullable_string(r.cluster_id ? NullableBytes(*r.cluster_id) : std::nullopt);
    if (version >= 1)
        out.int32(r.controller_id);
    out.array_count(r.topics.size());
    for (const MetadataResponse::Topic &t : r.topics) {
        out.int16(t.error_code);
        out.string(t.name);
        if (version >= 1)
            out.boolean(t.is_internal);
        out.array_count(t.partitions.size());
        for (const MetadataResponse::Partition &p : t.partitions) {
            out.int16(p.error_code);
            out.int32(p.partition_index);
            out.int32(p.leader_id);
            out.array_count(p.replica_nodes.size());
            for (std::int32_t id : p.replica_nodes)
                out.int32(id);
            out.array_count(p.isr_nodes.size());
            for (std::int32_t id : p.isr_nodes)
                out.int32(id);
        }
    }
}

}  // namespace pgtopic::kafka
