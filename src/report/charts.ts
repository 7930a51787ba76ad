/**
 * The report's charts: Vega-Lite specs compiled and rendered to static SVG in Node (no canvas,
 * no browser, no network), so report.html needs no script to show them.
 */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export const THIS_RUN = 'this measurement';
export const BASELINE_RUN = 'baseline';

/**
 * One run's values at one depth, as the charts plot them. A baseline known only from
 * DepthResult.baseline has no spread, held-out, class or curve values.
 */
export interface DepthPoint {
  run: typeof THIS_RUN | typeof BASELINE_RUN;
  depth: number;
  accuracy: number;
  /** The spread over seeds; none with a single seed. */
  accuracyStd?: number;
  score: number;
  scoreStd?: number;
  heldOut?: number;
  classTrain?: number;
  classTest?: number;
  curve: number[];
}

export interface Chart {
  id: string;
  title: string;
  caption: string;
  svg: string;
}

const WIDTH = 360;
const HEIGHT = 220;
const RUNS = [THIS_RUN, BASELINE_RUN] as const;
const RUN_COLORS = { [THIS_RUN]: '#2563eb', [BASELINE_RUN]: '#f59e0b' };
const CHANCE_COLOR = '#dc2626';
const CONFIG = {
  font: 'Helvetica, Arial, sans-serif',
  view: { stroke: null },
  axis: { labelColor: '#374151', titleColor: '#374151', gridColor: '#e5e7eb', domainColor: '#9ca3af', tickColor: '#9ca3af' },
  legend: { labelColor: '#374151', titleColor: '#374151', orient: 'bottom', labelLimit: 240 },
} as const;

const depthAxis = { field: 'depth', type: 'ordinal', title: 'copy depth', axis: { labelAngle: 0 } } as const;

/** A horizontal reference line with its label at the right end. */
function referenceLine(y: number, label: string): object {
  return {
    data: { values: [{ y, label }] },
    encoding: { y: { field: 'y', type: 'quantitative' } },
    layer: [
      { mark: { type: 'rule', color: CHANCE_COLOR, strokeDash: [5, 4] } },
      { mark: { type: 'text', color: CHANCE_COLOR, align: 'right', dy: -6, x: 'width' }, encoding: { text: { field: 'label' } } },
    ],
  };
}

/** A line of the depth charts: its legend label, colour and dash. */
interface Series {
  name: string;
  color: string;
  dash: number[];
}

const SOLID: number[] = [1, 0];
const DASHED: number[] = [5, 3];
const LIGHT = { [THIS_RUN]: '#93b4f5', [BASELINE_RUN]: '#fbd38d' };

/** `value` per depth as points joined per series, ± `std` as error bars, and a reference line. */
function withErrorBars(values: { series: string; std: number | null }[], series: Series[], yTitle: string, reference: object): TopLevelSpec {
  const shown = series.filter((s) => values.some((v) => v.series === s.name));
  const scale = (range: (s: Series) => unknown) => ({ domain: shown.map((s) => s.name), range: shown.map(range) });
  return {
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    layer: [
      {
        data: { values },
        encoding: {
          x: depthAxis,
          y: { field: 'value', type: 'quantitative', title: yTitle },
          color: { field: 'series', type: 'nominal', title: null, scale: scale((s) => s.color), legend: { symbolType: 'stroke', columns: 2 } },
          strokeDash: { field: 'series', type: 'nominal', title: null, scale: scale((s) => s.dash) },
        },
        layer: [
          { mark: { type: 'line', point: { filled: true, size: 60 } } },
          { transform: [{ filter: 'datum.std != null' }], mark: { type: 'errorbar', ticks: { size: 10 }, thickness: 1.5 }, encoding: { yError: { field: 'std' }, strokeDash: { value: SOLID } } },
        ],
      },
      reference,
    ],
  } as TopLevelSpec;
}

/** Random-label accuracy on the training samples (± seed spread) and on held-out samples, per depth. */
function accuracySpec(points: DepthPoint[], chance: number): TopLevelSpec {
  const heldOut = (run: string) => `${run} · held-out`;
  const values = points.flatMap((p) => [
    { depth: p.depth, series: p.run, value: p.accuracy, std: p.accuracyStd ?? null },
    ...(p.heldOut === undefined ? [] : [{ depth: p.depth, series: heldOut(p.run), value: p.heldOut, std: null }]),
  ]);
  const series = RUNS.flatMap((run) => [
    { name: run, color: RUN_COLORS[run], dash: SOLID },
    { name: heldOut(run), color: LIGHT[run], dash: DASHED },
  ]);
  return withErrorBars(values, series, 'random-label accuracy', referenceLine(chance, `chance ${fmt(chance)}`));
}

/** The chance-corrected memorization score (± seed spread) per depth; 0 is chance. */
function scoreSpec(points: DepthPoint[]): TopLevelSpec {
  const values = points.map((p) => ({ depth: p.depth, series: p.run, value: p.score, std: p.scoreStd ?? null }));
  const series = RUNS.map((run) => ({ name: run, color: RUN_COLORS[run], dash: SOLID }));
  return withErrorBars(values, series, 'memorization score', referenceLine(0, 'chance'));
}

/** Running random-label accuracy per epoch, one line per depth (dashed: the baseline). */
function curvesSpec(points: DepthPoint[], chance: number): TopLevelSpec {
  const values = points.flatMap((p) => p.curve.map((accuracy, i) => ({ depth: `depth ${p.depth}`, run: p.run, epoch: i + 1, accuracy })));
  return {
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    layer: [
      {
        data: { values },
        mark: { type: 'line', strokeWidth: 2 },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1 } },
          y: { field: 'accuracy', type: 'quantitative', title: 'random-label accuracy (training)' },
          color: { field: 'depth', type: 'nominal', title: null, sort: points.map((p) => `depth ${p.depth}`), legend: { columns: 3, symbolType: 'stroke' } },
          strokeDash: { field: 'run', type: 'nominal', title: null, scale: { domain: runsOf(points), range: [SOLID, DASHED] }, legend: { symbolType: 'stroke', columns: 1 } },
        },
      },
      referenceLine(chance, `chance ${fmt(chance)}`),
    ],
  } as TopLevelSpec;
}

/** The model's own class accuracy on training and held-out samples, per depth and run. */
function classSpec(points: DepthPoint[]): TopLevelSpec {
  const values = points.flatMap((p) => [
    ...(p.classTrain === undefined ? [] : [{ depth: p.depth, run: p.run, split: 'train', accuracy: p.classTrain }]),
    ...(p.classTest === undefined ? [] : [{ depth: p.depth, run: p.run, split: 'test', accuracy: p.classTest }]),
  ]);
  return {
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    data: { values },
    transform: [{ calculate: "datum.split + ' · ' + datum.run", as: 'group' }],
    mark: { type: 'bar', cornerRadiusEnd: 2 },
    encoding: {
      x: depthAxis,
      xOffset: { field: 'group', type: 'nominal', sort: ['train · ' + THIS_RUN, 'train · ' + BASELINE_RUN, 'test · ' + THIS_RUN, 'test · ' + BASELINE_RUN] },
      y: { field: 'accuracy', type: 'quantitative', title: 'class accuracy', scale: { domain: [0, 1] } },
      color: { field: 'split', type: 'nominal', title: null, sort: ['train', 'test'], scale: { range: ['#0d9488', '#7c3aed'] } },
      opacity: { field: 'run', type: 'ordinal', title: null, scale: { domain: runsOf(points), range: [1, 0.45] } },
    },
  };
}

/** The runs with values, this measurement first. */
const runsOf = (points: DepthPoint[]) => RUNS.filter((run) => points.some((p) => p.run === run));

const fmt = (v: number) => v.toFixed(3).replace(/0+$/, '').replace(/\.$/, '');

async function toSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The report's charts as SVG. */
export async function renderCharts(points: DepthPoint[], chance: number): Promise<Chart[]> {
  const charts = [
    { id: 'accuracy', title: 'Random-label accuracy by depth', spec: accuracySpec(points, chance),
      caption: 'How well heads on the top copied at each depth predict labels drawn at random. Above chance on the training samples: memorization; held-out samples must stay at chance. Error bars: ± one standard deviation over seeds.' },
    { id: 'score', title: 'Memorization score by depth', spec: scoreSpec(points),
      caption: 'Chance-corrected: (accuracy − 1/n) / (1 − 1/n); 0 at chance, 1 when every random label is learned.' },
    { id: 'curves', title: 'Random-label accuracy while training', spec: curvesSpec(points, chance),
      caption: 'Mean running random-label accuracy per epoch, one line per depth. Still rising at the end: more epochs would memorize more.' },
    { id: 'class', title: 'Class accuracy of the model', spec: classSpec(points),
      caption: 'The model’s own accuracy on its task, training and held-out samples (faded: the baseline).' },
  ];
  return Promise.all(charts.map(async ({ spec, ...c }) => ({ ...c, svg: await toSvg(spec) })));
}
