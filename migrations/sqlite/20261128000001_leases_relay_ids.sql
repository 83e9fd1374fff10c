-- The relay agent's circuit-id and remote-id (option 82 sub-options 1 and
-- 2, RFC 3046) of the request that got the lease: operators find a
-- subscriber's lease by the port or modem it sits behind. Written by every
-- grant (NULL when the request carried none), kept by renewals.
ALTER TABLE leases ADD COLUMN circuit_id BLOB;
ALTER TABLE leases ADD COLUMN remote_id BLOB;
