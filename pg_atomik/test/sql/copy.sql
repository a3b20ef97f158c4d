-- COPY in text and binary preserves every value, byte for byte.
CREATE EXTENSION pg_atomik;
CREATE TABLE src (id bigint PRIMARY KEY, v atomik);
INSERT INTO src VALUES
    (1, 'add:42;pending=-3'), (2, 'add:-9223372036854775808;pending=1'),
    (3, 'xor:0xffffffffffffffff;pending=0x8000000000000000'), (4, 'add:0'), (5, NULL);
CREATE TABLE dst_text (LIKE src);
CREATE TABLE dst_bin (LIKE src);
COPY src TO '/tmp/pg_atomik_regress_copy.txt';
COPY dst_text FROM '/tmp/pg_atomik_regress_copy.txt';
COPY src TO '/tmp/pg_atomik_regress_copy.bin' (FORMAT binary);
COPY dst_bin FROM '/tmp/pg_atomik_regress_copy.bin' (FORMAT binary);
SELECT s.id, s.v, atomik_bytes(s.v) IS NOT DISTINCT FROM atomik_bytes(t.v) AS text_same,
       atomik_bytes(s.v) IS NOT DISTINCT FROM atomik_bytes(b.v) AS binary_same
  FROM src s JOIN dst_text t USING (id) JOIN dst_bin b USING (id) ORDER BY s.id;
-- A binary field of the wrong length is rejected (here: a bigint file).
CREATE TABLE wrong (id bigint, v bigint);
INSERT INTO wrong VALUES (1, 7);
COPY wrong TO '/tmp/pg_atomik_regress_copy_wrong.bin' (FORMAT binary);
COPY dst_bin FROM '/tmp/pg_atomik_regress_copy_wrong.bin' (FORMAT binary);
DROP TABLE src, dst_text, dst_bin, wrong;
DROP EXTENSION pg_atomik;
