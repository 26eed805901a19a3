// libFuzzer target: a Kafka connection's byte stream through the framing, the request decoder
// and (for Produce) the RecordBatch checks, then the response encoders for what decoded.
// The only exception the codec may throw at malformed input is DecodeError; anything else (an
// out-of-range read, a huge allocation, std::bad_alloc, a UBSan report) is a finding.
// Build and run: make fuzz-kafka (docs/kafka.md).
#include "kafka/crc32c.hpp"
#include "kafka/framing.hpp"
#include "kafka/messages.hpp"
#include "kafka/record_batch.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace pgtopic::kafka;

namespace {

// The consumer-group APIs: echo what the request names (and decode a JoinGroup's consumer
// subscriptions, as the coordinator does).
bool answer_group_request(const Request &req, ResponseBody &body)
{
    if (std::holds_alternative<FindCoordinatorRequest>(req.body)) {
        body = FindCoordinatorResponse{0, 0, std::string("x"), 1, "127.0.0.1", 9092};
    } else if (auto *j = std::get_if<JoinGroupRequest>(&req.body)) {
        JoinGroupResponse r;
        r.member_id = std::string(j->member_id);
        for (const auto &p : j->protocols) {
            try {
                for (auto t : consumer_subscription_topics(p.metadata))
                    r.protocol_name = std::string(t);
            } catch (const DecodeError &) {
            }
            r.members.push_back({std::string(j->member_id), std::string("i"), std::string(p.metadata)});
        }
        body = r;
    } else if (auto *s = std::get_if<SyncGroupRequest>(&req.body)) {
        SyncGroupResponse r;
        for (const auto &a : s->assignments)
            r.assignment = std::string(a.assignment);
        body = r;
    } else if (std::holds_alternative<HeartbeatRequest>(req.body)) {
        body = HeartbeatResponse{};
    } else if (auto *l = std::get_if<LeaveGroupRequest>(&req.body)) {
        LeaveGroupResponse r;
        for (const auto &m : l->members)
            r.members.push_back({std::string(m.member_id), std::nullopt, 0});
        body = r;
    } else if (auto *c = std::get_if<OffsetCommitRequest>(&req.body)) {
        OffsetCommitResponse r;
        for (const auto &t : c->topics) {
            auto &rt = r.topics.emplace_back();
            rt.name = std::string(t.name);
            for (const auto &p : t.partitions)
                rt.partitions.push_back({p.partition_index, 0});
        }
        body = r;
    } else if (auto *f = std::get_if<OffsetFetchRequest>(&req.body)) {
        OffsetFetchResponse r;
        if (f->topics)
            for (const auto &t : *f->topics) {
                auto &rt = r.topics.emplace_back();
                rt.name = std::string(t.name);
                for (auto p : t.partition_indexes)
                    rt.partitions.push_back({p, -1, -1, std::string("m"), 0});
            }
        body = r;
    } else if (auto *d = std::get_if<DescribeGroupsRequest>(&req.body)) {
        DescribeGroupsResponse r;
        for (auto g : d->groups)
            r.groups.push_back({0, std::string(g), "Empty", "consumer", "", {{"m", std::nullopt, "c", "/h", "", ""}}, 0});
        body = r;
    } else if (std::holds_alternative<ListGroupsRequest>(req.body)) {
        body = ListGroupsResponse{0, 0, {{"g", "consumer"}}};
    } else {
        return false;
    }
    return true;
}

// Answers a decoded request the way a broker would shape it, echoing names and counts, so the
// encoders run on every version the decoder accepted.
void answer(const Request &req)
{
    const std::int16_t key = req.header.api_key, v = req.header.api_version;
    ResponseBody body;
    if (auto *p = std::get_if<ProduceRequest>(&req.body)) {
        ProduceResponse r;
        for (const auto &t : p->topics) {
            auto &rt = r.responses.emplace_back();
            rt.name = std::string(t.name);
            for (const auto &part : t.partitions) {
                std::int16_t err = 0;
                try {
                    BatchHeader h = check_produce_records(part.records, postgres_crc32c);
                    RecordReader reader(h, BatchRules{true});
                    Record rec;
                    while (reader.next(rec)) {
                    }
                } catch (const DecodeError &e) {
                    err = code(e.error());
                }
                rt.partitions.push_back({part.index, err, 0, -1, 0});
            }
        }
        body = r;
    } else if (auto *f = std::get_if<FetchRequest>(&req.body)) {
        FetchResponse r;
        for (const auto &t : f->topics) {
            auto &rt = r.responses.emplace_back();
            rt.topic = std::string(t.topic);
            for (const auto &part : t.partitions) {
                FetchResponse::Partition rp;
                rp.partition_index = part.partition;
                rp.records = std::string_view();
                rt.partitions.push_back(rp);
            }
        }
        body = r;
    } else if (auto *m = std::get_if<MetadataRequest>(&req.body)) {
        MetadataResponse r;
        r.brokers.push_back({1, "127.0.0.1", 9092, std::nullopt});
        if (m->topics)
            for (auto name : *m->topics)
                r.topics.push_back({code(ErrorCode::unknown_topic_or_partition), std::string(name), false, {}});
        body = r;
    } else if (auto *l = std::get_if<ListOffsetsRequest>(&req.body)) {
        ListOffsetsResponse r;
        for (const auto &t : l->topics) {
            auto &rt = r.topics.emplace_back();
            rt.name = std::string(t.name);
            for (const auto &part : t.partitions)
                rt.partitions.push_back({part.partition_index, 0, part.timestamp, 0});
        }
        body = r;
    } else if (auto *c = std::get_if<CreateTopicsRequest>(&req.body)) {
        CreateTopicsResponse r;
        for (const auto &t : c->topics)
            r.topics.push_back({std::string(t.name), 0, std::nullopt});
        body = r;
    } else if (auto *d = std::get_if<DeleteTopicsRequest>(&req.body)) {
        DeleteTopicsResponse r;
        for (auto name : d->topic_names)
            r.responses.push_back({std::string(name), 0});
        body = r;
    } else if (std::holds_alternative<InitProducerIdRequest>(req.body)) {
        body = InitProducerIdResponse{0, 0, 1, 0};
    } else if (auto *sh = std::get_if<SaslHandshakeRequest>(&req.body)) {
        SaslHandshakeResponse r;
        r.mechanisms.emplace_back(sh->mechanism);
        body = r;
    } else if (auto *sa = std::get_if<SaslAuthenticateRequest>(&req.body)) {
        SaslAuthenticateResponse r;
        r.auth_bytes = std::string(sa->auth_bytes);
        PlainCredentials c;
        std::string user;
        if (!parse_sasl_plain(sa->auth_bytes, &c) && !scram_client_first_user(sa->auth_bytes, &user))
            r.error_message = "bad";
        body = r;
    } else if (!answer_group_request(req, body)) {
        ApiVersionsResponse r;
        for (const VersionRange &range : codec_versions)
            r.api_keys.push_back({static_cast<std::int16_t>(range.key), range.min, range.max});
        body = r;
    }
    std::vector<unsigned char> frame = encode_response(key, v, req.header.correlation_id, body);
    if (frame.size() < 8)
        std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    std::string_view input(reinterpret_cast<const char *>(data), size);
    // A stream of frames, capped at 1 MiB each, as the listener reads them.
    while (!input.empty()) {
        FrameStatus s;
        try {
            s = frame_status(input, 1 << 20);
        } catch (const DecodeError &) {
            return 0;  // the listener closes the connection
        }
        if (s.kind == FrameStatus::need_more)
            return 0;
        std::string_view payload = input.substr(4, s.bytes);
        input.remove_prefix(4 + s.bytes);
        RequestHeader header;
        try {
            Request req = decode_request(payload, &header);
            answer(req);
        } catch (const DecodeError &e) {
            // An ApiVersions the codec cannot read is answered in v0 with the error.
            if (header.api_key == static_cast<std::int16_t>(ApiKey::api_versions)) {
                ApiVersionsResponse r;
                r.error_code = code(e.error());
                (void)encode_response(header.api_key, header.api_version, header.correlation_id, r);
            }
        }
    }
    return 0;
}
