import { afterEach, describe, expect, it, vi } from 'vitest';
import { renderReportHtml } from '../../src/report/html.js';
import type { ReportFile } from '../../src/report/report-file.js';
import { fixture, marksByChart } from './support.js';

/** The report without any baseline (the fixture's depths carry the baseline's scores). */
function alone(report: ReportFile): ReportFile {
  const depths = report.result.depths.map(({ baseline: _, ...d }) => d);
  return { ...report, result: { ...report.result, depths, baselineReportUri: '', baselineDifferences: [] } };
}

afterEach(() => vi.restoreAllMocks());

describe('renderReportHtml', () => {
  it('draws one SVG per chart: a point per depth and series, an error bar per depth and run, a line per depth and run, a bar per depth, split and run', async () => {
    const warn = vi.spyOn(console, 'warn');
    const marks = marksByChart(await renderReportHtml(fixture('this'), fixture('baseline')));
    expect(Object.keys(marks)).toEqual(['accuracy', 'score', 'curves', 'class']);
    // 3 depths; training and held-out accuracy for this measurement and the baseline; 2 seeds each.
    expect(marks.accuracy).toMatchObject({ svg: 1, point: 12, errorbar: 6, 'rule mark': 1 });
    expect(marks.score).toMatchObject({ svg: 1, point: 6, errorbar: 6, 'rule mark': 1 });
    expect(marks.curves).toMatchObject({ svg: 1, 'line mark': 6, 'rule mark': 1 });
    expect(marks.class).toMatchObject({ svg: 1, bar: 12 });
    // Vega-Lite reports spec problems (e.g. a channel misused) as warnings on the console.
    expect(warn).not.toHaveBeenCalled();
  });

  it('shows one series without a baseline, and the baseline scores a result carries when its report is not at hand', async () => {
    const own = marksByChart(await renderReportHtml(alone(fixture('this'))));
    expect(own.accuracy).toMatchObject({ point: 6, errorbar: 3 });
    expect(own.score).toMatchObject({ point: 3, errorbar: 3 });
    expect(own.curves).toMatchObject({ 'line mark': 3 });
    expect(own.class).toMatchObject({ bar: 6 });

    // Only the scores in DepthResult.baseline: no spread, held-out, curves or class accuracy for it.
    const compared = marksByChart(await renderReportHtml(fixture('this')));
    expect(compared.accuracy).toMatchObject({ point: 9, errorbar: 3 });
    expect(compared.score).toMatchObject({ point: 6, errorbar: 3 });
    expect(compared.curves).toMatchObject({ 'line mark': 3 });
  });

  it('draws no error bars for a single seed (a spread of one run is not measured)', async () => {
    const report = alone(fixture('this'));
    const depths = report.result.depths.map((d) => ({ ...d, seeds: d.seeds.slice(0, 1) }));
    const marks = marksByChart(await renderReportHtml({ ...report, result: { ...report.result, depths } }));
    expect(marks.accuracy!.errorbar).toBeUndefined();
    expect(marks.score).toMatchObject({ point: 3 });
    expect(marks.score!.errorbar).toBeUndefined();
  });

  it('tabulates the per-depth changes from the baseline and the settings that differ', async () => {
    const report = fixture('this');
    const html = await renderReportHtml({ ...report, result: { ...report.result, baselineDifferences: ['epochs: 5 -> 10'] } }, fixture('baseline'));
    expect(html).toContain('Compared with the baseline');
    expect(html).toContain('<td><span class="up">+0.301</span></td>');
    expect(html).toContain('<li>epochs: 5 -&#62; 10</li>');
    expect(html).toContain('runs/baseline.json');
    expect(await renderReportHtml(alone(report))).not.toContain('Compared with the baseline');
  });

  it('escapes every string from the request, the result and the baseline', async () => {
    const report = fixture('this');
    const evil = '<img src=x onerror="alert(1)">';
    const html = await renderReportHtml({
      measurementId: `"><script>alert(2)</script>`,
      request: { ...report.request, modelUri: `s3://b/${evil}`, datasetUri: `data/'&'.npz` },
      result: {
        ...report.result,
        warnings: [`held-out accuracy ${evil} & more`],
        backend: evil,
        reportUri: `s3://b/${evil}/report.json`,
        baselineReportUri: evil,
        baselineDifferences: [`dataset_uri: ${evil} -> x`],
      },
    }, { ...fixture('baseline'), measurementId: evil });
    expect(html.match(/<img|<script/)).toBeNull();
    expect(html).toContain('s3://b/&#60;img src=x onerror=&#34;alert(1)&#34;&#62;');
    expect(html).toContain('&#34;&#62;&#60;script&#62;alert(2)&#60;/script&#62;');
    expect(html).toContain('data/&#39;&#38;&#39;.npz');
  });

  it('is self-contained: no script, no link, no external resource, and a policy that forbids fetching any', async () => {
    const html = await renderReportHtml(fixture('this'), fixture('baseline'));
    // match() rather than toMatch: a failure shows what matched, not the whole page.
    expect(html.match(/<script|<link|<iframe|<img|<object|@import|url\((?!#)/i)).toBeNull();
    expect(html.match(/\s(src|href|xlink:href)=/i)).toBeNull();
    // The only URLs are the SVG namespaces.
    const urls = [...html.matchAll(/https?:\/\/[^\s"'<>)]+/g)].map((m) => m[0]);
    expect(new Set(urls)).toEqual(new Set(['http://www.w3.org/2000/svg', 'http://www.w3.org/1999/xlink']));
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`);
  });
});
