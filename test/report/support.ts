import { readFileSync } from 'node:fs';
import { parseReportFile, type ReportFile } from '../../src/report/report-file.js';

/**
 * Real reports (`memometer measure --depth 1,2,3 --seed 0,1 --report`, URIs made relative): the
 * example CNN compared with the example ResNet as its baseline, and that baseline's own report.
 */
export function fixture(name: 'this' | 'baseline'): ReportFile {
  const uri = `test/report/fixtures/${name}.json`;
  return parseReportFile(readFileSync(uri, 'utf8'), uri);
}

/** Each chart figure's SVG mark counts by ARIA role description ("point", "errorbar", "bar", ...). */
export function marksByChart(html: string): Record<string, Record<string, number>> {
  const charts: Record<string, Record<string, number>> = {};
  for (const figure of html.split('<figure').slice(1)) {
    const id = /id="chart-([^"]+)"/.exec(figure)![1]!;
    const counts: Record<string, number> = { svg: (figure.match(/<svg/g) ?? []).length };
    for (const [, role] of figure.matchAll(/aria-roledescription="([^"]*)"/g)) counts[role!] = (counts[role!] ?? 0) + 1;
    charts[id] = counts;
  }
  return charts;
}
