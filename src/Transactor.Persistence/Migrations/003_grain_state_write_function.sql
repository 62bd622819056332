-- =============================================================================
-- Migration 003: a grain-state write is one PL/pgSQL function call, and an
-- UPDATE no longer recomputes the row's key.
--
-- Profiled with perf during benchmarks/postgres.sh, migration 001's write
-- statement cost the server more to set up than to run: it is one statement
-- with two data-modifying CTEs (the UPDATE for a known version, the INSERT for
-- a first write), so every execution initialised both ModifyTable nodes, their
-- indexes and the stored generated grain_key column, and every UPDATE
-- recomputed grain_key (a SHA-256 of columns that never change) besides the
-- one in its WHERE clause. Npgsql also re-scanned the statement's 1,200
-- characters for parameters on every call.
--
-- Now:
--   * grain_key is a plain column. A BEFORE INSERT trigger fills it from the
--     identity columns exactly as the generated expression did, and a BEFORE
--     UPDATE trigger does the same should an identity column ever change (no
--     shipped statement changes one). Existing keys are kept as they are.
--     Statements of earlier versions still work unchanged against this table:
--     their INSERTs omit grain_key and their UPDATEs never set it.
--   * orleans_write_grain_state runs only the branch it needs, with the key
--     computed once, and plans kept for the session by PL/pgSQL.
--   * WriteToStorageKey calls it. The contract is unchanged: one row
--     "NewGrainStateVersion" on success, no row on a version conflict.
-- =============================================================================

ALTER TABLE orleans_grain_state ALTER COLUMN grain_key DROP EXPRESSION IF EXISTS;

CREATE OR REPLACE FUNCTION orleans_grain_state_fill_key()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    NEW.grain_key := orleans_grain_state_key(
        NEW.service_id, NEW.state_name, NEW.grain_id_n0, NEW.grain_id_n1, NEW.grain_id_ext);
    RETURN NEW;
END
$fn$;

DROP TRIGGER IF EXISTS orleans_grain_state_key_on_insert ON orleans_grain_state;
CREATE TRIGGER orleans_grain_state_key_on_insert
    BEFORE INSERT ON orleans_grain_state
    FOR EACH ROW EXECUTE FUNCTION orleans_grain_state_fill_key();

DROP TRIGGER IF EXISTS orleans_grain_state_key_on_identity_update ON orleans_grain_state;
CREATE TRIGGER orleans_grain_state_key_on_identity_update
    BEFORE UPDATE OF service_id, state_name, grain_id_n0, grain_id_n1, grain_id_ext, grain_key
    ON orleans_grain_state
    FOR EACH ROW EXECUTE FUNCTION orleans_grain_state_fill_key();

-- Returns one row (the new version) when the write took, none on a version
-- conflict: a stale version, or a first insert (p_version NULL) that found a
-- row already there.
CREATE OR REPLACE FUNCTION orleans_write_grain_state(
    p_service_id      text,
    p_state_name      text,
    p_n0              bigint,
    p_n1              bigint,
    p_key_ext         text,
    p_grain_id_hash   integer,
    p_grain_type_hash integer,
    p_version         integer,
    p_payload         bytea)
RETURNS SETOF integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_version integer;
BEGIN
    IF p_version IS NOT NULL THEN
        UPDATE orleans_grain_state s
           SET payload     = p_payload,
               version     = CASE WHEN s.version = 2147483647 THEN 1 ELSE s.version + 1 END,
               modified_at = now()
         WHERE s.grain_key  = orleans_grain_state_key(p_service_id, p_state_name, p_n0, p_n1, p_key_ext)
           AND s.service_id = p_service_id
           AND s.version    = p_version
        RETURNING s.version INTO v_version;
    ELSE
        INSERT INTO orleans_grain_state
               (service_id, state_name, grain_id_n0, grain_id_n1, grain_id_ext,
                grain_id_hash, grain_type_hash, payload, version)
        VALUES (p_service_id, p_state_name, p_n0, p_n1, p_key_ext,
                p_grain_id_hash, p_grain_type_hash, p_payload,
                1 + floor(random() * 1000000000)::integer)
        ON CONFLICT (grain_key) DO NOTHING
        RETURNING version INTO v_version;
    END IF;

    IF v_version IS NOT NULL THEN
        RETURN NEXT v_version;
    END IF;
END
$fn$;

UPDATE OrleansQuery SET QueryText = $q$
SELECT v AS "NewGrainStateVersion"
  FROM orleans_write_grain_state(@ServiceId, @GrainTypeString, @GrainIdN0, @GrainIdN1, @GrainIdExtensionString,
                                 @GrainIdHash, @GrainTypeHash, @GrainStateVersion, @PayloadBinary) AS v;
$q$
WHERE QueryKey = 'WriteToStorageKey';
