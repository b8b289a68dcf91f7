-- Down for 0005_trace_context: jobs forget their submitters' trace context.
ALTER TABLE "ix_jobs" DROP COLUMN "tracestate";--> statement-breakpoint
ALTER TABLE "ix_jobs" DROP COLUMN "traceparent";
