#!/usr/bin/env bash
# Regenerates the golden pgoutput fixtures in this directory from a real PostgreSQL server.
#
#   Tests/PGOutputTests/Fixtures/capture.sh            # uses `pg_config --bindir`
#   PGBIN=/usr/lib/postgresql/15/bin PORT=55433 Tests/PGOutputTests/Fixtures/capture.sh
#
# It starts its own throwaway server (initdb in a fresh temporary directory, unix socket
# only, on $PORT), runs one scenario per fixture in a fresh database, reads the slot with
# the SQL interface (`pg_logical_slot_peek_binary_changes`, which returns exactly one
# pgoutput message per row), writes `<scenario>.txt`, and stops the server.
#
# Fixture format: lines starting with `#` are comments (the SQL and options that produced
# the file); every other non-empty line is one pgoutput message in lowercase hex, in order.
# LSNs, xids, timestamps and relation OIDs differ between runs; the tests assert the stable
# content exactly and the volatile values by consistency (e.g. Insert relid == Relation id).
#
# PostgreSQL refuses to run as root: when run as root the server and clients run as the
# `postgres` user through runuser.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PGBIN="${PGBIN:-$(pg_config --bindir)}"
PORT="${PORT:-55439}"
WORK="$(mktemp -d /tmp/ferry-pgoutput-capture.XXXXXX)"
DATA="$WORK/data"

if [ "$(id -u)" = 0 ]; then
    chown postgres: "$WORK"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

cleanup() {
    as_pg "$PGBIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$DATA" -w -l "$WORK/server.log" -o "-p $PORT -k $WORK -c listen_addresses='' \
    -c wal_level=logical -c max_prepared_transactions=10 -c logical_decoding_work_mem=64kB \
    -c max_replication_slots=10 -c fsync=off" start >/dev/null

psql_db() { as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -U postgres -d "$1" "${@:2}"; }

# scenario NAME TWO_PHASE_SLOT(true|false) 'peek options' <<'SQL'
#   setup statements
#   -- capture --
#   statements whose changes are captured
# SQL
scenario() {
    local name="$1" two_phase="$2" options="$3"
    local sql setup changes db="s_$1" out="$HERE/$1.txt"
    sql="$(cat)"
    setup="${sql%%-- capture --*}"
    changes="${sql#*-- capture --}"
    psql_db postgres -c "CREATE DATABASE $db"
    printf '%s\n' "$setup" | psql_db "$db" >/dev/null
    psql_db "$db" -c "SELECT pg_create_logical_replication_slot('ferry', 'pgoutput', false, $two_phase)" >/dev/null
    printf '%s\n' "$changes" | psql_db "$db" >/dev/null
    {
        echo "# Scenario: $name (captured from $("$PGBIN/postgres" --version))"
        echo "# Server: wal_level=logical max_prepared_transactions=10 logical_decoding_work_mem=64kB"
        echo "# Slot: pg_create_logical_replication_slot('ferry', 'pgoutput', false, $two_phase) after the setup"
        echo "# Read: SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('ferry', NULL, NULL, $options)"
        echo "# Setup SQL:"
        printf '%s\n' "$setup" | sed -e '/^[[:space:]]*$/d' -e 's/^/#   /'
        echo "# Captured SQL:"
        printf '%s\n' "$changes" | sed -e '/^[[:space:]]*$/d' -e 's/^/#   /'
        psql_db "$db" -At -c "SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('ferry', NULL, NULL, $options)"
    } >"$out"
    psql_db "$db" -c "SELECT pg_drop_replication_slot('ferry')" >/dev/null
    echo "wrote $out ($(grep -vc '^#' "$out") messages)"
}

V1="'proto_version', '1', 'publication_names', 'pub'"

scenario replica_identity_default false "$V1" <<'SQL'
CREATE TABLE item (id int PRIMARY KEY, name text, price numeric(10,2));
CREATE PUBLICATION pub FOR ALL TABLES;
-- capture --
INSERT INTO item VALUES (1, 'apple', 1.50), (2, NULL, 2.00);
UPDATE item SET name = 'pear' WHERE id = 1;
DELETE FROM item WHERE id = 2;
SQL

scenario replica_identity_full false "$V1" <<'SQL'
CREATE TABLE item (id int, name text, qty int);
ALTER TABLE item REPLICA IDENTITY FULL;
CREATE PUBLICATION pub FOR ALL TABLES;
-- capture --
INSERT INTO item VALUES (1, 'apple', 3);
UPDATE item SET qty = 4 WHERE id = 1;
DELETE FROM item WHERE id = 1;
SQL

scenario replica_identity_index false "$V1" <<'SQL'
CREATE TABLE item (id int PRIMARY KEY, code text NOT NULL, name text);
CREATE UNIQUE INDEX item_code ON item (code);
ALTER TABLE item REPLICA IDENTITY USING INDEX item_code;
CREATE PUBLICATION pub FOR ALL TABLES;
-- capture --
INSERT INTO item VALUES (1, 'A-1', 'apple');
UPDATE item SET name = 'green apple' WHERE id = 1;
UPDATE item SET code = 'A-2' WHERE id = 1;
DELETE FROM item WHERE id = 1;
SQL

scenario primary_key_change false "$V1" <<'SQL'
CREATE TABLE account (id int, region text, balance int, PRIMARY KEY (id, region));
CREATE PUBLICATION pub FOR ALL TABLES;
-- capture --
INSERT INTO account VALUES (7, 'eu', 100);
UPDATE account SET id = 8, balance = 90 WHERE id = 7;
SQL

scenario unchanged_toast false "$V1" <<'SQL'
CREATE TABLE doc (id int PRIMARY KEY, title text, body text);
ALTER TABLE doc ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE PUBLICATION pub FOR ALL TABLES;
INSERT INTO doc SELECT 1, 'first', string_agg(md5(random()::text), '') FROM generate_series(1, 100);
-- capture --
UPDATE doc SET title = 'renamed' WHERE id = 1;
SQL

scenario truncate false "$V1" <<'SQL'
CREATE TABLE parent (id serial PRIMARY KEY);
CREATE TABLE child (id serial PRIMARY KEY, parent_id int REFERENCES parent);
CREATE TABLE solo (id serial PRIMARY KEY);
CREATE PUBLICATION pub FOR ALL TABLES;
-- capture --
TRUNCATE solo;
TRUNCATE solo RESTART IDENTITY;
TRUNCATE parent CASCADE;
TRUNCATE parent, solo RESTART IDENTITY CASCADE;
SQL

scenario logical_messages false "$V1, 'messages', 'true'" <<'SQL'
CREATE TABLE note (id int PRIMARY KEY);
CREATE PUBLICATION pub FOR ALL TABLES;
-- capture --
SELECT pg_logical_emit_message(false, 'ferry.heartbeat', '');
BEGIN;
INSERT INTO note VALUES (1);
SELECT pg_logical_emit_message(true, 'ferry.audit', 'hello, world');
SELECT pg_logical_emit_message(true, 'ferry.bytes', '\x00ff0a'::bytea);
COMMIT;
SQL

scenario custom_type false "$V1" <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TABLE person (id int PRIMARY KEY, mood mood, moods mood[], score positive, name varchar(20));
CREATE PUBLICATION pub FOR ALL TABLES;
-- capture --
INSERT INTO person VALUES (1, 'happy', '{sad,ok}', 5, 'ada');
SQL

scenario origin false "$V1" <<'SQL'
CREATE TABLE item (id int PRIMARY KEY);
CREATE PUBLICATION pub FOR ALL TABLES;
SELECT pg_replication_origin_create('ferry_origin');
-- capture --
SELECT pg_replication_origin_session_setup('ferry_origin');
BEGIN;
SELECT pg_replication_origin_xact_setup('0/12345678', '2024-01-02 03:04:05+00');
INSERT INTO item VALUES (1);
COMMIT;
SELECT pg_replication_origin_session_reset();
SQL

scenario binary false "$V1, 'binary', 'true'" <<'SQL'
CREATE TABLE sample (id int PRIMARY KEY, big bigint, flag bool, label text, raw bytea,
    amount numeric, at timestamptz, ratio float8, uid uuid, doc jsonb, nums int4[], missing text);
CREATE PUBLICATION pub FOR ALL TABLES;
-- capture --
INSERT INTO sample VALUES (1, -2, true, 'héllo', '\xdeadbeef', 12.5, '2000-01-01 00:00:01+00',
    0.5, '00112233-4455-6677-8899-aabbccddeeff', '{"a": 1}', '{1,2}', NULL);
SQL

scenario streaming false "'proto_version', '2', 'publication_names', 'pub', 'streaming', 'on'" <<'SQL'
CREATE TABLE big (id int);
CREATE TABLE small (id int PRIMARY KEY);
CREATE PUBLICATION pub FOR ALL TABLES;
-- capture --
BEGIN;
INSERT INTO big SELECT g FROM generate_series(1, 300) g;
SAVEPOINT sp;
INSERT INTO big SELECT g FROM generate_series(301, 600) g;
ROLLBACK TO SAVEPOINT sp;
INSERT INTO small VALUES (1);
COMMIT;
BEGIN;
INSERT INTO big SELECT g FROM generate_series(1, 500) g;
ROLLBACK;
INSERT INTO small VALUES (2);
SQL

scenario two_phase true "'proto_version', '3', 'publication_names', 'pub', 'two_phase', 'on'" <<'SQL'
CREATE TABLE item (id int PRIMARY KEY);
CREATE PUBLICATION pub FOR ALL TABLES;
-- capture --
BEGIN;
INSERT INTO item VALUES (1);
PREPARE TRANSACTION 'ferry-commit';
COMMIT PREPARED 'ferry-commit';
BEGIN;
INSERT INTO item VALUES (2);
PREPARE TRANSACTION 'ferry-rollback';
ROLLBACK PREPARED 'ferry-rollback';
SQL

scenario stream_prepare true "'proto_version', '3', 'publication_names', 'pub', 'two_phase', 'on', 'streaming', 'on'" <<'SQL'
CREATE TABLE big (id int);
CREATE PUBLICATION pub FOR ALL TABLES;
-- capture --
BEGIN;
INSERT INTO big SELECT g FROM generate_series(1, 500) g;
PREPARE TRANSACTION 'ferry-streamed';
COMMIT PREPARED 'ferry-streamed';
SQL

echo "done"
