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
	src/privileges.o \
	src/sizes.o \
	src/convert.o \
	$(KAFKA_OBJS)

# Kafka wire protocol (docs/kafka.md): the pure C++ codec under src/kafka (no PostgreSQL
# headers; unit-tested and fuzzed without a server) and its CRC-32C from PostgreSQL.
KAFKA_CODEC_SRCS = src/kafka/wire.cpp src/kafka/framing.cpp src/kafka/header.cpp src/kafka/api_versions.cpp \
	src/kafka/metadata.cpp src/kafka/produce_messages.cpp src/kafka/fetch_messages.cpp src/kafka/list_offsets.cpp \
	src/kafka/create_topics.cpp src/kafka/delete_topics.cpp src/kafka/request.cpp src/kafka/record_batch.cpp \
	src/kafka/init_producer_id.cpp src/kafka/producer_sequence.cpp src/kafka/sasl.cpp \
	src/kafka/find_coordinator.cpp src/kafka/group_membership.cpp src/kafka/offset_commit.cpp src/kafka/describe_groups.cpp \
	src/kafka/kafka_group.cpp
KAFKA_OBJS = $(KAFKA_CODEC_SRCS:.cpp=.o) src/kafka_crc32c.o src/kafka_listener.o src/kafka_requests.o src/kafka_produce.o src/kafka_producers.o src/kafka_auth.o

DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
# earlier versions (frozen) and the upgrade path from each
DATA = sql/$(EXTENSION)--0.1.0.sql sql/$(EXTENSION)--0.1.0--0.2.0.sql \
	sql/$(EXTENSION)--0.2.0.sql sql/$(EXTENSION)--0.2.0--0.3.0.sql

TEST_CONF = $(CURDIR)/test/pgtopic.conf

# pg_regress: test/sql/*.sql against test/expected/*.out on a throwaway server.
REGRESS = topics produce fetch records murmur2 groups retention privileges security limits dump_restore bad_input
REGRESS_OPTS = --inputdir=test --outputdir=test/results \
	--temp-instance=$(CURDIR)/test/tmp_regress --temp-config=$(TEST_CONF) --temp-config=$(CURDIR)/test/regress.conf

# isolation specs: test/isolation/specs/*.spec, one per concurrency rule.
ISOLATION = offset_visibility savepoint_rollback prepare_refused repeatable_read concurrent_producers topic_cache group_start_offset group_rebalance_rollback \
	group_rebalance group_idle_member group_ownership group_handoff group_delivery group_max_poll group_join_open_xact group_savepoint \
	group_prepare group_lease_fencing group_drop segment_race segment_drop_race rights_cache drop_topic_rollback retention_nowait
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=test/isolation/results \
	--temp-instance=$(CURDIR)/test/tmp_isolation --temp-config=$(TEST_CONF) --temp-config=$(CURDIR)/test/isolation.conf

# TAP tests (PostgreSQL::Test::Cluster): crash, restart, replication.
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

EXTRA_CLEAN = test/unit/unittest test/fuzz/kafka/fuzz_request test/fuzz/kafka/fuzz_record_batch test/results test/isolation/results test/tmp_regress test/tmp_isolation tmp_check

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

# GoogleTest suite for the pure C++ parts (no server): `make unittest`. The Kafka codec's CRC-32C
# is PostgreSQL's (src/kafka_crc32c.cpp, linked against libpgport.a from postgresql-server-dev-15).
UNIT_TESTS = $(wildcard test/unit/*_test.cpp)
PGPORT_LIB = $(shell $(PG_CONFIG) --pkglibdir)/libpgport.a
test/unit/unittest: $(UNIT_TESTS) test/unit/kafka_test_util.hpp src/murmur2.cpp src/murmur2.hpp $(KAFKA_CODEC_SRCS) src/kafka_crc32c.cpp $(wildcard src/kafka/*.hpp)
	$(CXX) -std=c++17 -Wall -Wextra $(if $(WERROR),-Werror) -O1 -Isrc $(PG_CPPFLAGS) -o $@ $(UNIT_TESTS) src/murmur2.cpp $(KAFKA_CODEC_SRCS) src/kafka_crc32c.cpp $(PGPORT_LIB) -lgtest -lgtest_main -pthread

unittest: test/unit/unittest
	test/unit/unittest

# The Kafka codec's fuzz targets (libFuzzer, clang): `make fuzz-kafka` runs each for
# KAFKA_FUZZ_SECONDS (default 25); docs/kafka.md describes the long run.
KAFKA_FUZZ_SECONDS ?= 25
KAFKA_FUZZ_FLAGS = -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc $(PG_CPPFLAGS)
test/fuzz/kafka/fuzz_request test/fuzz/kafka/fuzz_record_batch: test/fuzz/kafka/%: test/fuzz/kafka/%.cpp $(KAFKA_CODEC_SRCS) src/kafka_crc32c.cpp $(wildcard src/kafka/*.hpp)
	clang++ $(KAFKA_FUZZ_FLAGS) -o $@ $< $(KAFKA_CODEC_SRCS) src/kafka_crc32c.cpp $(PGPORT_LIB)

fuzz-kafka: test/fuzz/kafka/fuzz_request test/fuzz/kafka/fuzz_record_batch
	test/fuzz/kafka/run $(KAFKA_FUZZ_SECONDS)

.PHONY: fuzz-kafka
.PHONY: unittest

# Every object depends on every header (PGXS does not track C++ header dependencies here).
$(OBJS): $(wildcard src/*.hpp) $(wildcard src/kafka/*.hpp)
