-- The cluster's catch-up reads (a resync after a missed event, polling
-- while Redis is away) page through the rows changed since a time, in
-- (updated_at, subnet_id, address) order: this index serves them without
-- a scan of the whole table.
CREATE INDEX IF NOT EXISTS leases_by_update ON leases (updated_at, subnet_id, address);
