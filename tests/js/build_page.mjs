// Opens a build page in headless Chromium and watches it follow a running
// build: log lines must appear and the status turn to success without a reload.
import { writeFileSync } from "node:fs";
import { launch } from "./chromium.mjs";

const browser = await launch();
try {
  const page = await browser.newPage();
  let loads = 0;
  page.on("load", () => { loads += 1; });
  await page.goto(process.env.PAGE_URL);
  const initial = await page.textContent(process.env.LOG_SELECTOR);
  // Tells the running step the page is loaded: it prints the rest only then.
  if (process.env.LOADED_FILE) writeFileSync(process.env.LOADED_FILE, "loaded\n");
  await page.waitForFunction(
    ([selector, text]) => document.querySelector(selector).textContent.includes(text),
    [process.env.LOG_SELECTOR, process.env.EXPECT_LINE],
    { timeout: 30000 },
  );
  await page.waitForFunction(() => document.getElementById("build-status").dataset.status === "success", null, { timeout: 30000 });
  const final = await page.textContent(process.env.LOG_SELECTOR);
  console.log(JSON.stringify({ loads, initial, final, status: await page.getAttribute("#build-status", "data-status") }));
} finally {
  await browser.close();
}
