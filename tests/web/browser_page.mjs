// Drives the page at argv[2] in Debian's chromium (headless, playwright-core; no browser is downloaded):
// fills the form from the JSON on argv[3], generates, and prints the status the page leaves in
// window.ddpmStatus, the console's errors and, where asked, a screenshot.
import { chromium } from 'playwright-core';

const [url, requestJson] = process.argv.slice(2);
const request = JSON.parse(requestJson);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  // WebGPU: without a GPU, chromium offers SwiftShader's software Vulkan as its adapter under this flag.
  args: ['--no-sandbox', request.webgpu ? '--enable-unsafe-webgpu' : '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const consoleErrors = [];
try {
  const page = await browser.newPage();
  page.on('console', (message) => message.type() === 'error' && consoleErrors.push(message.text()));
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  await page.goto(url);
  await page.waitForFunction(() => window.ddpmStatus && (window.ddpmStatus.ready || window.ddpmStatus.error), null, { timeout: 120000 });
  let status = await page.evaluate(() => window.ddpmStatus);
  const backends = await page.$$eval('#backend option', (options) => options.map((o) => o.value));
  const classes = await page.$$eval('#class option', (options) => options.map((o) => o.textContent));
  const wanted = request.fields?.backend;
  if (status.ready && request.generate && (wanted === undefined || backends.includes(wanted))) {
    for (const [id, value] of Object.entries(request.fields ?? {})) {
      const tag = await page.$eval(`#${id}`, (el) => el.tagName);
      if (tag === 'SELECT') await page.selectOption(`#${id}`, String(value));
      else await page.fill(`#${id}`, String(value));
    }
    await page.click('#go');
    await page.waitForFunction(() => window.ddpmStatus && (window.ddpmStatus.done || window.ddpmStatus.error), null, { timeout: 300000 });
    status = await page.evaluate(() => window.ddpmStatus);
  }
  const shown = await page.$eval('#error', (el) => el.textContent);
  const backendNote = await page.$eval('#backend', (el) => el.title);
  const meta = await page.$eval('#meta', (el) => el.textContent);
  if (request.screenshot) await page.screenshot({ path: request.screenshot, fullPage: true });
  console.log(JSON.stringify({ status, shownError: shown, consoleErrors, backends, classes, backendNote, meta }));
} finally {
  await browser.close();
}
