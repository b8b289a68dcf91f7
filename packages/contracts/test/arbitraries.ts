import fc from "fast-check";
import type { RequestIX, ResponseIX } from "../src/index.ts";

export const useCase = fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,63}$/);
export const clientId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/);
// Any printable unicode, including astral planes; control characters are excluded by the contract.
export const requestId = fc
  .string({ unit: "grapheme", minLength: 1, maxLength: 40 })
  .filter((s) => s.length <= 128 && !/\p{Cc}/u.test(s));
export const ixId = fc.stringMatching(/^[0-9a-f]{16}$/);
const json: fc.Arbitrary<unknown> = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)));

export const fileRef = fc.record(
  {
    url: fc.oneof(fc.webUrl({ validSchemes: ["http", "https"] }), fc.constant("data:text/plain;base64,aGk=")),
    mime_type: fc.constantFrom("application/pdf", "text/plain"),
  },
  { requiredKeys: ["url"] },
);

export const context = fc
  .record(
    { texts: fc.array(fc.string(), { maxLength: 3 }), files: fc.array(fileRef, { maxLength: 2 }) },
    { requiredKeys: [] },
  )
  .filter((c) => (c.texts?.length ?? 0) + (c.files?.length ?? 0) > 0);

export const requestIX: fc.Arbitrary<RequestIX> = fc.record(
  {
    use_case: useCase,
    ix_client_id: clientId,
    request_id: requestId,
    ix_id: fc.option(ixId, { nil: null }),
    context,
    options: fc.dictionary(fc.string({ maxLength: 8 }), json, { maxKeys: 3 }),
  },
  { requiredKeys: ["use_case", "ix_client_id", "request_id", "context", "options"] },
);

const isoDate = fc
  .date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true })
  .map((d) => d.toISOString());

export const responseIX: fc.Arbitrary<ResponseIX> = fc.record({
  use_case: useCase,
  ix_client_id: clientId,
  request_id: requestId,
  ix_id: ixId,
  error: fc.option(fc.string(), { nil: null }),
  result: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), json, { maxKeys: 3 }), { nil: null }),
  metadata: fc.record({
    pipeline: fc.string({ minLength: 1, maxLength: 20 }),
    started_at: isoDate,
    finished_at: isoDate,
    duration_ms: fc.nat(),
    attempt: fc.integer({ min: 1, max: 10 }),
  }),
});
