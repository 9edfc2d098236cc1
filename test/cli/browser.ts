/**
 * Headless Chromium for tests, from the npm registry: `@sparticuz/chromium`
 * ships the browser inside its package (unpacked to the temp directory on
 * first use) and `puppeteer-core` drives it, so `npm ci` is all a fresh
 * machine needs. Version 143 of the one and 24 of the other fit Node 20
 * (later ones need Node 22).
 */
import chromium from '@sparticuz/chromium';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

/** Longest wait for the browser to start, load the page and run its scripts, ms. */
const RENDER_TIMEOUT_MS = 60_000;

/**
 * Render `html` from a file:// URL, wait until `readySelector` matches (the
 * page marks itself when its scripts have run), and return the DOM.
 */
export async function renderInChromium(html: string, readySelector: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-report-'));
  const file = join(dir, 'report.html');
  writeFileSync(file, html);
  const browser = await puppeteer.launch({
    executablePath: await chromium.executablePath(),
    // The package's own flags, plus those that keep a browser off the closed network here.
    args: [...chromium.args, '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    headless: true,
    userDataDir: join(dir, 'profile'),
    timeout: RENDER_TIMEOUT_MS,
  });
  try {
    const page = await browser.newPage();
    await page.goto(`file://${file}`, { waitUntil: 'load', timeout: RENDER_TIMEOUT_MS });
    await page.waitForSelector(readySelector, { timeout: RENDER_TIMEOUT_MS }).catch((e: unknown) => {
      throw new Error(`the page never matched ${readySelector} within ${RENDER_TIMEOUT_MS} ms`, { cause: e });
    });
    return await page.content();
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
