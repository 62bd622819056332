-- =============================================================================
-- Migration 004: the gateway list leaves out silos superseded by a newer
-- generation on the same address.
--
-- A silo killed with SIGKILL stays "Active" in orleans_membership until its
-- peers declare it dead, or until a silo restarted on its address marks it dead
-- (Orleans' "older version of myself"). A cluster killed whole and started
-- again at once therefore lists its dead silos as Active gateways for a few
-- seconds, on the very endpoints where their successors are starting. An
-- Orleans client that starts in that window connects to a successor before it
-- is active; the fault suite saw a client's first request on such a
-- connection go unanswered for its whole 30-s response timeout, and the API
-- served nothing until then (docs/reliability.md, "Full restart").
--
-- A row with a newer generation on the same address and port (whatever its
-- status) is a later start of that silo, so the older row is dead: it is not a
-- gateway. The successor appears in the list once it is Active itself. Rows
-- of silos that have not restarted are listed exactly as before.
-- =============================================================================

UPDATE OrleansQuery SET QueryText = $q$
SELECT m.address    AS "Address",
       m.proxy_port AS "ProxyPort",
       m.generation AS "Generation"
  FROM orleans_membership m
 WHERE m.deployment_id = @DeploymentId
   AND m.status        = @Status
   AND m.proxy_port    > 0
   AND NOT EXISTS (SELECT 1
                     FROM orleans_membership n
                    WHERE n.deployment_id = m.deployment_id
                      AND n.address       = m.address
                      AND n.port          = m.port
                      AND n.generation    > m.generation);
$q$
WHERE QueryKey = 'GatewaysQueryKey';
