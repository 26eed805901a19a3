// FindCoordinator (key 10) v0-2: FindCoordinatorRequest.json / FindCoordinatorResponse.json.
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

FindCoordinatorRequest decode_find_coordinator_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::find_coordinator, version);
    FindCoordinatorRequest r;
    r.key = in.string();
    if (version >= 1)
        r.key_type = in.int8();
    in.expect_end("FindCoordinator request");
    return r;
}

void encode_find_coordinator_response(Writer &out, std::int16_t version, const FindCoordinatorResponse &r)
{
    check_version(ApiKey::find_coordinator, version);
    if (version >= 1)
        out.int32(r.throttle_time_ms);
    out.int16(r.error_code);
    if (version >= 1)
        out.nullable_string(r.error_message ? NullableBytes(*r.error_message) : std::nullopt);
    out.int32(r.node_id);
    out.string(r.host);
    out.int32(r.port);
}

}  // namespace pgtopic::kafka
