import { z } from "zod";

/** 16 lowercase hex characters, assigned by ix from a CSPRNG. */
export const IxId = z.string().regex(/^[0-9a-f]{16}$/, "must be 16 lowercase hex characters");

export const UseCase = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z0-9][a-z0-9_.-]*$/, "must match ^[a-z0-9][a-z0-9_.-]*$");

export const ClientId = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$");

export const RequestId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^\P{Cc}*$/u, "must not contain control characters");

const FILE_URL_PROTOCOLS = new Set(["http:", "https:", "data:"]);

/** A file reference; the pipeline fetches it, ix only checks the scheme. */
export const FileRef = z.strictObject({
  url: z.string().refine((value) => {
    if (!URL.canParse(value)) return false;
    return FILE_URL_PROTOCOLS.has(new URL(value).protocol);
  }, "must be an http, https or data URL"),
  mime_type: z.string().min(1).max(255).optional(),
});

export const Context = z
  .strictObject({
    texts: z.array(z.string()).optional(),
    files: z.array(FileRef).optional(),
  })
  .refine(
    (context) => (context.texts?.length ?? 0) + (context.files?.length ?? 0) > 0,
    "must hold at least one text or file",
  );

export const PipelineOptions = z.record(z.string(), z.unknown());

/** What a client asks ix to do. Unknown keys are rejected by name. */
export const RequestIX = z.strictObject({
  use_case: UseCase,
  ix_client_id: ClientId,
  request_id: RequestId,
  // Assigned by ix; a value sent by the client is accepted and then replaced.
  ix_id: IxId.nullable().optional(),
  context: Context,
  options: PipelineOptions.default({}),
});

export type RequestIX = z.infer<typeof RequestIX>;
export type RequestIXInput = z.input<typeof RequestIX>;
export type FileRef = z.infer<typeof FileRef>;
