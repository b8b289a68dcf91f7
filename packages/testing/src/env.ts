import { z } from "zod";

// The only environment the test harness reads.
const TestEnv = z.object({
  // A server the tests provision their databases on; without it, Testcontainers, then embedded.
  IX_TEST_DATABASE_URL: z
    .string()
    .url()
    .optional()
    .or(z.literal("").transform(() => undefined)),
});

export const testEnv = TestEnv.parse(process.env);
