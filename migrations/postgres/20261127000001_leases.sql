-- Leases of the cluster store: every server of a cluster reads and writes
-- these rows. (subnet_id, address) is the primary key: the last line of
-- defence against an address given to two clients, whichever servers
-- decided it. Addresses are IPv4 as integers, so address blocks are plain
-- ranges; `ip` shows them to people reading the table.
CREATE TABLE IF NOT EXISTS leases (
    subnet_id    BIGINT NOT NULL,
    address      BIGINT NOT NULL CHECK (address BETWEEN 0 AND 4294967295),
    ip           INET   GENERATED ALWAYS AS ('0.0.0.0'::inet + address) STORED,
    client_key   BYTEA  NOT NULL,
    hw_address   BYTEA,
    state        TEXT   NOT NULL CHECK (state IN ('leased', 'declined', 'released', 'expired')),
    expiry       BIGINT NOT NULL, -- durable expiry, seconds since the UNIX epoch
    allocated_by TEXT   NOT NULL, -- the server that wrote the grant
    updated_at   BIGINT NOT NULL,
    -- Bumped by every grant and state change; renewals, releases, declines
    -- and expiries apply only to the version they were decided on
    -- (forward-only writes, docs/decisions.md).
    version      BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (subnet_id, address)
);
