-- Down for 0004_failed_jobs: the operator's index of failed jobs goes; nothing else changed.
DROP INDEX "ix_jobs_failed_idx";
