// Values as text or jsonb for the converting readers (consume_text, consume_json, fetch_text,
// fetch_json): a value that does not convert comes back NULL with the reason and its raw bytes,
// never as an error that would fail the whole call (and, for a group, block it for good).
#include "guard.hpp"
#include "pgtopic.hpp"

extern "C" {
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
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

Datum headers_jsonb_from_arrays(Datum keys, Datum values)
{
    Datum *k, *v;
    bool *kn, *vn;
    int nk, nv;
    deconstruct_array(DatumGetArrayTypeP(keys), TEXTOID, -1, false, TYPALIGN_INT, &k, &kn, &nk);
    deconstruct_array(DatumGetArrayTypeP(values), BYTEAOID, -1, false, TYPALIGN_INT, &v, &vn, &nv);
    JsonbParseState *state = nullptr;
    (void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    for (int i = 0; i < Min(nk, nv); i++) {
        if (kn[i])
            continue;
        text *key = DatumGetTextPP(k[i]);
        JsonbValue jk;
        jk.type = jbvString;
        jk.val.string.val = VARDATA_ANY(key);
        jk.val.string.len = VARSIZE_ANY_EXHDR(key);
        (void) pushJsonbValue(&state, WJB_KEY, &jk);
        JsonbValue jv;
        jv.type = jbvNull;
        if (!vn[i]) {
            bytea *b = DatumGetByteaPP(v[i]);
            const char *data = VARDATA_ANY(b);
            int len = VARSIZE_ANY_EXHDR(b);
            if (pg_verify_mbstr(GetDatabaseEncoding(), data, len, true)) {
                jv.type = jbvString;
                jv.val.string.val = const_cast<char *>(data);
                jv.val.string.len = len;
            }
        }
        (void) pushJsonbValue(&state, WJB_VALUE, &jv);
    }
    JsonbValue *object = pushJsonbValue(&state, WJB_END_OBJECT, nullptr);
    return JsonbPGetDatum(JsonbValueToJsonb(object));
}

void header_arrays_from_jsonb(Datum headers, Datum *keys, Datum *values)
{
    Jsonb *jb = DatumGetJsonbP(headers);
    int n = JB_ROOT_IS_OBJECT(jb) ? static_cast<int>(JB_ROOT_COUNT(jb)) : 0;
    Datum *k = static_cast<Datum *>(palloc(sizeof(Datum) * Max(n, 1)));
    Datum *v = static_cast<Datum *>(palloc(sizeof(Datum) * Max(n, 1)));
    bool *vn = static_cast<bool *>(palloc0(sizeof(bool) * Max(n, 1)));
    int count = 0;
    if (n > 0) {
        JsonbIterator *it = JsonbIteratorInit(&jb->root);
        JsonbValue jv;
        JsonbIteratorToken token;
        while ((token = JsonbIteratorNext(&it, &jv, true)) != WJB_DONE) {
            if (token == WJB_KEY && count < n) {
                k[count] = PointerGetDatum(cstring_to_text_with_len(jv.val.string.val, jv.val.string.len));
            } else if (token == WJB_VALUE && count < n) {
                // As jsonb_each_text: a string unquoted, null as NULL, anything else as JSON text.
                const char *text_value = nullptr;
                int len = 0;
                if (jv.type == jbvNull) {
                    vn[count] = true;
                } else if (jv.type == jbvString) {
                    text_value = jv.val.string.val;
                    len = jv.val.string.len;
                } else if (jv.type == jbvNumeric) {
                    text_value = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(jv.val.numeric)));
                    len = static_cast<int>(strlen(text_value));
                } else if (jv.type == jbvBool) {
                    text_value = jv.val.boolean ? "true" : "false";
                    len = static_cast<int>(strlen(text_value));
                } else {  // a nested object or array
                    text_value = JsonbToCString(nullptr, jv.val.binary.data, jv.val.binary.len);
                    len = static_cast<int>(strlen(text_value));
                }
                if (!vn[count]) {
                    bytea *b = static_cast<bytea *>(palloc(VARHDRSZ + len));
                    SET_VARSIZE(b, VARHDRSZ + len);
                    memcpy(VARDATA(b), text_value, len);
                    v[count] = PointerGetDatum(b);
                }
                count++;
            }
        }
    }
    *keys = PointerGetDatum(construct_array(k, count, TEXTOID, -1, false, TYPALIGN_INT));
    int dims[1] = {count};
    int lbs[1] = {1};
    *values = PointerGetDatum(construct_md_array(v, vn, count > 0 ? 1 : 0, dims, lbs, BYTEAOID, -1, false, TYPALIGN_INT));
}

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
