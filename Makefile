# pgtopic: PGXS build of a C++17 PostgreSQL extension.
EXTENSION  = pgtopic
EXTVERSION = 0.3.0

MODULE_big = pgtopic
OBJS = \
	src/pgtopic.o \
	src/guard.o \
	src/murmur2.o \
	src/offsets.o \
	src/catalog.o \
	src/segments.o \
	src/produce.o \
	src/fetch.o \
	src/group_coordinator.o \
	src/group_assign.o \
	src/group_positions.o \
	src/group_sql.o \
	src/maintenance.o \
	src/privileges.o

DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
# earlier versions (frozen) and the upgrade path from each
DATA = sql/$(EXTENSION)--0.1.0.sql sql/$(EXTENSION)--0.1.0--0.2.0.sql \
	sql/$(EXTENSION)--0.2.0.sql sql/$(EXTENSION)--0.2.0--0.3.0.sql

TEST_CONF = $(CURDIR)/test/pgtopic.conf

# pg_regress: test/sql/*.sql against test/expected/*.out on a throwaway server.
REGRESS = topics produce fetch murmur2 groups retention privileges security limits dump_restore bad_input
REGRESS_OPTS = --inputdir=test --outputdir=test/results \
	--temp-instance=$(CURDIR)/test/tmp_regress --temp-config=$(TEST_CONF) --temp-config=$(CURDIR)/test/regress.conf

# isolation specs: test/isolation/specs/*.spec, one per concurrency rule.
ISOLATION = offset_visibility savepoint_rollback prepare_refused repeatable_read concurrent_producers topic_cache group_start_offset group_rebalance_rollback \
	group_rebalance group_idle_member group_ownership group_handoff group_delivery group_max_poll group_join_open_xact group_savepoint group_prepare group_lease_fencing group_drop segment_race segment_drop_race
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=test/isolation/results \
	--temp-instance=$(CURDIR)/test/tmp_isolation --temp-config=$(TEST_CONF) --temp-config=$(CURDIR)/test/isolation.conf

# TAP tests (PostgreSQL::Test::Cluster): crash, restart, replication.
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

EXTRA_CLEAN = test/unit/unittest test/results test/isolation/results test/tmp_regress test/tmp_isolation tmp_check

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)

# PostgreSQL headers are system headers to us: our own warnings stay visible and clean.
PG_CPPFLAGS = -isystem $(includedir_server) -isystem $(includedir_internal) -isystem $(includedir)
PG_CXXFLAGS = -std=c++17 -Wall -Wextra -fno-omit-frame-pointer
ifdef WERROR
PG_CXXFLAGS += -Werror
endif
SHLIB_LINK = -lstdc++

# No LLVM bitcode: the extension is C++ and JIT inlining of it is not worth a clang dependency.
override with_llvm = no

include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@

# GoogleTest suite for the pure C++ parts (no server): `make unittest`.
test/unit/unittest: test/unit/murmur2_test.cpp src/murmur2.cpp src/murmur2.hpp
	$(CXX) -std=c++17 -Wall -Wextra $(if $(WERROR),-Werror) -O1 -o $@ test/unit/murmur2_test.cpp src/murmur2.cpp -lgtest -lgtest_main -pthread

unittest: test/unit/unittest
	test/unit/unittest

.PHONY: unittest

# Every object depends on every header (PGXS does not track C++ header dependencies here).
$(OBJS): $(wildcard src/*.hpp)
