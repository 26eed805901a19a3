// The Kafka listener (docs/kafka.md): a background worker that accepts Kafka clients and
// answers them with the codec in src/kafka. kafka_listener.cpp owns the sockets and the event
// loop; kafka_requests.cpp turns one request frame into its response.
#pragma once

#include "pgtopic.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgtopic::kafka_server {

// Settings (kafka_listener.cpp).
extern char *listen_addresses;     // pgtopic.kafka_listen_addresses ('' = off)
extern int port;                   // pgtopic.kafka_port
extern char *advertised_host;      // pgtopic.kafka_advertised_host ('' = the first listen address)
extern char *role;                 // pgtopic.kafka_role: the role whose rights Kafka clients get
extern bool allow_unauthenticated; // pgtopic.kafka_allow_unauthenticated: listen beyond loopback
extern int max_connections;        // pgtopic.kafka_max_connections
extern int max_frame_bytes;        // pgtopic.kafka_max_frame_bytes
extern int auto_create_partitions; // pgtopic.kafka_auto_create_partitions (0 = off)
extern int idle_timeout_ms;        // pgtopic.kafka_idle_timeout (0 = never)

void define_settings();
void register_worker();

// The host and port Metadata advertises (kafka_listener.cpp).
const char *advertised_host_name();

// Handles one request frame's payload (after the size prefix): appends the whole response
// frame to out (answered), or returns closed when the connection must be closed (a request
// that cannot be parsed or an API the listener does not serve), or waiting (only when may_wait)
// for a Fetch that found less than its min_bytes: nothing is appended, *wait_ms is the
// request's max_wait_ms, and the loop hands the same frame in again when a producer commits or
// the wait is over (then with may_wait false). Never throws; runs PostgreSQL calls (each in its
// own transaction) through pg_call and returns to the loop with no transaction open.
// A connection's SASL authentication (kafka_auth.cpp); the listener keeps one per connection.
struct ConnectionAuth {
    MemoryContext context = nullptr;  // the connection's (SCRAM state lives there)
    bool loopback = true;             // the peer's address
    enum class Stage { start, raw_token, authenticate, done } stage = Stage::start;
    bool plain = false;               // the mechanism chosen: PLAIN, else SCRAM-SHA-256
    void *scram = nullptr;            // PostgreSQL's SCRAM exchange, between its two messages
    Oid role = InvalidOid;            // authenticated: the requests run as this role
    Oid pending_role = InvalidOid;    // SCRAM: the role, once the exchange succeeds
    char user[NAMEDATALEN] = "";
};
extern char *sasl_mechanisms;  // pgtopic.kafka_sasl_mechanisms ('' = no authentication)
extern Oid request_role;       // the role of the request being handled (InvalidOid: kafka_role)
bool authentication_required();
// Whether the listener offers a mechanism to a client (PLAIN only on loopback: no TLS yet).
bool mechanism_offered(const char *mechanism, bool loopback);
// The worker's own user, saved once connected; each step's transaction runs as request_role
// (apply_request_role after it starts, restore_worker_user before it commits).
void remember_worker_user();
void apply_request_role();
void restore_worker_user();
enum class AuthStep { continue_, done, failed };
// PLAIN: PostgreSQL's password check for a role that may log in (its own transaction).
AuthStep sasl_plain(ConnectionAuth *auth, const char *authzid, const char *user, const char *password);
// SCRAM-SHA-256, one client message (user: from the first one); *output: the server's message.
AuthStep sasl_scram(ConnectionAuth *auth, const char *user, const char *message, int length, char **output,
                    int *output_length);

// closed: close the connection now; answered_then_close: send `out`, then close.
enum class FrameResult { closed, answered, waiting, answered_then_close };
FrameResult handle_frame(std::string_view payload, std::string &out, bool may_wait, int *wait_ms, ConnectionAuth *auth);

// What a parked Fetch waits on: each partition's storage root and the last stable offset it saw.
// After handle_frame returned waiting, take_fetch_watch hands over what that request recorded
// (all = true when it must run again on every commit: a partition it could not identify, or a
// request other than Fetch); fetch_watch_changed tells whether one of the partitions' last
// stable offsets moved since (shared memory only: no transaction).
struct FetchWatch {
    Oid root_relid;
    std::int32_t partition;
    std::int64_t lso;
};
void take_fetch_watch(std::vector<FetchWatch> &out, bool *all);
bool fetch_watch_changed(const std::vector<FetchWatch> &watch);

// Produce's PostgreSQL side (kafka_produce.cpp): plain functions that catch PostgreSQL errors
// themselves. A batch's arrays are palloc'd in the current memory context.
struct ProduceBatch {
    int n;
    StoredMessage *msgs;
};
// A record header's bytes (value nullptr: a null value).
struct HeaderBytes {
    const char *key;
    int key_len;
    const char *value;
    int value_len;
};
void produce_batch_init(ProduceBatch *b, int capacity);
// Adds a record as the client sent it (nullptr key/value: null; headers in order; the record's
// timestamp in ms, or -1 for none); false with *why when a header key is not text in the
// database encoding or the timestamp is outside PostgreSQL's range.
bool produce_batch_add(ProduceBatch *b, const char *key, int key_len, const char *value, int value_len,
                       const HeaderBytes *headers, int n_headers, std::int64_t timestamp_ms, const char **why);
// Starts the request's transaction (lock_timeout 200 ms).
void produce_begin();
// Writes one partition in a subtransaction: true and *first, or false with the error.
bool produce_partition(const char *topic, std::int32_t partition, const ProduceBatch *b, std::int64_t *first,
                       int *sqlstate, char *message, std::size_t message_size);
// Commits (false with the error: everything was rolled back). *uncertain: committed, but the
// wait for synchronous replication may have been cut short (die or cancel pending): the
// caller must not acknowledge.
bool produce_commit(int *sqlstate, char *message, std::size_t message_size, bool *uncertain);

// Idempotent producers (kafka_producers.cpp): plain functions that catch PostgreSQL errors
// themselves (expire_producers logs them).
extern int producer_expiration_ms;  // pgtopic.kafka_producer_expiration (0 = never)
extern int producer_cache_size;     // pgtopic.kafka_producer_cache_size
void define_producer_settings();
// InitProducerId: a new producer id, in a transaction of its own (false with the error).
bool allocate_producer_id(std::int64_t *producer_id, int *sqlstate, char *message, std::size_t message_size);
// A Produce batch's producer fields (producer_id >= 0: an idempotent producer).
struct ProducerIds {
    std::int64_t producer_id;
    std::int16_t epoch;
    std::int32_t base_sequence;
    std::int32_t count;
};
// Like produce_partition, in the request's transaction, for a batch with a producer id: checks
// its sequence (Kafka's rules); a retried duplicate of one of the last 5 batches is not written
// and *first is its original base offset; refused: *kafka_error (45, 47, 59); written: the
// records and the producer's new state in one subtransaction; failed: the error, as
// produce_partition reports it.
enum class IdempotentOutcome { written, duplicate, refused, failed };
IdempotentOutcome produce_partition_idempotent(const char *topic, std::int32_t partition, const ProducerIds &ids,
                                               const ProduceBatch *b, std::int64_t *first, std::int16_t *kafka_error,
                                               int *sqlstate, char *message, std::size_t message_size);
// Deletes producer state idle for pgtopic.kafka_producer_expiration, at most once a minute (its
// own transaction); returns the milliseconds until the next pass is due (-1: never).
long expire_producers();

}  // namespace pgtopic::kafka_server
