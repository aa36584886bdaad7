// Builds and spawns the conformance example server (examples/socketio_conformance) on a free
// port for the realtime end-to-end tests.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const targetDir = process.env.CARGO_TARGET_DIR || path.join(repo, "target");

/** Path of the example binary, built once (`cargo build --example socketio_conformance`). */
export function buildServer() {
  const bin =
    process.env.TALKCONNECT_CONFORMANCE_BIN ||
    path.join(targetDir, "debug", "examples", "socketio_conformance");
  if (!process.env.TALKCONNECT_CONFORMANCE_BIN) {
    const build = spawnSync("cargo", ["build", "--quiet", "--example", "socketio_conformance"], {
      cwd: repo,
      stdio: "inherit",
    });
    if (build.status !== 0) throw new Error("cargo build of the conformance example failed");
  }
  if (!existsSync(bin)) throw new Error(`server binary missing: ${bin}`);
  return bin;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

/** Starts the server on `port` (a free one by default); resolves once it accepts connections. */
export async function startServer(bin, port) {
  port = port ?? (await freePort());
  const child = spawn(bin, ["--port", String(port), "--auth-delay-ms", "0"], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "error", RUST_BACKTRACE: "0" },
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    if (await canConnect(port)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}
