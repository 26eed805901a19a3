// Kafka classic consumer-group coordinator state machine (issue 15 item 1), the rules of Apache
// Kafka's GroupCoordinator / GroupMetadata (classic protocol): JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, session expiry, OffsetCommit acceptance, DescribeGroups / ListGroups data.
// Not served yet: nothing calls it outside the unit tests (test/unit/kafka_group_test.cpp).
// This is not src/group_coordinator.cpp (the SQL-side consumer groups in shared memory).
//
// Built for a single-threaded event loop that must never block: JoinGroup and SyncGroup may be
// PARKED (the call returns nullopt); a parked response is completed later by any call (another
// member's join/sync/leave, tick(now_ms)) and handed over by take_completions() as (connection
// token, request serial, response). Time is the caller's clock in milliseconds (monotonic).
// Member ids are "<client_id>-<id_source()>"; the id source is injected (tests: a counter).
//
// Static membership (group_instance_id, KIP-345) is not supported: the field is ignored and such
// members are treated as dynamic members. Groups live in memory only; a group whose last member
// (and last pending member) is gone is forgotten (Kafka keeps an Empty group while it has committed
// offsets: the server merges those from the offset storage for ListGroups / DescribeGroups).
// Pure C++: no PostgreSQL header may reach this file.
#pragma once

#include "errors.hpp"
#include "group_messages.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace pgtopic::kafka {

struct GroupCoordinatorLimits {
    std::size_t max_groups = 1000;             // new group beyond it: COORDINATOR_NOT_AVAILABLE (15)
    std::size_t max_members_per_group = 1000;  // members + pending members; beyond: GROUP_MAX_SIZE_REACHED (81)
    std::int32_t min_session_timeout_ms = 6000;     // group.min.session.timeout.ms
    std::int32_t max_session_timeout_ms = 1800000;  // group.max.session.timeout.ms
    // group.initial.rebalance.delay.ms: the first rebalance of an Empty group waits this long
    // (extended by the same delay while new members keep arriving, at most the rebalance timeout)
    // so that consumers started together land in one generation. Kafka's default, 3000.
    std::int32_t initial_rebalance_delay_ms = 3000;
};

enum class KafkaGroupState { empty, preparing_rebalance, completing_rebalance, stable, dead };
// As Kafka prints them: "Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead".
const char *group_state_name(KafkaGroupState s) noexcept;

// A parked JoinGroup / SyncGroup response, ready to be sent.
struct GroupCompletion {
    std::uint64_t token = 0;   // the caller's connection token given with the request
    std::uint64_t serial = 0;  // request_serial() at the time of the parked call
    std::variant<JoinGroupResponse, SyncGroupResponse> response;
};

class KafkaGroupCoordinator {
public:
    using IdSource = std::function<std::string()>;

    KafkaGroupCoordinator(GroupCoordinatorLimits limits, IdSource id_source);

    // The serial the next join()/sync() call gets (to match completions to requests).
    std::uint64_t next_serial() const noexcept { return serial_ + 1; }

    // version: the JoinGroup request version (MEMBER_ID_REQUIRED from v4). nullopt: parked.
    std::optional<JoinGroupResponse> join(std::uint64_t token, std::int16_t version, const JoinGroupRequest &req,
                                          std::string_view client_id, std::string_view client_host,
                                          std::int64_t now_ms);
    std::optional<SyncGroupResponse> sync(std::uint64_t token, const SyncGroupRequest &req, std::int64_t now_ms);
    HeartbeatResponse heartbeat(const HeartbeatRequest &req, std::int64_t now_ms);
    // version < 3: the top-level error is the one member's error, members[] stays empty.
    LeaveGroupResponse leave(std::int16_t version, const LeaveGroupRequest &req, std::int64_t now_ms);

    // Whether an OffsetCommit (or TxnOffsetCommit) of (generation, member) may be stored now: NONE
    // or the error for every partition of the request. Refreshes the member's session when accepted.
    ErrorCode offset_commit_check(std::string_view group_id, std::int32_t generation_id,
                                  std::string_view member_id, std::int64_t now_ms);

    DescribeGroupsResponse::Group describe(std::string_view group_id) const;
    ListGroupsResponse list() const;

    // Expire sessions, pending members and pending syncs; complete rebalances whose delay or
    // timeout passed. Call it at next_deadline() at the latest.
    void tick(std::int64_t now_ms);
    // The earliest time tick() has something to do, nullopt when nothing is timed.
    std::optional<std::int64_t> next_deadline() const;
    // The connection closed: its parked responses are dropped (the members stay until their
    // session or the rebalance times out, as with Kafka).
    void cancel(std::uint64_t token);
    std::vector<GroupCompletion> take_completions();

    std::size_t group_count() const noexcept { return groups_.size(); }
    KafkaGroupState state(std::string_view group_id) const;
    std::int32_t generation(std::string_view group_id) const;  // -1: no such group

private:
    struct Parked {
        bool active = false;
        std::uint64_t token = 0;
        std::uint64_t serial = 0;
    };
    struct Member {
        std::string id;
        std::string client_id;
        std::string client_host;
        std::int32_t session_timeout_ms = 0;
        std::int32_t rebalance_timeout_ms = 0;
        std::string protocol_type;
        std::vector<std::pair<std::string, std::string>> protocols;  // name, metadata; preference order
        std::string assignment;
        std::int64_t last_heartbeat_ms = 0;
        bool awaiting_join = false;
        Parked join;
        Parked sync;
        bool pending_sync = false;  // got its JoinGroup answer, SyncGroup not yet seen
    };
    struct Group {
        std::string id;
        KafkaGroupState state = KafkaGroupState::empty;
        std::int32_t generation = 0;
        std::string protocol_type;
        std::string protocol;
        std::string leader;
        std::vector<Member> members;                 // join order
        std::map<std::string, std::int64_t> pending;  // MEMBER_ID_REQUIRED ids -> expiry
        std::int64_t rebalance_deadline = 0;         // PreparingRebalance: complete at the latest
        bool initial_delay = false;                  // PreparingRebalance from Empty
        std::int64_t delay_deadline = 0;
        std::int64_t delay_remaining = 0;
        bool new_member_added = false;
        std::int64_t sync_deadline = 0;  // members still pending_sync then are removed
    };

    Group *find(std::string_view id);
    const Group *find(std::string_view id) const;
    static Member *member(Group &g, std::string_view id);
    static bool supports(const Group &g, std::string_view member_id, std::string_view type,
                         const std::vector<JoinGroupRequest::Protocol> &protocols);
    static std::int32_t rebalance_timeout(const Group &g);
    static std::string select_protocol(const Group &g);
    JoinGroupResponse join_answer(const Group &g, const Member &m) const;
    void park_join(Member &m, std::uint64_t token);
    void park_sync(Member &m, std::uint64_t token);
    void emit(Parked &p, std::variant<JoinGroupResponse, SyncGroupResponse> r);
    void add_member_and_rebalance(Group &g, Member m, std::uint64_t token, std::int64_t now);
    void prepare_rebalance(Group &g, std::int64_t now);
    void try_complete_join(Group &g, std::int64_t now);
    void complete_join(Group &g, std::int64_t now);
    void remove_member(Group &g, std::string_view member_id, std::int64_t now);
    void forget_if_unused(std::string_view group_id);

    GroupCoordinatorLimits limits_;
    IdSource id_source_;
    std::map<std::string, Group, std::less<>> groups_;
    std::vector<GroupCompletion> completions_;
    std::uint64_t serial_ = 0;
    // the serial of the call in progress: its own answer is returned, not queued
    std::uint64_t current_serial_ = 0;
    std::optional<std::variant<JoinGroupResponse, SyncGroupResponse>> current_answer_;
};

}  // namespace pgtopic::kafka
