// CRC-32C (Castagnoli) as the codec sees it: a function injected by the caller, so that the
// pure C++ codec uses PostgreSQL's own implementation (port/pg_crc32c.h, hardware-accelerated
// where the CPU allows) without including a PostgreSQL header. src/kafka_crc32c.cpp provides
// postgres_crc32c(); tests and the fuzz harness link the same file against libpgport.
// Pure C++: no PostgreSQL header may reach this file.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pgtopic::kafka {

// The finished CRC-32C of data[0..len): initial value 0xFFFFFFFF, final xor 0xFFFFFFFF (the
// value Kafka's RecordBatch header carries). "123456789" -> 0xE3069283.
using Crc32cFn = std::uint32_t (*)(const void *data, std::size_t len);

// PostgreSQL's implementation (defined in src/kafka_crc32c.cpp, the one file of the Kafka code
// that includes PostgreSQL headers).
std::uint32_t postgres_crc32c(const void *data, std::size_t len) noexcept;

}  // namespace pgtopic::kafka
