import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface OperatorMetrics {
  registry: Registry;
  reconciles: Counter<'controller' | 'result'>;
  reconcileDuration: Histogram<'controller'>;
  queueDepth: Gauge<'controller'>;
  writes: Counter<'kind'>;
}

export function createOperatorMetrics(): OperatorMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'nixery_operator_' });
  const registers = [registry];
  return {
    registry,
    reconciles: new Counter({ name: 'nixery_operator_reconciles_total', help: 'Reconciles by controller and result', labelNames: ['controller', 'result'], registers }),
    reconcileDuration: new Histogram({
      name: 'nixery_operator_reconcile_duration_seconds',
      help: 'Reconcile duration by controller',
      labelNames: ['controller'],
      buckets: [0.005, 0.02, 0.1, 0.5, 2, 10],
      registers,
    }),
    queueDepth: new Gauge({ name: 'nixery_operator_queue_depth', help: 'Keys waiting in the work queue', labelNames: ['controller'], registers }),
    writes: new Counter({ name: 'nixery_operator_writes_total', help: 'Write requests to the API server by kind', labelNames: ['kind'], registers }),
  };
}
