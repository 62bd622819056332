-- =============================================================================
-- Transactor: PostgreSQL (15+) backing store for the Orleans 10.4.2 ADO.NET
-- providers (Invariant "Npgsql"):
--   * Microsoft.Orleans.Persistence.AdoNet  (grain storage)
--   * Microsoft.Orleans.Clustering.AdoNet   (membership / gateway list)
--   * Microsoft.Orleans.Reminders.AdoNet    (reminder table)
--
-- Written by the Transactor project from the providers' contract (parameter
-- names, result column names, return conventions; see docs/persistence.md).
-- Table layout and query text are our own.
--
-- Migration 001. Transactor.Persistence.LedgerSchema applies it once, in one
-- transaction, at start-up. It is also idempotent on its own (tables and
-- indexes are created only if missing; the OrleansQuery rows are upserted).
--
-- Scoping rules:
--   grain state : ServiceId  (+ state name + grain key)
--   membership  : DeploymentId (= ClusterOptions.ClusterId)
--   reminders   : ServiceId
--
-- Conventions used by every query below:
--   * Parameters are written @Name; the providers add them WITHOUT a prefix and
--     with explicit DbTypes, Npgsql binds @Name to them.
--   * Every result column the providers read by name is aliased in double
--     quotes with the exact spelling the provider asks for ("PayloadBinary",
--     "Version", ...), so we never depend on case-insensitive name fallback.
--   * All timestamps are timestamptz.  The providers send DateTime values with
--     DbType.DateTime (Npgsql: timestamptz, Kind=Utc) and read them back with
--     GetDateTime + SpecifyKind(Utc).
-- =============================================================================


-- -----------------------------------------------------------------------------
-- Query catalogue.  The name is fixed by the providers, which run
--   SELECT QueryKey, QueryText FROM OrleansQuery [WHERE QueryKey = ...]
-- with unquoted identifiers, i.e. against orleansquery(querykey, querytext).
-- -----------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS OrleansQuery
(
    QueryKey  varchar(64) NOT NULL,
    QueryText text        NOT NULL,
    CONSTRAINT orleansquery_pk PRIMARY KEY (QueryKey)
);

-- =============================================================================
-- 1. Grain storage
-- =============================================================================

-- Canonical, injective identity of one grain-state record, hashed to a fixed
-- 32-byte key so that arbitrarily long state names / string keys never hit the
-- btree tuple-size limit.  Each text part is length-prefixed and the nullable
-- key extension is tagged, so ('a','bc') and ('ab','c'), or NULL and '' never
-- collide.  Declared IMMUTABLE: the result depends only on the arguments
-- (convert_to with a fixed target encoding).
CREATE OR REPLACE FUNCTION orleans_grain_state_key(
    p_service_id text,
    p_state_name text,
    p_n0         bigint,
    p_n1         bigint,
    p_key_ext    text)
RETURNS bytea
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $fn$
    SELECT sha256(convert_to(
               'v1|'
            || length(p_service_id)::text || ':' || p_service_id || '|'
            || length(p_state_name)::text || ':' || p_state_name || '|'
            || p_n0::text || '|' || p_n1::text || '|'
            || CASE WHEN p_key_ext IS NULL THEN 'N'
                    ELSE 'S' || length(p_key_ext)::text || ':' || p_key_ext END,
            'UTF8'))
$fn$;

CREATE TABLE IF NOT EXISTS orleans_grain_state
(
    service_id      text        NOT NULL,  -- ClusterOptions.ServiceId
    state_name      text        NOT NULL,  -- @GrainTypeString (the state name, see CONTRACT.md)
    grain_id_n0     bigint      NOT NULL,  -- @GrainIdN0
    grain_id_n1     bigint      NOT NULL,  -- @GrainIdN1
    grain_id_ext    text        NULL,      -- @GrainIdExtensionString (string key or key extension)
    grain_id_hash   integer     NOT NULL,  -- informational only (provider-computed hash)
    grain_type_hash integer     NOT NULL,  -- informational only (provider-computed hash)
    payload         bytea       NULL,      -- NULL after ClearState (record kept, version bumped)
    version         integer     NOT NULL,  -- the ETag
    modified_at     timestamptz NOT NULL DEFAULT now(),
    grain_key       bytea       GENERATED ALWAYS AS (
                        orleans_grain_state_key(service_id, state_name, grain_id_n0, grain_id_n1, grain_id_ext)
                    ) STORED,
    CONSTRAINT orleans_grain_state_pk PRIMARY KEY (grain_key)
);

CREATE INDEX IF NOT EXISTS orleans_grain_state_service_idx
    ON orleans_grain_state (service_id, state_name);

-- =============================================================================
-- 2. Cluster membership
-- =============================================================================

-- One row per deployment (cluster).  "version" is the membership table
-- version; every successful InsertRow/UpdateRow increments it atomically with
-- the row change.
CREATE TABLE IF NOT EXISTS orleans_membership_version
(
    deployment_id text        NOT NULL,
    version       integer     NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orleans_membership_version_pk PRIMARY KEY (deployment_id)
);

CREATE TABLE IF NOT EXISTS orleans_membership
(
    deployment_id text        NOT NULL,
    address       text        NOT NULL,   -- IP address as text (provider reads it as string)
    port          integer     NOT NULL,
    generation    integer     NOT NULL,
    silo_name     text        NOT NULL,
    host_name     text        NOT NULL,
    status        integer     NOT NULL,   -- Orleans.Runtime.SiloStatus (3 = Active, 6 = Dead)
    proxy_port    integer     NOT NULL,   -- 0 = not a gateway
    suspect_times text        NULL,       -- "silo,date|silo,date" as produced by the provider
    start_time    timestamptz NOT NULL,
    iamalive_time timestamptz NOT NULL,
    CONSTRAINT orleans_membership_pk PRIMARY KEY (deployment_id, address, port, generation),
    CONSTRAINT orleans_membership_version_fk FOREIGN KEY (deployment_id)
        REFERENCES orleans_membership_version (deployment_id) ON DELETE CASCADE
);

-- =============================================================================
-- 3. Reminders
-- =============================================================================
CREATE TABLE IF NOT EXISTS orleans_reminder
(
    service_id    text        NOT NULL,
    grain_id      text        NOT NULL,   -- GrainId.ToString(), e.g. "ledgeraccount/42"
    reminder_name text        NOT NULL,
    start_time    timestamptz NOT NULL,
    period        bigint      NOT NULL,   -- milliseconds
    grain_hash    integer     NOT NULL,   -- (int)GrainId.GetUniformHashCode(), signed
    version       integer     NOT NULL,   -- the ETag
    CONSTRAINT orleans_reminder_pk PRIMARY KEY (service_id, grain_id, reminder_name)
);

CREATE INDEX IF NOT EXISTS orleans_reminder_hash_idx
    ON orleans_reminder (service_id, grain_hash);

-- =============================================================================
-- 4. Query rows
-- =============================================================================
INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES

-- ---------------------------------------------------------------- storage ---
-- Params: GrainIdHash int, GrainIdN0 long, GrainIdN1 long, GrainTypeHash int,
--         GrainTypeString string, GrainIdExtensionString string?, ServiceId string.
-- Returns 0 or 1 row: "PayloadBinary" bytea (NULL = no state), "Version" int.
('ReadFromStorageKey', $q$
SELECT s.payload AS "PayloadBinary",
       s.version AS "Version"
  FROM orleans_grain_state s
 WHERE s.grain_key  = orleans_grain_state_key(@ServiceId, @GrainTypeString, @GrainIdN0, @GrainIdN1, @GrainIdExtensionString)
   AND s.service_id = @ServiceId;
$q$),

-- Params: as above + GrainStateVersion int? (NULL = grain believes no record
-- exists) + PayloadBinary bytea.
-- Returns exactly one row "NewGrainStateVersion" on success, NO row on a
-- version conflict (stale version, or a first insert that lost the race);
-- the provider turns "no row" into InconsistentStateException.
('WriteToStorageKey', $q$
WITH upd AS (
    UPDATE orleans_grain_state s
       SET payload     = @PayloadBinary,
           version     = CASE WHEN s.version = 2147483647 THEN 1 ELSE s.version + 1 END,
           modified_at = now()
     WHERE @GrainStateVersion IS NOT NULL
       AND s.grain_key  = orleans_grain_state_key(@ServiceId, @GrainTypeString, @GrainIdN0, @GrainIdN1, @GrainIdExtensionString)
       AND s.service_id = @ServiceId
       AND s.version    = @GrainStateVersion
    RETURNING s.version
), ins AS (
    INSERT INTO orleans_grain_state
           (service_id, state_name, grain_id_n0, grain_id_n1, grain_id_ext,
            grain_id_hash, grain_type_hash, payload, version)
    SELECT @ServiceId, @GrainTypeString, @GrainIdN0, @GrainIdN1, @GrainIdExtensionString,
           @GrainIdHash, @GrainTypeHash, @PayloadBinary,
           1 + floor(random() * 1000000000)::integer
     WHERE @GrainStateVersion IS NULL
    ON CONFLICT (grain_key) DO NOTHING
    RETURNING version
)
SELECT version AS "NewGrainStateVersion" FROM upd
UNION ALL
SELECT version FROM ins;
$q$),

-- ClearState with DeleteStateOnClear = false: keep the row, drop the payload,
-- bump the version.  The provider reads column 0 of the single row as the new
-- ETag; NO row = version conflict.
('ClearStorageKey', $q$
UPDATE orleans_grain_state s
   SET payload     = NULL,
       version     = CASE WHEN s.version = 2147483647 THEN 1 ELSE s.version + 1 END,
       modified_at = now()
 WHERE s.grain_key  = orleans_grain_state_key(@ServiceId, @GrainTypeString, @GrainIdN0, @GrainIdN1, @GrainIdExtensionString)
   AND s.service_id = @ServiceId
   AND s.version    = @GrainStateVersion
RETURNING s.version AS "NewGrainStateVersion";
$q$),

-- ClearState with DeleteStateOnClear = true: delete the row if the version
-- matches.  Column 0 must differ from the caller's ETag (we return old+1);
-- NO row = version conflict.
('DeleteStorageKey', $q$
DELETE FROM orleans_grain_state s
 WHERE s.grain_key  = orleans_grain_state_key(@ServiceId, @GrainTypeString, @GrainIdN0, @GrainIdN1, @GrainIdExtensionString)
   AND s.service_id = @ServiceId
   AND s.version    = @GrainStateVersion
RETURNING s.version::bigint + 1 AS "DeletedVersionPlusOne";
$q$),

-- ------------------------------------------------------------- membership ---
-- Params: DeploymentId.  One row, one column: true if the version row was
-- created now, false if it already existed.
('InsertMembershipVersionKey', $q$
WITH ins AS (
    INSERT INTO orleans_membership_version (deployment_id, version)
    VALUES (@DeploymentId, 0)
    ON CONFLICT (deployment_id) DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM ins) AS "Inserted";
$q$),

-- Params: DeploymentId, Address, Port, Generation, SiloName, HostName, Status,
-- ProxyPort, StartTime, IAmAliveTime, Version (= table version ETag the caller
-- read).  Succeeds only if the table version still equals @Version and the
-- silo row does not exist yet; bumps the table version in the same statement.
-- One row, one boolean column.
('InsertMembershipKey', $q$
WITH bump AS (
    UPDATE orleans_membership_version v
       SET version = v.version + 1, updated_at = now()
     WHERE v.deployment_id = @DeploymentId
       AND v.version       = @Version
       AND NOT EXISTS (SELECT 1 FROM orleans_membership m
                        WHERE m.deployment_id = @DeploymentId
                          AND m.address = @Address AND m.port = @Port AND m.generation = @Generation)
    RETURNING v.deployment_id
), ins AS (
    INSERT INTO orleans_membership
           (deployment_id, address, port, generation, silo_name, host_name,
            status, proxy_port, suspect_times, start_time, iamalive_time)
    SELECT b.deployment_id, @Address, @Port, @Generation, COALESCE(@SiloName, ''), COALESCE(@HostName, ''),
           @Status, @ProxyPort, NULL, @StartTime, @IAmAliveTime
      FROM bump b
    ON CONFLICT (deployment_id, address, port, generation) DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM ins) AS "Inserted";
$q$),

-- Params: DeploymentId, Address, Port, Generation, Status, SuspectTimes,
-- IAmAliveTime, Version.  Same optimistic rule as InsertMembershipKey, for an
-- existing row.  One row, one boolean column.
('UpdateMembershipKey', $q$
WITH bump AS (
    UPDATE orleans_membership_version v
       SET version = v.version + 1, updated_at = now()
     WHERE v.deployment_id = @DeploymentId
       AND v.version       = @Version
       AND EXISTS (SELECT 1 FROM orleans_membership m
                    WHERE m.deployment_id = @DeploymentId
                      AND m.address = @Address AND m.port = @Port AND m.generation = @Generation)
    RETURNING v.deployment_id
), upd AS (
    UPDATE orleans_membership m
       SET status        = @Status,
           suspect_times = @SuspectTimes,
           iamalive_time = @IAmAliveTime
      FROM bump b
     WHERE m.deployment_id = b.deployment_id
       AND m.address = @Address AND m.port = @Port AND m.generation = @Generation
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM upd) AS "Updated";
$q$),

-- Params: DeploymentId, Address, Port, Generation, IAmAliveTime.  Does not
-- touch the table version (result ignored by the provider).
('UpdateIAmAlivetimeKey', $q$
UPDATE orleans_membership
   SET iamalive_time = @IAmAliveTime
 WHERE deployment_id = @DeploymentId
   AND address = @Address AND port = @Port AND generation = @Generation;
$q$),

-- Params: DeploymentId, Address, Port, Generation.  ALWAYS at least one row
-- (the provider indexes row 0 for the table version): the version row
-- left-joined to the requested silo; silo columns are NULL when absent.
('MembershipReadRowKey', $q$
SELECT COALESCE(v.version, 0) AS "Version",
       m.address       AS "Address",
       m.port          AS "Port",
       m.generation    AS "Generation",
       m.silo_name     AS "SiloName",
       m.host_name     AS "HostName",
       m.status        AS "Status",
       m.proxy_port    AS "ProxyPort",
       m.suspect_times AS "SuspectTimes",
       m.start_time    AS "StartTime",
       m.iamalive_time AS "IAmAliveTime"
  FROM (SELECT @DeploymentId AS deployment_id) d
  LEFT JOIN orleans_membership_version v ON v.deployment_id = d.deployment_id
  LEFT JOIN orleans_membership m
         ON m.deployment_id = d.deployment_id
        AND m.address = @Address AND m.port = @Port AND m.generation = @Generation;
$q$),

-- Params: DeploymentId.  ALWAYS at least one row, as above, one row per silo.
('MembershipReadAllKey', $q$
SELECT COALESCE(v.version, 0) AS "Version",
       m.address       AS "Address",
       m.port          AS "Port",
       m.generation    AS "Generation",
       m.silo_name     AS "SiloName",
       m.host_name     AS "HostName",
       m.status        AS "Status",
       m.proxy_port    AS "ProxyPort",
       m.suspect_times AS "SuspectTimes",
       m.start_time    AS "StartTime",
       m.iamalive_time AS "IAmAliveTime"
  FROM (SELECT @DeploymentId AS deployment_id) d
  LEFT JOIN orleans_membership_version v ON v.deployment_id = d.deployment_id
  LEFT JOIN orleans_membership m ON m.deployment_id = d.deployment_id;
$q$),

-- Params: DeploymentId, Status (= 3, Active).  Rows: Address, ProxyPort, Generation.
('GatewaysQueryKey', $q$
SELECT m.address    AS "Address",
       m.proxy_port AS "ProxyPort",
       m.generation AS "Generation"
  FROM orleans_membership m
 WHERE m.deployment_id = @DeploymentId
   AND m.status        = @Status
   AND m.proxy_port    > 0;
$q$),

-- Params: DeploymentId.  Removes the silo rows and the version row.
('DeleteMembershipTableEntriesKey', $q$
WITH gone AS (
    DELETE FROM orleans_membership WHERE deployment_id = @DeploymentId
)
DELETE FROM orleans_membership_version WHERE deployment_id = @DeploymentId;
$q$),

-- Params: DeploymentId, IAmAliveTime (cut-off).  Bulk fallback: 10.4.2 only
-- uses it when CleanupDefunctSiloEntryKey is absent, but it is REQUIRED to exist.
('CleanupDefunctSiloEntriesKey', $q$
DELETE FROM orleans_membership
 WHERE deployment_id = @DeploymentId
   AND status        = 6
   AND iamalive_time < @IAmAliveTime
   AND start_time    < @IAmAliveTime;
$q$),

-- Optional in 10.4.2 (preferred when present).  Params: DeploymentId, Address,
-- Port, Generation, SuspectTimes, StartTime, IAmAliveTime: the values the
-- provider captured when it judged the row defunct.  Delete only if the row is
-- still Dead and unchanged since then.
('CleanupDefunctSiloEntryKey', $q$
DELETE FROM orleans_membership
 WHERE deployment_id = @DeploymentId
   AND address = @Address AND port = @Port AND generation = @Generation
   AND status        = 6
   AND start_time    = @StartTime
   AND iamalive_time = @IAmAliveTime
   AND COALESCE(suspect_times, '') = COALESCE(@SuspectTimes, '');
$q$),

-- -------------------------------------------------------------- reminders ---
-- Params: ServiceId, GrainId.  Rows: GrainId, ReminderName, StartTime, Period, Version.
('ReadReminderRowsKey', $q$
SELECT r.grain_id AS "GrainId", r.reminder_name AS "ReminderName",
       r.start_time AS "StartTime", r.period AS "Period", r.version AS "Version"
  FROM orleans_reminder r
 WHERE r.service_id = @ServiceId
   AND r.grain_id   = @GrainId;
$q$),

-- Params: ServiceId, GrainId, ReminderName.  0 or 1 row.
('ReadReminderRowKey', $q$
SELECT r.grain_id AS "GrainId", r.reminder_name AS "ReminderName",
       r.start_time AS "StartTime", r.period AS "Period", r.version AS "Version"
  FROM orleans_reminder r
 WHERE r.service_id    = @ServiceId
   AND r.grain_id      = @GrainId
   AND r.reminder_name = @ReminderName;
$q$),

-- Params: ServiceId, BeginHash int, EndHash int (uint hashes cast to int).
-- Used when (int)BeginHash < (int)EndHash: the range (Begin, End] in signed order.
('ReadRangeRows1Key', $q$
SELECT r.grain_id AS "GrainId", r.reminder_name AS "ReminderName",
       r.start_time AS "StartTime", r.period AS "Period", r.version AS "Version"
  FROM orleans_reminder r
 WHERE r.service_id = @ServiceId
   AND r.grain_hash > @BeginHash
   AND r.grain_hash <= @EndHash;
$q$),

-- Used otherwise: the wrapping range (Begin, +inf) U (-inf, End]; Begin = End
-- means the whole ring.
('ReadRangeRows2Key', $q$
SELECT r.grain_id AS "GrainId", r.reminder_name AS "ReminderName",
       r.start_time AS "StartTime", r.period AS "Period", r.version AS "Version"
  FROM orleans_reminder r
 WHERE r.service_id = @ServiceId
   AND (r.grain_hash > @BeginHash OR r.grain_hash <= @EndHash);
$q$),

-- Params: ServiceId, GrainHash int, GrainId, ReminderName, StartTime, Period
-- (int or long ms).  Insert or overwrite; always returns one row "Version"
-- holding the new ETag.
('UpsertReminderRowKey', $q$
INSERT INTO orleans_reminder AS r
       (service_id, grain_id, reminder_name, start_time, period, grain_hash, version)
VALUES (@ServiceId, @GrainId, @ReminderName, @StartTime, @Period, @GrainHash,
        1 + floor(random() * 1000000000)::integer)
ON CONFLICT (service_id, grain_id, reminder_name) DO UPDATE
   SET start_time = EXCLUDED.start_time,
       period     = EXCLUDED.period,
       grain_hash = EXCLUDED.grain_hash,
       version    = CASE WHEN r.version = 2147483647 THEN 1 ELSE r.version + 1 END
RETURNING r.version AS "Version";
$q$),

-- Params: ServiceId, GrainId, ReminderName, Version.  One row, one boolean.
('DeleteReminderRowKey', $q$
WITH del AS (
    DELETE FROM orleans_reminder r
     WHERE r.service_id    = @ServiceId
       AND r.grain_id      = @GrainId
       AND r.reminder_name = @ReminderName
       AND r.version       = @Version
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM del) AS "Deleted";
$q$),

-- Params: ServiceId.  Result ignored.
('DeleteReminderRowsKey', $q$
DELETE FROM orleans_reminder WHERE service_id = @ServiceId;
$q$)

ON CONFLICT (QueryKey) DO UPDATE SET QueryText = EXCLUDED.QueryText;

