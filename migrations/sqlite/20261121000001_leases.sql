-- Leases of the embedded (single box) store.
-- Addresses are kept as dotted text so an operator can read the file with
-- the sqlite3 shell; (subnet_id, address) is UNIQUE: the last line of
-- defence against an address given twice.
CREATE TABLE IF NOT EXISTS leases (
    subnet_id    INTEGER NOT NULL,
    address      TEXT    NOT NULL,
    client_key   BLOB    NOT NULL,
    hw_address   BLOB,
    state        TEXT    NOT NULL CHECK (state IN ('leased', 'declined', 'released', 'expired')),
    expiry       INTEGER NOT NULL, -- seconds since the UNIX epoch
    allocated_by TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (subnet_id, address)
);
CREATE INDEX IF NOT EXISTS leases_client ON leases (subnet_id, client_key);
CREATE INDEX IF NOT EXISTS leases_state_expiry ON leases (state, expiry);
