-- Address ownership (docs/decisions.md, 9): every pool is cut into blocks,
-- and a server allocates from the blocks it owns, so servers do not race
-- for the same free addresses. `epoch` goes up whenever a block changes
-- hands; an allocation commits only while the block's owner and epoch are
-- still the ones its server knows (a fencing token), under a shared
-- advisory lock on the block that a change of hands takes exclusively.
-- The leases' primary key stays the last line of defence.
CREATE TABLE IF NOT EXISTS blocks (
    id          INT    GENERATED ALWAYS AS IDENTITY UNIQUE, -- the advisory lock key
    subnet_id   BIGINT NOT NULL,
    first_addr  BIGINT NOT NULL,
    last_addr   BIGINT NOT NULL,
    owner       TEXT,            -- a server id, NULL when free
    owner_epoch BIGINT NOT NULL DEFAULT 0, -- the owner's boot epoch
    epoch       BIGINT NOT NULL DEFAULT 0,
    claimed_at  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (subnet_id, first_addr, last_addr)
);
