// The kube-proxy part: a TCP listener per Service port at the Service's loopback address,
// forwarding each connection to a ready endpoint (round robin; the next one if a connect fails).
import net from 'node:net';
import type { Listener } from './services.ts';

export type BackendLookup = (listener: Listener) => Array<{ ip: string; port: number }>;

interface Open {
  listener: Listener;
  server: net.Server;
  next: number;
}

export class ServiceProxy {
  readonly #open = new Map<string, Open>();
  readonly #sockets = new Set<net.Socket>();
  readonly #lookup: BackendLookup;
  readonly #log: (line: object) => void;
  #stopped = false;

  constructor(lookup: BackendLookup, log: (line: object) => void) {
    this.#lookup = lookup;
    this.#log = log;
  }

  /** Opens the listeners that are wanted and not open, closes those no longer wanted. */
  async sync(wanted: readonly Listener[]): Promise<void> {
    if (this.#stopped) return;
    const keys = new Set(wanted.map((l) => l.key));
    for (const [key, open] of this.#open) {
      if (!keys.has(key)) {
        this.#open.delete(key);
        open.server.close();
      }
    }
    await Promise.all(
      wanted.map(async (listener) => {
        const existing = this.#open.get(listener.key);
        if (existing) {
          existing.listener = listener;
          return;
        }
        // Half-open connections are kept: a client that shuts down its side still gets the answer.
        const open: Open = { listener, server: net.createServer({ allowHalfOpen: true }, (client) => this.#forward(open, client)), next: 0 };
        this.#open.set(listener.key, open);
        try {
          await new Promise<void>((resolve, reject) => {
            open.server.once('error', reject);
            open.server.listen({ host: listener.ip, port: listener.port, exclusive: true }, () => {
              open.server.off('error', reject);
              resolve();
            });
          });
        } catch (error) {
          this.#open.delete(listener.key);
          this.#log({ msg: 'service listener failed', listener: listener.key, service: `${listener.namespace}/${listener.service}`, error: String(error) });
        }
      }),
    );
  }

  listening(): string[] {
    return [...this.#open.keys()];
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const socket of this.#sockets) socket.destroy();
    await Promise.all([...this.#open.values()].map((o) => new Promise<void>((resolve) => o.server.close(() => resolve()))));
    this.#open.clear();
  }

  #forward(open: Open, client: net.Socket): void {
    this.#sockets.add(client);
    client.once('close', () => this.#sockets.delete(client));
    client.on('error', () => {});
    client.pause();
    const backends = this.#lookup(open.listener);
    if (backends.length === 0) {
      // No ready endpoint: refuse, as kube-proxy's REJECT rule does.
      client.resetAndDestroy();
      return;
    }
    const start = open.next++ % backends.length;
    const attempt = (i: number) => {
      if (i >= backends.length || client.destroyed) {
        client.resetAndDestroy();
        return;
      }
      const backend = backends[(start + i) % backends.length]!;
      const upstream = net.connect({ host: backend.ip, port: backend.port, allowHalfOpen: true });
      this.#sockets.add(upstream);
      upstream.once('close', () => this.#sockets.delete(upstream));
      let connected = false;
      upstream.on('error', () => {
        if (connected) client.destroy();
        else attempt(i + 1);
      });
      upstream.once('connect', () => {
        connected = true;
        client.on('error', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    attempt(0);
  }
}
