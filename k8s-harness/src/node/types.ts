// The node agent's public option types, kept apart so pure modules can use them without the I/O.

export interface ImageMapping {
  /**
   * The image this entry stands for. Matching (first entry in array order wins): equal to the
   * container's image; or, for an entry with neither tag nor digest, the same repository with any
   * tag or digest; or, for an entry ending in `/`, any image below that prefix.
   */
  image: string;
  /**
   * The argv prefix run instead of pulling, e.g. `[process.execPath, '/work/main/registry/bin/nixery.js']`.
   * It plays the image's ENTRYPOINT (the image has no CMD): a container's `command` replaces it,
   * its `args` are appended.
   */
  command: string[];
}

export interface NodeAgentOptions {
  kubeconfigPath: string;
  /** pod directories, PVC directories, logs, pulled images */
  dataDir: string;
  imageMap: ImageMapping[];
  /** default `nixery-node` */
  nodeName?: string;
  /**
   * Inside 127.0.0.0/8; default `127.96.0.0/16`. Services are served here: a ClusterIP the API
   * server left empty is allocated from it, one outside 127/8 is served at its twin with the same
   * host bits. Pod addresses come from the same-size range in the other half of 127/8
   * (127.224.0.0/16 for the default). Agents running at once on one machine need different ranges.
   */
  clusterIpRange?: string;
  /** one JSON-able object per log line; default: none */
  log?: (line: object) => void;
  /**
   * How often running pods' Secret, ConfigMap, downward API and projected volumes are brought up
   * to date (a kubelet: about a minute). Default 2000.
   */
  volumeSyncPeriodMs?: number;
  /**
   * containerd's registry hosts directory (its `config_path`): at each pull, `<certsDir>/<host:port>/hosts.toml`
   * (`server`, `[host."https://…"]` with `ca`, `skip_verify`, `capabilities`) or, without one,
   * `<certsDir>/<host:port>/*.crt` (e.g. `ca.crt`) as CAs for `https://<host:port>`; `_default/` for any other host.
   */
  certsDir?: string;
  /**
   * Pull as a containerd node does: a registry host is resolved only through this machine's own
   * resolver (never a Service name), so a Service's DNS name is reachable only through a hosts.toml
   * endpoint in `certsDir` (e.g. its ClusterIP); plain HTTP only for localhost or `http://` endpoints.
   * Default: DEFAULT_STRICT_NODE_PULLS (puller.ts), true.
   */
  strictNodePulls?: boolean;
}

export interface NodeAgent {
  /** stops the controllers, kills every pod process (their mount namespaces go with them), closes proxies */
  stop(): Promise<void>;
}
