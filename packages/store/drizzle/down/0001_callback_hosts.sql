-- Down for 0001_callback_hosts: drops the circuit breaker's state and the fair claim's index.
-- Nothing else refers to either; deliveries the breaker paused are simply due again.
DROP INDEX IF EXISTS "ix_jobs_callback_client_idx";
--> statement-breakpoint
DROP TABLE IF EXISTS "ix_callback_hosts";
