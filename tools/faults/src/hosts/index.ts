// The multi-host harness (FAULTS.md, "Multi-host harness"), for the fault suite and the bench.
export { API_KEY, type ApiHost, CLIENT_ID, type Cluster, type LoadOptions, type LoadSummary, type ProxyHost, type ReceiverHost, startCluster } from "./cluster.ts";
export { assertNetnsAvailable, createNetwork, type Host, ip, MAX_HOSTS, type Network, PREFIX, runIn, sweepStaleRuns } from "./netns.ts";
export { PG_BIN, type PostgresHost, startPostgresHost } from "./postgres-host.ts";
