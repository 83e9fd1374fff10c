-- Forward-only writes: every grant and state change bumps a row's version,
-- and renewals, releases, declines and expiries apply only to the version
-- they were decided on, so a write retried after a newer grant of the same
-- address does nothing (docs/decisions.md, lease safety).
ALTER TABLE leases ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
