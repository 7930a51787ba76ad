// Reading metrics in tests: a MetricReader collected on demand, and lookups by name/attributes.
import type { Attributes } from '@opentelemetry/api';
import { DataPointType, MetricReader, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';

/** A pull reader: collect() whenever the test wants to look (cumulative temporality). */
export class CollectingReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}

  async metrics(): Promise<MetricData[]> {
    const { resourceMetrics, errors } = await this.collect();
    if (errors.length) throw new AggregateError(errors, 'metric collection failed');
    return allMetrics(resourceMetrics);
  }
}

export const allMetrics = (rm: ResourceMetrics): MetricData[] => rm.scopeMetrics.flatMap((s) => s.metrics);

export const metric = (all: MetricData[], name: string): MetricData | undefined => all.find((m) => m.descriptor.name === name);

/** Data points of `name` whose attributes include `where`. */
export function points(all: MetricData[], name: string, where: Attributes = {}) {
  const m = metric(all, name);
  if (!m) return [];
  return (m.dataPoints as { attributes: Attributes; value: unknown }[]).filter((p) =>
    Object.entries(where).every(([k, v]) => p.attributes[k] === v),
  );
}

/** A gauge's or counter's value (summed over matching points); undefined when none matches. */
export function value(all: MetricData[], name: string, where: Attributes = {}): number | undefined {
  const found = points(all, name, where);
  return found.length ? found.reduce((sum, p) => sum + (p.value as number), 0) : undefined;
}

/** A histogram's count (summed over matching points). */
export function count(all: MetricData[], name: string, where: Attributes = {}): number {
  const m = metric(all, name);
  if (m && m.dataPointType !== DataPointType.HISTOGRAM) throw new Error(`${name} is not a histogram`);
  return points(all, name, where).reduce((sum, p) => sum + (p.value as { count: number }).count, 0);
}
