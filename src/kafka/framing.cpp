// Kafka framing; see framing.hpp.
#include "framing.hpp"

#include "wire.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic::kafka {

FrameStatus frame_status(std::string_view input, std::int32_t max_bytes, std::int32_t min_bytes)
{
    if (input.size() < 4)
        return {FrameStatus::need_more, 4};
    std::int32_t size = static_cast<std::int32_t>(read_be32(reinterpret_cast<const unsigned char *>(input.data())));
    if (size < 0)
        throw DecodeError(ErrorCode::invalid_request, "negative frame size");
    if (size < min_bytes)
        throw DecodeError(ErrorCode::invalid_request, "frame smaller than a request header");
    if (size > max_bytes)
        throw DecodeError(ErrorCode::invalid_request, "frame larger than the cap");
    std::size_t total = 4 + static_cast<std::size_t>(size);
    if (input.size() < total)
        return {FrameStatus::need_more, total};
    return {FrameStatus::complete, static_cast<std::size_t>(size)};
}

}  // namespace pgtopic::kafka
