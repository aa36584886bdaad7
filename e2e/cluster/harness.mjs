// A cluster for end-to-end tests: several processes of the real talkconnect binary on free
// ports, sharing one fresh PostgreSQL (or MariaDB) database and one Redis key prefix, as a
// community runs them behind a proxy; and nginx in front of them. Processes are started and stopped by
// ../support/server.mjs; REST and Socket.IO helpers come from the gateway harness.
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { REPO, freePort, spawnServer, startServer, tempDir } from "../support/server.mjs";

export { api, call, closeAll, connect, guest, next, record, room, settle } from "../gateway/harness.mjs";

const PG = process.env.TALKCONNECT_TEST_POSTGRES_URL || "postgres://postgres@127.0.0.1:5432";
// The account scripts/services makes on MariaDB (a binary built with the mysql feature).
const MYSQL = { host: "127.0.0.1", port: "3306", user: "talkconnect_test", password: "talkconnect_test" };
const REDIS_HOST = "127.0.0.1";
const REDIS_PORT = "6379";
export const REDIS_URL = `redis://${REDIS_HOST}:${REDIS_PORT}`;

function run(cmd, args) {
  return spawnSync(cmd, args, { encoding: "utf8" });
}

export function redisUp() {
  const r = run("redis-cli", ["-h", REDIS_HOST, "-p", REDIS_PORT, "ping"]);
  return r.status === 0 && r.stdout.trim() === "PONG";
}

function postgresUp() {
  return run("pg_isready", ["-h", "127.0.0.1", "-p", "5432", "-q"]).status === 0;
}

/** A statement run on MariaDB as the test account. */
function mysql(sql) {
  return run("mariadb", ["-h", MYSQL.host, "-P", MYSQL.port, "-u", MYSQL.user, `-p${MYSQL.password}`, "-e", sql]);
}

export function mariadbUp() {
  return mysql("SELECT 1").status === 0;
}

/**
 * Whether the services are here. Under CI a missing service fails the test (never skips);
 * elsewhere the caller skips with the returned reason.
 */
export function servicesMissing({ database = "postgres" } = {}) {
  const missing = [];
  if (database === "postgres" && !postgresUp()) missing.push("PostgreSQL on 127.0.0.1:5432");
  if (database === "mysql" && !mariadbUp()) missing.push("MariaDB on 127.0.0.1:3306");
  if (!redisUp()) missing.push("Redis on 127.0.0.1:6379");
  if (missing.length === 0) return null;
  const reason = `${missing.join(" and ")} not reachable (run scripts/services)`;
  if (process.env.CI === "true") throw new Error(reason);
  return reason;
}

/** Redis stopped at once, as a crash would (no save). */
export function stopRedis() {
  run("redis-cli", ["-h", REDIS_HOST, "-p", REDIS_PORT, "shutdown", "nosave"]);
}

/** Redis started again the way scripts/services starts it. */
export function startRedis() {
  const r = run(path.join(REPO, "scripts/services"), []);
  if (r.status !== 0) throw new Error(`scripts/services failed: ${r.stderr}`);
}

export function redisCli(...args) {
  const r = run("redis-cli", ["-h", REDIS_HOST, "-p", REDIS_PORT, ...args]);
  if (r.status !== 0) throw new Error(`redis-cli ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Waits until `check()` is truthy (polling), or fails after `ms`. */
export async function eventually(check, what, ms = 30_000) {
  const until = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A fresh cluster context: its own database (PostgreSQL, or MariaDB with `database:
 * "mysql"`) and Redis key prefix. `replica()` starts one more process of the binary on it.
 */
export async function cluster(name, { database = "postgres" } = {}) {
  const db = `tc_cluster_${name.replace(/\W/g, "_")}_${randomUUID().slice(0, 8)}`;
  const onMysql = database === "mysql";
  const created = onMysql
    ? mysql(`CREATE DATABASE ${db} CHARACTER SET utf8mb4`)
    : run("psql", [`${PG}/postgres`, "-q", "-c", `CREATE DATABASE ${db}`]);
  if (created.status !== 0) throw new Error(`CREATE DATABASE: ${created.stderr}`);
  const url = onMysql
    ? `mysql://${MYSQL.user}:${MYSQL.password}@${MYSQL.host}:${MYSQL.port}/${db}`
    : `${PG}/${db}`;
  const prefix = `tc-test:${db}:`;
  const replicas = [];
  const secret = randomUUID();
  return {
    prefix,
    /** The database's name. */
    database: db,
    replicas,
    /** Starts a replica; `env` adds TALKCONNECT__ settings. */
    async replica(env = {}) {
      const r = await startServer({
        env: {
          TALKCONNECT__DATABASE__URL: url,
          TALKCONNECT__REDIS__URL: REDIS_URL,
          TALKCONNECT__REDIS__KEY_PREFIX: prefix,
          TALKCONNECT__AUTH__JWT_SECRET: secret,
          TALKCONNECT__CLUSTER__NODE_ID: `${name.replace(/\W/g, "-")}-${replicas.length + 1}`,
          ...env,
        },
      });
      replicas.push(r);
      return r;
    },
    async close() {
      for (const r of replicas) await r.stop();
      if (onMysql) mysql(`DROP DATABASE IF EXISTS ${db}`);
      else run("psql", [`${PG}/postgres`, "-q", "-c", `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`]);
      if (redisUp()) {
        const keys = run("redis-cli", ["-h", REDIS_HOST, "-p", REDIS_PORT, "--scan", "--pattern", `${prefix}*`]);
        const list = keys.stdout.split("\n").filter(Boolean);
        for (let i = 0; i < list.length; i += 200) redisCli("del", ...list.slice(i, i + 200));
      }
    },
  };
}

/** GET /readyz: {status, code}. */
export async function readyz(replica) {
  const response = await fetch(replica.url + "/readyz");
  const body = await response.json();
  return { status: response.status, code: body.error?.code ?? body.status };
}

export function nginxInstalled() {
  return spawnSync("nginx", ["-v"], { encoding: "utf8" }).status === 0;
}

/**
 * nginx with deploy/nginx.conf in front of `replicas`, on a free port: the shipped file with
 * only its listen port and upstream servers replaced, wrapped in a minimal main config.
 */
export async function startNginx(replicas) {
  const dir = tempDir("tc-nginx-");
  const port = await freePort();
  let site = readFileSync(path.join(REPO, "deploy/nginx.conf"), "utf8");
  site = site.replace(/^\s*listen 8080;/m, `    listen 127.0.0.1:${port};`);
  // The shipped servers' parameters (max_fails, fail_timeout) on the test's replicas.
  const params = site.match(/^\s*server 127\.0\.0\.1:808\d([^;]*);/m)?.[1] ?? "";
  site = site.replace(/^\s*(# )?server 127\.0\.0\.1:808\d.*$/gm, "");
  const servers = replicas.map((r) => `    server 127.0.0.1:${r.port}${params};`).join("\n");
  site = site.replace(/^(\s*(# )?ip_hash;)$/m, `$1\n${servers}`);
  writeFileSync(path.join(dir, "site.conf"), site);
  writeFileSync(
    path.join(dir, "nginx.conf"),
    [
      "worker_processes 1;",
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log warn;`,
      "events { worker_connections 1024; }",
      "http {",
      `  access_log off;`,
      `  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;`,
      `  fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`,
      `  include ${dir}/site.conf;`,
      "}",
    ].join("\n"),
  );
  const url = `http://127.0.0.1:${port}`;
  const nginx = await spawnServer("nginx", ["-p", dir, "-c", path.join(dir, "nginx.conf"), "-g", "daemon off;"], {
    dir,
    ready: async () => {
      try {
        return (await fetch(url + "/healthz")).status === 200;
      } catch {
        return false;
      }
    },
  });
  return { url, port, stop: nginx.stop };
}
