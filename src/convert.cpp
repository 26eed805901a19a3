// Values as text or jsonb for the converting readers (consume_text, consume_json, fetch_text,
// fetch_json): a value that does not convert comes back NULL with the reason and its raw bytes,
// never as an error that would fail the whole call (and, for a group, block it for good).
#include "guard.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/jsonb.h"
}

namespace pgtopic {
namespace {

// The stored row shape (partition, msg_offset, key, value bytea, headers, produced_at), for
// the converting readers (consume_text/_json, fetch_text/_json): they read stored rows, then
// convert each into their own result.
TupleDesc stored_row_desc()
{
    TupleDesc desc = CreateTemplateTupleDesc(6);
    TupleDescInitEntry(desc, 1, "partition", INT4OID, -1, 0);
    TupleDescInitEntry(desc, 2, "msg_offset", INT8OID, -1, 0);
    TupleDescInitEntry(desc, 3, "key", TEXTOID, -1, 0);
    TupleDescInitEntry(desc, 4, "value", BYTEAOID, -1, 0);
    TupleDescInitEntry(desc, 5, "headers", JSONBOID, -1, 0);
    TupleDescInitEntry(desc, 6, "produced_at", TIMESTAMPTZOID, -1, 0);
    return BlessTupleDesc(desc);
}

// value (bytea) as text or jsonb; a value that does not convert is returned as NULL with the
// reason in `error` and the bytes in `raw`: one poison message never blocks a group.
void convert_value(Datum value, ValueAs as, Datum *out, bool *out_null, Datum *error, bool *error_null)
{
    bytea *bytes = DatumGetByteaPP(value);
    const char *data = VARDATA_ANY(bytes);
    int len = VARSIZE_ANY_EXHDR(bytes);
    *out_null = true;
    *error_null = false;
    if (!pg_verify_mbstr(GetDatabaseEncoding(), data, len, true)) {
        *error = CStringGetTextDatum(psprintf("not valid %s text (or contains a zero byte)",
                                              GetDatabaseEncodingName()));
        return;
    }
    if (as == ValueAs::Text) {
        *out = PointerGetDatum(cstring_to_text_with_len(data, len));
        *out_null = false;
        *error_null = true;
        return;
    }
    JsonLexContext *lex = makeJsonLexContextCstringLen(const_cast<char *>(data), len, GetDatabaseEncoding(), true);
    JsonParseErrorType parsed = pg_parse_json(lex, &nullSemAction);
    if (parsed != JSON_SUCCESS) {
        *error = CStringGetTextDatum(psprintf("not JSON: %s", json_errdetail(parsed, lex)));
        return;
    }
    char *cstring = pnstrdup(data, len);
    try {
        *out = pg_call([&] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(cstring)); });
        *out_null = false;
        *error_null = true;
    } catch (const PgError &e) {
        // Valid JSON that jsonb refuses (e.g. \u0000): the message says why.
        *error = CStringGetTextDatum(psprintf("not jsonb: %s", e.what()));
    }
}

}  // namespace

TupleDesc stored_row_desc_for(ValueAs as, TupleDesc result_desc)
{
    return as == ValueAs::Bytes ? result_desc : stored_row_desc();
}

void emit_converted(ReturnSetInfo *rsinfo, Tuplestorestate *stored, TupleDesc stored_desc, ValueAs as)
{
    TupleTableSlot *slot = MakeSingleTupleTableSlot(stored_desc, &TTSOpsMinimalTuple);
    while (tuplestore_gettupleslot(stored, true, false, slot)) {
        slot_getallattrs(slot);
        Datum values[8];
        bool nulls[8];
        for (int i = 0; i < 6; i++) {
            values[i] = slot->tts_values[i];
            nulls[i] = slot->tts_isnull[i];
        }
        values[6] = values[7] = Datum(0);
        nulls[6] = nulls[7] = true;
        if (!nulls[3]) {
            Datum raw = values[3];
            convert_value(raw, as, &values[3], &nulls[3], &values[6], &nulls[6]);
            if (!nulls[6]) {
                values[7] = raw;
                nulls[7] = false;
            }
        }
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    ExecDropSingleTupleTableSlot(slot);
    tuplestore_end(stored);
}

}  // namespace pgtopic
