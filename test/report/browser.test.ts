import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReportHtml } from '../../src/report/html.js';
import { fixture } from './support.js';

/** Debian's chromium (scripts/install-test-deps.sh installs it). */
const CHROMIUM = '/usr/bin/chromium';

/** Where MEMOMETER_UPDATE_SCREENSHOT=1 saves the screenshot the README shows. */
const SCREENSHOT = 'docs/report.png';

/** Width, height and luminance spread of a PNG, decoded by the browser itself. */
async function pngStats(page: Page, png: Buffer): Promise<{ width: number; height: number; std: number; colors: number }> {
  return page.evaluate(async (dataUrl) => {
    // The page's DOM, typed as far as used here (the project compiles without lib "dom").
    type Canvas = { width: number; height: number; getContext(kind: '2d'): { drawImage(image: unknown, x: number, y: number): void; getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null };
    const { Image, document } = globalThis as unknown as {
      Image: new () => { src: string; width: number; height: number; decode(): Promise<void> };
      document: { createElement(tag: 'canvas'): Canvas };
    };
    const image = new Image();
    image.src = dataUrl;
    await image.decode();
    const canvas = document.createElement('canvas');
    canvas.width = image.width;
    canvas.height = image.height;
    const context = canvas.getContext('2d')!;
    context.drawImage(image, 0, 0);
    const { data } = context.getImageData(0, 0, image.width, image.height);
    let sum = 0;
    let squares = 0;
    const colors = new Set<number>();
    for (let i = 0; i < data.length; i += 4) {
      const y = 0.2126 * data[i]! + 0.7152 * data[i + 1]! + 0.0722 * data[i + 2]!;
      sum += y;
      squares += y * y;
      colors.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
    }
    const n = data.length / 4;
    return { width: image.width, height: image.height, std: Math.sqrt(squares / n - (sum / n) ** 2), colors: colors.size };
  }, `data:image/png;base64,${png.toString('base64')}`);
}

describe('report.html in a real browser (headless chromium, file://, no network)', () => {
  let browser: Browser;
  let dir: string;

  beforeAll(async () => {
    // A prerequisite of the suite, not optional: fail with the fix rather than skip silently.
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/install-test-deps.sh (installs chromium)`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    dir = await mkdtemp(path.join(tmpdir(), 'memometer-report-'));
  });
  afterAll(async () => {
    await browser?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('renders every chart with all its marks, without errors or requests, and looks like something', async () => {
    const file = path.join(dir, 'report.html');
    await writeFile(file, await renderReportHtml(fixture('this'), fixture('baseline')));
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    const url = pathToFileURL(file).href;
    page.on('request', (r) => {
      if (r.url() !== url) problems.push(`request: ${r.url()}`);
    });
    await page.goto(url, { waitUntil: 'load' });

    const count = (selector: string) => page.locator(selector).count();
    expect(await count('figure svg')).toBe(4);
    // 3 depths; this measurement and its baseline; 2 seeds each (as in test/report/html.test.ts).
    expect(await count('#chart-accuracy [aria-roledescription="point"]')).toBe(12);
    expect(await count('#chart-accuracy [aria-roledescription="errorbar"]')).toBe(6);
    expect(await count('#chart-score [aria-roledescription="point"]')).toBe(6);
    expect(await count('#chart-score [aria-roledescription="errorbar"]')).toBe(6);
    expect(await count('#chart-curves [aria-roledescription="line mark"]')).toBe(6);
    expect(await count('#chart-class [aria-roledescription="bar"]')).toBe(12);
    for (const svg of await page.locator('figure svg').all()) {
      const box = (await svg.boundingBox())!;
      expect(box.width).toBeGreaterThan(300);
      expect(box.height).toBeGreaterThan(200);
    }

    const screenshot = await page.screenshot({ fullPage: true });
    const chart = await page.locator('#chart-accuracy svg').screenshot();
    const charts = (await page.locator('section.charts').boundingBox())!;
    const top = await page.screenshot({ fullPage: true, clip: { x: 0, y: 0, width: 1200, height: Math.ceil(charts.y + charts.height + 24) } });
    if (process.env.MEMOMETER_UPDATE_SCREENSHOT === '1') {
      await mkdir(path.dirname(SCREENSHOT), { recursive: true });
      await writeFile(SCREENSHOT, top);
    }

    const blank = await browser.newPage();
    try {
      const full = await pngStats(blank, screenshot);
      expect(full.width).toBe(1200);
      expect(full.height).toBeGreaterThan(1500);
      // A blank or single-colour page has a spread near 0 and a handful of colours.
      expect(full.std).toBeGreaterThan(10);
      expect(full.colors).toBeGreaterThan(200);
      const plot = await pngStats(blank, chart);
      expect(plot.std).toBeGreaterThan(10);
      expect(plot.colors).toBeGreaterThan(50);
    } finally {
      await blank.close();
    }
    expect(problems).toEqual([]);
  });
});
