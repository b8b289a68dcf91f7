import { sql, type SQL } from "drizzle-orm";

/**
 * Fair share: the turn order the claim follows (docs/ARCHITECTURE.md, "Scheduling").
 *
 * Each (use_case, priority) is a queue. Every pending job holds a turn
 * (`fair_tag`) in its queue; the claim takes the lowest turns first. A job's
 * turn is given once, at insert: one after its client's last pending turn in
 * that queue, but never before the queue's current turn. So a client with
 * 10,000 pending jobs holds turns t…t+9,999, and a client arriving later gets
 * t'+1, t'+2… from the turn the workers have reached: the two alternate
 * instead of the newcomer waiting behind the backlog, and within a client jobs
 * keep their submission order. This is start-time fair queuing with every job
 * costing one turn; it costs two or three index probes per client and queue of
 * an insert batch and nothing at claim time, where per-client round robin
 * costs a probe per client (BENCHMARKS.md, "Fair share").
 *
 * A job put back to pending (a retry, a rescue) keeps its turn: it is older
 * than what came after it, so it goes first once due.
 */

/**
 * The queue's current turn, for a `q` row naming (use_case, priority): the
 * last turn started (the highest running one); with nothing running, just
 * before the first due pending turn; with nothing due, the last pending turn
 * (so new jobs queue behind ones waiting for their run_at); an empty queue
 * starts at 0.
 */
const currentTurn = sql`coalesce(
  (select max(r.fair_tag) from ix_jobs as r
    where r.status = 'running' and r.use_case = q.use_case and r.priority = q.priority),
  (select min(d.fair_tag) - 1 from ix_jobs as d
    where d.status = 'pending' and d.use_case = q.use_case and d.priority = q.priority and d.run_at <= now()),
  (select max(p.fair_tag) from ix_jobs as p
    where p.status = 'pending' and p.use_case = q.use_case and p.priority = q.priority),
  0)`;

/** The client's last pending turn in the queue of a `q` row (client_id, use_case, priority), or null. */
const clientLastTurn = sql`(select max(c.fair_tag) from ix_jobs as c
    where c.status = 'pending' and c.client_id = q.client_id and c.use_case = q.use_case and c.priority = q.priority)`;

/**
 * `source` (a relation with client_id, use_case, priority and an input order
 * column `n`), each row given its turn as `fair_tag`: the batch's jobs of one
 * client and queue take consecutive turns after the first, in input order.
 */
export function withTurns(source: SQL): SQL {
  return sql`(
    with v as (select * from ${source}),
    q as (select distinct client_id, use_case, priority from v),
    base as (select q.client_id, q.use_case, q.priority, greatest(${currentTurn}, ${clientLastTurn}) as turn from q)
    select v.*, base.turn + row_number() over (partition by v.client_id, v.use_case, v.priority order by v.n) as fair_tag
    from v join base using (client_id, use_case, priority)
  )`;
}
