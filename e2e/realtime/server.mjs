// The conformance example server (examples/socketio_conformance) on a free port for the
// realtime end-to-end tests, started through ../support/server.mjs.
import { conformanceBinary, freePort, spawnServer } from "../support/server.mjs";

/** Starts the example on `port` (a free one by default); resolves once it listens. */
export async function startServer(port) {
  port = port ?? (await freePort());
  const server = await spawnServer(conformanceBinary(), ["--port", String(port), "--auth-delay-ms", "0"], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn", RUST_BACKTRACE: "0" },
    // Its one line at start, logged at warn: "listening addr=127.0.0.1:PORT".
    ready: /listening addr=/,
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    log: server.log,
    // SIGKILL: the restart test drops the connection as a crash would ("transport close"),
    // without actix's graceful stop waiting on open sockets.
    stop: server.kill,
  };
}
