/** Writing a report: report.json and report.html side by side, on the server and from the CLI. */
import * as path from 'node:path';
import { resultToProto, type Outputs } from '../api/events.js';
import { InvalidArgumentError } from '../errors.js';
import type { MeasureMemorizationRequest, MeasurementResult } from '../gen/memometer/v1/memometer.js';
import type { MeasurementResult as EngineResult } from '../metric/types.js';
import { FileStore } from '../storage/file-store.js';
import { joinKey, type ObjectStore } from '../storage/store.js';
import { renderReportHtml } from './html.js';
import { reportFileToJson, type ReportFile } from './report-file.js';

export interface ReportKeys {
  json: string;
  html: string;
}

/** The keys of a report in the folder `prefix` (an output_uri's key, maybe '' for a bucket's root). */
export function reportKeys(prefix: string): ReportKeys {
  return { json: joinKey(prefix, 'report.json'), html: joinKey(prefix, 'report.html') };
}

/** Both files of a report; the page is rendered before either is written, so a failure writes neither. */
export async function writeReport(store: ObjectStore, keys: ReportKeys, report: ReportFile, baseline?: ReportFile): Promise<void> {
  const html = await renderReportHtml(report, baseline);
  await store.put(keys.json, reportFileToJson(report));
  await store.put(keys.html, html);
}

export interface LocalReportFiles {
  store: FileStore;
  keys: ReportKeys;
  jsonPath: string;
  htmlPath: string;
}

/**
 * The local files of `--report FILE.html`: FILE.html and FILE.json beside it. Checked before a
 * measurement starts, so a wrong name fails before the work.
 */
export function localReportFiles(htmlPath: string, flag: string): LocalReportFiles {
  const absolute = path.resolve(htmlPath);
  const ext = path.extname(absolute);
  if (!['.html', '.htm'].includes(ext.toLowerCase())) throw new InvalidArgumentError(`expects a file name ending in .html, got '${htmlPath}'`, flag);
  const base = path.basename(absolute, ext);
  return {
    store: new FileStore(path.dirname(absolute)),
    keys: { json: `${base}.json`, html: path.basename(absolute) },
    jsonPath: path.join(path.dirname(absolute), `${base}.json`),
    htmlPath: absolute,
  };
}

/** A CLI run's result: the engine's, with the backend, and the service's outputs and id after --server. */
type RunResult = EngineResult & { backend: string; measurementId?: string } & Partial<Outputs & Pick<MeasurementResult, 'baselineReportUri' | 'baselineDifferences'>>;

/**
 * `--report`: the run's report.json and report.html as local files. A local run has no id and
 * names these files as its outputs; a --server run keeps the id and outputs the service gave.
 */
export async function writeLocalReport(
  files: LocalReportFiles,
  request: MeasureMemorizationRequest,
  result: RunResult,
  baseline?: ReportFile,
): Promise<void> {
  const proto = resultToProto(result, {
    backend: result.backend,
    reportUri: result.reportUri || files.jsonPath,
    reportHtmlUri: result.reportHtmlUri || files.htmlPath,
    fineTunedModelUri: result.fineTunedModelUri ?? '',
  });
  const compared = { baselineReportUri: result.baselineReportUri ?? '', baselineDifferences: result.baselineDifferences ?? [] };
  await writeReport(files.store, files.keys, { measurementId: result.measurementId ?? '', request, result: { ...proto, ...compared } }, baseline);
}
