// DeleteTopics (key 20) v0-1: DeleteTopicsRequest.json / DeleteTopicsResponse.json.
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

DeleteTopicsRequest decode_delete_topics_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::delete_topics, version);
    DeleteTopicsRequest r;
    std::int32_t n = in.array_count(2);
    r.topic_names.reserve(static_cast<std::size_t>(n));
    for (std::int32_t i = 0; i < n; i++)
        r.topic_names.push_back(in.string());
    r.timeout_ms = in.int32();
    in.expect_end("DeleteTopics request");
    return r;
}

void encode_delete_topics_response(Writer &out, std::int16_t version, const DeleteTopicsResponse &r)
{
    check_version(ApiKey::delete_topics, version);
    if (version >= 1)
        out.int32(r.throttle_time_ms);
    out.array_count(r.responses.size());
    for (const DeleteTopicsResponse::Topic &t : r.responses) {
        out.string(t.name);
        out.int16(t.error_code);
    }
}

}  // namespace pgtopic::kafka
