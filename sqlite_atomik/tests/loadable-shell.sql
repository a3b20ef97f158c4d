.bail on
.mode list
SELECT atomik_read(atomik_accum(atomik_add(40), 2));
SELECT atomik_group(atomik_xor(7));
SELECT atomik_text(atomik_fold(v)) FROM (SELECT atomik_add(2) AS v UNION ALL SELECT atomik_add(3));
SELECT count(*) FROM pragma_function_list WHERE name LIKE 'atomik%';
CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB);
SELECT atomik_track('t', 'n');
INSERT INTO t VALUES (1, atomik_add(5));
UPDATE t SET n = atomik_accum(n, 1);
SELECT atomik_seal();
SELECT atomik_text(n) FROM t;
SELECT kind, tbl, key, delta FROM atomik_inspect(atomik_sync_request());
