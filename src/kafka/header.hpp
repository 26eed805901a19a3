// Kafka request and response headers, the API keys pgtopic knows and, per API, the versions the
// codec decodes and the first flexible (compact, tagged) version, from Apache Kafka's message
// definitions (clients/src/main/resources/common/message/*.json).
// Pure C++: no PostgreSQL header may reach this file.
#pragma once

#include "wire.hpp"

#include <cstdint>

namespace pgtopic::kafka {

enum class ApiKey : std::int16_t {
    produce = 0,
    fetch = 1,
    list_offsets = 2,
    metadata = 3,
    offset_commit = 8,
    offset_fetch = 9,
    find_coordinator = 10,
    join_group = 11,
    heartbeat = 12,
    leave_group = 13,
    sync_group = 14,
    describe_groups = 15,
    list_groups = 16,
    sasl_handshake = 17,
    api_versions = 18,
    create_topics = 19,
    delete_topics = 20,
    init_producer_id = 22,
    sasl_authenticate = 36,
};

struct VersionRange {
    ApiKey key;
    std::int16_t min;
    std::int16_t max;
    std::int16_t first_flexible;  // Kafka's "flexibleVersions": N+ (above max: never flexible here)
};

// Every API the codec handles, with the versions it decodes and encodes.
inline constexpr VersionRange codec_versions[] = {
    {ApiKey::produce, 3, 7, 9},        {ApiKey::fetch, 4, 11, 12},      {ApiKey::list_offsets, 1, 2, 6},
    {ApiKey::metadata, 0, 4, 9},       {ApiKey::api_versions, 0, 3, 3}, {ApiKey::create_topics, 0, 4, 5},
    {ApiKey::delete_topics, 0, 1, 4},  {ApiKey::init_producer_id, 0, 1, 2},
    {ApiKey::sasl_handshake, 0, 1, 2}, {ApiKey::sasl_authenticate, 0, 1, 2},
    // Consumer groups (group_messages.hpp)
    {ApiKey::offset_commit, 2, 7, 8},   {ApiKey::offset_fetch, 1, 5, 6},  {ApiKey::find_coordinator, 0, 2, 3},
    {ApiKey::join_group, 0, 5, 6},      {ApiKey::heartbeat, 0, 3, 4},     {ApiKey::leave_group, 0, 3, 4},
    {ApiKey::sync_group, 0, 3, 4},      {ApiKey::describe_groups, 0, 4, 5}, {ApiKey::list_groups, 0, 2, 3},
};

// The codec's range for an API key, or nullptr for one it does not know.
const VersionRange *find_version_range(std::int16_t api_key) noexcept;

// Header versions: flexible request versions use request header v2 (tagged fields after the
// client id), others v1; responses use header v1 when flexible, v0 otherwise, except
// ApiVersions, whose response header is always v0 (so that a client can read it whatever
// version it asked for). For an unknown key: non-flexible.
bool is_flexible(std::int16_t api_key, std::int16_t api_version) noexcept;
int request_header_version(std::int16_t api_key, std::int16_t api_version) noexcept;
int response_header_version(std::int16_t api_key, std::int16_t api_version) noexcept;

struct RequestHeader {
    std::int16_t api_key = 0;
    std::int16_t api_version = 0;
    std::int32_t correlation_id = 0;
    NullableBytes client_id;  // points into the frame
};

// The first 8 bytes (key, version, correlation id) are read first, so a caller can answer
// even when the rest of the header is malformed. Reads the client id (header v1) and, for
// flexible versions, the tagged-field section (header v2).
RequestHeader read_request_header(Reader &in);

// Response header v0 (correlation id) or v1 (plus an empty tagged-field section).
void write_response_header(Writer &out, std::int16_t api_key, std::int16_t api_version, std::int32_t correlation_id);

}  // namespace pgtopic::kafka
