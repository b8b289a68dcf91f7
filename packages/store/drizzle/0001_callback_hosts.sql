CREATE TABLE "ix_callback_hosts" (
	"host" text PRIMARY KEY NOT NULL,
	"consecutive_failures" integer DEFAULT 0 NOT NULL,
	"paused_until" timestamp (6) with time zone,
	"updated_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ix_callback_hosts_failures_nonnegative" CHECK ("ix_callback_hosts"."consecutive_failures" >= 0)
);
--> statement-breakpoint
CREATE INDEX "ix_jobs_callback_client_idx" ON "ix_jobs" USING btree ("client_id","callback_next_attempt_at") WHERE "ix_jobs"."callback_next_attempt_at" is not null;