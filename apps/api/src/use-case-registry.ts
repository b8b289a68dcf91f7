/** Asks the database which use_cases workers have registered recently (sorted, distinct). */
export type KnownUseCasesLookup = () => Promise<readonly string[]>;

/** What a check found: the asked-for use_cases no worker serves, and the ones that are served. */
export interface UseCaseCheck {
  unknown: string[];
  known: readonly string[];
}

/** How long a looked-up set answers checks before the next check asks again. */
export const DEFAULT_USE_CASE_CACHE_MS = 5_000;

interface Lookup {
  /** Numbers lookups in the order they were sent, so a check can tell one sent after it began. */
  generation: number;
  startedAt: number;
  result: Promise<{ known: readonly string[]; set: ReadonlySet<string> }>;
}

/**
 * Which use_cases a submission may name: those some worker has registered
 * recently (apps/api/README.md, "POST /jobs"). Every submission is checked, so
 * the known set is cached for a few seconds; a use_case missing from it is
 * looked up once more before it is called unknown, so a worker that has just
 * registered is seen at once. Concurrent checks share a lookup, and a miss
 * reuses any lookup sent after the check began (its snapshot is at least as
 * new), so a burst of unknown use_cases costs one query, not one each.
 */
export class UseCaseRegistry {
  readonly #lookup: KnownUseCasesLookup;
  readonly #cacheMs: number;
  readonly #now: () => number;
  #generations = 0;
  #latest: Lookup | undefined;

  constructor(lookup: KnownUseCasesLookup, { cacheMs = DEFAULT_USE_CASE_CACHE_MS, now = () => performance.now() } = {}) {
    this.#lookup = lookup;
    this.#cacheMs = cacheMs;
    this.#now = now;
  }

  /**
   * The use_cases among `useCases` that no worker serves. Rejects when the
   * lookup does (the database is unavailable), so the caller answers 503
   * rather than calling every use_case unknown.
   */
  async check(useCases: Iterable<string>): Promise<UseCaseCheck> {
    const asked = [...new Set(useCases)];
    const begunAt = this.#generations;
    const cached = this.#latest;
    const first = cached !== undefined && this.#now() - cached.startedAt < this.#cacheMs ? cached : this.#send();
    let { known, set } = await first.result;
    if (asked.some((useCase) => !set.has(useCase))) {
      // Once more, unless a lookup sent after this check began already answered (or is answering) it.
      const latest = this.#latest;
      const again = latest !== undefined && latest.generation > begunAt ? latest : this.#send();
      if (again !== first) ({ known, set } = await again.result);
    }
    return { unknown: asked.filter((useCase) => !set.has(useCase)), known };
  }

  #send(): Lookup {
    const lookup: Lookup = {
      generation: ++this.#generations,
      startedAt: this.#now(),
      result: this.#lookup().then((known) => ({ known, set: new Set(known) })),
    };
    this.#latest = lookup;
    // A failed lookup answers the checks waiting on it, then is forgotten: the next check asks again.
    lookup.result.catch(() => {
      if (this.#latest === lookup) this.#latest = undefined;
    });
    return lookup;
  }
}
