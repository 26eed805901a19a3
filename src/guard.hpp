// The two guards at the border between C++ and PostgreSQL (see ARCHITECTURE.md, "C++ inside PostgreSQL").
//
//  * PGTOPIC_FUNCTION(name): declares a SQL-callable entry point. Its body runs inside a
//    try block; a C++ exception that escapes it becomes a PostgreSQL ERROR, raised only
//    after the catch block has closed (no longjmp out of a live catch scope).
//  * pg_call(fn): runs a PostgreSQL call from a C++ frame that holds objects with
//    destructors. An ereport(ERROR) inside becomes a pgtopic::PgError exception, so the
//    C++ frames unwind normally; the entry guard re-raises the original error
//    (same SQLSTATE, message, detail and hint).
//
// Rule: a frame that owns an object with a non-trivial destructor calls PostgreSQL only
// through pg_call. Plain frames (PODs and palloc'd memory only) may call PostgreSQL directly.
#pragma once

#include "pg.hpp"

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace pgtopic {

// An error raised by pgtopic's own C++ code, with the SQLSTATE it maps to.
class Error : public std::exception {
public:
    Error(int sqlstate, std::string message, std::string detail = {}, std::string hint = {})
        : sqlstate_(sqlstate), message_(std::move(message)), detail_(std::move(detail)), hint_(std::move(hint)) {}
    const char *what() const noexcept override { return message_.c_str(); }
    int sqlstate() const noexcept { return sqlstate_; }
    const std::string &detail() const noexcept { return detail_; }
    const std::string &hint() const noexcept { return hint_; }

private:
    int sqlstate_;
    std::string message_, detail_, hint_;
};

// A PostgreSQL error caught by pg_call, carried through C++ frames as an exception.
class PgError : public std::exception {
public:
    explicit PgError(ErrorData *data) : data_(data) {}
    const char *what() const noexcept override { return data_->message ? data_->message : "PostgreSQL error"; }
    ErrorData *data() const noexcept { return data_; }

private:
    ErrorData *data_;
};

// PostgreSQL -> C++: run fn (which calls PostgreSQL) and turn a longjmp into PgError.
template <typename Fn>
auto pg_call(Fn &&fn) -> decltype(fn())
{
    using Result = decltype(fn());
    if constexpr (std::is_void_v<Result>) {
        (void) pg_call([&] {
            fn();
            return 0;
        });
    } else {
        static_assert(std::is_scalar_v<Result>, "pg_call returns scalars (numbers, pointers, Datums) only");
        MemoryContext volatile caller_context = CurrentMemoryContext;
        ErrorData *volatile error = nullptr;
        volatile Result result{};
        PG_TRY();
        {
            result = fn();
        }
        PG_CATCH();
        {
            MemoryContextSwitchTo(caller_context);
            error = CopyErrorData();
            FlushErrorState();
        }
        PG_END_TRY();
        if (error != nullptr)
            throw PgError(error);
        return result;
    }
}

// C++ -> PostgreSQL: call impl, and raise whatever C++ exception escapes it as an ERROR.
Datum guarded_entry(PGFunction impl, FunctionCallInfo fcinfo) noexcept(false);

// Same for callbacks that return nothing (hooks, xact callbacks, background worker mains).
void guarded_void(void (*impl)(void *), void *arg) noexcept(false);

}  // namespace pgtopic

// Declares the SQL-callable C function `name` whose body follows the macro, run under the guard.
#define PGTOPIC_FUNCTION(name)                                                  \
    static Datum name##_impl(PG_FUNCTION_ARGS);                                 \
    extern "C" {                                                                \
    PG_FUNCTION_INFO_V1(name);                                                  \
    Datum name(PG_FUNCTION_ARGS) { return pgtopic::guarded_entry(name##_impl, fcinfo); } \
    }                                                                           \
    static Datum name##_impl(PG_FUNCTION_ARGS)
