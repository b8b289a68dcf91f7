-- Down for 0001_callback_hosts: drops the circuit breaker's state. Nothing else refers to it;
-- deliveries it paused are simply due again.
DROP TABLE IF EXISTS "ix_callback_hosts";
