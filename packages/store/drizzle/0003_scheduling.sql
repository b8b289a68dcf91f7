CREATE TABLE "ix_workers" (
	"id" uuid PRIMARY KEY NOT NULL,
	"host" text NOT NULL,
	"pid" integer NOT NULL,
	"use_cases" text[] NOT NULL,
	"concurrency" integer NOT NULL,
	"started_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ix_workers_concurrency_positive" CHECK ("ix_workers"."concurrency" >= 1),
	CONSTRAINT "ix_workers_pid_positive" CHECK ("ix_workers"."pid" >= 1)
);
--> statement-breakpoint
DROP INDEX "ix_jobs_pending_idx";--> statement-breakpoint
-- Hand-written: the column is added nullable, filled from each row's request, then made NOT NULL.
ALTER TABLE "ix_jobs" ADD COLUMN "use_case" text;--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD COLUMN "fair_tag" bigint;--> statement-breakpoint
-- A row whose request has no readable use_case cannot run; 'unknown' routes it nowhere, and reads report it.
UPDATE "ix_jobs" SET "use_case" = coalesce("request"->>'use_case', 'unknown');--> statement-breakpoint
-- Rows that ran keep turn 0 (only running rows' turns matter: the queue's current turn). Due pending rows take
-- turns per client from here on: each client's, oldest first, get 1, 2, 3… in each queue (use_case, priority),
-- as if submitted into an empty queue together. Pending rows due later stay without a turn until due.
UPDATE "ix_jobs" SET "fair_tag" = 0 WHERE "status" <> 'pending';--> statement-breakpoint
UPDATE "ix_jobs" AS j SET "fair_tag" = t.turn
FROM (
	SELECT "job_id", row_number() OVER (PARTITION BY "client_id", "use_case", "priority" ORDER BY "run_at", "created_at", "job_id") AS turn
	FROM "ix_jobs" WHERE "status" = 'pending' AND "run_at" <= now()
) AS t
WHERE j."job_id" = t."job_id";--> statement-breakpoint
ALTER TABLE "ix_jobs" ALTER COLUMN "use_case" SET NOT NULL;--> statement-breakpoint
CREATE INDEX "ix_workers_last_seen_idx" ON "ix_workers" USING btree ("last_seen_at");--> statement-breakpoint
CREATE INDEX "ix_jobs_claim_idx" ON "ix_jobs" USING btree ("use_case","priority" DESC NULLS LAST,"fair_tag") WHERE "ix_jobs"."status" = 'pending' and "ix_jobs"."fair_tag" is not null;--> statement-breakpoint
CREATE INDEX "ix_jobs_client_queue_idx" ON "ix_jobs" USING btree ("client_id","use_case","priority","fair_tag") WHERE "ix_jobs"."status" = 'pending' and "ix_jobs"."fair_tag" is not null;--> statement-breakpoint
CREATE INDEX "ix_jobs_scheduled_idx" ON "ix_jobs" USING btree ("run_at") WHERE "ix_jobs"."status" = 'pending' and "ix_jobs"."fair_tag" is null;--> statement-breakpoint
CREATE INDEX "ix_jobs_running_queue_idx" ON "ix_jobs" USING btree ("use_case","priority","fair_tag") WHERE "ix_jobs"."status" = 'running';
