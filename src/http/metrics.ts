/**
 * @module http/metrics
 * Prometheus metrics (prom-client) on a registry of the app's own, so that several apps in one
 * process (tests) do not share counters.
 */

import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import type { PresenceEngine } from '../aggregator/engine';

/**
 * Gauges a subsystem contributes to /metrics, read at scrape time; `counter: true` for a total
 * that only rises (exposed as a Prometheus counter).
 */
export type ExtraGauges = Readonly<
  Record<string, { readonly help: string; readonly read: () => number; readonly counter?: boolean }>
>;

export function registerMetrics(
  app: FastifyInstance,
  engine: PresenceEngine,
  options: { defaults?: boolean; gauges?: ExtraGauges } = {},
): Registry {
  const registry = new Registry();
  if (options.defaults !== false) collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by method, route and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by method and route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  new Gauge({
    name: 'presence_tracked_users',
    help: 'Users the engine tracks',
    registers: [registry],
    collect() {
      this.set(engine.userCount);
    },
  });
  new Gauge({
    name: 'presence_observations',
    help: 'Observations held in memory (platform-level and device entries)',
    registers: [registry],
    collect() {
      this.set(engine.observationCount);
    },
  });
  new Counter({
    name: 'presence_sweeps_total',
    help: 'Expiry sweeps completed',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(engine.stats.sweeps);
    },
  });
  new Counter({
    name: 'presence_changes_total',
    help: 'Presence changes committed',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(engine.stats.changesCommitted);
    },
  });
  for (const [name, g] of Object.entries(options.gauges ?? {})) {
    if (g.counter === true) {
      new Counter({
        name,
        help: g.help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(g.read());
        },
      });
      continue;
    }
    new Gauge({
      name,
      help: g.help,
      registers: [registry],
      collect() {
        this.set(g.read());
      },
    });
  }
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ method: request.method, route, status_code: String(reply.statusCode) });
    latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    done();
  });
  return registry;
}
