// The public face of the Kubernetes test cluster: start one (an API server and a node agent that
// runs pods as local processes), or only its API server, and read what it recorded.
export { startCluster, PROJECT_IMAGES, type Cluster, type ClusterOptions } from './cluster.ts';
export { startApiServer, type ApiServer, type ApiServerOptions } from './apiserver/index.ts';
export type { NonResourceVerb, RequestLogEntry, Verb } from './apiserver/index.ts';
export type { ImageMapping } from './node/index.ts';
export { claimClusterIpRange, type ClaimedRange } from './ip-range.ts';
