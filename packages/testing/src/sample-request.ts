import type { RequestIX } from "@ix/contracts";

let counter = 0;

/** A valid extract_fields request with a unique request_id unless one is given. */
export function sampleRequest(overrides: Partial<RequestIX> = {}): RequestIX {
  counter += 1;
  return {
    use_case: "extract_fields",
    ix_client_id: "billing-svc",
    request_id: `req-${process.pid}-${counter}`,
    context: { texts: ["Invoice 42, total 10.00 EUR"] },
    options: { fields: { total: "\\d+\\.\\d{2}" } },
    ...overrides,
  };
}
