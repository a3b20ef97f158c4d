-- Device keys: sync messages tagged with a per-device key, for transports
-- without TLS and tokens. A hub with a key enrolled for a device refuses
-- its untagged or tampered requests; a device with a key refuses untagged
-- answers; nothing of a refused message is applied.
CREATE EXTENSION pg_atomik;
DROP DATABASE IF EXISTS atomik_keys_device;
CREATE DATABASE atomik_keys_device;
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik);
SELECT atomik_track('inv', 'stock');
INSERT INTO inv VALUES (1, atomik_add(100));
CREATE FUNCTION key_error(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{32}', '<site>', 'g');
END
$$;

\c atomik_keys_device
CREATE EXTENSION pg_atomik;
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik);
SELECT atomik_track('inv', 'stock');
INSERT INTO inv VALUES (2, atomik_add(5));
SELECT atomik_new_device_key() AS key, atomik_site_id() AS site \gset
SELECT length(:'key'::bytea) AS key_bytes;
SELECT atomik_set_device_key(:'site', :'key'::bytea) AS set;
SELECT atomik_set_device_key(:'site', :'key'::bytea) AS set_again;
SELECT atomik_sync_request() AS req \gset
SELECT get_byte(:'req'::bytea, 2) AS tag_byte;
-- What a forger without the key can send: the same site, no tag.
SELECT atomik_set_device_key(:'site', NULL) AS removed;
SELECT atomik_sync_request() AS untagged \gset
SELECT atomik_set_device_key(:'site', :'key'::bytea) AS restored;

\c atomik_regress
SELECT atomik_set_device_key(:'site', :'key'::bytea) AS enrolled;
SELECT key_error(format('SELECT atomik_sync(%L::bytea)', :'untagged'));
SELECT key_error(format('SELECT atomik_sync(%L::bytea)',
    set_byte(:'req'::bytea, length(:'req'::bytea) - 17,
             get_byte(:'req'::bytea, length(:'req'::bytea) - 17) # 1)));
SELECT count(*) AS origins, (SELECT atomik_read(stock) FROM inv WHERE id = 2) AS stock_2
  FROM atomik.registry WHERE seq > 0;
SELECT atomik_sync(:'req'::bytea) AS resp \gset
SELECT get_byte(:'resp'::bytea, 2) AS answer_tag_byte;
SELECT atomik_read(stock) AS stock_2 FROM inv WHERE id = 2;
-- Bad input, and a hub that requires keys.
SELECT key_error($$SELECT atomik_set_device_key('zz', atomik_new_device_key())$$);
SELECT key_error($$SELECT atomik_set_device_key(atomik_site_id(), '\x0011')$$);
SELECT atomik_require_device_keys() AS required, atomik_require_device_keys(true) AS now_required;

\c atomik_keys_device
SELECT atomik_sync_finish(:'resp'::bytea) AS applied;
SELECT id, stock FROM inv ORDER BY id;
SELECT atomik_set_device_key(:'site', NULL) AS removed;
SELECT atomik_sync_request() AS plain \gset

\c atomik_regress
SELECT key_error(format('SELECT atomik_sync(%L::bytea)', :'plain'));
SELECT atomik_set_device_key(:'site', NULL) AS unenrolled;
SELECT key_error(format('SELECT atomik_sync(%L::bytea)', :'plain'));
SELECT atomik_require_device_keys(false) AS required;
SELECT atomik_sync(:'plain'::bytea) IS NOT NULL AS served;
-- Keys are secrets: PUBLIC has no privilege on the table.
SELECT relacl FROM pg_class WHERE oid = 'atomik.device_keys'::regclass;

DROP TABLE inv;
DROP FUNCTION key_error(text);
DROP EXTENSION pg_atomik;
\c postgres
DROP DATABASE atomik_keys_device;
