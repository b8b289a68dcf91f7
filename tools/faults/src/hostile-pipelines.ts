// Pipelines that misbehave, for the isolation faults (test/isolation.test.ts).
// The worker loads this module through IX_PIPELINE_MODULES, as an operator
// would, so with thread isolation they run in its pipeline threads.
//
// The stubborn ones ignore their signal and write a heartbeat file
// (`<dir>/<request_id>.json`: pid, thread, first and last beat in epoch ms)
// every BEAT_MS while they run, so the test sees from outside when each run
// really stopped: a run whose heartbeat keeps advancing is a zombie.
import { readdirSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { threadId } from "node:worker_threads";

export const BEAT_MS = 50;

interface Request {
  request_id: string;
  options: Record<string, unknown>;
}

export interface Heartbeat {
  requestId: string;
  pid: number;
  threadId: number;
  firstBeat: number;
  lastBeat: number;
}

function heartbeat(request: Request): () => void {
  const dir = request.options.dir;
  if (typeof dir !== "string") throw new Error("options.dir must name the heartbeat directory");
  const file = join(dir, `${request.request_id}.json`);
  const firstBeat = Date.now();
  return () => {
    const beat: Heartbeat = { requestId: request.request_id, pid: process.pid, threadId, firstBeat, lastBeat: Date.now() };
    writeFileSync(file, JSON.stringify(beat));
  };
}

export default [
  {
    /** Burns CPU forever, never yielding and never looking at its signal. */
    name: "spin_beat",
    run(request: Request): Record<string, unknown> {
      const beat = heartbeat(request);
      let next = 0;
      for (;;) {
        const now = Date.now();
        if (now >= next) {
          beat();
          next = now + BEAT_MS;
        }
      }
    },
  },
  {
    /** Never settles and ignores its signal; keeps beating from a timer. */
    name: "hang_beat",
    run(request: Request): Promise<Record<string, unknown>> {
      const beat = heartbeat(request);
      beat();
      setInterval(beat, BEAT_MS);
      return new Promise(() => {});
    },
  },
  {
    /**
     * Well-behaved: a barrier. Marks itself in options.dir, then waits (honouring its
     * signal) until options.parties runs have marked it. N such runs can only all
     * finish if N run at once, each in its own thread: the tests use it to grow the
     * pool to a thread per slot.
     */
    name: "barrier",
    async run(request: Request, { signal }: { signal: AbortSignal }): Promise<Record<string, unknown>> {
      const dir = String(request.options.dir);
      writeFileSync(join(dir, request.request_id), "");
      while (readdirSync(dir).length < Number(request.options.parties)) await sleep(20, undefined, { signal });
      return { threadId };
    },
  },
  {
    /** Returns a result of options.bytes characters. */
    name: "bloat",
    run(request: Request): Record<string, unknown> {
      return { blob: "x".repeat(Number(request.options.bytes)) };
    },
  },
];
