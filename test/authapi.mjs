// Starts a real authapi for the Node test suites (the docs portal's
// browser test, the TypeScript SDK's tests): built from this checkout,
// with the embedded default PostgreSQL in a temporary data folder, on a
// free loopback port. Call stop() when done; it drains the server, which
// stops its PostgreSQL, and deletes the folder.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** A port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Builds and starts authapi, with env's AUTH_* settings on top of the
 * test's. Resolves once /readyz answers 200, to { url, stop, logs }.
 */
export async function startAuthapi({ readyTimeoutMs = 90_000, env: settings = {} } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "authapi-node-test-"));
  const bin = path.join(dir, "authapi");
  execFileSync("go", ["build", "-o", bin, "./cmd/authapi"], { cwd: repoRoot, stdio: "inherit" });

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // Only this test's settings: nothing from the caller's AUTH_* variables.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AUTH_")));
  Object.assign(env, {
    AUTH_ADDR: `127.0.0.1:${port}`,
    AUTH_DATA_DIR: path.join(dir, "data"),
    AUTH_LOG_FORMAT: "text",
    AUTH_LOG_LEVEL: "warn",
    ...settings,
  });
  const child = spawn(bin, [], { env, stdio: ["ignore", "pipe", "pipe"] });
  let logs = "";
  child.stdout.on("data", (b) => (logs += b));
  child.stderr.on("data", (b) => (logs += b));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  let done = false;
  exited.then(() => (done = true));

  const stop = async () => {
    if (!done) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (done) {
      await stop();
      throw new Error(`authapi exited before it was ready:\n${logs}`);
    }
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`authapi was not ready within ${readyTimeoutMs} ms:\n${logs}`);
    }
    await sleep(200);
  }
  return { url, stop, logs: () => logs };
}
