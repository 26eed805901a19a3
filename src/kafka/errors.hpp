// Kafka protocol error codes (org.apache.kafka.common.protocol.Errors) and the codec's
// exception types. Pure C++: no PostgreSQL header may reach this file.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace pgtopic::kafka {

enum class ErrorCode : std::int16_t {
    unknown_server_error = -1,
    none = 0,
    offset_out_of_range = 1,
    corrupt_message = 2,
    unknown_topic_or_partition = 3,
    invalid_fetch_size = 4,
    leader_not_available = 5,
    not_leader_or_follower = 6,
    request_timed_out = 7,
    message_too_large = 10,
    coordinator_not_available = 15,
    invalid_topic_exception = 17,
    record_list_too_large = 18,
    not_enough_replicas = 19,
    invalid_required_acks = 21,
    illegal_generation = 22,
    inconsistent_group_protocol = 23,
    invalid_group_id = 24,
    unknown_member_id = 25,
    invalid_session_timeout = 26,
    rebalance_in_progress = 27,
    invalid_commit_offset_size = 28,
    topic_authorization_failed = 29,
    group_authorization_failed = 30,
    cluster_authorization_failed = 31,
    invalid_timestamp = 32,
    unsupported_sasl_mechanism = 33,
    illegal_sasl_state = 34,
    unsupported_version = 35,
    topic_already_exists = 36,
    invalid_partitions = 37,
    invalid_replication_factor = 38,
    invalid_replica_assignment = 39,
    invalid_config = 40,
    not_controller = 41,
    invalid_request = 42,
    unsupported_for_message_format = 43,
    out_of_order_sequence_number = 45,
    duplicate_sequence_number = 46,
    invalid_producer_epoch = 47,
    transactional_id_authorization_failed = 53,
    kafka_storage_error = 56,
    sasl_authentication_failed = 58,
    unknown_producer_id = 59,
    group_id_not_found = 69,
    member_id_required = 79,
    group_max_size_reached = 81,
    fenced_instance_id = 82,
    unsupported_compression_type = 76,
    invalid_record = 87,
};

constexpr std::int16_t code(ErrorCode e) noexcept { return static_cast<std::int16_t>(e); }

// Malformed input: a truncated field, a negative or oversized length, a count that cannot fit
// the bytes left, a bad CRC. error() is the Kafka error the peer should get (the listener may
// instead close the connection when no response can be framed).
class DecodeError : public std::runtime_error {
public:
    DecodeError(ErrorCode error, const std::string &what) : std::runtime_error(what), error_(error) {}
    ErrorCode error() const noexcept { return error_; }

private:
    ErrorCode error_;
};

// A value that the chosen encoding cannot carry (e.g. a string over 32767 bytes in an int16
// length); a bug in the caller or an oversized value, never silent truncation.
class EncodeError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace pgtopic::kafka
