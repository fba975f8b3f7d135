// What the client tests share: the llamac binary and models, a server started
// for the run, and the command line's greedy text to compare answers with.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export function setup(buildDir) {
  const shared = process.env.LLAMAC_SHARED ?? path.join(repo, "..", "shared");
  const models = path.join(shared, "models");
  return {
    llamac: path.resolve(buildDir, "llamac"),
    model: ["-m", path.join(models, "tiny-gutenberg-15M.bin"), "-z", path.join(models, "tokenizer.bin")],
    modelName: "tiny-gutenberg-15M.bin",
    key: "client-test-key",
  };
}

// Starts `llamac serve --port 0` and reads the port it printed on stderr.
export function startServer(env, extra = []) {
  const args = ["serve", ...env.model, "--port", "0", "--api-key", env.key, ...extra];
  const proc = spawn(env.llamac, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill();
      reject(new Error(`no "listening on" line within 20 s:\n${log}`));
    }, 20000);
    proc.on("error", (e) => reject(e));
    proc.on("exit", (code) => reject(new Error(`llamac serve exited with ${code}:\n${log}`)));
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (s) => {
      log += s;
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (!m) return;
      clearTimeout(timer);
      resolve({
        url: `http://127.0.0.1:${m[1]}`,
        log: () => log,
        // SIGTERM, then wait for the exit (the server finishes in-flight work with an error).
        stop: () => new Promise((done) => {
          if (proc.exitCode !== null) return done(proc.exitCode);
          proc.removeAllListeners("exit");
          proc.on("exit", (code) => done(code));
          proc.kill("SIGTERM");
        }),
      });
    });
  });
}

// The command line's stdout without the newline it ends with; stdin is
// /dev/null, so `chat` answers its one -p message and exits.
function cli(env, args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(env.llamac, args, { stdio: ["ignore", "pipe", "ignore"] });
    const out = [];
    proc.stdout.on("data", (b) => out.push(b));
    proc.on("error", reject);
    proc.on("close", (code) => {
      const b = Buffer.concat(out);
      if (code !== 0) reject(new Error(`llamac ${args[0]} exited with ${code}`));
      else resolve(b.subarray(0, b.length - 1).toString("utf8"));
    });
  });
}

// `llamac generate -q -t 0`: the prompt echoed, then the text.
export const cliGenerate = (env, prompt, n) =>
  cli(env, ["generate", "-q", ...env.model, "-t", "0", "-n", String(n), "-p", prompt]);

// `llamac chat -t 0 -p MSG </dev/null`: the assistant's one reply.
export const cliChat = (env, msg, n) =>
  cli(env, ["chat", ...env.model, "-t", "0", "-n", String(n), "-p", msg]);

export async function health(url) {
  const res = await fetch(`${url}/health`);
  return res.json();
}

export class Check extends Error {}

// Throws with both values shown (truncated) when they differ.
export function same(got, want, what) {
  if (got === want) return;
  const show = (s) => JSON.stringify(String(s).slice(0, 200));
  throw new Check(`${what}:\n  got  ${show(got)}\n  want ${show(want)}`);
}

export function ok(cond, what) {
  if (!cond) throw new Check(what);
}

// Polls fn until it returns true, for up to ms milliseconds.
export async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Check(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
