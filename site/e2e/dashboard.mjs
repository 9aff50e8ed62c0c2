// End-to-end checks of the dashboard in headless Chromium (Debian's, driven by playwright-core),
// against a real server and a real workspace proxy that crates/cli/tests/it/dashboard.rs
// starts. Run as `node e2e/dashboard.mjs setup|main`; settings come from the environment.
// Screenshots of each page land in $SCREENSHOTS. Exits non-zero with the failed check.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const CODER_URL = env("CODER_URL").replace(/\/$/, "");
const SCREENSHOTS = env("SCREENSHOTS");
const EMAIL = env("CODER_EMAIL");
const PASSWORD = env("CODER_PASSWORD");
mkdirSync(SCREENSHOTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  // This machine has no internet: keep Chromium from reaching for Google's services.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
context.setDefaultTimeout(30_000);
const page = await context.newPage();
const consoleErrors = [];
page.on("pageerror", (error) => consoleErrors.push(String(error)));

const shot = (name, target = page) => target.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
const step = (what) => console.log(`- ${what}`);

async function setup() {
  step("a new deployment sends the browser to the first-user setup");
  await page.goto(`${CODER_URL}/workspaces`);
  await page.waitForURL(/\/setup$/);
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Password").fill("short");
  await shot("setup");
  await page.getByRole("button", { name: "Create account" }).click();
  // The browser's own validation stops a short password; the server's message shows for others.
  assert.equal(await page.getByLabel("Password").evaluate((el) => el.validity.valid), false);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.waitForURL(/\/workspaces$/);
  await page.getByText("No workspaces yet.").waitFor();
  await shot("workspaces-empty");

  step("signing out and back in goes through the sign-in form");
  await page.getByTestId("account-menu").click();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/login/);
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Password").fill("wrong-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Incorrect email or password.").waitFor();
  await shot("login-error");
}

async function main() {
  const PROXY_URL = env("PROXY_URL").replace(/\/$/, "");
  const PROXY_NAME = env("PROXY_NAME");
  const PROXY_DISPLAY_NAME = env("PROXY_DISPLAY_NAME");
  const PROXY_PID = Number(env("PROXY_PID"));
  const WORKSPACES_DIR = env("WORKSPACES_DIR");
  const AGENT_BINARY = env("AGENT_BINARY");

  step("signing in returns to the page asked for");
  await page.goto(`${CODER_URL}/templates`);
  await page.waitForURL(/\/login\?redirect=/);
  await shot("login");
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/templates$/);
  await page.getByRole("heading", { name: "Templates" }).waitFor();
  await shot("templates");

  step("first visit: the dashboard picks the lowest-latency region by itself");
  const stored = await page.waitForFunction(() => localStorage.getItem("coder.workspace-proxy"));
  const choice = JSON.parse(await stored.jsonValue());
  assert.equal(choice.auto, true, "the first choice is automatic");

  step("create a workspace from the local template, with its parameters");
  await page.getByTestId("create-from-local").click();
  await page.getByTestId("workspace-name").fill("dev");
  await page.getByTestId("param-workspaces_dir").fill(WORKSPACES_DIR);
  await page.getByTestId("param-agent_binary").fill(AGENT_BINARY);
  await shot("create-workspace");
  await page.getByRole("button", { name: "Create workspace" }).click();
  await page.waitForURL(/\/@admin\/dev$/);

  step("the build log streams live and the agent becomes ready");
  const log = page.getByTestId("build-log");
  await log.getByText("Apply complete!").waitFor({ timeout: 90_000 });
  const agent = page.locator("[data-testid^=agent-]").first();
  await agent.getByText("ready", { exact: true }).waitFor({ timeout: 90_000 });
  await agent.getByText("connected", { exact: true }).waitFor();
  await page.getByTestId("agent-log").getByText("workspace dev is ready").waitFor({ timeout: 30_000 });
  await page.getByText("coder ssh dev").waitFor();

  step("a second workspace with the same name is refused with a readable message");
  await page.goto(`${CODER_URL}/templates/local/workspace`);
  await page.getByTestId("workspace-name").fill("dev");
  await page.getByRole("button", { name: "Create workspace" }).click();
  const error = page.getByRole("alert");
  await error.waitFor();
  const text = await error.innerText();
  assert.ok(!text.trim().startsWith("{"), `an error shows as words, not JSON: ${text}`);
  assert.match(text, /already|exists|taken/i);

  step("the workspaces list shows it running, live");
  await page.goto(`${CODER_URL}/workspaces`);
  const row = page.getByTestId("workspace-row-dev");
  await row.getByText("running").waitFor();
  await row.getByText("healthy").waitFor();
  await shot("workspaces");

  step("the proxy picker lists every region with its latency from this browser");
  await page.getByTestId("proxy-menu").click();
  for (const name of ["primary", PROXY_NAME]) {
    const option = page.getByTestId(`proxy-option-${name}`);
    await option.waitFor();
    await page.waitForFunction((el) => /\d+ ms/.test(el.textContent), await option.elementHandle());
  }
  await shot("proxy-menu");
  await page.getByTestId(`proxy-option-${PROXY_NAME}`).click();
  const picked = JSON.parse(await page.evaluate(() => localStorage.getItem("coder.workspace-proxy")));
  assert.equal(picked.auto, false, "a choice the user made is kept as theirs");

  step("Account → Workspace Proxy shows the same, with a refresh");
  await page.getByTestId("account-menu").click();
  await page.getByRole("link", { name: "Account → Workspace Proxy" }).click();
  await page.waitForURL(/\/settings\/workspace-proxies$/);
  await page.getByRole("button", { name: "Refresh latencies" }).click();
  await page.waitForFunction((name) => /\d+ ms/.test(document.querySelector(`[data-testid=latency-${name}]`)?.textContent ?? ""), PROXY_NAME);
  assert.equal(await page.getByTestId(`region-${PROXY_NAME}`).locator("input").isChecked(), true);
  await shot("proxy-settings");

  step("the owner sees the proxy's status, URL and last check");
  await page.goto(`${CODER_URL}/deployment/workspace-proxies`);
  const proxyRow = page.getByTestId(`proxy-row-${PROXY_NAME}`);
  await proxyRow.getByText("ok", { exact: true }).waitFor();
  await proxyRow.getByText(PROXY_URL).waitFor();
  await shot("workspace-proxies");
  await page.goto(`${CODER_URL}/health`);
  await page.getByTestId("health-database").getByText("healthy").waitFor();
  await shot("health");
  await page.goto(`${CODER_URL}/users`);
  await page.getByText(EMAIL).waitFor();
  await page.getByRole("button", { name: "Add user" }).click();
  const newUser = page.getByRole("form", { name: "New user" });
  await newUser.getByLabel("Username").fill("bob");
  await newUser.getByLabel("Email").fill("bob@example.com");
  await newUser.getByLabel("Password").fill("bob-password-1");
  await newUser.getByRole("button", { name: "Create" }).click();
  const bob = page.getByRole("row").filter({ hasText: "bob@example.com" });
  await bob.getByText("active").waitFor();
  await bob.getByRole("button", { name: "Suspend" }).click();
  await bob.getByText("suspended").waitFor();
  await shot("users");

  step("an app opens through the chosen proxy (signing in there through the primary)");
  await page.goto(`${CODER_URL}/@admin/dev`);
  const appLink = page.getByTestId("app-files");
  await appLink.waitFor();
  const appHref = await appLink.getAttribute("href");
  assert.ok(appHref.startsWith(`${PROXY_URL}/@admin/dev.`), `the app opens through the proxy: ${appHref}`);
  await shot("workspace");
  const app = await context.newPage();
  await app.goto(appHref);
  await app.getByText("hello.txt").waitFor();
  assert.ok(app.url().startsWith(PROXY_URL), `served by the proxy: ${app.url()}`);
  await shot("app-through-proxy", app);
  await app.close();

  step("the web terminal runs commands through the proxy and survives a dropped socket");
  const terminalHref = await page.getByTestId("open-terminal").getAttribute("href");
  const term = await context.newPage();
  await term.goto(`${CODER_URL}${terminalHref}`);
  await term.getByTestId("terminal-status").getByText(`Connected · via`).waitFor();
  assert.match(await term.getByTestId("terminal-status").innerText(), new RegExp(`via .*`));
  await term.locator(".xterm-helper-textarea").focus();
  await term.keyboard.type("echo dashboard-$((6 * 7))\n");
  const rows = term.locator(".xterm-rows");
  await term.waitForFunction((el) => el.textContent.includes("dashboard-42"), await rows.elementHandle());
  await shot("terminal", term);
  // Resizing the window resizes the terminal: the program sees the new size.
  const size = async (marker) => {
    await term.keyboard.type(`echo ${marker} $(stty size) ${marker}\n`);
    const handle = await term.waitForFunction(
      (m) => {
        const text = document.querySelector(".xterm-rows")?.textContent ?? "";
        const found = text.match(new RegExp(`${m} (\\d+) (\\d+) ${m}`));
        return found ? `${found[1]}x${found[2]}` : null;
      },
      marker,
    );
    return handle.jsonValue();
  };
  const wide = await size("sizeA");
  await term.setViewportSize({ width: 700, height: 500 });
  await term.waitForTimeout(500);
  const narrow = await size("sizeB");
  assert.notEqual(narrow, wide, `the terminal's size follows the window (${wide} → ${narrow})`);
  // Reloading re-attaches to the same session (its id is in the URL) and replays the output.
  assert.match(term.url(), /reconnect=[0-9a-f-]{36}/);
  await term.reload();
  await term.getByTestId("terminal-status").getByText("Connected").waitFor();
  await term.waitForFunction(() => document.querySelector(".xterm-rows")?.textContent.includes("dashboard-42"));
  await term.close();

  step("a proxy that dies makes the dashboard fall back to the primary and say so");
  process.kill(PROXY_PID, "SIGKILL");
  const started = Date.now();
  await page.getByTestId("proxy-fallback").waitFor({ timeout: 20_000 });
  assert.match(await page.getByTestId("proxy-fallback").innerText(), new RegExp(PROXY_DISPLAY_NAME), "the notice names the proxy");
  const fallbackSeconds = (Date.now() - started) / 1000;
  console.log(`  fallback shown after ${fallbackSeconds.toFixed(1)} s`);
  assert.ok(fallbackSeconds < 15, `fallback within seconds, took ${fallbackSeconds}`);
  const fallbackHref = await page.getByTestId("app-files").getAttribute("href");
  assert.ok(fallbackHref.startsWith(`${CODER_URL}/@admin/dev.`), `apps now open through the primary: ${fallbackHref}`);
  await shot("proxy-fallback");

  step("a narrow window: no sideways scrolling, navigation still reachable");
  await page.setViewportSize({ width: 380, height: 800 });
  await page.goto(`${CODER_URL}/workspaces`);
  await page.getByTestId("workspace-row-dev").waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page fits a 380 px window (overflows by ${overflow} px)`);
  await shot("workspaces-narrow");

  step("stop, start and delete from the workspace page, each build's log live");
  await page.goto(`${CODER_URL}/@admin/dev`);
  await page.getByRole("button", { name: "Stop" }).click();
  await page.getByRole("heading", { name: /dev/ }).getByText("stopped", { exact: true }).waitFor({ timeout: 90_000 });
  await page.getByText("build #2 (stop)").waitFor();
  await log.getByText("Apply complete!").waitFor();
  await page.getByRole("button", { name: "Start" }).click();
  await page.getByText("build #3 (start)").waitFor();
  await page.getByRole("heading", { name: /dev/ }).getByText("running", { exact: true }).waitFor({ timeout: 90_000 });
  await agent.getByText("ready", { exact: true }).waitFor({ timeout: 90_000 });
  page.once("dialog", (dialog) => dialog.accept("dev"));
  await page.getByRole("button", { name: "Delete" }).click();
  await page.waitForURL(/\/workspaces$/, { timeout: 90_000 });
  await page.getByText("No workspaces yet.").waitFor();

  step("keyboard: the menus open with Enter and close with Escape");
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByTestId("account-menu").focus();
  await page.keyboard.press("Enter");
  await page.getByRole("link", { name: "Account → Workspace Proxy" }).waitFor();
  await page.keyboard.press("Escape");
  await page.getByRole("link", { name: "Account → Workspace Proxy" }).waitFor({ state: "detached" });
}

try {
  const phase = process.argv[2];
  if (phase === "setup") await setup();
  else if (phase === "main") await main();
  else throw new Error(`unknown phase ${phase}: use setup or main`);
  assert.deepEqual(consoleErrors, [], "no script errors on any page");
  console.log("ok");
} catch (error) {
  await shot("failure").catch(() => undefined);
  console.error(error);
  process.exitCode = 1;
} finally {
  await browser.close();
}
