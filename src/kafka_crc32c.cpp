// CRC-32C for the Kafka codec from PostgreSQL's own implementation (port/pg_crc32c.h: SSE 4.2
// or ARMv8 instructions when the CPU has them, slicing-by-8 otherwise). The codec under
// src/kafka stays free of PostgreSQL headers and receives this function through Crc32cFn.
// In the extension the symbols come from the server binary; the unit tests and the fuzz
// harness link libpgport.a from postgresql-server-dev-15.
extern "C" {
#include "postgres.h"

#include "port/pg_crc32c.h"
}

#include "kafka/crc32c.hpp"

namespace pgtopic::kafka {

std::uint32_t postgres_crc32c(const void *data, std::size_t len) noexcept
{
    pg_crc32c crc;
    INIT_CRC32C(crc);
    COMP_CRC32C(crc, data, len);
    FIN_CRC32C(crc);
    return crc;
}

}  // namespace pgtopic::kafka
