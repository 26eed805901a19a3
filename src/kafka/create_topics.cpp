// CreateTopics (key 19) v0-4: CreateTopicsRequest.json / CreateTopicsResponse.json.
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

CreateTopicsRequest decode_create_topics_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::create_topics, version);
    CreateTopicsRequest r;
    // name + num_partitions + replication_factor + assignments count + configs count
    std::int32_t topics = in.array_count(2 + 4 + 2 + 4 + 4);
    r.topics.reserve(static_cast<std::size_t>(topics));
    for (std::int32_t i = 0; i < topics; i++) {
        CreateTopicsRequest::Topic &t = r.topics.emplace_back();
        t.name = in.string();
        t.num_partitions = in.int32();
        t.replication_factor = in.int16();
        std::int32_t assignments = in.array_count(4 + 4);
        t.assignments.reserve(static_cast<std::size_t>(assignments));
        for (std::int32_t j = 0; j < assignments; j++) {
            CreateTopicsRequest::Assignment &a = t.assignments.emplace_back();
            a.partition_index = in.int32();
            std::int32_t brokers = in.array_count(4);
            a.broker_ids.reserve(static_cast<std::size_t>(brokers));
            for (std::int32_t k = 0; k < brokers; k++)
                a.broker_ids.push_back(in.int32());
        }
        std::int32_t configs = in.array_count(2 + 2);
        t.configs.reserve(static_cast<std::size_t>(configs));
        for (std::int32_t j = 0; j < configs; j++) {
            CreateTopicsRequest::Config &c = t.configs.emplace_back();
            c.name = in.string();
            c.value = in.nullable_string();
        }
    }
    r.timeout_ms = in.int32();
    if (version >= 1)
        r.validate_only = in.boolean();
    in.expect_end("CreateTopics request");
    return r;
}

void encode_create_topics_response(Writer &out, std::int16_t version, const CreateTopicsResponse &r)
{
    check_version(ApiKey::create_topics, version);
    if (version >= 2)
        out.int32(r.throttle_time_ms);
    out.array_count(r.topics.size());
    for (const CreateTopicsResponse::Topic &t : r.topics) {
        out.string(t.name);
        out.int16(t.error_code);
        if (version >= 1)
            out.nullable_string(t.error_message ? NullableBytes(*t.error_message) : std::nullopt);
    }
}

}  // namespace pgtopic::kafka
