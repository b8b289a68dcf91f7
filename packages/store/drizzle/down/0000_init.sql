-- Down for 0000_init: drops the jobs table with its indexes and constraints.
DROP TABLE IF EXISTS "ix_jobs";
