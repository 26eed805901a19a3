// The Kafka classic group coordinator state machine (src/kafka/kafka_group.hpp): Kafka's
// GroupCoordinator rules for JoinGroup / SyncGroup / Heartbeat / LeaveGroup, session expiry,
// OffsetCommit acceptance, DescribeGroups / ListGroups, limits.
#include "kafka/kafka_group.hpp"

#include <gtest/gtest.h>

using namespace pgtopic::kafka;

namespace {

struct Fixture {
    explicit Fixture(GroupCoordinatorLimits l = limits0()) : c(l, [this] { return "id" + std::to_string(++n); }) {}
    static GroupCoordinatorLimits limits0()
    {
        GroupCoordinatorLimits l;
        l.initial_rebalance_delay_ms = 0;
        return l;
    }
    int n = 0;
    KafkaGroupCoordinator c;
};

JoinGroupRequest join_req(std::string_view member, const std::vector<JoinGroupRequest::Protocol> &protocols,
                          std::int32_t session = 10000, std::int32_t rebalance = 20000)
{
    JoinGroupRequest r;
    r.group_id = "g";
    r.session_timeout_ms = session;
    r.rebalance_timeout_ms = rebalance;
    r.member_id = member;
    r.protocol_type = "consumer";
    r.protocols = protocols;
    return r;
}

const std::vector<JoinGroupRequest::Protocol> range_only{{"range", "mr"}};

SyncGroupRequest sync_req(std::string_view member, std::int32_t gen,
                          std::vector<SyncGroupRequest::Assignment> a = {})
{
    SyncGroupRequest r;
    r.group_id = "g";
    r.generation_id = gen;
    r.member_id = member;
    r.assignments = std::move(a);
    return r;
}

HeartbeatRequest hb_req(std::string_view member, std::int32_t gen)
{
    HeartbeatRequest r;
    r.group_id = "g";
    r.generation_id = gen;
    r.member_id = member;
    return r;
}

// v1 join of a new member: created at once (no MEMBER_ID_REQUIRED below v4).
std::string join_v1(KafkaGroupCoordinator &c, std::uint64_t token, std::string_view client, std::int64_t now,
                    std::optional<JoinGroupResponse> *out = nullptr)
{
    auto r = c.join(token, 1, join_req("", range_only), client, "/10.0.0.1", now);
    if (out)
        *out = r;
    // the member id is the one the coordinator made: "<client>-idN"
    return r ? r->member_id : std::string();
}

}  // namespace

TEST(KafkaGroup, TwoMembersJoinAndSyncWithLeaderAssignment)
{
    Fixture f;
    auto &c = f.c;
    std::optional<JoinGroupResponse> a;
    join_v1(c, 1, "ca", 0, &a);  // alone: the rebalance completes at once
    ASSERT_TRUE(a);
    EXPECT_EQ(a->error_code, 0);
    EXPECT_EQ(a->member_id, "ca-id1");
    EXPECT_EQ(a->generation_id, 1);
    EXPECT_EQ(a->leader, "ca-id1");
    EXPECT_EQ(a->protocol_name, "range");
    ASSERT_EQ(a->members.size(), 1u);
    auto s = c.sync(1, sync_req("ca-id1", 1, {{"ca-id1", "A1"}}), 1);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->assignment, "A1");
    EXPECT_EQ(c.state("g"), KafkaGroupState::stable);

    // a second member: parked until the first rejoins (it learns of the rebalance by heartbeat)
    auto b = c.join(2, 1, join_req("", range_only), "cb", "/10.0.0.2", 100);
    EXPECT_FALSE(b);
    EXPECT_EQ(c.state("g"), KafkaGroupState::preparing_rebalance);
    EXPECT_EQ(c.heartbeat(hb_req("ca-id1", 1), 110).error_code, 27);
    auto a2 = c.join(1, 1, join_req("ca-id1", range_only), "ca", "/10.0.0.1", 120);
    ASSERT_TRUE(a2);  // the last one in: its own answer comes back directly
    EXPECT_EQ(a2->generation_id, 2);
    EXPECT_EQ(a2->leader, "ca-id1");
    ASSERT_EQ(a2->members.size(), 2u);
    EXPECT_EQ(a2->members[1].member_id, "cb-id2");
    EXPECT_EQ(a2->members[1].metadata, "mr");
    auto done = c.take_completions();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].token, 2u);
    const auto &bj = std::get<JoinGroupResponse>(done[0].response);
    EXPECT_EQ(bj.member_id, "cb-id2");
    EXPECT_EQ(bj.generation_id, 2);
    EXPECT_TRUE(bj.members.empty());  // followers get no member list
    EXPECT_EQ(c.state("g"), KafkaGroupState::completing_rebalance);
    EXPECT_EQ(c.heartbeat(hb_req("cb-id2", 2), 125).error_code, 0);

    // the follower's sync waits for the leader's
    EXPECT_FALSE(c.sync(2, sync_req("cb-id2", 2), 130));
    EXPECT_TRUE(c.take_completions().empty());
    auto ls = c.sync(1, sync_req("ca-id1", 2, {{"cb-id2", "B"}}), 140);  // none for itself
    ASSERT_TRUE(ls);
    EXPECT_EQ(ls->error_code, 0);
    EXPECT_EQ(ls->assignment, "");
    done = c.take_completions();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].token, 2u);
    EXPECT_EQ(std::get<SyncGroupResponse>(done[0].response).assignment, "B");
    EXPECT_EQ(c.state("g"), KafkaGroupState::stable);
    // a late sync in Stable gets the stored assignment
    EXPECT_EQ(c.sync(2, sync_req("cb-id2", 2), 150)->assignment, "B");
}

TEST(KafkaGroup, MemberIdRequiredFromV4)
{
    Fixture f;
    auto &c = f.c;
    auto r = c.join(1, 4, join_req("", range_only), "cl", "/h", 0);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error_code, 79);
    EXPECT_EQ(r->member_id, "cl-id1");
    EXPECT_EQ(c.state("g"), KafkaGroupState::empty);  // only a pending member
    auto r2 = c.join(1, 4, join_req("cl-id1", range_only), "cl", "/h", 10);
    ASSERT_TRUE(r2);
    EXPECT_EQ(r2->error_code, 0);
    EXPECT_EQ(r2->member_id, "cl-id1");
    EXPECT_EQ(r2->generation_id, 1);
    // an id the coordinator never gave
    EXPECT_EQ(c.join(1, 4, join_req("cl-bogus", range_only), "cl", "/h", 20)->error_code, 25);
    // the pending member expires after its session when it never comes back
    EXPECT_EQ(c.join(2, 5, join_req("", range_only), "x", "/h", 30)->error_code, 79);
    c.tick(30 + 10000);
    EXPECT_EQ(c.join(2, 5, join_req("x-id2", range_only), "x", "/h", 10040)->error_code, 25);
}

TEST(KafkaGroup, MemberNotRejoiningIsRemovedAtRebalanceTimeout)
{
    Fixture f;
    auto &c = f.c;
    join_v1(c, 1, "ca", 0);
    c.sync(1, sync_req("ca-id1", 1, {{"ca-id1", "A"}}), 0);
    EXPECT_FALSE(c.join(2, 1, join_req("", range_only, 30000, 5000), "cb", "/h", 1000));
    // ca keeps its session (told to rejoin each time) but never rejoins
    for (std::int64_t t : {5000, 14000, 19000})
        EXPECT_EQ(c.heartbeat(hb_req("ca-id1", 1), t).error_code, 27);
    ASSERT_TRUE(c.next_deadline());
    // the rebalance timeout is the largest of the members' (20000 for ca)
    EXPECT_EQ(*c.next_deadline(), 1000 + 20000);
    c.tick(20999);
    EXPECT_TRUE(c.take_completions().empty());
    c.tick(21000);
    auto done = c.take_completions();
    ASSERT_EQ(done.size(), 1u);
    const auto &j = std::get<JoinGroupResponse>(done[0].response);
    EXPECT_EQ(j.generation_id, 2);
    EXPECT_EQ(j.leader, "cb-id2");  // the old leader is gone
    ASSERT_EQ(j.members.size(), 1u);
    EXPECT_EQ(c.heartbeat(hb_req("ca-id1", 1), 21001).error_code, 25);
    EXPECT_EQ(c.describe("g").members.size(), 1u);
}

TEST(KafkaGroup, SessionExpiryTriggersRebalance)
{
    Fixture f;
    auto &c = f.c;
    join_v1(c, 1, "ca", 0);
    ASSERT_FALSE(c.join(2, 1, join_req("", range_only), "cb", "/h", 0));
    c.join(1, 1, join_req("ca-id1", range_only), "ca", "/h", 0);
    c.take_completions();
    c.sync(2, sync_req("cb-id2", 2), 0);
    c.sync(1, sync_req("ca-id1", 2, {{"ca-id1", "A"}, {"cb-id2", "B"}}), 0);
    c.take_completions();
    ASSERT_EQ(c.state("g"), KafkaGroupState::stable);
    // ca keeps heartbeating, cb falls silent: gone after its 10 s session
    EXPECT_EQ(c.heartbeat(hb_req("ca-id1", 2), 6000).error_code, 0);
    c.tick(9999);
    EXPECT_EQ(c.state("g"), KafkaGroupState::stable);
    c.tick(10000);
    EXPECT_EQ(c.state("g"), KafkaGroupState::preparing_rebalance);
    EXPECT_EQ(c.heartbeat(hb_req("ca-id1", 2), 10001).error_code, 27);
    EXPECT_EQ(c.heartbeat(hb_req("cb-id2", 2), 10001).error_code, 25);
    auto r = c.join(1, 1, join_req("ca-id1", range_only), "ca", "/h", 10002);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->generation_id, 3);
    EXPECT_EQ(r->members.size(), 1u);
}

TEST(KafkaGroup, StaleGenerationAndUnknownMember)
{
    Fixture f;
    auto &c = f.c;
    join_v1(c, 1, "ca", 0);
    EXPECT_EQ(c.heartbeat(hb_req("ca-id1", 0), 1).error_code, 22);
    EXPECT_EQ(c.sync(1, sync_req("ca-id1", 7), 1)->error_code, 22);
    EXPECT_EQ(c.heartbeat(hb_req("nobody", 1), 1).error_code, 25);
    EXPECT_EQ(c.sync(1, sync_req("nobody", 1), 1)->error_code, 25);
    HeartbeatRequest other = hb_req("ca-id1", 1);
    other.group_id = "other";
    EXPECT_EQ(c.heartbeat(other, 1).error_code, 25);
    // sync during PreparingRebalance
    ASSERT_FALSE(c.join(2, 1, join_req("", range_only), "cb", "/h", 2));
    EXPECT_EQ(c.sync(1, sync_req("ca-id1", 1), 3)->error_code, 27);
}

TEST(KafkaGroup, InconsistentProtocolAndSessionTimeout)
{
    Fixture f;
    auto &c = f.c;
    join_v1(c, 1, "ca", 0);
    auto other_type = join_req("", range_only);
    other_type.protocol_type = "connect";
    EXPECT_EQ(c.join(2, 1, other_type, "cb", "/h", 1)->error_code, 23);
    EXPECT_EQ(c.join(2, 1, join_req("", {{"roundrobin", ""}}), "cb", "/h", 1)->error_code, 23);
    // Kafka checks the protocols before the member id
    EXPECT_EQ(c.join(2, 1, join_req("stranger", {{"roundrobin", ""}}), "cb", "/h", 1)->error_code, 23);
    EXPECT_EQ(c.join(2, 1, join_req("stranger", range_only), "cb", "/h", 1)->error_code, 25);
    EXPECT_EQ(c.join(2, 1, join_req("", range_only, 10), "cb", "/h", 1)->error_code, 26);
    auto empty_group = join_req("", range_only);
    empty_group.group_id = "";
    EXPECT_EQ(c.join(2, 1, empty_group, "cb", "/h", 1)->error_code, 24);
    EXPECT_EQ(c.state("g"), KafkaGroupState::completing_rebalance);  // none of it disturbed the group
}

TEST(KafkaGroup, LeaveV3TwoMembers)
{
    Fixture f;
    auto &c = f.c;
    join_v1(c, 1, "ca", 0);
    ASSERT_FALSE(c.join(2, 1, join_req("", range_only), "cb", "/h", 0));
    c.join(1, 1, join_req("ca-id1", range_only), "ca", "/h", 0);
    c.take_completions();
    LeaveGroupRequest l;
    l.group_id = "g";
    l.members = {{"ca-id1", std::nullopt}, {"nobody", std::nullopt}, {"cb-id2", std::nullopt}};
    auto r = c.leave(3, l, 5);
    EXPECT_EQ(r.error_code, 0);
    ASSERT_EQ(r.members.size(), 3u);
    EXPECT_EQ(r.members[0].error_code, 0);
    EXPECT_EQ(r.members[1].error_code, 25);
    EXPECT_EQ(r.members[1].member_id, "nobody");
    EXPECT_EQ(r.members[2].error_code, 0);
    EXPECT_EQ(c.group_count(), 0u);  // the last member gone: the group is forgotten
    EXPECT_EQ(c.describe("g").group_state, "Dead");
    // v0-2: one member, its error on top
    LeaveGroupRequest l0;
    l0.group_id = "g";
    l0.members = {{"ca-id1", std::nullopt}};
    auto r0 = c.leave(1, l0, 6);
    EXPECT_EQ(r0.error_code, 25);
    EXPECT_TRUE(r0.members.empty());
}

TEST(KafkaGroup, LeaveCompletesARebalance)
{
    Fixture f;
    auto &c = f.c;
    join_v1(c, 1, "ca", 0);
    ASSERT_FALSE(c.join(2, 1, join_req("", range_only), "cb", "/h", 0));
    LeaveGroupRequest l;
    l.group_id = "g";
    l.members = {{"ca-id1", std::nullopt}};
    EXPECT_EQ(c.leave(1, l, 5).error_code, 0);
    auto done = c.take_completions();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(std::get<JoinGroupResponse>(done[0].response).leader, "cb-id2");
    EXPECT_EQ(c.generation("g"), 2);
}

TEST(KafkaGroup, OffsetCommitAcceptance)
{
    Fixture f;
    auto &c = f.c;
    EXPECT_EQ(c.offset_commit_check("g", -1, "", 0), ErrorCode::none);  // no group: simple commit
    EXPECT_EQ(c.offset_commit_check("g", 3, "m", 0), ErrorCode::illegal_generation);
    EXPECT_EQ(c.offset_commit_check("", -1, "", 0), ErrorCode::none);  // Kafka allows the empty group id here
    join_v1(c, 1, "ca", 0);  // CompletingRebalance, generation 1
    EXPECT_EQ(c.offset_commit_check("g", 1, "ca-id1", 0), ErrorCode::rebalance_in_progress);
    // member and generation are checked before the state
    EXPECT_EQ(c.offset_commit_check("g", -1, "", 0), ErrorCode::unknown_member_id);
    EXPECT_EQ(c.offset_commit_check("g", 0, "ca-id1", 0), ErrorCode::illegal_generation);
    c.sync(1, sync_req("ca-id1", 1, {{"ca-id1", "A"}}), 0);  // Stable
    EXPECT_EQ(c.offset_commit_check("g", 1, "ca-id1", 0), ErrorCode::none);
    EXPECT_EQ(c.offset_commit_check("g", 0, "ca-id1", 0), ErrorCode::illegal_generation);
    EXPECT_EQ(c.offset_commit_check("g", 1, "nobody", 0), ErrorCode::unknown_member_id);
    EXPECT_EQ(c.offset_commit_check("g", -1, "", 0), ErrorCode::unknown_member_id);
    ASSERT_FALSE(c.join(2, 1, join_req("", range_only), "cb", "/h", 0));  // PreparingRebalance
    EXPECT_EQ(c.offset_commit_check("g", 1, "ca-id1", 0), ErrorCode::none);
    EXPECT_EQ(c.offset_commit_check("g", 0, "ca-id1", 0), ErrorCode::illegal_generation);
    EXPECT_EQ(c.offset_commit_check("g", -1, "", 0), ErrorCode::unknown_member_id);
}

TEST(KafkaGroup, Caps)
{
    GroupCoordinatorLimits l = Fixture::limits0();
    l.max_groups = 1;
    l.max_members_per_group = 2;
    Fixture f(l);
    auto &c = f.c;
    join_v1(c, 1, "ca", 0);
    EXPECT_FALSE(c.join(2, 1, join_req("", range_only), "cb", "/h", 0));
    auto third = c.join(3, 1, join_req("", range_only), "cc", "/h", 0);
    ASSERT_TRUE(third);
    EXPECT_EQ(third->error_code, 81);
    // a pending (MEMBER_ID_REQUIRED) member takes a place too
    auto v4 = c.join(3, 4, join_req("", range_only), "cc", "/h", 0);
    EXPECT_EQ(v4->error_code, 81);
    auto other = join_req("", range_only);
    other.group_id = "h";
    EXPECT_EQ(c.join(4, 1, other, "cd", "/h", 0)->error_code, 15);
    EXPECT_EQ(c.group_count(), 1u);
}

TEST(KafkaGroup, ProtocolSelectionByVotes)
{
    Fixture f;
    auto &c = f.c;
    // ca prefers range, cb and cc prefer roundrobin; all support both; sticky only ca and cb
    std::vector<JoinGroupRequest::Protocol> pa{{"range", "a1"}, {"roundrobin", "a2"}, {"sticky", "a3"}};
    std::vector<JoinGroupRequest::Protocol> pb{{"sticky", "b3"}, {"roundrobin", "b2"}, {"range", "b1"}};
    std::vector<JoinGroupRequest::Protocol> pc{{"roundrobin", "c2"}, {"range", "c1"}};
    ASSERT_TRUE(c.join(1, 1, join_req("", pa), "ca", "/h", 0));
    ASSERT_FALSE(c.join(2, 1, join_req("", pb), "cb", "/h", 0));
    ASSERT_FALSE(c.join(3, 1, join_req("", pc), "cc", "/h", 0));
    auto r = c.join(1, 1, join_req("ca-id1", pa), "ca", "/h", 0);
    ASSERT_TRUE(r);
    // candidates range, roundrobin (sticky lacks cc); votes: ca range, cb roundrobin, cc roundrobin
    EXPECT_EQ(r->protocol_name, "roundrobin");
    ASSERT_EQ(r->members.size(), 3u);
    EXPECT_EQ(r->members[0].metadata, "a2");
    EXPECT_EQ(r->members[1].metadata, "b2");
    EXPECT_EQ(r->members[2].metadata, "c2");
    // a member that supports none of the group's common protocols is refused
    EXPECT_EQ(c.join(4, 1, join_req("", {{"sticky", ""}}), "cd", "/h", 0)->error_code, 23);
}

TEST(KafkaGroup, InitialRebalanceDelay)
{
    GroupCoordinatorLimits l = Fixture::limits0();
    l.initial_rebalance_delay_ms = 3000;
    Fixture f(l);
    auto &c = f.c;
    EXPECT_FALSE(c.join(1, 1, join_req("", range_only), "ca", "/h", 0));
    EXPECT_FALSE(c.join(2, 1, join_req("", range_only), "cb", "/h", 1000));
    c.tick(2999);
    EXPECT_TRUE(c.take_completions().empty());
    c.tick(3000);  // cb arrived in the first delay: one more delay
    EXPECT_TRUE(c.take_completions().empty());
    c.tick(6000);
    auto done = c.take_completions();
    ASSERT_EQ(done.size(), 2u);
    EXPECT_EQ(std::get<JoinGroupResponse>(done[0].response).generation_id, 1);
    EXPECT_EQ(std::get<JoinGroupResponse>(done[1].response).generation_id, 1);
}

TEST(KafkaGroup, DescribeAndList)
{
    Fixture f;
    auto &c = f.c;
    join_v1(c, 1, "ca", 0);
    c.sync(1, sync_req("ca-id1", 1, {{"ca-id1", "ASSIGN"}}), 0);
    auto d = c.describe("g");
    EXPECT_EQ(d.error_code, 0);
    EXPECT_EQ(d.group_state, "Stable");
    EXPECT_EQ(d.protocol_type, "consumer");
    EXPECT_EQ(d.protocol_data, "range");
    ASSERT_EQ(d.members.size(), 1u);
    EXPECT_EQ(d.members[0].member_id, "ca-id1");
    EXPECT_EQ(d.members[0].client_id, "ca");
    EXPECT_EQ(d.members[0].client_host, "/10.0.0.1");
    EXPECT_EQ(d.members[0].member_metadata, "mr");
    EXPECT_EQ(d.members[0].member_assignment, "ASSIGN");
    ASSERT_FALSE(c.join(2, 1, join_req("", range_only), "cb", "/h", 0));
    d = c.describe("g");
    EXPECT_EQ(d.group_state, "PreparingRebalance");
    EXPECT_EQ(d.protocol_data, "");
    EXPECT_EQ(d.members.size(), 2u);
    EXPECT_EQ(c.describe("nope").group_state, "Dead");
    auto l = c.list();
    ASSERT_EQ(l.groups.size(), 1u);
    EXPECT_EQ(l.groups[0].group_id, "g");
    EXPECT_EQ(l.groups[0].protocol_type, "consumer");
    EXPECT_STREQ(group_state_name(KafkaGroupState::completing_rebalance), "CompletingRebalance");
    EXPECT_STREQ(group_state_name(KafkaGroupState::empty), "Empty");
}

TEST(KafkaGroup, CancelDropsParkedResponses)
{
    Fixture f;
    auto &c = f.c;
    join_v1(c, 1, "ca", 0);
    ASSERT_FALSE(c.join(2, 1, join_req("", range_only), "cb", "/h", 0));
    c.cancel(2);
    c.join(1, 1, join_req("ca-id1", range_only), "ca", "/h", 0);
    EXPECT_TRUE(c.take_completions().empty());
    EXPECT_EQ(c.generation("g"), 2);  // cb stays a member until its session ends
}

TEST(KafkaGroup, LeaderRejoinInStableRebalancesAndRetriedJoinIsAnswered)
{
    Fixture f;
    auto &c = f.c;
    join_v1(c, 1, "ca", 0);
    ASSERT_FALSE(c.join(2, 1, join_req("", range_only), "cb", "/h", 0));
    c.join(1, 1, join_req("ca-id1", range_only), "ca", "/h", 0);
    c.take_completions();
    c.sync(2, sync_req("cb-id2", 2), 0);
    c.sync(1, sync_req("ca-id1", 2, {{"ca-id1", "A"}, {"cb-id2", "B"}}), 0);
    c.take_completions();
    ASSERT_EQ(c.state("g"), KafkaGroupState::stable);
    // a follower rejoining unchanged in Stable: the current generation at once, no rebalance
    auto fb = c.join(2, 1, join_req("cb-id2", range_only), "cb", "/h", 10);
    ASSERT_TRUE(fb);
    EXPECT_EQ(fb->generation_id, 2);
    EXPECT_TRUE(fb->members.empty());
    EXPECT_EQ(c.state("g"), KafkaGroupState::stable);
    // the leader rejoining starts a rebalance
    EXPECT_FALSE(c.join(1, 1, join_req("ca-id1", range_only), "ca", "/h", 20));
    EXPECT_EQ(c.state("g"), KafkaGroupState::preparing_rebalance);
    // the leader retries on another connection: the first request is answered 27
    EXPECT_FALSE(c.join(3, 1, join_req("ca-id1", range_only), "ca", "/h", 30));
    auto done = c.take_completions();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].token, 1u);
    EXPECT_EQ(std::get<JoinGroupResponse>(done[0].response).error_code, 27);
    // cb rejoins: everyone answered, the leader on its new connection
    auto b = c.join(2, 1, join_req("cb-id2", range_only), "cb", "/h", 40);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->generation_id, 3);
    done = c.take_completions();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].token, 3u);
    EXPECT_EQ(std::get<JoinGroupResponse>(done[0].response).members.size(), 2u);
}

TEST(KafkaGroup, MissedSyncRemovesTheLeaderAndFailsParkedSyncs)
{
    Fixture f;
    auto &c = f.c;
    join_v1(c, 1, "ca", 0);
    ASSERT_FALSE(c.join(2, 1, join_req("", range_only), "cb", "/h", 0));
    c.join(1, 1, join_req("ca-id1", range_only), "ca", "/h", 0);
    c.take_completions();
    EXPECT_FALSE(c.sync(2, sync_req("cb-id2", 2), 100));
    // the leader heartbeats (a normal heartbeat in CompletingRebalance) but never syncs
    for (std::int64_t t : {5000, 12000, 18000})
        EXPECT_EQ(c.heartbeat(hb_req("ca-id1", 2), t).error_code, 0);
    EXPECT_EQ(*c.next_deadline(), 20000);  // the sync deadline: the rebalance timeout after the join
    c.tick(19999);
    EXPECT_TRUE(c.take_completions().empty());
    c.tick(20000);
    auto done = c.take_completions();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].token, 2u);
    EXPECT_EQ(std::get<SyncGroupResponse>(done[0].response).error_code, 27);
    EXPECT_EQ(c.heartbeat(hb_req("ca-id1", 2), 20001).error_code, 25);
    EXPECT_EQ(c.state("g"), KafkaGroupState::preparing_rebalance);
}
