import { sql, type SQL } from "drizzle-orm";

/**
 * Fair share: the turn order the claim follows (docs/ARCHITECTURE.md, "Scheduling").
 *
 * Each (use_case, priority) is a queue. Every due pending job holds a turn
 * (`fair_tag`) in its queue; the claim takes the lowest turns first. A job's
 * turn is given once, when it becomes due (at insert, or by the claim that
 * first finds it due): one after its client's last pending turn in that queue,
 * but never before the queue's current turn. So a client with 10,000 pending
 * jobs holds turns t…t+9,999, and a client arriving later gets t'+1, t'+2…
 * from the turn the workers have reached: the two alternate instead of the
 * newcomer waiting behind the backlog, and within a client jobs keep their
 * order. This is start-time fair queuing with every job costing one turn; it
 * costs two or three index probes per client and queue of a batch and nothing
 * per client at claim time (BENCHMARKS.md, "Fair share").
 *
 * A job waiting for a later run_at has no turn (null), so it is not in the
 * claim's index and the claim never steps over it. A job put back to pending
 * due at once (a rescue, a manual retry) keeps its turn, so it goes first; a
 * retry waiting out its backoff gives its turn up and gets a new one when due.
 */

/**
 * The queue's current turn, for a `q` row naming (use_case, priority): the
 * last turn started (the highest running one); with nothing running, just
 * before the first pending turn; an empty queue starts at 0.
 */
const currentTurn = sql`coalesce(
  (select max(r.fair_tag) from ix_jobs as r
    where r.status = 'running' and r.use_case = q.use_case and r.priority = q.priority),
  (select min(d.fair_tag) - 1 from ix_jobs as d
    where d.status = 'pending' and d.fair_tag is not null and d.use_case = q.use_case and d.priority = q.priority),
  0)`;

/** The client's last pending turn in the queue of a `q` row (client_id, use_case, priority), or null. */
const clientLastTurn = sql`(select max(c.fair_tag) from ix_jobs as c
    where c.status = 'pending' and c.fair_tag is not null
      and c.client_id = q.client_id and c.use_case = q.use_case and c.priority = q.priority)`;

/**
 * `source` (a relation with client_id, use_case, priority, a boolean `due`
 * and an order column `n`), each row given its turn as `fair_tag`: the due
 * jobs of one client and queue take consecutive turns, in `n` order; jobs not
 * due yet get none.
 */
export function withTurns(source: SQL): SQL {
  return sql`(
    with v as (select * from ${source}),
    q as (select distinct client_id, use_case, priority from v where due),
    base as (select q.client_id, q.use_case, q.priority, greatest(${currentTurn}, ${clientLastTurn}) as turn from q)
    select v.*, case when v.due
        then base.turn + row_number() over (partition by v.client_id, v.use_case, v.priority, v.due order by v.n)
      end as fair_tag
    from v left join base using (client_id, use_case, priority)
  )`;
}
