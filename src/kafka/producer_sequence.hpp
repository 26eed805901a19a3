// Kafka's per-producer sequence rules for one (producer id, partition), as a Kafka broker
// applies them to a Produce batch (ProducerStateManager / ProducerAppendInfo in Apache Kafka):
//   - a batch whose epoch and first and last sequence equal one of the last 5 appended batches
//     is a retried duplicate: acknowledged again with that batch's base offset, not written;
//   - an epoch below the current one: INVALID_PRODUCER_EPOCH (47);
//   - a new (higher) epoch must start at sequence 0, unless nothing is known of the producer;
//   - the same epoch must continue at last sequence + 1 (after Int32.MAX comes 0), else
//     OUT_OF_ORDER_SEQUENCE_NUMBER (45);
//   - nothing known (never seen on this partition, or its state expired): any sequence is
//     accepted (Kafka 2.5+; older brokers answered UNKNOWN_PRODUCER_ID).
// Pure C++: no PostgreSQL header may reach this file.
#pragma once

#include "errors.hpp"

#include <cstdint>

namespace pgtopic::kafka {

constexpr int producer_batches_kept = 5;  // Kafka's ProducerStateEntry.NumBatchesToRetain

struct ProducerBatchMeta {
    std::int32_t first_sequence = 0;
    std::int32_t last_sequence = 0;
    std::int64_t first_offset = 0;
};

// What is known of one producer on one partition (epoch -1: nothing).
struct ProducerPartitionState {
    std::int16_t epoch = -1;
    std::int32_t last_sequence = -1;
    int n_batches = 0;
    ProducerBatchMeta batches[producer_batches_kept];  // oldest first
};

// base + delta with Kafka's wrap-around: the sequence after Int32.MAX is 0.
std::int32_t sequence_add(std::int32_t base, std::int32_t delta) noexcept;

struct SequenceCheck {
    enum Kind { append, duplicate, refuse } kind = append;
    std::int64_t duplicate_offset = -1;  // duplicate: the original batch's base offset
    ErrorCode error = ErrorCode::none;   // refuse
};

// Checks a batch of `count` (>= 1) records starting at first_sequence against the state.
SequenceCheck check_sequence(const ProducerPartitionState &state, std::int16_t epoch, std::int32_t first_sequence,
                             std::int32_t count) noexcept;

// Records an appended batch (after check_sequence said append).
void record_append(ProducerPartitionState &state, std::int16_t epoch, std::int32_t first_sequence,
                   std::int32_t count, std::int64_t first_offset) noexcept;

}  // namespace pgtopic::kafka
