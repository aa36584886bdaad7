// Starts the programs the Node tests run against, and stops them: the talkconnect binary (a
// fresh data dir, a free port, a UDP media block of its own), the Socket.IO conformance
// example, nginx. Shared by e2e/ and web/e2e/ through a relative import, so it uses Node's
// own modules only.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// The scripts' one build cache (scripts/env), so a test run reuses what scripts/test built.
const TARGET = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), ".cache", "talkconnect-target");

const START_TIMEOUT_MS = 60_000;
// Longer than the server's own 10 s shutdown timeout, so a graceful stop is never cut short.
const STOP_GRACE_MS = 15_000;
// A server's output kept for log(): the tail, so a long benchmark does not grow without end.
const LOG_LIMIT = 1 << 20;
const LISTENING = /listening on https?:\/\//;

/** The server binary: $TALKCONNECT_BIN, else a debug build (cargo, once per process) with
 * MySQL support, as scripts/test builds it (the cluster test on MariaDB needs it). */
export function talkconnectBinary() {
  return cargoBinary("TALKCONNECT_BIN", ["--bin", "talkconnect", "--features", "mysql"], "debug/talkconnect");
}

/** The conformance example: $TALKCONNECT_CONFORMANCE_BIN, else a debug build. */
export function conformanceBinary() {
  return cargoBinary(
    "TALKCONNECT_CONFORMANCE_BIN",
    ["--example", "socketio_conformance"],
    "debug/examples/socketio_conformance",
  );
}

const built = new Map();
function cargoBinary(variable, target, file) {
  if (process.env[variable]) return process.env[variable];
  if (!built.has(variable)) {
    const build = spawnSync("cargo", ["build", "--quiet", ...target], {
      cwd: REPO,
      env: { ...process.env, CARGO_TARGET_DIR: TARGET },
      stdio: "inherit",
    });
    if (build.status !== 0) throw new Error(`cargo build ${target.join(" ")} failed (or set ${variable})`);
    built.set(variable, path.join(TARGET, file));
  }
  return built.get(variable);
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

const temporary = new Set();
const live = new Set();
// A test that fails before its stop() leaves neither a process holding ports nor a folder.
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder in the system's temp dir (removed, at the latest, when the process exits). */
export function tempDir(prefix) {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  temporary.add(dir);
  return dir;
}

function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  temporary.delete(dir);
}

/** The SFU on loopback, on UDP ports `min`–`max` only. */
export function sfuEnv(min, max) {
  return {
    TALKCONNECT__SFU__BIND_IP: "127.0.0.1",
    TALKCONNECT__SFU__ALLOW_LOOPBACK: "true",
    TALKCONNECT__SFU__UDP_PORT_MIN: String(min),
    TALKCONNECT__SFU__UDP_PORT_MAX: String(max),
  };
}

// Servers side by side each get 20 UDP media ports of their own: the block follows the HTTP
// port (a restart on the same port gets the same block), stepping past blocks that another
// live server of this process holds. 41000–46999 stays below the ranges that the browser
// tests name themselves (47100–47499).
const UDP_BASE = 41000;
const UDP_BLOCK = 20;
const UDP_BLOCKS = 300;
const heldBlocks = new Set();
function holdUdpBlock(port) {
  let block = port % UDP_BLOCKS;
  for (let tries = 0; heldBlocks.has(block) && tries < UDP_BLOCKS; tries++) block = (block + 1) % UDP_BLOCKS;
  heldBlocks.add(block);
  const min = UDP_BASE + block * UDP_BLOCK;
  return { min, max: min + UDP_BLOCK - 1, release: () => heldBlocks.delete(block) };
}

/**
 * Spawns `bin` and resolves once it is ready: `ready` is a line its output must show
 * (RegExp, matched without ANSI colours) or a check polled until it answers true. stdout and
 * stderr are kept for log() and echoed with TC_E2E_VERBOSE=1; `dir` is removed by stop()
 * unless keepData. Answers {pid, log(), exited, stop({keepData}), kill()}.
 */
export async function spawnServer(bin, args, { env, cwd, dir, ready = LISTENING, name = path.basename(bin) } = {}) {
  const child = spawn(bin, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  let spawnError = null;
  // The one wait for the end, made at spawn: 'exit' fires once, and never for a binary that
  // could not be spawned ('error' instead).
  const exited = new Promise((resolve) => {
    child.once("exit", resolve);
    child.once("error", (err) => {
      spawnError = err;
      resolve();
    });
  });
  let log = "";
  const collect = (chunk) => {
    log += chunk.toString();
    if (log.length > 2 * LOG_LIMIT) log = log.slice(-LOG_LIMIT);
    if (process.env.TC_E2E_VERBOSE) process.stderr.write(chunk);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);

  let started = false;
  let expected = false;
  const ended = () => `${child.exitCode ?? child.signalCode}`;
  exited.then(() => {
    live.delete(child);
    // Its output is not printed as it goes: show it when a started process dies unasked.
    if (started && !expected) {
      process.stderr.write(`${name} exited by itself (${ended()}); its output:\n${log.slice(-20_000)}\n`);
    }
  });
  // A process killed by a signal has signalCode set and exitCode null, and its 'exit' has
  // fired already: check both, and wait on `exited`, never on a new 'exit' (CI hung on that).
  const running = () => !spawnError && child.exitCode === null && child.signalCode === null;
  async function kill() {
    expected = true;
    if (running()) child.kill("SIGKILL");
    await exited;
  }

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (ready instanceof RegExp ? ready.test(log.replace(/\x1b\[[0-9;]*m/g, "")) : await ready()) break;
    const failure = spawnError
      ? spawnError.message
      : !running()
        ? `exited with ${ended()}`
        : Date.now() > deadline
          ? `did not start within ${START_TIMEOUT_MS / 1000} s`
          : null;
    if (failure) {
      await kill();
      throw new Error(`${name} ${failure}:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  started = true;

  return {
    pid: child.pid,
    log: () => log,
    exited,
    /** SIGTERM, the graceful stop (SIGKILL if it takes too long); removes `dir` unless keepData. */
    async stop({ keepData = false } = {}) {
      expected = true;
      if (running()) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      if (dir && !keepData) removeDir(dir);
    },
    /** SIGKILL: a crash, nothing handed over; the data stays until stop(). */
    kill,
  };
}

/** The variables with a value: `env` may unset a default by giving it null (a benchmark run
 * on a build from before that setting existed). */
function withoutNulls(vars) {
  return Object.fromEntries(Object.entries(vars).filter(([, value]) => value !== null));
}

/**
 * Starts the talkconnect binary on 127.0.0.1: a free port, a fresh SQLite database in a temp
 * data dir, two workers, rate limits off, the SFU on loopback in a UDP block of its own.
 * `env` adds or overrides TALKCONNECT__ settings, `args` go to the binary (`--config FILE` for
 * settings env cannot express, such as lists of tables); `dataDir` and `port` restart a server
 * stopped with keepData on the same database and address; `netns` runs it in that network
 * namespace (`ip netns exec`, which becomes the binary: signals reach it).
 * Answers {url, port, dataDir, pid, log(), exited, stop({keepData}), kill()}; `url` is https
 * when `env` turns TLS on.
 */
export async function startServer({ env = {}, args = [], dataDir, port, netns } = {}) {
  dataDir = dataDir ?? tempDir("tc-e2e-");
  port = port ?? (await freePort());
  const udp = holdUdpBlock(port);
  // Only the settings below: a developer's own TALKCONNECT__ variables (a database URL, say)
  // must not reach a test's server.
  const inherited = Object.entries(process.env).filter(([key]) => !key.startsWith("TALKCONNECT__"));
  let server;
  try {
    const [bin, argv] = netns
      ? ["ip", ["netns", "exec", netns, talkconnectBinary(), ...args]]
      : [talkconnectBinary(), args];
    server = await spawnServer(bin, argv, {
      name: `talkconnect on port ${port}`,
      // Anything the binary writes relative to its working directory lands in the temp dir.
      cwd: dataDir,
      dir: dataDir,
      env: withoutNulls({
        ...Object.fromEntries(inherited),
        RUST_LOG: process.env.RUST_LOG || "warn,talkconnect=info",
        NO_COLOR: "1",
        TALKCONNECT__SERVER__HOST: "127.0.0.1",
        TALKCONNECT__SERVER__PORT: String(port),
        TALKCONNECT__SERVER__WORKERS: "2",
        TALKCONNECT__SERVER__DATA_DIR: dataDir,
        TALKCONNECT__DATABASE__URL: `sqlite://${path.join(dataDir, "talkconnect.db")}`,
        TALKCONNECT__RATE_LIMIT__ENABLED: "false",
        // Tests make many rooms with one host; the seat cap has its own Rust test.
        TALKCONNECT__ROOMS__MAX_SEATS_PER_USER: "1000",
        ...sfuEnv(udp.min, udp.max),
        ...env,
      }),
    });
  } catch (err) {
    udp.release();
    throw err;
  }
  server.exited.then(udp.release);
  const tls = (env.TALKCONNECT__SERVER__TLS__MODE ?? "off") !== "off";
  return { url: `${tls ? "https" : "http"}://127.0.0.1:${port}`, port, dataDir, ...server };
}
