-- The embedded store is read whole at start and written by (subnet_id,
-- address), which the UNIQUE constraint already indexes. The two secondary
-- indexes were maintained on every grant and renewal and used by no query:
-- dropping them makes each lease write cheaper.
DROP INDEX IF EXISTS leases_client;
DROP INDEX IF EXISTS leases_state_expiry;
