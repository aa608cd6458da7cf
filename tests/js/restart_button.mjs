// Logs in to a private build page in headless Chromium (the login form,
// then the session cookie) and presses Restart: the page's script sends the
// session's CSRF token and the browser its own Origin, and the new build's
// page opens.
import { launch } from "./chromium.mjs";

const browser = await launch();
try {
  const page = await browser.newPage();
  await page.goto(process.env.PAGE_URL);
  const login = new URL(page.url()).pathname;
  await page.fill("input[name=token]", process.env.TOKEN);
  await Promise.all([page.waitForURL(process.env.PAGE_URL), page.click("button[type=submit]")]);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "greenlight_session");
  await Promise.all([page.waitForURL(process.env.NEXT_URL, { timeout: 30000 }), page.click("button[data-action=restart]")]);
  const heading = await page.textContent("h1");
  console.log(JSON.stringify({ login, httpOnly: session && session.httpOnly, sameSite: session && session.sameSite, heading }));
} finally {
  await browser.close();
}
