// InitProducerId (key 22) v0-1: InitProducerIdRequest.json / InitProducerIdResponse.json (v2+
// is flexible and v3+ carries the current producer id and epoch for an epoch bump; neither is
// served). pgtopic serves idempotent producers only: see docs/kafka.md, "Idempotent producers".
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

InitProducerIdRequest decode_init_producer_id_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::init_producer_id, version);
    InitProducerIdRequest r;
    r.transactional_id = in.nullable_string();
    r.transaction_timeout_ms = in.int32();
    in.expect_end("InitProducerId request");
    return r;
}

void encode_init_producer_id_response(Writer &out, std::int16_t version, const InitProducerIdResponse &r)
{
    check_version(ApiKey::init_producer_id, version);
    out.int32(r.throttle_time_ms);
    out.int16(r.error_code);
    out.int64(r.producer_id);
    out.int16(r.producer_epoch);
}

}  // namespace pgtopic::kafka
