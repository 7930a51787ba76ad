import type { MeasurementEvent, MeasurementResult } from '../metric/types.js';

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

/** The result as a table for humans. */
export function formatResult(result: MeasurementResult): string {
  const header = ['depth', 'random-label acc', 'chance', 'memorization', 'held-out acc', 'class train', 'class test'];
  const rows = result.depths.map((d) => [
    String(d.copyDepth),
    d.seeds.length > 1 ? `${pct(d.randomLabelAccuracy)} ± ${pct(d.randomLabelAccuracyStd)}` : pct(d.randomLabelAccuracy),
    pct(d.chance),
    d.memorizationScore.toFixed(3),
    pct(d.heldOutRandomLabelAccuracy),
    pct(d.classTrainAccuracy),
    pct(d.classTestAccuracy),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  const warnings = result.warnings.map((w) => `warning: ${w}`);
  return [line(header), ...rows.map(line), ...warnings].join('\n');
}
