// Kafka classic group coordinator state machine: see kafka_group.hpp.
// Pure C++: no PostgreSQL header may reach this file.
#include "kafka_group.hpp"

#include <algorithm>

namespace pgtopic::kafka {

namespace {

JoinGroupResponse join_error(ErrorCode e, std::string_view member_id)
{
    JoinGroupResponse r;
    r.error_code = code(e);
    r.member_id = std::string(member_id);
    return r;
}

SyncGroupResponse sync_error(ErrorCode e)
{
    SyncGroupResponse r;
    r.error_code = code(e);
    return r;
}

}  // namespace

const char *group_state_name(KafkaGroupState s) noexcept
{
    switch (s) {
    case KafkaGroupState::empty: return "Empty";
    case KafkaGroupState::preparing_rebalance: return "PreparingRebalance";
    case KafkaGroupState::completing_rebalance: return "CompletingRebalance";
    case KafkaGroupState::stable: return "Stable";
    case KafkaGroupState::dead: return "Dead";
    }
    return "Dead";
}

KafkaGroupCoordinator::KafkaGroupCoordinator(GroupCoordinatorLimits limits, IdSource id_source)
    : limits_(limits), id_source_(std::move(id_source))
{
}

KafkaGroupCoordinator::Group *KafkaGroupCoordinator::find(std::string_view id)
{
    auto it = groups_.find(id);
    return it == groups_.end() ? nullptr : &it->second;
}

const KafkaGroupCoordinator::Group *KafkaGroupCoordinator::find(std::string_view id) const
{
    auto it = groups_.find(id);
    return it == groups_.end() ? nullptr : &it->second;
}

KafkaGroupCoordinator::Member *KafkaGroupCoordinator::member(Group &g, std::string_view id)
{
    for (auto &m : g.members)
        if (m.id == id)
            return &m;
    return nullptr;
}

// Kafka's supportsProtocols: an Empty group takes any non-empty protocol type and list; otherwise
// the type must match and one of the member's protocols must be supported by every other member.
bool KafkaGroupCoordinator::supports(const Group &g, std::string_view member_id, std::string_view type,
                                     const std::vector<JoinGroupRequest::Protocol> &protocols)
{
    if (type.empty() || protocols.empty())
        return false;
    std::size_t others = 0;
    for (const auto &m : g.members)
        others += m.id != member_id;
    if (others == 0)
        return true;
    if (type != g.protocol_type)
        return false;
    for (const auto &p : protocols) {
        std::size_t n = 0;
        for (const auto &m : g.members) {
            if (m.id == member_id)
                continue;
            n += std::any_of(m.protocols.begin(), m.protocols.end(),
                             [&](const auto &q) { return q.first == p.name; });
        }
        if (n == others)
            return true;
    }
    return false;
}

std::int32_t KafkaGroupCoordinator::rebalance_timeout(const Group &g)
{
    std::int32_t t = 0;
    for (const auto &m : g.members)
        t = std::max(t, m.rebalance_timeout_ms);
    return t;
}

// Kafka's selectProtocol: candidates are the protocols every member supports; each member votes
// for its most preferred candidate; the most votes win. Ties (Kafka: hash order) go to the
// candidate first in the first member's preference order.
std::string KafkaGroupCoordinator::select_protocol(const Group &g)
{
    if (g.members.empty())
        return {};
    std::vector<std::string> candidates;
    for (const auto &p : g.members.front().protocols) {
        bool all = std::all_of(g.members.begin(), g.members.end(), [&](const Member &m) {
            return std::any_of(m.protocols.begin(), m.protocols.end(),
                               [&](const auto &q) { return q.first == p.first; });
        });
        if (all)
            candidates.push_back(p.first);
    }
    if (candidates.empty())
        return g.members.front().protocols.empty() ? std::string() : g.members.front().protocols.front().first;
    std::vector<std::size_t> votes(candidates.size(), 0);
    for (const auto &m : g.members) {
        for (const auto &q : m.protocols) {
            auto it = std::find(candidates.begin(), candidates.end(), q.first);
            if (it != candidates.end()) {
                ++votes[static_cast<std::size_t>(it - candidates.begin())];
                break;
            }
        }
    }
    std::size_t best = 0;
    for (std::size_t i = 1; i < candidates.size(); ++i)
        if (votes[i] > votes[best])
            best = i;
    return candidates[best];
}

JoinGroupResponse KafkaGroupCoordinator::join_answer(const Group &g, const Member &m) const
{
    JoinGroupResponse r;
    r.generation_id = g.generation;
    r.protocol_name = g.protocol;
    r.leader = g.leader;
    r.member_id = m.id;
    if (m.id == g.leader) {
        for (const auto &o : g.members) {
            JoinGroupResponse::Member jm;
            jm.member_id = o.id;
            for (const auto &p : o.protocols)
                if (p.first == g.protocol) {
                    jm.metadata = p.second;
                    break;
                }
            r.members.push_back(std::move(jm));
        }
    }
    return r;
}

void KafkaGroupCoordinator::emit(Parked &p, std::variant<JoinGroupResponse, SyncGroupResponse> r)
{
    if (!p.active)
        return;
    p.active = false;
    if (p.serial == current_serial_ && !current_answer_)
        current_answer_ = std::move(r);
    else
        completions_.push_back(GroupCompletion{p.token, p.serial, std::move(r)});
}

// A member parked twice (a retried request): the older request is answered REBALANCE_IN_PROGRESS.
void KafkaGroupCoordinator::park_join(Member &m, std::uint64_t token)
{
    emit(m.join, join_error(ErrorCode::rebalance_in_progress, m.id));
    m.join = Parked{true, token, current_serial_};
}

void KafkaGroupCoordinator::park_sync(Member &m, std::uint64_t token)
{
    emit(m.sync, sync_error(ErrorCode::rebalance_in_progress));
    m.sync = Parked{true, token, current_serial_};
}

void KafkaGroupCoordinator::add_member_and_rebalance(Group &g, Member m, std::uint64_t token, std::int64_t now)
{
    if (g.members.empty())
        g.protocol_type = m.protocol_type;
    if (g.leader.empty())
        g.leader = m.id;
    if (g.state == KafkaGroupState::preparing_rebalance && g.generation == 0)
        g.new_member_added = true;
    m.awaiting_join = true;
    m.last_heartbeat_ms = now;
    g.members.push_back(std::move(m));
    park_join(g.members.back(), token);
    if (g.state == KafkaGroupState::preparing_rebalance)
        try_complete_join(g, now);
    else
        prepare_rebalance(g, now);
}

void KafkaGroupCoordinator::prepare_rebalance(Group &g, std::int64_t now)
{
    if (g.state == KafkaGroupState::completing_rebalance) {
        for (auto &m : g.members) {
            m.assignment.clear();
            emit(m.sync, sync_error(ErrorCode::rebalance_in_progress));
        }
    }
    for (auto &m : g.members)
        m.pending_sync = false;
    const std::int64_t timeout = rebalance_timeout(g);
    g.initial_delay = g.state == KafkaGroupState::empty && limits_.initial_rebalance_delay_ms > 0;
    if (g.initial_delay) {
        const std::int64_t delay = std::min<std::int64_t>(limits_.initial_rebalance_delay_ms, timeout);
        g.delay_deadline = now + delay;
        g.delay_remaining = timeout - delay;
        g.new_member_added = false;
    }
    g.rebalance_deadline = now + timeout;
    g.state = KafkaGroupState::preparing_rebalance;
    try_complete_join(g, now);
}

void KafkaGroupCoordinator::try_complete_join(Group &g, std::int64_t now)
{
    if (g.state != KafkaGroupState::preparing_rebalance)
        return;
    if (g.initial_delay) {
        if (now < g.delay_deadline)
            return;
        if (g.new_member_added && g.delay_remaining > 0) {
            const std::int64_t delay = std::min<std::int64_t>(limits_.initial_rebalance_delay_ms, g.delay_remaining);
            g.delay_remaining -= delay;
            g.delay_deadline = now + delay;
            g.new_member_added = false;
            return;
        }
        complete_join(g, now);
        return;
    }
    const bool all_joined = g.pending.empty() &&
        std::all_of(g.members.begin(), g.members.end(), [](const Member &m) { return m.awaiting_join; });
    if (all_joined || now >= g.rebalance_deadline)
        complete_join(g, now);
}

// Kafka's onCompleteJoin: members that did not rejoin are removed, then the next generation.
void KafkaGroupCoordinator::complete_join(Group &g, std::int64_t now)
{
    for (auto &m : g.members)
        if (!m.awaiting_join) {
            emit(m.sync, sync_error(ErrorCode::unknown_member_id));
        }
    g.members.erase(std::remove_if(g.members.begin(), g.members.end(), [](const Member &m) { return !m.awaiting_join; }),
                    g.members.end());
    g.initial_delay = false;
    g.new_member_added = false;
    ++g.generation;
    if (g.members.empty()) {
        g.state = KafkaGroupState::empty;
        g.protocol.clear();
        g.protocol_type.clear();
        g.leader.clear();
        return;
    }
    if (!member(g, g.leader))
        g.leader = g.members.front().id;
    g.protocol = select_protocol(g);
    g.state = KafkaGroupState::completing_rebalance;
    g.sync_deadline = now + rebalance_timeout(g);
    for (auto &m : g.members) {
        m.awaiting_join = false;
        m.pending_sync = true;
        m.last_heartbeat_ms = now;
        emit(m.join, join_answer(g, m));
    }
}

// Kafka's removeMemberAndUpdateGroup (LeaveGroup, session expiry, missed sync).
void KafkaGroupCoordinator::remove_member(Group &g, std::string_view member_id, std::int64_t now)
{
    auto it = std::find_if(g.members.begin(), g.members.end(), [&](const Member &m) { return m.id == member_id; });
    if (it == g.members.end())
        return;
    emit(it->join, join_error(ErrorCode::unknown_member_id, it->id));
    emit(it->sync, sync_error(ErrorCode::unknown_member_id));
    const bool was_leader = it->id == g.leader;
    g.members.erase(it);
    if (was_leader)
        g.leader = g.members.empty() ? std::string() : g.members.front().id;
    switch (g.state) {
    case KafkaGroupState::stable:
    case KafkaGroupState::completing_rebalance:
        prepare_rebalance(g, now);
        break;
    case KafkaGroupState::preparing_rebalance:
        try_complete_join(g, now);
        break;
    default:
        break;
    }
}

void KafkaGroupCoordinator::forget_if_unused(std::string_view group_id)
{
    auto it = groups_.find(group_id);
    if (it != groups_.end() && it->second.state == KafkaGroupState::empty && it->second.members.empty() &&
        it->second.pending.empty())
        groups_.erase(it);
}

std::optional<JoinGroupResponse> KafkaGroupCoordinator::join(std::uint64_t token, std::int16_t version,
                                                             const JoinGroupRequest &req, std::string_view client_id,
                                                             std::string_view client_host, std::int64_t now)
{
    current_serial_ = ++serial_;
    current_answer_.reset();
    const std::string group_id(req.group_id);
    auto answer = [&](JoinGroupResponse r) -> std::optional<JoinGroupResponse> {
        forget_if_unused(group_id);
        return r;
    };
    if (req.group_id.empty())
        return join_error(ErrorCode::invalid_group_id, req.member_id);
    if (req.session_timeout_ms < limits_.min_session_timeout_ms || req.session_timeout_ms > limits_.max_session_timeout_ms)
        return join_error(ErrorCode::invalid_session_timeout, req.member_id);
    Group *g = find(req.group_id);
    if (!g) {
        if (!req.member_id.empty())
            return join_error(ErrorCode::unknown_member_id, req.member_id);
        if (groups_.size() >= limits_.max_groups)
            return join_error(ErrorCode::coordinator_not_available, req.member_id);
        g = &groups_[group_id];
        g->id = group_id;
    }
    Member *existing = req.member_id.empty() ? nullptr : member(*g, req.member_id);
    const bool is_pending = !req.member_id.empty() && g->pending.count(std::string(req.member_id)) > 0;
    // Kafka's order: the size cap (acceptJoiningMember), the protocols, then the member id.
    if (!existing && !is_pending && g->members.size() + g->pending.size() >= limits_.max_members_per_group)
        return answer(join_error(ErrorCode::group_max_size_reached, ""));
    if (!supports(*g, req.member_id, req.protocol_type, req.protocols))
        return answer(join_error(ErrorCode::inconsistent_group_protocol, req.member_id));
    if (!existing && !is_pending && !req.member_id.empty())
        return answer(join_error(ErrorCode::unknown_member_id, req.member_id));

    auto fill = [&](Member &m) {
        m.client_id = std::string(client_id);
        m.client_host = std::string(client_host);
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms < 0 ? req.session_timeout_ms : req.rebalance_timeout_ms;
        m.protocol_type = std::string(req.protocol_type);
        m.protocols.clear();
        for (const auto &p : req.protocols)
            m.protocols.emplace_back(std::string(p.name), std::string(p.metadata));
    };

    if (!existing) {
        std::string id = is_pending ? std::string(req.member_id) : std::string(client_id) + "-" + id_source_();
        if (!is_pending && version >= 4) {
            // KIP-394: the member must rejoin with the id; it holds a place until its session ends.
            g->pending[id] = now + req.session_timeout_ms;
            return join_error(ErrorCode::member_id_required, id);
        }
        g->pending.erase(id);
        Member m;
        m.id = std::move(id);
        fill(m);
        add_member_and_rebalance(*g, std::move(m), token, now);
    } else {
        Member &m = *existing;
        const bool same = m.protocols.size() == req.protocols.size() &&
            std::equal(m.protocols.begin(), m.protocols.end(), req.protocols.begin(), [](const auto &a, const auto &b) {
                return a.first == b.name && a.second == b.metadata;
            });
        m.last_heartbeat_ms = now;
        switch (g->state) {
        case KafkaGroupState::completing_rebalance:
            if (same)
                return join_answer(*g, m);  // the answer of the current generation again
            break;
        case KafkaGroupState::stable:
            if (same && m.id != g->leader) {
                JoinGroupResponse r = join_answer(*g, m);
                return r;
            }
            break;
        default:
            break;
        }
        fill(m);
        if (g->members.size() == 1)  // alone, it may change the group's protocol type
            g->protocol_type = m.protocol_type;
        m.awaiting_join = true;
        park_join(m, token);
        if (g->state == KafkaGroupState::preparing_rebalance)
            try_complete_join(*g, now);
        else
            prepare_rebalance(*g, now);
    }
    if (current_answer_)
        return std::get<JoinGroupResponse>(std::move(*current_answer_));
    return std::nullopt;
}

std::optional<SyncGroupResponse> KafkaGroupCoordinator::sync(std::uint64_t token, const SyncGroupRequest &req,
                                                             std::int64_t now)
{
    current_serial_ = ++serial_;
    current_answer_.reset();
    if (req.group_id.empty())
        return sync_error(ErrorCode::invalid_group_id);
    Group *g = find(req.group_id);
    Member *m = g ? member(*g, req.member_id) : nullptr;
    if (!m)
        return sync_error(ErrorCode::unknown_member_id);
    if (req.generation_id != g->generation)
        return sync_error(ErrorCode::illegal_generation);
    switch (g->state) {
    case KafkaGroupState::preparing_rebalance:
        return sync_error(ErrorCode::rebalance_in_progress);
    case KafkaGroupState::stable: {
        m->pending_sync = false;
        SyncGroupResponse r;
        r.assignment = m->assignment;
        return r;
    }
    case KafkaGroupState::completing_rebalance:
        break;
    default:
        return sync_error(ErrorCode::unknown_member_id);
    }
    m->pending_sync = false;
    m->last_heartbeat_ms = now;
    park_sync(*m, token);
    if (m->id == g->leader) {
        // the leader's assignments: members it left out get empty bytes, unknown ids are ignored,
        // a repeated id keeps its last assignment.
        for (auto &o : g->members)
            o.assignment.clear();
        for (const auto &a : req.assignments)
            if (Member *o = member(*g, a.member_id))
                o->assignment = std::string(a.assignment);
        g->state = KafkaGroupState::stable;
        for (auto &o : g->members) {
            if (!o.sync.active)
                continue;
            SyncGroupResponse r;
            r.assignment = o.assignment;
            o.last_heartbeat_ms = now;  // as Kafka's propagateAssignment: the session restarts
            emit(o.sync, std::move(r));
        }
    }
    if (current_answer_)
        return std::get<SyncGroupResponse>(std::move(*current_answer_));
    return std::nullopt;
}

HeartbeatResponse KafkaGroupCoordinator::heartbeat(const HeartbeatRequest &req, std::int64_t now)
{
    HeartbeatResponse r;
    auto fail = [&](ErrorCode e) {
        r.error_code = code(e);
        return r;
    };
    if (req.group_id.empty())
        return fail(ErrorCode::invalid_group_id);
    Group *g = find(req.group_id);
    Member *m = g ? member(*g, req.member_id) : nullptr;
    if (!m)
        return fail(ErrorCode::unknown_member_id);
    if (req.generation_id != g->generation)
        return fail(ErrorCode::illegal_generation);
    m->last_heartbeat_ms = now;
    // Kafka: PreparingRebalance tells the member to rejoin; CompletingRebalance is a normal
    // heartbeat (a member may heartbeat between its JoinGroup answer and its SyncGroup).
    if (g->state == KafkaGroupState::preparing_rebalance)
        return fail(ErrorCode::rebalance_in_progress);
    return r;
}

LeaveGroupResponse KafkaGroupCoordinator::leave(std::int16_t version, const LeaveGroupRequest &req, std::int64_t now)
{
    current_serial_ = 0;  // everything this completes is queued
    LeaveGroupResponse r;
    if (req.group_id.empty()) {
        r.error_code = code(ErrorCode::invalid_group_id);
        return r;
    }
    Group *g = find(req.group_id);
    for (const auto &lm : req.members) {
        LeaveGroupResponse::Member out;
        out.member_id = std::string(lm.member_id);
        if (lm.group_instance_id)
            out.group_instance_id = std::string(*lm.group_instance_id);
        ErrorCode e = ErrorCode::unknown_member_id;
        if (g) {
            auto p = g->pending.find(std::string(lm.member_id));
            if (p != g->pending.end()) {
                g->pending.erase(p);
                e = ErrorCode::none;
                try_complete_join(*g, now);
            } else if (member(*g, lm.member_id)) {
                remove_member(*g, lm.member_id, now);
                e = ErrorCode::none;
            }
        }
        out.error_code = code(e);
        r.members.push_back(std::move(out));
    }
    forget_if_unused(req.group_id);
    if (version < 3) {
        if (!r.members.empty())
            r.error_code = r.members.front().error_code;
        r.members.clear();
    }
    return r;
}

// Kafka's handleCommitOffsets / validateOffsetCommit / doCommitOffsets, in this order. An empty
// group id is valid here (Kafka accepts it for OffsetCommit, OffsetFetch and DescribeGroups).
ErrorCode KafkaGroupCoordinator::offset_commit_check(std::string_view group_id, std::int32_t generation_id,
                                                     std::string_view member_id, std::int64_t now)
{
    Group *g = find(group_id);
    if (!g)  // not using group management (generation -1), else a commit of a gone generation
        return generation_id < 0 ? ErrorCode::none : ErrorCode::illegal_generation;
    if (generation_id < 0 && g->state == KafkaGroupState::empty)
        return ErrorCode::none;
    Member *m = member(*g, member_id);
    if (!m)  // a member id given but unknown, or none given while the group has members
        return ErrorCode::unknown_member_id;
    if (generation_id != g->generation)
        return ErrorCode::illegal_generation;
    if (g->state == KafkaGroupState::completing_rebalance)
        return ErrorCode::rebalance_in_progress;
    m->last_heartbeat_ms = now;  // Stable or PreparingRebalance
    return ErrorCode::none;
}

DescribeGroupsResponse::Group KafkaGroupCoordinator::describe(std::string_view group_id) const
{
    DescribeGroupsResponse::Group out;
    out.group_id = std::string(group_id);
    const Group *g = find(group_id);
    if (!g) {  // Kafka (DescribeGroups v0-5): no error, state Dead
        out.group_state = group_state_name(KafkaGroupState::dead);
        return out;
    }
    out.group_state = group_state_name(g->state);
    out.protocol_type = g->protocol_type;
    // Kafka shows the protocol and the members' metadata/assignment only when Stable or
    // CompletingRebalance; in PreparingRebalance the members are listed without them.
    const bool settled = g->state == KafkaGroupState::stable || g->state == KafkaGroupState::completing_rebalance;
    if (settled)
        out.protocol_data = g->protocol;
    for (const auto &m : g->members) {
        DescribeGroupsResponse::Member dm;
        dm.member_id = m.id;
        dm.client_id = m.client_id;
        dm.client_host = m.client_host;
        if (settled) {
            for (const auto &p : m.protocols)
                if (p.first == g->protocol) {
                    dm.member_metadata = p.second;
                    break;
                }
            dm.member_assignment = m.assignment;
        }
        out.members.push_back(std::move(dm));
    }
    return out;
}

ListGroupsResponse KafkaGroupCoordinator::list() const
{
    ListGroupsResponse r;
    for (const auto &[id, g] : groups_)
        r.groups.push_back(ListGroupsResponse::Group{id, g.protocol_type});
    return r;
}

void KafkaGroupCoordinator::tick(std::int64_t now)
{
    current_serial_ = 0;
    current_answer_.reset();
    std::vector<std::string> ids;
    for (const auto &kv : groups_)
        ids.push_back(kv.first);
    for (const auto &id : ids) {
        Group *g = find(id);
        if (!g)
            continue;
        for (auto it = g->pending.begin(); it != g->pending.end();)
            it = it->second <= now ? g->pending.erase(it) : std::next(it);
        // sessions: members awaiting a JoinGroup answer are kept (the rebalance timeout decides)
        std::vector<std::string> expired;
        for (const auto &m : g->members)
            if (!m.awaiting_join && !m.sync.active && now >= m.last_heartbeat_ms + m.session_timeout_ms)
                expired.push_back(m.id);
        if ((g->state == KafkaGroupState::completing_rebalance || g->state == KafkaGroupState::stable) &&
            now >= g->sync_deadline)
            for (const auto &m : g->members)
                if (m.pending_sync && std::find(expired.begin(), expired.end(), m.id) == expired.end())
                    expired.push_back(m.id);
        for (const auto &mid : expired)
            remove_member(*g, mid, now);
        try_complete_join(*g, now);
        forget_if_unused(id);
    }
}

std::optional<std::int64_t> KafkaGroupCoordinator::next_deadline() const
{
    std::optional<std::int64_t> best;
    auto take = [&](std::int64_t t) { best = best ? std::min(*best, t) : t; };
    for (const auto &kv : groups_) {
        const Group &g = kv.second;
        for (const auto &p : g.pending)
            take(p.second);
        for (const auto &m : g.members) {
            if (!m.awaiting_join && !m.sync.active)
                take(m.last_heartbeat_ms + m.session_timeout_ms);
            if (m.pending_sync)
                take(g.sync_deadline);
        }
        if (g.state == KafkaGroupState::preparing_rebalance)
            take(g.initial_delay ? g.delay_deadline : g.rebalance_deadline);
    }
    return best;
}

void KafkaGroupCoordinator::cancel(std::uint64_t token)
{
    for (auto &kv : groups_)
        for (auto &m : kv.second.members) {
            if (m.join.active && m.join.token == token)
                m.join.active = false;
            if (m.sync.active && m.sync.token == token)
                m.sync.active = false;
        }
    completions_.erase(std::remove_if(completions_.begin(), completions_.end(),
                                      [&](const GroupCompletion &c) { return c.token == token; }),
                       completions_.end());
}

std::vector<GroupCompletion> KafkaGroupCoordinator::take_completions()
{
    std::vector<GroupCompletion> out;
    out.swap(completions_);
    return out;
}

KafkaGroupState KafkaGroupCoordinator::state(std::string_view group_id) const
{
    const Group *g = find(group_id);
    return g ? g->state : KafkaGroupState::dead;
}

std::int32_t KafkaGroupCoordinator::generation(std::string_view group_id) const
{
    const Group *g = find(group_id);
    return g ? g->generation : -1;
}

}  // namespace pgtopic::kafka
