export * from "./request.ts";
export * from "./response.ts";
export * from "./job.ts";
export * from "./api.ts";
export * from "./env.ts";
export * from "./trace-context.ts";
