ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_status_valid";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_finished_iff_terminal";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_response_iff_terminal";--> statement-breakpoint
DROP INDEX "ix_jobs_pending_idx";--> statement-breakpoint
DROP INDEX "ix_jobs_running_idx";--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD COLUMN "priority" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD COLUMN "run_at" timestamp (6) with time zone DEFAULT now() NOT NULL;--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD COLUMN "max_attempts" integer;--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD COLUMN "errors" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD COLUMN "cancel_requested_at" timestamp (6) with time zone;--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD COLUMN "cancel_requested_by" text;--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD COLUMN "lease_expires_at" timestamp (6) with time zone;--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD COLUMN "submitted_run_at" timestamp (6) with time zone;--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD COLUMN "submitted_max_attempts" integer;--> statement-breakpoint
-- Hand-written: v1 rows move in place before the new constraints and indexes are built.
-- A v1 job was due when it was submitted.
UPDATE "ix_jobs" SET "run_at" = "created_at";--> statement-breakpoint
-- A v1 running row has no lease: it gets the one v1's rescuer gave it, until started_at plus the default
-- orphan horizon (2 x the default 60 s pipeline timeout). The rescuer's horizon rule still applies too.
UPDATE "ix_jobs" SET "lease_expires_at" = "started_at" + interval '120 seconds' WHERE "status" = 'running';--> statement-breakpoint
CREATE INDEX "ix_jobs_pending_idx" ON "ix_jobs" USING btree ("run_at","job_id") WHERE "ix_jobs"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "ix_jobs_running_idx" ON "ix_jobs" USING btree ("lease_expires_at") WHERE "ix_jobs"."status" = 'running';--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_priority_range" CHECK ("ix_jobs"."priority" between -100 and 100);--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_max_attempts_valid" CHECK (("ix_jobs"."max_attempts" is null) = ("ix_jobs"."submitted_max_attempts" is null) and "ix_jobs"."submitted_max_attempts" >= 1 and "ix_jobs"."max_attempts" >= "ix_jobs"."submitted_max_attempts");--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_errors_bounded" CHECK (jsonb_typeof("ix_jobs"."errors") = 'array' and jsonb_array_length("ix_jobs"."errors") <= 20);--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_lease_iff_running" CHECK (("ix_jobs"."status" = 'running') = ("ix_jobs"."lease_expires_at" is not null));--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_cancel_requester" CHECK (("ix_jobs"."cancel_requested_at" is null) = ("ix_jobs"."cancel_requested_by" is null) and ("ix_jobs"."cancel_requested_by" is null or "ix_jobs"."cancel_requested_by" in ('client', 'operator')));--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_cancel_requested_state" CHECK ("ix_jobs"."cancel_requested_at" is null or "ix_jobs"."status" in ('running', 'cancelled'));--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_cancelled_was_requested" CHECK ("ix_jobs"."status" <> 'cancelled' or "ix_jobs"."cancel_requested_at" is not null);--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_status_valid" CHECK ("ix_jobs"."status" in ('pending', 'running', 'done', 'error', 'cancelled'));--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_finished_iff_terminal" CHECK (("ix_jobs"."status" in ('done', 'error', 'cancelled')) = ("ix_jobs"."finished_at" is not null));--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_response_iff_terminal" CHECK (("ix_jobs"."status" in ('done', 'error', 'cancelled')) = ("ix_jobs"."response" is not null));