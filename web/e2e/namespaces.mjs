// Network namespaces, veth pairs and nftables for the e2e tests that put browsers and the
// server on networks of their own (root only; iproute2 and nftables). Every name a test makes
// starts with its own prefix (netns.test.mjs: tcn-, ice-restart.test.mjs: tcn-ice-), so
// `removeNamespaces(prefix)` cleans up after it, also after a crashed run.
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { chromiumPath } from './harness.mjs';

// ip and nft live in /usr/sbin, which a root shell's PATH may lack (su without -).
if (!process.env.PATH?.split(':').includes('/usr/sbin')) process.env.PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;

export const run = (cmd, ...args) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
export const inNs = (ns, cmd, ...args) => run('ip', 'netns', 'exec', ns, cmd, ...args);
export const nft = (ns, ruleset) =>
  execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: ruleset, stdio: ['pipe', 'pipe', 'pipe'] });

/** Removes the namespaces named `prefix`… (their veths and nftables tables go with them) and
 * any veth of ours a crash left in the root namespace. A crashed run's server and browsers
 * still live in its namespaces (and would keep them alive, unnamed): they are ended first. */
export function removeNamespaces(prefix) {
  for (const line of run('ip', 'netns', 'list').split('\n')) {
    const name = line.split(' ')[0];
    if (!name.startsWith(prefix)) continue;
    for (const pid of run('ip', 'netns', 'pids', name).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    run('ip', 'netns', 'del', name);
  }
  for (const line of run('ip', '-o', 'link', 'show').split('\n')) {
    const name = /^\d+: ([^:@]+)/.exec(line)?.[1];
    if (name?.startsWith(prefix)) run('ip', 'link', 'del', name);
  }
}

/** A namespace with loopback up and IPv6 off: IPv6 link-local addresses that finish their
 * duplicate check after Chromium started are a network change to it, and abort the page load
 * in flight. */
export function addNamespace(ns) {
  run('ip', 'netns', 'add', ns);
  inNs(ns, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6');
  inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
}

/** A veth pair from `a` (address `ipA`) to `b` (address `ipB`), both ends up. */
export function link(a, nameA, ipA, b, nameB, ipB) {
  run('ip', 'link', 'add', nameA, 'netns', a, 'type', 'veth', 'peer', 'name', nameB, 'netns', b);
  inNs(a, 'ip', 'addr', 'add', ipA, 'dev', nameA);
  inNs(b, 'ip', 'addr', 'add', ipB, 'dev', nameB);
  inNs(a, 'ip', 'link', 'set', nameA, 'up');
  inNs(b, 'ip', 'link', 'set', nameB, 'up');
}

/** A wrapper script that runs Chromium in namespace `ns` (`ip netns exec`, which keeps
 * playwright's pipe), written into `dir`: launchBrowser's `executablePath`. */
export function chromiumIn(ns, dir) {
  const wrapper = join(dir, `chromium-${ns}`);
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${chromiumPath()} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return wrapper;
}
