// Bytes on disk of a topic or of one of its partitions (segments, their indexes and TOAST), for
// the topics and partitions views. Only a caller with a right on the topic gets a figure (NULL
// otherwise), so no role learns the size of a topic it cannot use.
#include "guard.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
}

using namespace pgtopic;

PGTOPIC_FUNCTION(pgtopic_storage_bytes)
{
    require_arg(fcinfo, 0, "topic");
    Topic topic = lookup_topic(PG_GETARG_TEXT_PP(0), AccessShareLock);
    if (!has_topic_right(topic.id, GetUserId(), Right::Consume) &&
        !has_topic_right(topic.id, GetUserId(), Right::Produce))
        PG_RETURN_NULL();
    Oid relid = topic.root_relid;
    if (!PG_ARGISNULL(1)) {
        int32 partition = PG_GETARG_INT32(1);
        check_partition(topic, partition);
        char name[NAMEDATALEN];
        snprintf(name, sizeof name, "topic_%d_p%d", topic.id, partition);
        relid = get_relname_relid(name, data_namespace());
        if (!OidIsValid(relid))
            PG_RETURN_INT64(0);
    }
    // No lock is kept: pg_total_relation_size locks each segment (and its indexes and TOAST) only
    // while it measures it, so reading the views never fills the lock table however many segments
    // exist. A segment dropped meanwhile measures NULL and is left out.
    List *relids = find_all_inheritors(relid, NoLock, nullptr);
    int64 total = 0;
    ListCell *lc;
    foreach (lc, relids) {
        Oid leaf = lfirst_oid(lc);
        if (get_rel_relkind(leaf) != RELKIND_RELATION)
            continue;
        LOCAL_FCINFO(size_call, 1);
        InitFunctionCallInfoData(*size_call, nullptr, 1, InvalidOid, nullptr, nullptr);
        size_call->args[0].value = ObjectIdGetDatum(leaf);
        size_call->args[0].isnull = false;
        Datum bytes = pg_total_relation_size(size_call);
        if (!size_call->isnull)
            total += DatumGetInt64(bytes);
    }
    PG_RETURN_INT64(total);
}
