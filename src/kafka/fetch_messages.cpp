// Fetch (key 1) v4-11: FetchRequest.json / FetchResponse.json.
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

FetchRequest decode_fetch_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::fetch, version);
    FetchRequest r;
    r.replica_id = in.int32();
    r.max_wait_ms = in.int32();
    r.min_bytes = in.int32();
    r.max_bytes = in.int32();  // v3+
    r.isolation_level = in.int8();  // v4+
    if (r.isolation_level != 0 && r.isolation_level != 1)
        throw DecodeError(ErrorCode::invalid_request, "unknown isolation level");
    if (version >= 7) {
        r.session_id = in.int32();
        r.session_epoch = in.int32();
    }
    std::int32_t topics = in.array_count(2 + 4);
    r.topics.reserve(static_cast<std::size_t>(topics));
    for (std::int32_t i = 0; i < topics; i++) {
        FetchRequest::Topic &t = r.topics.emplace_back();
        t.topic = in.string();
        // partition + fetch offset + partition max bytes; more fields in later versions
        std::int32_t parts = in.array_count(4 + 8 + 4);
        t.partitions.reserve(static_cast<std::size_t>(parts));
        for (std::int32_t j = 0; j < parts; j++) {
            FetchRequest::Partition &p = t.partitions.emplace_back();
            p.partition = in.int32();
            if (version >= 9)
                p.current_leader_epoch = in.int32();
            p.fetch_offset = in.int64();
            if (version >= 5)
                p.log_start_offset = in.int64();
            p.partition_max_bytes = in.int32();
        }
    }
    if (version >= 7) {
        std::int32_t forgotten = in.array_count(2 + 4);
        r.forgotten_topics.reserve(static_cast<std::size_t>(forgotten));
        for (std::int32_t i = 0; i < forgotten; i++) {
            FetchRequest::ForgottenTopic &f = r.forgotten_topics.emplace_back();
            f.topic = in.string();
            std::int32_t parts = in.array_count(4);
            f.partitions.reserve(static_cast<std::size_t>(parts));
            for (std::int32_t j = 0; j < parts; j++)
                f.partitions.push_back(in.int32());
        }
    }
    if (version >= 11)
        r.rack_id = in.string();
    in.expect_end("Fetch request");
    return r;
}

void encode_fetch_response(Writer &out, std::int16_t version, const FetchResponse &r)
{
    check_version(ApiKey::fetch, version);
    out.int32(r.throttle_time_ms);  // v1+
    if (version >= 7) {
        out.int16(r.error_code);
        out.int32(r.session_id);
    }
    out.array_count(r.responses.size());
    for (const FetchResponse::Topic &t : r.responses) {
        out.string(t.topic);
        out.array_count(t.partitions.size());
        for (const FetchResponse::Partition &p : t.partitions) {
            out.int32(p.partition_index);
            out.int16(p.error_code);
            out.int64(p.high_watermark);
            out.int64(p.last_stable_offset);  // v4+
            if (version >= 5)
                out.int64(p.log_start_offset);
            if (!p.aborted_transactions) {  // v4+, nullable
                out.int32(-1);
            } else {
                out.array_count(p.aborted_transactions->size());
                for (const FetchResponse::AbortedTransaction &a : *p.aborted_transactions) {
                    out.int64(a.producer_id);
                    out.int64(a.first_offset);
                }
            }
            if (version >= 11)
                out.int32(p.preferred_read_replica);
            out.nullable_bytes(p.records);
        }
    }
}

}  // namespace pgtopic::kafka
