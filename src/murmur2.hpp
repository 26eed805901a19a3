// Kafka's default partitioner, bit for bit: murmur2 as in org.apache.kafka.common.utils.Utils.
// Pure C++: no PostgreSQL header may reach this file.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pgtopic {

// Utils.murmur2(byte[]): seed 0x9747b28c, as a signed 32-bit value like Java's int.
std::int32_t murmur2(const unsigned char *data, std::size_t length) noexcept;

// Utils.toPositive(murmur2(key)) % partitions: the partition Kafka's producer picks for a key.
inline std::int32_t key_partition(const unsigned char *key, std::size_t length, std::int32_t partitions) noexcept
{
    return static_cast<std::int32_t>((static_cast<std::uint32_t>(murmur2(key, length)) & 0x7fffffffu) %
                                     static_cast<std::uint32_t>(partitions));
}

}  // namespace pgtopic
