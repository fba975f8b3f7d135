// The chat page (GET /) in headless Chromium, driven by playwright-core:
// it asks for the key, streams a reply equal to the API's answer, sends the
// conversation on the next turn, and its Stop button frees the server's slot.
import fs from "node:fs";
import path from "node:path";
import { Check, health, ok, same, until } from "./lib.mjs";

// Debian's Chromium, with the flags this machine needs: no sandbox as root,
// and no background connections (the network is closed; they only fail).
const CHROMIUM = process.env.LLAMAC_CHROMIUM ?? "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

export default function pageTests(test, ctx) {
  const names = [
    "page: served without a key, it says the server needs one",
    "page: a wrong key shows the server's error",
    "page: a streamed reply equals the API's answer to the same request",
    "page: the second turn sends the conversation so far",
    "page: Stop ends a long reply and the server frees the slot",
    "page: nothing loaded from elsewhere, no script errors",
  ];
  if (!fs.existsSync(CHROMIUM)) {
    for (const n of names) test.skip(n, `${CHROMIUM} not found (apt-get install chromium)`);
    return;
  }
  let browser, page;
  const outside = [], errors = [];
  const api = async (messages, max_tokens) => {
    const res = await fetch(`${ctx.server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ctx.env.key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ messages, temperature: 0, max_tokens }),
    });
    ok(res.ok, `the API answered ${res.status}`);
    return (await res.json()).choices[0].message.content;
  };
  // Sends a message and waits until the reply (the n-th) is no longer streaming.
  const say = async (text, n) => {
    await page.fill("#input", text);
    await page.click("#send");
    await page.waitForFunction(
      (k) => document.querySelector(".msg.error") ||
        document.querySelectorAll(".msg.assistant:not([data-state=streaming])").length === k,
      n, { timeout: 20000 });
    const err = await page.$(".msg.error");
    if (err) throw new Check(`the page shows an error: ${await err.textContent()}`);
    return page.locator(".msg.assistant").nth(n - 1);
  };

  test.before(async () => {
    const { chromium } = await import("playwright-core");
    // launch() gives Chromium a fresh profile in a temporary folder of its own.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
    page.on("request", (r) => r.url().startsWith(ctx.server.url) || outside.push(r.url()));
    page.on("pageerror", (e) => errors.push(e.message));
  });
  test.after(async () => {
    await browser?.close();
  });

  test(names[0], async () => {
    const res = await page.goto(`${ctx.server.url}/`);
    same(res.status(), 200, "status of GET /");
    await page.waitForFunction(() => document.getElementById("model").textContent.includes("API key"),
      null, { timeout: 10000 });
  });

  test(names[1], async () => {
    await page.fill("#key", "wrong-key");
    await page.fill("#input", "Hello");
    await page.click("#send");
    const err = page.locator(".msg.error");
    await err.waitFor({ timeout: 10000 });
    ok((await err.textContent()).includes("API key"), `the error says: ${await err.textContent()}`);
    await page.click("#clear");
  });

  let first;
  test(names[2], async () => {
    await page.fill("#key", ctx.env.key);
    await page.locator("#key").press("Tab"); // "change": the page asks for the model's name
    await page.waitForFunction((m) => document.getElementById("model").textContent === m,
      ctx.env.modelName, { timeout: 10000 });
    await page.fill("#temperature", "0");
    await page.fill("#max-tokens", "40");
    first = { user: "Tell me about the sea.", reply: await (await say("Tell me about the sea.", 1)).textContent() };
    ok(first.reply.length > 0, "the reply is empty");
    const want = await api([{ role: "user", content: first.user }], 40);
    same(first.reply, want, "the page's reply");
  });

  test(names[3], async () => {
    ok(first, "no first turn (the test before failed)");
    const second = "And what about the land?";
    const reply = await (await say(second, 2)).textContent();
    ok(reply.length > 0, "the second reply is empty");
    const want = await api([
      { role: "user", content: first.user },
      { role: "assistant", content: first.reply },
      { role: "user", content: second },
    ], 40);
    same(reply, want, "the second reply");
  });

  test(names[4], async () => {
    const before = await health(ctx.server.url);
    await page.fill("#max-tokens", ""); // no limit: the reply runs to the end of the context
    await page.fill("#input", "Tell me a long story.");
    await page.click("#send");
    const reply = page.locator(".msg.assistant").nth(2);
    // Stop as soon as text arrives: a whole context takes well under a second here.
    await page.waitForFunction(() => document.querySelectorAll(".msg.assistant")[2]?.textContent, null,
      { timeout: 10000 });
    await page.click("#stop");
    await page.waitForFunction(() => document.querySelectorAll(".msg.assistant")[2].dataset.state !== "streaming",
      null, { timeout: 10000 });
    same(await reply.getAttribute("data-state"), "stopped", "the reply's state");
    ok(await page.isEnabled("#send"), "Send is still disabled");
    await until(async () => {
      const h = await health(ctx.server.url);
      return h.slots_busy === 0 && h.requests_cancelled === before.requests_cancelled + 1;
    }, 5000, "slots_busy 0 and requests_cancelled up by one on /health");
    const shot = process.env.LLAMAC_SCREENSHOT ?? path.join(ctx.buildDir, "chat-page.png");
    await page.screenshot({ path: shot });
    console.log(`     screenshot: ${shot}`);
  });

  test(names[5], async () => {
    ok(outside.length === 0, `requests elsewhere: ${outside.join(", ")}`);
    ok(errors.length === 0, `script errors: ${errors.join("; ")}`);
  });
}
