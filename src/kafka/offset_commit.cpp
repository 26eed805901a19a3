// OffsetCommit (key 8) v2-7 and OffsetFetch (key 9) v1-5: OffsetCommitRequest.json,
// OffsetCommitResponse.json, OffsetFetchRequest.json, OffsetFetchResponse.json.
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

OffsetCommitRequest decode_offset_commit_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::offset_commit, version);
    OffsetCommitRequest r;
    r.group_id = in.string();
    r.generation_id = in.int32();
    r.member_id = in.string();
    if (version >= 7)
        r.group_instance_id = in.nullable_string();
    if (version <= 4)
        r.retention_time_ms = in.int64();
    std::int32_t topics = in.array_count(2 + 4);
    r.topics.reserve(static_cast<std::size_t>(topics));
    for (std::int32_t i = 0; i < topics; i++) {
        OffsetCommitRequest::Topic &t = r.topics.emplace_back();
        t.name = in.string();
        std::int32_t parts = in.array_count(4 + 8 + 2);
        t.partitions.reserve(static_cast<std::size_t>(parts));
        for (std::int32_t j = 0; j < parts; j++) {
            OffsetCommitRequest::Partition &p = t.partitions.emplace_back();
            p.partition_index = in.int32();
            p.committed_offset = in.int64();
            if (version >= 6)
                p.committed_leader_epoch = in.int32();
            p.committed_metadata = in.nullable_string();
        }
    }
    in.expect_end("OffsetCommit request");
    return r;
}

void encode_offset_commit_response(Writer &out, std::int16_t version, const OffsetCommitResponse &r)
{
    check_version(ApiKey::offset_commit, version);
    if (version >= 3)
        out.int32(r.throttle_time_ms);
    out.array_count(r.topics.size());
    for (const OffsetCommitResponse::Topic &t : r.topics) {
        out.string(t.name);
        out.array_count(t.partitions.size());
        for (const OffsetCommitResponse::Partition &p : t.partitions) {
            out.int32(p.partition_index);
            out.int16(p.error_code);
        }
    }
}

OffsetFetchRequest decode_offset_fetch_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::offset_fetch, version);
    OffsetFetchRequest r;
    r.group_id = in.string();
    std::optional<std::int32_t> topics = in.nullable_array_count(2 + 4);
    if (!topics && version < 2)
        throw DecodeError(ErrorCode::invalid_request, "OffsetFetch topics may be null from v2 only");
    if (topics) {
        r.topics.emplace();
        r.topics->reserve(static_cast<std::size_t>(*topics));
        for (std::int32_t i = 0; i < *topics; i++) {
            OffsetFetchRequest::Topic &t = r.topics->emplace_back();
            t.name = in.string();
            std::int32_t parts = in.array_count(4);
            t.partition_indexes.reserve(static_cast<std::size_t>(parts));
            for (std::int32_t j = 0; j < parts; j++)
                t.partition_indexes.push_back(in.int32());
        }
    }
    in.expect_end("OffsetFetch request");
    return r;
}

void encode_offset_fetch_response(Writer &out, std::int16_t version, const OffsetFetchResponse &r)
{
    check_version(ApiKey::offset_fetch, version);
    if (version >= 3)
        out.int32(r.throttle_time_ms);
    out.array_count(r.topics.size());
    for (const OffsetFetchResponse::Topic &t : r.topics) {
        out.string(t.name);
        out.array_count(t.partitions.size());
        for (const OffsetFetchResponse::Partition &p : t.partitions) {
            out.int32(p.partition_index);
            out.int64(p.committed_offset);
            if (version >= 5)
                out.int32(p.committed_leader_epoch);
            out.nullable_string(p.metadata ? NullableBytes(*p.metadata) : std::nullopt);
            out.int16(p.error_code);
        }
    }
    if (version >= 2)
        out.int16(r.error_code);
}

}  // namespace pgtopic::kafka
