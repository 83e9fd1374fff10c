-- Finding a subscriber's lease by the relay port or modem it sits behind
-- (irondhcp-ctl leases --circuit-id / --remote-id) without a scan.
CREATE INDEX IF NOT EXISTS leases_circuit_id ON leases (circuit_id) WHERE circuit_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS leases_remote_id ON leases (remote_id) WHERE remote_id IS NOT NULL;
