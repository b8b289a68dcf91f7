-- 1M jobs for measuring GET /metrics (BENCHMARKS.md, "Metrics at 1M rows"). Into a scratch database migrated
-- with `ix migrate up`: psql "$URL" -f tools/bench/sql/metrics-1m.sql. Roughly the shape of a long-running
-- install: nearly every row terminal, a small live queue, 4 use_cases, 50 clients, 1% with a callback due.
insert into ix_jobs (ix_id, client_id, request_id, use_case, status, request, response, callback_url, callback_next_attempt_at,
                     attempts, created_at, started_at, finished_at, run_at, fair_tag, lease_expires_at,
                     cancel_requested_at, cancel_requested_by, traceparent)
select
  lpad(to_hex(g), 16, '0'),
  'client-' || (g % 50),
  'req-' || g,
  uc,
  st,
  jsonb_build_object('use_case', uc, 'ix_client_id', 'client-' || (g % 50), 'request_id', 'req-' || g,
    'ix_id', lpad(to_hex(g), 16, '0'), 'context', jsonb_build_object('texts', jsonb_build_array(repeat('Invoice 42, total 10.00 EUR. ', 8))),
    'options', jsonb_build_object('fields', jsonb_build_object('total', '\d+\.\d{2}'))),
  case when st in ('done', 'error', 'cancelled') then jsonb_build_object('use_case', uc, 'ix_client_id', 'client-' || (g % 50),
    'request_id', 'req-' || g, 'ix_id', lpad(to_hex(g), 16, '0'), 'error', case when st = 'done' then null else 'boom' end,
    'result', case when st = 'done' then jsonb_build_object('total', '10.00') else null end,
    'metadata', jsonb_build_object('pipeline', uc, 'started_at', '2026-01-01T00:00:00.000Z', 'finished_at', '2026-01-01T00:00:01.000Z',
      'duration_ms', 1000, 'attempt', 1)) end,
  case when g % 100 = 0 then 'https://hooks.example/' || (g % 50) end,
  case when g % 100 = 0 and st in ('done', 'error', 'cancelled') then now() - interval '1 minute' end,
  case when st = 'pending' then 0 else 1 end,
  now() - make_interval(secs => g),
  case when st <> 'pending' then now() - make_interval(secs => g) end,
  case when st in ('done', 'error', 'cancelled') then now() - make_interval(secs => g) end,
  case when st = 'pending' and g % 10 = 0 then now() + interval '1 hour' else now() - make_interval(secs => g) end,
  case when st = 'pending' and g % 10 = 0 then null else g end,
  case when st = 'running' then now() + interval '2 minutes' end,
  case when st = 'cancelled' then now() - make_interval(secs => g) end,
  case when st = 'cancelled' then 'client' end,
  case when g % 2 = 0 then '00-' || md5(g::text) || '-' || left(md5((g + 1)::text), 16) || '-01' end
from generate_series(1, 1000000) as g,
  lateral (select (array['extract_fields', 'ocr', 'classify', 'summarise'])[1 + g % 4] as uc) as u,
  lateral (select case
    when g % 100 < 94 then 'done'
    when g % 100 < 98 then 'error'
    when g % 100 < 99 then 'cancelled'
    when g % 1000 < 995 then 'pending'
    else 'running' end as st) as s;
vacuum analyze ix_jobs;
