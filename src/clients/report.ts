import type { MeasurementEvent, MeasurementResult } from '../metric/types.js';
import type { DepthResult } from '../gen/memometer/v1/memometer.js';

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

/** A one-line progress display for humans on stderr (rewritten in place on a terminal). */
export class Progress {
  constructor(private readonly out: NodeJS.WriteStream) {}

  show(event: MeasurementEvent): void {
    let line: string | undefined;
    if (event.type === 'planned') {
      line = `planned: ${event.mode} mode, ${event.heads} heads (${event.headsPerDepth} per depth) at depths ${event.copyDepths.join(', ')}, ` +
        `${event.samples.train} training samples, backend ${event.backend}` +
        (event.model?.format && event.model.format !== 'tfjs' ? `; ${event.model.format} model (takes ${event.model.inputLayout} images)` : '') +
        (event.datasetLayout === 'NCHW' ? '; NCHW images transposed to NHWC' : '') +
        (event.model?.notes ?? []).map((note) => `\n  note: ${note}`).join('');
    } else if (event.type === 'features') {
      line = `features: ${event.samples} samples in ${event.seconds.toFixed(1)} s`;
    } else if (event.type === 'epoch') {
      const width = 20;
      const filled = Math.round((width * event.epoch) / event.epochs);
      line = `depth ${event.copyDepth} seed ${event.seed} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` +
        `epoch ${event.epoch}/${event.epochs} random-label acc ${pct(event.randomLabelAccuracy)} ` +
        `loss ${event.losses.randomLabel.toFixed(3)} ${Math.round(event.samplesPerSecond)} samples/s`;
    }
    if (!line) return;
    if (this.out.isTTY) this.out.write(`\r\x1b[2K${line}${event.type === 'epoch' && event.epoch < event.epochs ? '' : '\n'}`);
    else if (event.type !== 'epoch' || event.epoch === event.epochs) this.out.write(`${line}\n`);
  }
}

/**
 * A result as the CLI shows it: the engine's, with the API's depths (which carry the baseline's
 * scores when compared with one) and the comparison's fields.
 */
export type ShownResult = Omit<MeasurementResult, 'depths'> & {
  depths: DepthResult[];
  baselineReportUri?: string;
  baselineDifferences?: string[];
};

const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(3)}`;

/** The result as a table for humans; with a baseline, its score and the change per depth. */
export function formatResult(result: ShownResult): string {
  const compared = Boolean(result.baselineReportUri);
  const header = ['depth', 'random-label acc', 'chance', 'memorization', ...(compared ? ['baseline', 'change'] : []),
    'held-out acc', 'class train', 'class test'];
  const rows = result.depths.map((d) => [
    String(d.copyDepth),
    d.seeds.length > 1 ? `${pct(d.randomLabelAccuracy)} ± ${pct(d.randomLabelAccuracyStd)}` : pct(d.randomLabelAccuracy),
    pct(d.chance),
    d.memorizationScore.toFixed(3),
    ...(compared ? [d.baseline?.memorizationScore.toFixed(3) ?? '-', d.baseline ? signed(d.baseline.memorizationScoreDelta) : '-'] : []),
    pct(d.heldOutRandomLabelAccuracy),
    pct(d.classTrainAccuracy),
    pct(d.classTestAccuracy),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  const baseline = compared ? [`baseline: ${result.baselineReportUri}`, ...(result.baselineDifferences ?? []).map((d) => `baseline differs: ${d}`)] : [];
  const warnings = result.warnings.map((w) => `warning: ${w}`);
  return [line(header), ...rows.map(line), ...baseline, ...warnings].join('\n');
}
