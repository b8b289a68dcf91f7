export { shutdownOnSignals, type ShutdownLog, type ShutdownOnSignals, type SignalSource } from "./shutdown.ts";
