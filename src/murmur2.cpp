// Kafka's murmur2; see murmur2.hpp.
#include "murmur2.hpp"

// Pure C++: unit-testable without a server. Fail the build if PostgreSQL headers sneak in.
#ifdef POSTGRES_H
#error "murmur2.cpp is pure C++; do not include PostgreSQL headers"
#endif

namespace pgtopic {

std::int32_t murmur2(const unsigned char *data, std::size_t length) noexcept
{
    constexpr std::uint32_t seed = 0x9747b28cu;
    constexpr std::uint32_t m = 0x5bd1e995u;
    constexpr int r = 24;

    std::uint32_t h = seed ^ static_cast<std::uint32_t>(length);
    const std::size_t whole = length / 4;
    for (std::size_t i = 0; i < whole; i++) {
        const unsigned char *p = data + 4 * i;
        std::uint32_t k = std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) |
                          (std::uint32_t(p[3]) << 24);
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    const unsigned char *tail = data + (length & ~std::size_t(3));
    switch (length % 4) {
    case 3:
        h ^= std::uint32_t(tail[2]) << 16;
        [[fallthrough]];
    case 2:
        h ^= std::uint32_t(tail[1]) << 8;
        [[fallthrough]];
    case 1:
        h ^= std::uint32_t(tail[0]);
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return static_cast<std::int32_t>(h);
}

}  // namespace pgtopic
