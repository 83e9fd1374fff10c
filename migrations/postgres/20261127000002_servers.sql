-- The servers of a cluster: each registers at start (its boot epoch goes
-- up by one, so its peers can tell a restart from a pause) and writes a
-- heartbeat every second; a server whose heartbeat stopped is known to be
-- gone without asking it.
CREATE TABLE IF NOT EXISTS servers (
    id           TEXT   PRIMARY KEY,
    boot_epoch   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL, -- seconds since the UNIX epoch
    version      TEXT   NOT NULL, -- the irondhcp version it runs
    address      TEXT   NOT NULL  -- its server identifier / anycast address
);
