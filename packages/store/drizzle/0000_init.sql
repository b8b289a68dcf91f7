CREATE TABLE "ix_jobs" (
	"job_id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"ix_id" text NOT NULL,
	"client_id" text NOT NULL,
	"request_id" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"request" jsonb NOT NULL,
	"response" jsonb,
	"callback_url" text,
	"callback_status" text,
	"callback_attempts" integer DEFAULT 0 NOT NULL,
	"callback_next_attempt_at" timestamp (6) with time zone,
	"callback_last_error" text,
	"attempts" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp (6) with time zone,
	"finished_at" timestamp (6) with time zone,
	CONSTRAINT "ix_jobs_status_valid" CHECK ("ix_jobs"."status" in ('pending', 'running', 'done', 'error')),
	CONSTRAINT "ix_jobs_callback_status_valid" CHECK ("ix_jobs"."callback_status" is null or "ix_jobs"."callback_status" in ('delivered', 'failed')),
	CONSTRAINT "ix_jobs_ix_id_format" CHECK ("ix_jobs"."ix_id" ~ '^[0-9a-f]{16}$'),
	CONSTRAINT "ix_jobs_attempts_nonnegative" CHECK ("ix_jobs"."attempts" >= 0 and "ix_jobs"."callback_attempts" >= 0),
	CONSTRAINT "ix_jobs_pending_not_started" CHECK ("ix_jobs"."status" <> 'pending' or "ix_jobs"."started_at" is null),
	CONSTRAINT "ix_jobs_running_started" CHECK ("ix_jobs"."status" <> 'running' or "ix_jobs"."started_at" is not null),
	CONSTRAINT "ix_jobs_finished_iff_terminal" CHECK (("ix_jobs"."status" in ('done', 'error')) = ("ix_jobs"."finished_at" is not null)),
	CONSTRAINT "ix_jobs_response_iff_terminal" CHECK (("ix_jobs"."status" in ('done', 'error')) = ("ix_jobs"."response" is not null)),
	CONSTRAINT "ix_jobs_callback_needs_url" CHECK ("ix_jobs"."callback_url" is not null or ("ix_jobs"."callback_status" is null and "ix_jobs"."callback_next_attempt_at" is null))
);
--> statement-breakpoint
CREATE UNIQUE INDEX "ix_jobs_correlation_key" ON "ix_jobs" USING btree ("client_id","request_id");--> statement-breakpoint
CREATE INDEX "ix_jobs_pending_idx" ON "ix_jobs" USING btree ("created_at","job_id") WHERE "ix_jobs"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "ix_jobs_running_idx" ON "ix_jobs" USING btree ("started_at") WHERE "ix_jobs"."status" = 'running';--> statement-breakpoint
CREATE INDEX "ix_jobs_callback_due_idx" ON "ix_jobs" USING btree ("callback_next_attempt_at") WHERE "ix_jobs"."callback_next_attempt_at" is not null;--> statement-breakpoint
CREATE INDEX "ix_jobs_client_created_idx" ON "ix_jobs" USING btree ("client_id","created_at","job_id");--> statement-breakpoint
CREATE INDEX "ix_jobs_finished_idx" ON "ix_jobs" USING btree ("finished_at") WHERE "ix_jobs"."finished_at" is not null;