// Kafka wire primitives; see wire.hpp.
#include "wire.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

#include <limits>

namespace pgtopic::kafka {

namespace {

[[noreturn]] void truncated(const char *what)
{
    throw DecodeError(ErrorCode::corrupt_message, std::string("truncated ") + what);
}

}  // namespace

std::uint32_t read_be32(const unsigned char *p) noexcept
{
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

void Reader::need(std::size_t n, const char *what) const
{
    if (n > remaining())
        truncated(what);
}

std::int8_t Reader::int8()
{
    need(1, "int8");
    return static_cast<std::int8_t>(*p_++);
}

std::int16_t Reader::int16()
{
    need(2, "int16");
    std::uint16_t v = static_cast<std::uint16_t>((std::uint16_t(p_[0]) << 8) | p_[1]);
    p_ += 2;
    return static_cast<std::int16_t>(v);
}

std::uint32_t Reader::uint32()
{
    need(4, "int32");
    std::uint32_t v = read_be32(p_);
    p_ += 4;
    return v;
}

std::int32_t Reader::int32() { return static_cast<std::int32_t>(uint32()); }

std::int64_t Reader::int64()
{
    need(8, "int64");
    std::uint64_t v = (std::uint64_t(read_be32(p_)) << 32) | read_be32(p_ + 4);
    p_ += 8;
    return static_cast<std::int64_t>(v);
}

bool Reader::boolean() { return int8() != 0; }

std::uint32_t Reader::uvarint()
{
    std::uint32_t v = 0;
    for (int i = 0; i < 5; i++) {
        need(1, "varint");
        unsigned char b = *p_++;
        if (i == 4 && b > 0x0f)
            throw DecodeError(ErrorCode::corrupt_message, "varint overflows 32 bits");
        v |= std::uint32_t(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            return v;
    }
    throw DecodeError(ErrorCode::corrupt_message, "varint longer than 5 bytes");
}

std::int32_t Reader::varint()
{
    std::uint32_t u = uvarint();
    return static_cast<std::int32_t>((u >> 1) ^ (~(u & 1) + 1));
}

std::int64_t Reader::varlong()
{
    std::uint64_t u = 0;
    for (int i = 0; i < 10; i++) {
        need(1, "varlong");
        unsigned char b = *p_++;
        if (i == 9 && b > 0x01)
            throw DecodeError(ErrorCode::corrupt_message, "varlong overflows 64 bits");
        u |= std::uint64_t(b & 0x7f) << (7 * i);
        if (!(b & 0x80))
            return static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1));
    }
    throw DecodeError(ErrorCode::corrupt_message, "varlong longer than 10 bytes");
}

std::string_view Reader::raw(std::size_t n)
{
    need(n, "bytes");
    std::string_view v(reinterpret_cast<const char *>(p_), n);
    p_ += n;
    return v;
}

NullableBytes Reader::nullable_string()
{
    std::int16_t len = int16();
    if (len == -1)
        return std::nullopt;
    if (len < 0)
        throw DecodeError(ErrorCode::corrupt_message, "negative string length");
    need(static_cast<std::size_t>(len), "string");
    return raw(static_cast<std::size_t>(len));
}

std::string_view Reader::string()
{
    NullableBytes s = nullable_string();
    if (!s)
        throw DecodeError(ErrorCode::invalid_request, "null where a string is required");
    return *s;
}

NullableBytes Reader::nullable_bytes()
{
    std::int32_t len = int32();
    if (len == -1)
        return std::nullopt;
    if (len < 0)
        throw DecodeError(ErrorCode::corrupt_message, "negative bytes length");
    need(static_cast<std::size_t>(len), "bytes");
    return raw(static_cast<std::size_t>(len));
}

std::string_view Reader::bytes()
{
    NullableBytes b = nullable_bytes();
    if (!b)
        throw DecodeError(ErrorCode::invalid_request, "null where bytes are required");
    return *b;
}

NullableBytes Reader::compact_nullable_string()
{
    std::uint32_t n = uvarint();
    if (n == 0)
        return std::nullopt;
    need(n - 1, "compact string");
    return raw(n - 1);
}

std::string_view Reader::compact_string()
{
    NullableBytes s = compact_nullable_string();
    if (!s)
        throw DecodeError(ErrorCode::invalid_request, "null where a string is required");
    return *s;
}

NullableBytes Reader::varint_bytes()
{
    std::int32_t len = varint();
    if (len == -1)
        return std::nullopt;
    if (len < 0)
        throw DecodeError(ErrorCode::corrupt_message, "negative varint length");
    need(static_cast<std::size_t>(len), "varint bytes");
    return raw(static_cast<std::size_t>(len));
}

std::int32_t Reader::check_count(std::int64_t count, std::size_t min_element_size, const char *what) const
{
    if (count < 0)
        throw DecodeError(ErrorCode::corrupt_message, std::string("negative ") + what + " count");
    // min_element_size is at least 1 for every array we read, so this bounds allocations by
    // the frame's own size.
    std::size_t per = min_element_size ? min_element_size : 1;
    if (static_cast<std::uint64_t>(count) > remaining() / per)
        throw DecodeError(ErrorCode::corrupt_message, std::string(what) + " count exceeds the bytes left");
    return static_cast<std::int32_t>(count);
}

std::optional<std::int32_t> Reader::nullable_array_count(std::size_t min_element_size)
{
    std::int32_t n = int32();
    if (n == -1)
        return std::nullopt;
    return check_count(n, min_element_size, "array");
}

std::int32_t Reader::array_count(std::size_t min_element_size)
{
    std::optional<std::int32_t> n = nullable_array_count(min_element_size);
    if (!n)
        throw DecodeError(ErrorCode::invalid_request, "null where an array is required");
    return *n;
}

std::optional<std::int32_t> Reader::compact_nullable_array_count(std::size_t min_element_size)
{
    std::uint32_t n = uvarint();
    if (n == 0)
        return std::nullopt;
    return check_count(static_cast<std::int64_t>(n) - 1, min_element_size, "array");
}

std::int32_t Reader::compact_array_count(std::size_t min_element_size)
{
    std::optional<std::int32_t> n = compact_nullable_array_count(min_element_size);
    if (!n)
        throw DecodeError(ErrorCode::invalid_request, "null where an array is required");
    return *n;
}

std::int32_t Reader::varint_count(std::size_t min_element_size)
{
    return check_count(varint(), min_element_size, "header");
}

void Reader::skip_tagged_fields()
{
    // Each tagged field is at least a tag varint and a size varint.
    std::uint32_t n = uvarint();
    check_count(n, 2, "tagged field");
    for (std::uint32_t i = 0; i < n; i++) {
        (void)uvarint();
        std::uint32_t size = uvarint();
        skip(size);
    }
}

void Reader::expect_end(const char *what) const
{
    if (!empty())
        throw DecodeError(ErrorCode::invalid_request, std::string("trailing bytes after ") + what);
}

void Writer::int16(std::int16_t v)
{
    std::uint16_t u = static_cast<std::uint16_t>(v);
    buf_.push_back(static_cast<unsigned char>(u >> 8));
    buf_.push_back(static_cast<unsigned char>(u));
}

void Writer::uint32(std::uint32_t u)
{
    buf_.push_back(static_cast<unsigned char>(u >> 24));
    buf_.push_back(static_cast<unsigned char>(u >> 16));
    buf_.push_back(static_cast<unsigned char>(u >> 8));
    buf_.push_back(static_cast<unsigned char>(u));
}

void Writer::int32(std::int32_t v) { uint32(static_cast<std::uint32_t>(v)); }

void Writer::int64(std::int64_t v)
{
    std::uint64_t u = static_cast<std::uint64_t>(v);
    uint32(static_cast<std::uint32_t>(u >> 32));
    uint32(static_cast<std::uint32_t>(u));
}

void Writer::uvarint(std::uint32_t v)
{
    while (v >= 0x80) {
        buf_.push_back(static_cast<unsigned char>(v | 0x80));
        v >>= 7;
    }
    buf_.push_back(static_cast<unsigned char>(v));
}

void Writer::varint(std::int32_t v)
{
    std::uint32_t u = static_cast<std::uint32_t>(v);
    uvarint((u << 1) ^ static_cast<std::uint32_t>(v >> 31));
}

void Writer::varlong(std::int64_t v)
{
    std::uint64_t u = static_cast<std::uint64_t>(v);
    u = (u << 1) ^ static_cast<std::uint64_t>(v >> 63);
    while (u >= 0x80) {
        buf_.push_back(static_cast<unsigned char>(u | 0x80));
        u >>= 7;
    }
    buf_.push_back(static_cast<unsigned char>(u));
}

void Writer::string(std::string_view s)
{
    if (s.size() > static_cast<std::size_t>(std::numeric_limits<std::int16_t>::max()))
        throw EncodeError("string longer than 32767 bytes");
    int16(static_cast<std::int16_t>(s.size()));
    raw(s);
}

void Writer::nullable_string(NullableBytes s)
{
    if (!s)
        int16(-1);
    else
        string(*s);
}

void Writer::bytes(std::string_view b)
{
    if (b.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw EncodeError("bytes longer than 2^31-1");
    int32(static_cast<std::int32_t>(b.size()));
    raw(b);
}

void Writer::nullable_bytes(NullableBytes b)
{
    if (!b)
        int32(-1);
    else
        bytes(*b);
}

void Writer::compact_string(std::string_view s)
{
    if (s.size() >= std::numeric_limits<std::uint32_t>::max())
        throw EncodeError("compact string too long");
    uvarint(static_cast<std::uint32_t>(s.size() + 1));
    raw(s);
}

void Writer::compact_nullable_string(NullableBytes s)
{
    if (!s)
        uvarint(0);
    else
        compact_string(*s);
}

void Writer::varint_bytes(NullableBytes b)
{
    if (!b) {
        varint(-1);
        return;
    }
    if (b->size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw EncodeError("record field longer than 2^31-1");
    varint(static_cast<std::int32_t>(b->size()));
    raw(*b);
}

void Writer::array_count(std::size_t n)
{
    if (n > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw EncodeError("array too long");
    int32(static_cast<std::int32_t>(n));
}

void Writer::compact_array_count(std::size_t n)
{
    if (n >= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
        throw EncodeError("array too long");
    uvarint(static_cast<std::uint32_t>(n + 1));
}

void Writer::patch_uint32(std::size_t at, std::uint32_t u)
{
    if (at + 4 > buf_.size())
        throw EncodeError("patch outside the buffer");
    buf_[at] = static_cast<unsigned char>(u >> 24);
    buf_[at + 1] = static_cast<unsigned char>(u >> 16);
    buf_[at + 2] = static_cast<unsigned char>(u >> 8);
    buf_[at + 3] = static_cast<unsigned char>(u);
}

void Writer::patch_int32(std::size_t at, std::int32_t v) { patch_uint32(at, static_cast<std::uint32_t>(v)); }

}  // namespace pgtopic::kafka
