// Kafka framing: every request and response is an int32 big-endian size followed by that many
// bytes. The size is checked (negative, below a request header's minimum, above the cap)
// before any buffer for the frame is allocated.
// Pure C++: no PostgreSQL header may reach this file.
#pragma once

#include "errors.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pgtopic::kafka {

// The default cap on a frame's size: Kafka's socket.request.max.bytes is 100 MiB, but every
// connection may buffer one frame (100 connections x 100 MiB would be 10 GB); 8 MiB holds a
// producer's default 1 MiB request several times over.
constexpr std::int32_t default_max_frame_bytes = 8 * 1024 * 1024;  // pgtopic.kafka_max_frame_bytes
// api_key + api_version + correlation_id + client_id length: the smallest request header v1.
constexpr std::int32_t min_request_frame_bytes = 10;

struct FrameStatus {
    enum Kind { need_more, complete } kind;
    // With complete: the payload's size (after the 4-byte prefix). With need_more: how many
    // bytes in total (prefix included) the caller must have before asking again.
    std::size_t bytes;
};

// Looks at the start of a connection's input buffer. Throws DecodeError for a size that is
// negative, below min_bytes or above max_bytes (the listener closes the connection: the
// stream cannot be resynchronised).
FrameStatus frame_status(std::string_view input, std::int32_t max_bytes = default_max_frame_bytes,
                         std::int32_t min_bytes = min_request_frame_bytes);

}  // namespace pgtopic::kafka
