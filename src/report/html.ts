/**
 * report.html: one self-contained page (inline CSS, inline SVG, no script, a CSP that forbids
 * every fetch) that shows a measurement at a glance, and its baseline when there is one.
 */
import type { DepthResult, MeasurementResult } from '../gen/memometer/v1/memometer.js';
import { MeasureMemorizationRequest } from '../gen/memometer/v1/memometer.js';
import { MODES, nameOf, SHARINGS } from '../api/request.js';
import { BASELINE_RUN, renderCharts, THIS_RUN, type Chart, type DepthPoint } from './charts.js';
import type { ReportFile } from './report-file.js';

/** Every string from a request, result or file goes through this before it reaches the page. */
function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const score = (v: number) => v.toFixed(3);
const signed = (v: number, format: (v: number) => string) => (v > 0 ? '+' : v < 0 ? '−' : '±') + format(Math.abs(v));
/** A mean with its seed spread, where there is one. */
const spread = (mean: string, std: number | undefined, format: (v: number) => string) => (std === undefined ? mean : `${mean} ± ${format(std)}`);

/** The spread over seeds; a single seed has none (its std of 0 is not a measured spread). */
const stdOf = (d: DepthResult, std: number) => (d.seeds.length > 1 ? std : undefined);

function pointOf(run: DepthPoint['run'], d: DepthResult): DepthPoint {
  return {
    run, depth: d.copyDepth, accuracy: d.randomLabelAccuracy, accuracyStd: stdOf(d, d.randomLabelAccuracyStd),
    score: d.memorizationScore, scoreStd: stdOf(d, d.memorizationScoreStd), heldOut: d.heldOutRandomLabelAccuracy,
    classTrain: d.classTrainAccuracy, classTest: d.classTestAccuracy, curve: d.curve,
  };
}

/** The baseline's depths: all of its values from its report, else the scores the result carries. */
function baselinePoints(result: MeasurementResult, baseline?: ReportFile): DepthPoint[] {
  if (baseline) return baseline.result.depths.map((d) => pointOf(BASELINE_RUN, d));
  return result.depths.flatMap((d) => (d.baseline
    ? [{ run: BASELINE_RUN, depth: d.copyDepth, accuracy: d.baseline.randomLabelAccuracy, score: d.baseline.memorizationScore, curve: [] }]
    : []));
}

const table = (head: string[], rows: string[][], cls = '') =>
  `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>` +
  `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;

const card = (label: string, value: string, note = '') =>
  `<div class="card"><div class="label">${label}</div><div class="value">${value}</div>${note ? `<div class="note">${note}</div>` : ''}</div>`;

function summaryCards(r: MeasurementResult): string {
  const top = r.depths.reduce((a, b) => (b.memorizationScore > a.memorizationScore ? b : a));
  const heldOut = Math.max(...r.depths.map((d) => d.heldOutRandomLabelAccuracy));
  const first = r.depths[0]!;
  const delta = top.baseline?.memorizationScoreDelta;
  return `<section class="cards">${[
    card('Highest memorization score', score(top.memorizationScore), `at copy depth ${top.copyDepth}` +
      (delta === undefined ? '' : ` · <span class="${delta > 0 ? 'up' : 'down'}">${signed(delta, score)} vs baseline</span>`)),
    card('Random-label accuracy', pct(top.randomLabelAccuracy), `at copy depth ${top.copyDepth}; chance is ${pct(r.chance)} (n = ${r.numRandomLabels})`),
    card('Held-out random-label accuracy', pct(heldOut), 'highest over depths; must stay near chance'),
    card('Class accuracy of the model', `${pct(first.classTrainAccuracy)} / ${pct(first.classTestAccuracy)}`, 'train / held-out'),
    card('Run', `${r.seconds.toFixed(1)} s`, `backend ${escapeHtml(r.backend || 'unknown')}`),
  ].join('')}</section>`;
}

function depthTable(r: MeasurementResult): string {
  const rows = r.depths.map((d) => [
    String(d.copyDepth),
    spread(pct(d.randomLabelAccuracy), stdOf(d, d.randomLabelAccuracyStd), pct),
    spread(score(d.memorizationScore), stdOf(d, d.memorizationScoreStd), score),
    pct(d.heldOutRandomLabelAccuracy),
    pct(d.classTrainAccuracy),
    pct(d.classTestAccuracy),
    d.headParameters.toLocaleString('en-US'),
    d.seeds.map((s) => s.seed).join(', '),
  ]);
  return table(['depth', 'random-label acc', 'memorization score', 'held-out random-label acc', 'class train', 'class held-out', 'head parameters', 'seeds'], rows, 'numbers');
}

function baselineSection(r: MeasurementResult, baseline?: ReportFile): string {
  const compared = r.depths.filter((d) => d.baseline);
  if (!compared.length && !baseline && !r.baselineReportUri) return '';
  const delta = (v: number, format: (v: number) => string) => `<span class="${v > 0 ? 'up' : v < 0 ? 'down' : ''}">${signed(v, format)}</span>`;
  const rows = compared.map((d) => {
    const b = d.baseline!;
    return [String(d.copyDepth), score(b.memorizationScore), score(d.memorizationScore), delta(b.memorizationScoreDelta, score),
      pct(b.randomLabelAccuracy), pct(d.randomLabelAccuracy), delta(b.randomLabelAccuracyDelta, pct)];
  });
  const uri = r.baselineReportUri || baseline?.result.reportUri || '';
  const differences = r.baselineDifferences.length
    ? `<p>Measured with other settings:</p><ul class="differences">${r.baselineDifferences.map((d) => `<li>${escapeHtml(d)}</li>`).join('')}</ul>`
    : '';
  return `<section><h2>Compared with the baseline</h2>` +
    `<p class="muted">${uri ? `Baseline report <code>${escapeHtml(uri)}</code>` : 'Baseline'}` +
    `${baseline?.measurementId ? ` (measurement <code>${escapeHtml(baseline.measurementId)}</code>)` : ''}. ` +
    `A positive change means more memorization than the baseline.</p>` +
    (rows.length ? table(['depth', 'score (baseline)', 'score (this)', 'change', 'random-label acc (baseline)', 'random-label acc (this)', 'change'], rows, 'numbers') : '') +
    `${differences}</section>`;
}

/** The request as sent; unset fields took the defaults, which the result names where it matters. */
function settingsTable(report: ReportFile): string {
  const r = report.result;
  const given = Object.entries(MeasureMemorizationRequest.toJSON(report.request) as Record<string, unknown>)
    .map(([key, value]) => [escapeHtml(key), `<code>${escapeHtml(Array.isArray(value) ? value.join(', ') : typeof value === 'string' ? value : JSON.stringify(value))}</code>`]);
  const effective = [
    ['mode (effective)', nameOf(MODES, r.mode)],
    ['head sharing (effective)', nameOf(SHARINGS, r.headSharing)],
    ['random labels n (effective)', String(r.numRandomLabels)],
    ['samples', `${r.trainSamples} training, ${r.heldOutSamples} held out (${escapeHtml(r.heldOutSource)})`],
  ];
  return table(['setting', 'value'], [...given, ...effective], 'settings');
}

function outputsList(r: MeasurementResult): string {
  const items = [['JSON report', r.reportUri], ['HTML report', r.reportHtmlUri], ['fine-tuned model', r.fineTunedModelUri]].filter(([, uri]) => uri);
  return items.length
    ? `<ul class="outputs">${items.map(([what, uri]) => `<li>${what}: <code>${escapeHtml(uri!)}</code></li>`).join('')}</ul>`
    : '<p class="muted">No output location was given: this page and its JSON are the only copies.</p>';
}

const figure = (c: Chart) => `<figure id="chart-${c.id}"><figcaption><h3>${c.title}</h3><p>${c.caption}</p></figcaption>${c.svg}</figure>`;

const STYLE = `
:root { color-scheme: light; --ink: #111827; --muted: #6b7280; --line: #e5e7eb; --up: #b91c1c; --down: #047857; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink); background: #f9fafb; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 24px 48px; }
header h1 { margin: 0; font-size: 26px; }
header p { margin: 4px 0 0; color: var(--muted); }
h2 { font-size: 18px; margin: 32px 0 10px; }
h3 { font-size: 15px; margin: 0; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 12px; margin-top: 20px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 13px; }
.card .value { font-size: 24px; font-weight: 600; }
.card .note { color: var(--muted); font-size: 13px; }
.warnings { background: #fffbeb; border: 1px solid #fcd34d; border-radius: 10px; padding: 10px 16px; margin-top: 16px; }
.warnings ul { margin: 4px 0; padding-left: 20px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 16px; margin-top: 20px; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 14px; }
figcaption p { margin: 2px 0 8px; color: var(--muted); font-size: 13px; }
figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); border-radius: 10px; width: 100%; font-size: 14px; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
table.numbers td:not(:last-child) { font-variant-numeric: tabular-nums; }
.up { color: var(--up); font-weight: 600; }
.down { color: var(--down); font-weight: 600; }
`;

/** The whole page for a report (and the baseline report it was compared with, when there is one). */
export async function renderReportHtml(report: ReportFile, baseline?: ReportFile): Promise<string> {
  const { request, result: r } = report;
  const points = [...r.depths.map((d) => pointOf(THIS_RUN, d)), ...baselinePoints(r, baseline)];
  const charts = await renderCharts(points, r.chance);
  const title = report.measurementId ? `measurement ${report.measurementId}` : 'local measurement';
  const warnings = r.warnings.length
    ? `<section class="warnings"><strong>Warnings</strong><ul>${r.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul></section>`
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>memometer report: ${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<header>
<h1>Memorization report</h1>
<p><code>${escapeHtml(request.modelUri)}</code> on <code>${escapeHtml(request.datasetUri)}</code> · ${escapeHtml(title)} · ` +
    `${nameOf(MODES, r.mode)} mode, ${nameOf(SHARINGS, r.headSharing)} heads, n = ${r.numRandomLabels}</p>
</header>
${summaryCards(r)}
${warnings}
<section class="charts">${charts.map(figure).join('\n')}</section>
<section><h2>Per depth</h2>${depthTable(r)}</section>
${baselineSection(r, baseline)}
<section><h2>Settings</h2>${settingsTable(report)}</section>
<section><h2>Outputs</h2>${outputsList(r)}</section>
</main>
</body>
</html>
`;
}
