-- Reservations made while the server runs (irondhcp-ctl reservations,
-- Kea's reservation-add, the REST API), beside the config file's. One row
-- per client and subnet; an address is reserved once per subnet.
CREATE TABLE IF NOT EXISTS reservations (
    subnet_id       INTEGER NOT NULL,
    identifier_type TEXT    NOT NULL CHECK (identifier_type IN ('hw-address', 'client-id')),
    identifier      BLOB    NOT NULL,
    address         TEXT    NOT NULL,
    hostname        TEXT,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (subnet_id, identifier_type, identifier),
    UNIQUE (subnet_id, address)
);
-- Every change of a reservation: who made it, when, and the row before
-- and after (JSON; NULL for none). Written in the change's transaction.
CREATE TABLE IF NOT EXISTS reservation_audit (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    actor           TEXT    NOT NULL,
    action          TEXT    NOT NULL CHECK (action IN ('add', 'update', 'delete')),
    subnet_id       INTEGER NOT NULL,
    identifier_type TEXT    NOT NULL,
    identifier      BLOB    NOT NULL,
    before          TEXT,
    after           TEXT
);
