// A TCP forwarder for the node-local pull path: container runtimes trust localhost registries,
// so a host-network pod listens on 127.0.0.1:<hostPort> and forwards to the registry Service.
import net from 'node:net';
import type { Logger } from '../log/logger.ts';

export interface HostPort {
  host: string;
  port: number;
}

export function parseHostPort(value: string): HostPort {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):([0-9]{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (!match || port < 1 || port > 65535) throw new Error(`expected host:port, got ${JSON.stringify(value)}`);
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Listens on `listen` and pipes every connection to `target`, resolved per connection (Service IPs can change). */
export function startForwarder(listen: HostPort, target: HostPort, log: Logger): Promise<net.Server> {
  // Half-open on both legs: a client that has finished sending still gets the whole reply.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ port: target.port, host: target.host, allowHalfOpen: true });
    const close = (error?: Error) => {
      if (error) log.warn('forwarded connection failed', { target, error: error.message });
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
