-- Down for 0002_job_control: back to the v1 lifecycle (pending, running, done, error).
-- What v1 cannot hold is folded into what it can: a cancelled job ends `error` (its response already
-- says it was cancelled, and by whom); a cancel still waiting for its worker is forgotten, so that run
-- finishes as v1 would finish it; jobs due later (a retry waiting out its backoff, a future run_at) become due
-- at once, in v1's order (created_at).
-- Priorities, max_attempts, the errors lists and leases are dropped.
ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_status_valid";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_finished_iff_terminal";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_response_iff_terminal";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_priority_range";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_max_attempts_valid";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_errors_bounded";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_lease_iff_running";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_cancel_requester";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_cancel_requested_state";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP CONSTRAINT "ix_jobs_cancelled_was_requested";--> statement-breakpoint
UPDATE "ix_jobs" SET "status" = 'error' WHERE "status" = 'cancelled';--> statement-breakpoint
DROP INDEX "ix_jobs_pending_idx";--> statement-breakpoint
DROP INDEX "ix_jobs_running_idx";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP COLUMN "priority";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP COLUMN "run_at";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP COLUMN "max_attempts";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP COLUMN "errors";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP COLUMN "cancel_requested_at";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP COLUMN "cancel_requested_by";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP COLUMN "lease_expires_at";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP COLUMN "submitted_run_at";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP COLUMN "submitted_max_attempts";--> statement-breakpoint
CREATE INDEX "ix_jobs_pending_idx" ON "ix_jobs" USING btree ("created_at","job_id") WHERE "ix_jobs"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "ix_jobs_running_idx" ON "ix_jobs" USING btree ("started_at") WHERE "ix_jobs"."status" = 'running';--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_status_valid" CHECK ("ix_jobs"."status" in ('pending', 'running', 'done', 'error'));--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_finished_iff_terminal" CHECK (("ix_jobs"."status" in ('done', 'error')) = ("ix_jobs"."finished_at" is not null));--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD CONSTRAINT "ix_jobs_response_iff_terminal" CHECK (("ix_jobs"."status" in ('done', 'error')) = ("ix_jobs"."response" is not null));
