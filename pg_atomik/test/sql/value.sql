-- The atomik type and the pure functions of DESIGN.md §4.
CREATE EXTENSION pg_atomik;

-- Storage: 17 bytes, the canonical form.
SELECT pg_column_size('add:1'::atomik) AS size;
SELECT typlen, typalign, typstorage, typbyval FROM pg_type WHERE typname = 'atomik';

-- Text form reads well and round-trips exactly.
SELECT v::atomik AS parsed, v::atomik::text::atomik = v::atomik AS round_trips
  FROM (VALUES ('add:42'), ('add:42;pending=-3'), ('add: 7 '), ('add:-9223372036854775808'),
               ('xor:0xff'), ('xor:0x00000000000000ff;pending=0x0000000000000001'),
               ('xor:-1'), ('add:0')) AS t(v);

-- Constructors, accessors, set, accumulate.
SELECT atomik_add(10) AS a, atomik_xor(255) AS x, atomik_accum(atomik_add(10), -3) AS accum,
       atomik_add(10) + 5 AS plus, atomik_set(atomik_add(10), 4) AS set_to_4;
SELECT atomik_read(atomik_add(10) + 5), atomik_pending(atomik_set('add:10'::atomik, 4)),
       atomik_group(atomik_add(1)), atomik_group(atomik_xor(1));
-- xor is not a counter: +1 twice is 0.
SELECT atomik_read(atomik_xor(0) + 1 + 1) AS xor_twice;
-- add wraps in two's complement.
SELECT atomik_add(9223372036854775807) + 1 AS wraps;

-- The canonical bytes (tag, reference LE, accumulator LE) and back.
SELECT atomik_bytes('add:42;pending=-3'::atomik);
SELECT atomik_bytes(atomik_xor(-1));
SELECT atomik_from_bytes(atomik_bytes('add:42;pending=-3'::atomik));
SELECT atomik_send('add:1'::atomik) = atomik_bytes('add:1'::atomik) AS send_is_canonical;

-- Casts to and from bigint.
SELECT 'add:42;pending=-3'::atomik::bigint AS to_bigint, 42::bigint::atomik AS from_bigint;

-- Equality is of the whole state; hashing agrees with it.
SELECT 'add:5'::atomik = 'add:5'::atomik AS same,
       'add:5'::atomik = 'add:5;pending=5'::atomik AS pending_differs,
       'add:5'::atomik <> 'xor:0x5'::atomik AS group_differs;
SELECT v, count(*) FROM (VALUES ('add:1'::atomik), ('add:1'), ('xor:0x1'), ('add:1;pending=1')) t(v)
 GROUP BY v ORDER BY v::text;
SELECT atomik_hash('add:1'::atomik) = atomik_hash(atomik_from_bytes('\x1101000000000000000000000000000000')) AS hash_consistent;

-- atomik_fold: group-combine of many values.
SELECT atomik_fold(atomik_add(i)) FROM generate_series(1, 100) i;
SELECT atomik_fold(atomik_xor(i)) FROM generate_series(1, 3) i;
SELECT atomik_fold(v) IS NULL AS empty_is_null FROM (SELECT 'add:1'::atomik WHERE false) t(v);
SELECT p.proisstrict, p.provolatile, p.proparallel FROM pg_proc p WHERE p.proname = 'atomik_accum';
SELECT a.aggcombinefn, p.proparallel FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
 WHERE p.proname = 'atomik_fold';

-- A parallel plan splits atomik_fold across workers and combines.
CREATE TABLE fold_big AS SELECT i AS id, atomik_add(i) AS c FROM generate_series(1, 200000) i;
ANALYZE fold_big;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT atomik_fold(c) FROM fold_big;
SELECT atomik_fold(c) FROM fold_big;
RESET ALL;
SET max_parallel_workers_per_gather = 0;
SELECT atomik_fold(c) FROM fold_big;
RESET ALL;
DROP TABLE fold_big;

-- Bad input: each an ERROR with a SQLSTATE and a message naming the problem.
\set VERBOSITY sqlstate
SELECT 'nope'::atomik;
SELECT 'mul:3'::atomik;
SELECT 'add:1;p=2'::atomik;
SELECT 'add:12x'::atomik;
SELECT 'add:'::atomik;
SELECT 'add:9223372036854775808'::atomik;
SELECT 'xor:0x10000000000000000'::atomik;
SELECT 'add:1;pending=99999999999999999999'::atomik;
SELECT atomik_from_bytes('\x0102');
SELECT atomik_from_bytes('\x2101000000000000000000000000000000');
SELECT atomik_from_bytes('\x1301000000000000000000000000000000');
SELECT atomik_fold(v) FROM (VALUES (atomik_add(1)), (atomik_xor(1))) t(v);
SELECT atomik_add(9223372036854775808);
\set VERBOSITY default
SELECT 'add:9223372036854775808'::atomik;
SELECT 'mul:3'::atomik;
SELECT atomik_from_bytes('\x0102');
SELECT atomik_fold(v) FROM (VALUES (atomik_add(1)), (atomik_xor(1))) t(v);

SELECT atomik_version();
DROP EXTENSION pg_atomik;
