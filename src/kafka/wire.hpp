// Kafka wire primitives: a bounds-checked reader and a growing writer for the protocol's
// big-endian integers, unsigned and zigzag varints, (nullable, compact) strings and bytes,
// array counts and tagged-field sections.
// Pure C++: no PostgreSQL header may reach this file (the codec is unit-tested and fuzzed
// without a server).
#pragma once

#include "errors.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgtopic::kafka {

// A view of bytes that may be null (Kafka's nullable strings/bytes: length -1).
using NullableBytes = std::optional<std::string_view>;

// Reads from a borrowed buffer; every read checks the bytes left first and throws DecodeError
// (never reads out of bounds, never allocates from an unchecked length). Returned string_views
// point into the buffer, which must outlive them.
class Reader {
public:
    Reader(const void *data, std::size_t size) noexcept
        : p_(static_cast<const unsigned char *>(data)), end_(p_ + size)
    {
    }
    explicit Reader(std::string_view bytes) noexcept : Reader(bytes.data(), bytes.size()) {}

    std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }
    bool empty() const noexcept { return p_ == end_; }
    const unsigned char *position() const noexcept { return p_; }

    std::int8_t int8();
    std::int16_t int16();
    std::int32_t int32();
    std::int64_t int64();
    std::uint32_t uint32();
    bool boolean();

    // Unsigned varint of at most 5 bytes (a 32-bit value); longer or overflowing encodings throw.
    std::uint32_t uvarint();
    // Zigzag varint (32-bit, at most 5 bytes) and varlong (64-bit, at most 10 bytes).
    std::int32_t varint();
    std::int64_t varlong();

    // int16 length; -1 = null. Non-nullable variants refuse -1.
    NullableBytes nullable_string();
    std::string_view string();
    // int32 length; -1 = null.
    NullableBytes nullable_bytes();
    std::string_view bytes();
    // Flexible versions: unsigned varint length + 1 (0 = null).
    NullableBytes compact_nullable_string();
    std::string_view compact_string();
    // Record fields: zigzag varint length, -1 = null.
    NullableBytes varint_bytes();

    // The raw next n bytes (n checked against the bytes left).
    std::string_view raw(std::size_t n);
    void skip(std::size_t n) { raw(n); }

    // Array counts: int32 (classic) or unsigned varint + 1 (compact). A count below -1, or one
    // whose elements could not fit in the bytes left at min_element_size bytes each, throws
    // before the caller allocates anything. nullopt = null array (-1 / 0).
    std::optional<std::int32_t> nullable_array_count(std::size_t min_element_size);
    std::int32_t array_count(std::size_t min_element_size);
    std::optional<std::int32_t> compact_nullable_array_count(std::size_t min_element_size);
    std::int32_t compact_array_count(std::size_t min_element_size);
    // Varint count (record headers): same checks.
    std::int32_t varint_count(std::size_t min_element_size);

    // A flexible version's tagged-field section: read and ignored (we know no tags).
    void skip_tagged_fields();

    // Throws unless every byte was consumed.
    void expect_end(const char *what) const;

private:
    void need(std::size_t n, const char *what) const;
    std::int32_t check_count(std::int64_t count, std::size_t min_element_size, const char *what) const;

    const unsigned char *p_;
    const unsigned char *end_;
};

// Appends to a byte vector; big-endian integers, varints and the string/bytes/array encodings.
class Writer {
public:
    std::vector<unsigned char> &buffer() noexcept { return buf_; }
    const std::vector<unsigned char> &buffer() const noexcept { return buf_; }
    std::size_t size() const noexcept { return buf_.size(); }
    std::string_view view() const noexcept
    {
        return std::string_view(reinterpret_cast<const char *>(buf_.data()), buf_.size());
    }

    void int8(std::int8_t v) { buf_.push_back(static_cast<unsigned char>(v)); }
    void int16(std::int16_t v);
    void int32(std::int32_t v);
    void int64(std::int64_t v);
    void uint32(std::uint32_t v);
    void boolean(bool v) { int8(v ? 1 : 0); }
    void uvarint(std::uint32_t v);
    void varint(std::int32_t v);
    void varlong(std::int64_t v);

    // Lengths that do not fit the encoding throw EncodeError.
    void string(std::string_view s);
    void nullable_string(NullableBytes s);
    void bytes(std::string_view b);
    void nullable_bytes(NullableBytes b);
    void compact_string(std::string_view s);
    void compact_nullable_string(NullableBytes s);
    void varint_bytes(NullableBytes b);
    void raw(std::string_view b) { buf_.insert(buf_.end(), b.begin(), b.end()); }
    void array_count(std::size_t n);
    void compact_array_count(std::size_t n);
    // An empty tagged-field section (we never send tags: librdkafka 2.0.2 mis-skips them).
    void no_tagged_fields() { uvarint(0); }

    // Overwrite a big-endian int32 written earlier at byte offset at (length and CRC fields).
    void patch_int32(std::size_t at, std::int32_t v);
    void patch_uint32(std::size_t at, std::uint32_t v);

private:
    std::vector<unsigned char> buf_;
};

// Free helpers for tests and the record-batch code.
std::uint32_t read_be32(const unsigned char *p) noexcept;

}  // namespace pgtopic::kafka
