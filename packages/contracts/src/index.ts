export * from "./request";
export * from "./response";
export * from "./job";
export * from "./api";
export * from "./env";
