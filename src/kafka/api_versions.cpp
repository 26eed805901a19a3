// ApiVersions (key 18) v0-3: ApiVersionsRequest.json / ApiVersionsResponse.json. v3 is the
// first flexible version (compact strings and arrays, tagged-field sections); its response
// header stays v0.
#include "messages.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

void check_version(ApiKey key, std::int16_t version)
{
    const VersionRange *r = find_version_range(static_cast<std::int16_t>(key));
    if (!r || version < r->min || version > r->max)
        throw DecodeError(ErrorCode::unsupported_version, "unsupported API version");
}

ApiVersionsRequest decode_api_versions_request(Reader &in, std::int16_t version)
{
    check_version(ApiKey::api_versions, version);
    ApiVersionsRequest r;
    if (version >= 3) {
        r.client_software_name = in.compact_string();
        r.client_software_version = in.compact_string();
        in.skip_tagged_fields();
    }
    in.expect_end("ApiVersions request");
    return r;
}

void encode_api_versions_response(Writer &out, std::int16_t version, const ApiVersionsResponse &r)
{
    const VersionRange *range = find_version_range(static_cast<std::int16_t>(ApiKey::api_versions));
    if (version < range->min || version > range->max)
        version = 0;
    bool flexible = version >= 3;
    out.int16(r.error_code);
    if (flexible)
        out.compact_array_count(r.api_keys.size());
    else
        out.array_count(r.api_keys.size());
    for (const ApiVersionsResponse::Api &a : r.api_keys) {
        out.int16(a.api_key);
        out.int16(a.min_version);
        out.int16(a.max_version);
        if (flexible)
            out.no_tagged_fields();
    }
    if (version >= 1)
        out.int32(r.throttle_time_ms);
    if (flexible)
        out.no_tagged_fields();
}

}  // namespace pgtopic::kafka
