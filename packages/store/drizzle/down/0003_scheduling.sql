-- Down for 0003_scheduling: back to one due-order queue. The worker registry, the use_case column and the
-- turn order are dropped; pending jobs are claimed by run_at again.
DROP INDEX "ix_jobs_running_queue_idx";--> statement-breakpoint
DROP INDEX "ix_jobs_client_queue_idx";--> statement-breakpoint
DROP INDEX "ix_jobs_claim_idx";--> statement-breakpoint
DROP INDEX "ix_jobs_scheduled_idx";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP COLUMN "fair_tag";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP COLUMN "use_case";--> statement-breakpoint
CREATE INDEX "ix_jobs_pending_idx" ON "ix_jobs" USING btree ("run_at","job_id") WHERE "ix_jobs"."status" = 'pending';--> statement-breakpoint
DROP TABLE "ix_workers";
