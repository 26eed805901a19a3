// Kafka's per-producer sequence rules: see producer_sequence.hpp.
#include "producer_sequence.hpp"

#ifdef POSTGRES_H
#error "src/kafka is pure C++; do not include PostgreSQL headers"
#endif

#include <limits>

namespace pgtopic::kafka {

std::int32_t sequence_add(std::int32_t base, std::int32_t delta) noexcept
{
    constexpr std::int32_t max = std::numeric_limits<std::int32_t>::max();
    if (base > max - delta)
        return delta - (max - base) - 1;
    return base + delta;
}

SequenceCheck check_sequence(const ProducerPartitionState &state, std::int16_t epoch, std::int32_t first_sequence,
                             std::int32_t count) noexcept
{
    SequenceCheck r;
    std::int32_t last_sequence = sequence_add(first_sequence, count - 1);
    bool known = state.epoch >= 0;
    if (known && epoch == state.epoch) {
        for (int i = 0; i < state.n_batches; i++)
            if (state.batches[i].first_sequence == first_sequence && state.batches[i].last_sequence == last_sequence) {
                r.kind = SequenceCheck::duplicate;
                r.duplicate_offset = state.batches[i].first_offset;
                return r;
            }
    }
    if (!known)
        return r;  // any sequence
    if (epoch < state.epoch) {
        r.kind = SequenceCheck::refuse;
        r.error = ErrorCode::invalid_producer_epoch;
    } else if (epoch > state.epoch) {
        if (first_sequence != 0) {
            r.kind = SequenceCheck::refuse;
            r.error = ErrorCode::out_of_order_sequence_number;
        }
    } else if (first_sequence != sequence_add(state.last_sequence, 1)) {
        r.kind = SequenceCheck::refuse;
        r.error = ErrorCode::out_of_order_sequence_number;
    }
    return r;
}

void record_append(ProducerPartitionState &state, std::int16_t epoch, std::int32_t first_sequence,
                   std::int32_t count, std::int64_t first_offset) noexcept
{
    if (epoch != state.epoch)
        state.n_batches = 0;
    state.epoch = epoch;
    state.last_sequence = sequence_add(first_sequence, count - 1);
    if (state.n_batches == producer_batches_kept) {
        for (int i = 1; i < producer_batches_kept; i++)
            state.batches[i - 1] = state.batches[i];
        state.n_batches--;
    }
    state.batches[state.n_batches++] = {first_sequence, state.last_sequence, first_offset};
}

}  // namespace pgtopic::kafka
