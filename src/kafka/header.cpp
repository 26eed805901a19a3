// Kafka request and response headers; see header.hpp.
#include "header.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

const VersionRange *find_version_range(std::int16_t api_key) noexcept
{
    for (const VersionRange &r : codec_versions)
        if (static_cast<std::int16_t>(r.key) == api_key)
            return &r;
    return nullptr;
}

bool is_flexible(std::int16_t api_key, std::int16_t api_version) noexcept
{
    const VersionRange *r = find_version_range(api_key);
    return r && api_version >= r->first_flexible;
}

int request_header_version(std::int16_t api_key, std::int16_t api_version) noexcept
{
    return is_flexible(api_key, api_version) ? 2 : 1;
}

int response_header_version(std::int16_t api_key, std::int16_t api_version) noexcept
{
    if (api_key == static_cast<std::int16_t>(ApiKey::api_versions))
        return 0;
    return is_flexible(api_key, api_version) ? 1 : 0;
}

RequestHeader read_request_header(Reader &in)
{
    RequestHeader h;
    h.api_key = in.int16();
    h.api_version = in.int16();
    h.correlation_id = in.int32();
    // The client id keeps the int16 length even in header v2 (RequestHeader.json).
    h.client_id = in.nullable_string();
    if (request_header_version(h.api_key, h.api_version) >= 2)
        in.skip_tagged_fields();
    return h;
}

void write_response_header(Writer &out, std::int16_t api_key, std::int16_t api_version, std::int32_t correlation_id)
{
    out.int32(correlation_id);
    if (response_header_version(api_key, api_version) >= 1)
        out.no_tagged_fields();
}

}  // namespace pgtopic::kafka
