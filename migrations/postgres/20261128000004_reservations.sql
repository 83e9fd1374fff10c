-- Reservations made while the cluster runs (irondhcp-ctl reservations,
-- Kea's reservation-add, the REST API), beside the config file's. Every
-- server reads them; a change is followed by the others through the
-- audit table's id (reservations::follow).
CREATE TABLE IF NOT EXISTS reservations (
    subnet_id       BIGINT NOT NULL,
    identifier_type TEXT   NOT NULL CHECK (identifier_type IN ('hw-address', 'client-id')),
    identifier      BYTEA  NOT NULL,
    address         BIGINT NOT NULL CHECK (address BETWEEN 0 AND 4294967295),
    ip              INET   GENERATED ALWAYS AS ('0.0.0.0'::inet + address) STORED,
    hostname        TEXT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (subnet_id, identifier_type, identifier),
    UNIQUE (subnet_id, address)
);
-- Every change of a reservation: who, when, the row before and after.
CREATE TABLE IF NOT EXISTS reservation_audit (
    id              BIGSERIAL PRIMARY KEY,
    at              BIGINT NOT NULL,
    actor           TEXT   NOT NULL,
    action          TEXT   NOT NULL CHECK (action IN ('add', 'update', 'delete')),
    subnet_id       BIGINT NOT NULL,
    identifier_type TEXT   NOT NULL,
    identifier      BYTEA  NOT NULL,
    before          JSONB,
    after           JSONB
);
