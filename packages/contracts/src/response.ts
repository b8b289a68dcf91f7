import { z } from "zod";
import { ClientId, IxId, RequestId, UseCase } from "./request.ts";

/** ISO-8601 UTC timestamp as it travels on the wire, e.g. 2026-01-02T03:04:05.678Z. */
export const Timestamp = z.iso.datetime();

export const ResponseMetadata = z.strictObject({
  pipeline: z.string().min(1),
  started_at: Timestamp,
  finished_at: Timestamp,
  duration_ms: z.number().int().nonnegative(),
  attempt: z.number().int().positive(),
});

/** What a pipeline run produced. `error === null` alone means success. */
export const ResponseIX = z.strictObject({
  use_case: UseCase,
  ix_client_id: ClientId,
  request_id: RequestId,
  ix_id: IxId,
  error: z.string().nullable(),
  result: z.record(z.string(), z.unknown()).nullable(),
  metadata: ResponseMetadata,
});

export type ResponseIX = z.infer<typeof ResponseIX>;
export type ResponseMetadata = z.infer<typeof ResponseMetadata>;
