-- The submitter's W3C trace context (traceparent, tracestate), so a job's run and callback join its trace.
-- Nullable: jobs submitted without one, and every job from before, have none.
ALTER TABLE "ix_jobs" ADD COLUMN "traceparent" text;--> statement-breakpoint
ALTER TABLE "ix_jobs" ADD COLUMN "tracestate" text;
