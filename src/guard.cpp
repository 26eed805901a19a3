// Exception <-> ereport border; see guard.hpp.
#include "guard.hpp"

#include <cstring>
#include <new>

namespace pgtopic {
namespace {

// A caught C++ exception, copied into static storage while still inside the catch block
// (nothing there may call PostgreSQL), raised as an ERROR once the catch block has closed.
struct PendingError {
    int sqlstate = 0;
    char message[1024];
    char detail[1024];
    char hint[512];
    ErrorData *pg = nullptr;
};

void copy_text(char *dst, size_t size, const char *src)
{
    std::strncpy(dst, src ? src : "", size - 1);
    dst[size - 1] = '\0';
}

PendingError pending;

void capture(const std::exception_ptr &ptr)
{
    pending.pg = nullptr;
    pending.detail[0] = pending.hint[0] = '\0';
    try {
        std::rethrow_exception(ptr);
    } catch (const PgError &e) {
        pending.pg = e.data();
    } catch (const Error &e) {
        pending.sqlstate = e.sqlstate();
        copy_text(pending.message, sizeof pending.message, e.what());
        copy_text(pending.detail, sizeof pending.detail, e.detail().c_str());
        copy_text(pending.hint, sizeof pending.hint, e.hint().c_str());
    } catch (const std::bad_alloc &) {
        pending.sqlstate = ERRCODE_OUT_OF_MEMORY;
        copy_text(pending.message, sizeof pending.message, "out of memory in pgtopic");
    } catch (const std::exception &e) {
        pending.sqlstate = ERRCODE_INTERNAL_ERROR;
        copy_text(pending.message, sizeof pending.message, e.what());
    } catch (...) {
        pending.sqlstate = ERRCODE_INTERNAL_ERROR;
        copy_text(pending.message, sizeof pending.message, "unknown C++ exception in pgtopic");
    }
}

[[noreturn]] void raise_pending()
{
    if (pending.pg != nullptr)
        ReThrowError(pending.pg);
    ereport(ERROR, (errcode(pending.sqlstate), errmsg_internal("%s", pending.message),
                    pending.detail[0] ? errdetail_internal("%s", pending.detail) : 0,
                    pending.hint[0] ? errhint("%s", pending.hint) : 0));
    pg_unreachable();
}

}  // namespace

Datum guarded_entry(PGFunction impl, FunctionCallInfo fcinfo) noexcept(false)
{
    bool failed = false;
    try {
        return impl(fcinfo);
    } catch (...) {
        capture(std::current_exception());
        failed = true;
    }
    if (failed)
        raise_pending();
    pg_unreachable();
}

void guarded_void(void (*impl)(void *), void *arg) noexcept(false)
{
    bool failed = false;
    try {
        impl(arg);
    } catch (...) {
        capture(std::current_exception());
        failed = true;
    }
    if (failed)
        raise_pending();
}

}  // namespace pgtopic
