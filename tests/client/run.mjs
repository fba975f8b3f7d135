// llamac serve against real clients: OpenAI's npm client (api.test.mjs) and
// the chat page in headless Chromium (page.test.mjs), all against one server
// with 16 slots. Prints "ok   NAME", "FAIL NAME" or "skip NAME" per test and
// a summary line tests/run.sh reads. Usage: node tests/client/run.mjs BUILD_DIR
import apiTests from "./api.test.mjs";
import pageTests from "./page.test.mjs";
import { Check, setup, startServer } from "./lib.mjs";

const TEST_TIMEOUT_MS = 60000;
const buildDir = process.argv[2] ?? "build";
const ctx = { env: setup(buildDir), buildDir, server: null };
const counts = { passed: 0, failed: 0, skipped: 0 };

function fail(name, err) {
  counts.failed++;
  console.log(`FAIL ${name}`);
  // A Check is an expected/actual mismatch; anything else is shown with its stack.
  const text = err instanceof Check ? err.message : err?.stack ?? String(err);
  for (const line of text.split("\n").slice(0, 12)) console.log(`     ${line}`);
}

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Check(`no result within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// One module's tests, in order, with its optional before/after hooks.
async function runModule(define) {
  const tests = [], hooks = { before: null, after: null };
  const test = (name, fn) => tests.push({ name, fn });
  test.skip = (name, why) => tests.push({ name, skip: why });
  test.before = (fn) => (hooks.before = fn);
  test.after = (fn) => (hooks.after = fn);
  define(test, ctx);
  let setupError = null;
  if (hooks.before && tests.some((t) => !t.skip)) {
    try {
      await withTimeout(hooks.before(), TEST_TIMEOUT_MS);
    } catch (e) {
      setupError = e;
    }
  }
  for (const t of tests) {
    if (t.skip) {
      counts.skipped++;
      console.log(`skip ${t.name}: ${t.skip}`);
      continue;
    }
    if (setupError) {
      fail(t.name, setupError);
      continue;
    }
    try {
      await withTimeout(t.fn(), TEST_TIMEOUT_MS);
      counts.passed++;
      console.log(`ok   ${t.name}`);
    } catch (e) {
      fail(t.name, e);
    }
  }
  if (hooks.after) await hooks.after().catch((e) => console.log(`     (cleanup failed: ${e.message})`));
}

function summary() {
  const { passed, failed, skipped } = counts;
  console.log(`client: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  process.exit(failed > 0 ? 1 : 0);
}

// One engine thread: the CPU backend's thread pool spins while it waits for
// its workers, and on a 2-core machine shared with Node and Chromium a
// descheduled worker turned 1 s of work into 10 to 60 s. One thread keeps
// the suite fast and steady; batching is the same with any thread count.
try {
  ctx.server = await startServer(ctx.env, ["--parallel", "16", "--threads", "1"]);
} catch (e) {
  fail("llamac serve starts", e);
  summary();
}
await runModule(apiTests);
await runModule(pageTests);
const code = await ctx.server.stop();
if (code === 0) {
  counts.passed++;
  console.log("ok   the server exits 0 on SIGTERM after the clients");
} else {
  fail("the server exits 0 on SIGTERM after the clients", new Check(`exit ${code}\n${ctx.server.log()}`));
}
summary();
