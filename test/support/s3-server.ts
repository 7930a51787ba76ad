/**
 * Starts a real S3-compatible object store for tests: OpenStack Swift (account, container, object
 * and proxy servers) with its s3api middleware and tempauth, plus the memcached the proxy needs,
 * all on 127.0.0.1 with ports found at run time and all state in one temp directory.
 *
 * No MinIO server is installable offline; Swift from Debian is (see the package list below).
 * Every server runs in its own process group (spawned detached: Swift's servers call setsid() after
 * dropping privileges, which would take them out of a shared group). `stop()` kills each group and
 * removes the temp directory; an `exit` hook and a small watchdog shell (which notices when this
 * Node process is gone, e.g. killed by a signal) do the same if `stop()` is never called.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, constants as fsConstants, openSync, readFileSync, rmSync } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import * as path from 'node:path';

import { Client } from 'minio';

/** The Debian packages that provide everything this helper runs. */
export const SWIFT_APT_PACKAGES = ['swift', 'swift-proxy', 'swift-account', 'swift-container', 'swift-object', 'memcached'] as const;

/** The programs this helper runs, and the Debian package of each. */
const PROGRAMS: Record<string, string> = {
  'swift-ring-builder': 'swift',
  'swift-account-server': 'swift-account',
  'swift-container-server': 'swift-container',
  'swift-object-server': 'swift-object',
  'swift-proxy-server': 'swift-proxy',
  memcached: 'memcached',
};

/**
 * Swift reads its hash prefix/suffix and storage policies from this fixed path (the servers never
 * apply `swift_dir` to it); Debian's `swift` package installs it. The rings and everything else
 * come from the temp directory.
 */
const SWIFT_CONF_FILE = '/etc/swift/swift.conf';

export interface S3TestServer {
  /** `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  readonly region: string;
  /** tempauth user `test:tester` as an S3 access key. */
  readonly accessKey: string;
  readonly secretKey: string;
  /** The temp directory with configs, rings, data and `log/*.log` (removed by `stop`). */
  readonly dir: string;
  /** The process-group ids of the servers (memcached, account, container, object, proxy). */
  readonly pids: readonly number[];
  /** How long start-up took, from the program check to the first successful makeBucket. */
  readonly startupMs: number;
  /** The last lines of every server log (for failure messages). */
  logTail(lines?: number): string;
  /** Kills every server and removes the temp directory. Idempotent. */
  stop(): Promise<void>;
}

export interface StartS3ServerOptions {
  /** How long to wait for the store to accept a makeBucket (default 60 s). */
  readyTimeoutMs?: number;
  /** Keep the temp directory (configs, data, logs) after `stop` for debugging (default false). */
  keepDir?: boolean;
}

export const S3_TEST_ACCESS_KEY = 'test:tester';
export const S3_TEST_SECRET_KEY = 'testing';
export const S3_TEST_REGION = 'us-east-1';
/** The most keys one ListObjects(V2) answer of the test server holds. */
export const S3_TEST_LIST_PAGE = 50;

function missingPackagesError(missing: string[]): Error {
  const pkgs = [...new Set(missing.map((p) => PROGRAMS[p] ?? p))];
  return new Error(
    `the S3 test server needs OpenStack Swift and memcached, but ${missing.join(', ')} ` +
      `${missing.length === 1 ? 'is' : 'are'} not installed (missing Debian package(s): ${pkgs.join(' ')}). ` +
      `Install them with: apt-get install -y --no-install-recommends ${SWIFT_APT_PACKAGES.join(' ')}`,
  );
}

async function findProgram(name: string): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/bin', '/usr/sbin', '/usr/local/bin']);
  for (const dir of dirs) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      await access(file, fsConstants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Checks that every program is installed; throws naming the apt packages otherwise. */
export async function checkSwiftInstalled(): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const name of Object.keys(PROGRAMS)) {
    const file = await findProgram(name);
    if (file) found[name] = file;
    else missing.push(name);
  }
  if (missing.length > 0) throw missingPackagesError(missing);
  try {
    await access(SWIFT_CONF_FILE, fsConstants.R_OK);
  } catch {
    throw new Error(
      `the S3 test server needs ${SWIFT_CONF_FILE} (installed by the Debian package swift; Swift reads the hash ` +
        `prefix/suffix and storage policies only from there). Install: apt-get install -y ${SWIFT_APT_PACKAGES.join(' ')}`,
    );
  }
  return found;
}

/** `n` distinct free TCP ports on 127.0.0.1 (all held open together, then released). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const addr = s.address();
    if (addr === null || typeof addr === 'string') throw new Error('could not read a bound port');
    return addr.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

function run(file: string, args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

/**
 * What `swift-ring-builder X.builder create 10 1 1`, `add r1z1-127.0.0.1:PORT/DEVICE 1` and
 * `rebalance` do, for all three rings in one Python process (each swift-ring-builder run spends
 * ~1 s of CPU importing Swift; nine of them dominated the start-up time).
 */
const RING_SCRIPT = `
import sys
from swift.common.ring import RingBuilder
etc, device = sys.argv[1], sys.argv[2]
for spec in sys.argv[3:]:
    kind, port = spec.split(':')
    builder = RingBuilder(10, 1, 1)
    builder.add_dev({'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port),
                     'replication_ip': '127.0.0.1', 'replication_port': int(port),
                     'device': device, 'weight': 1.0, 'meta': ''})
    builder.rebalance()
    builder.save('%s/%s.builder' % (etc, kind))
    builder.get_ring().save('%s/%s.ring.gz' % (etc, kind))
`;

/** The interpreter named on the `#!` line of a Python script (the one that has Swift installed). */
async function shebangInterpreter(script: string): Promise<string | undefined> {
  try {
    const first = (await readFile(script, 'utf8')).split('\n', 1)[0] ?? '';
    const m = /^#!\s*(\S+)(?:\s+(\S+))?/.exec(first);
    if (!m) return undefined;
    // `#!/usr/bin/env python3` names the interpreter in the second word.
    return m[1]?.endsWith('/env') ? m[2] : m[1];
  } catch {
    return undefined;
  }
}

/**
 * Builds account, container and object rings with one device each. Uses Swift's RingBuilder in one
 * process when it can, else the swift-ring-builder command line (create / add / rebalance).
 */
async function buildRings(ringBuilder: string, etc: string, ports: Record<'account' | 'container' | 'object', number>, device: string): Promise<void> {
  const kinds = ['account', 'container', 'object'] as const;
  const ringsExist = async (): Promise<boolean> => {
    try {
      await Promise.all(kinds.map((k) => access(path.join(etc, `${k}.ring.gz`))));
      return true;
    } catch {
      return false;
    }
  };
  const python = await shebangInterpreter(ringBuilder);
  let fastOutput = '';
  if (python && /python[0-9.]*$/.test(path.basename(python))) {
    const { code, output } = await run(python, ['-c', RING_SCRIPT, etc, device, ...kinds.map((k) => `${k}:${ports[k]}`)], etc);
    fastOutput = output;
    if (code === 0 && (await ringsExist())) return;
  }
  await Promise.all(
    kinds.map(async (kind) => {
      const builder = `${kind}.builder`;
      const steps: string[][] = [
        [builder, 'create', '10', '1', '1'],
        [builder, 'add', `r1z1-127.0.0.1:${ports[kind]}/${device}`, '1'],
        [builder, 'rebalance'],
      ];
      for (const args of steps) {
        const { code, output } = await run(ringBuilder, args, etc);
        // rebalance exits 1 for warnings; the ring file check below decides.
        if (code !== 0 && !(args[1] === 'rebalance' && code === 1)) {
          throw new Error(
            `swift-ring-builder ${args.join(' ')} failed (exit ${code}):\n${output}` +
              (fastOutput ? `\n(building the rings in one Python process failed too:\n${fastOutput})` : ''),
          );
        }
      }
    }),
  );
  if (!(await ringsExist())) throw new Error(`swift-ring-builder did not write the rings into ${etc}`);
}

function commonConf(dir: string, port: number, user: string): string {
  return [
    '[DEFAULT]',
    'bind_ip = 127.0.0.1',
    `bind_port = ${port}`,
    'workers = 1',
    `user = ${user}`,
    `swift_dir = ${path.join(dir, 'etc')}`,
    `devices = ${path.join(dir, 'srv')}`,
    'mount_check = false',
    'log_level = INFO',
    '',
  ].join('\n');
}

function serverConf(kind: 'account' | 'container' | 'object', dir: string, port: number, user: string): string {
  return (
    commonConf(dir, port, user) +
    ['[pipeline:main]', `pipeline = ${kind}-server`, '', `[app:${kind}-server]`, `use = egg:swift#${kind}`, ''].join('\n')
  );
}

function proxyConf(dir: string, port: number, user: string, memcachedPort: number): string {
  const filters: Record<string, string[]> = {
    catch_errors: ['use = egg:swift#catch_errors'],
    gatekeeper: ['use = egg:swift#gatekeeper'],
    healthcheck: ['use = egg:swift#healthcheck'],
    'proxy-logging': ['use = egg:swift#proxy_logging'],
    cache: ['use = egg:swift#memcache', `memcache_servers = 127.0.0.1:${memcachedPort}`],
    listing_formats: ['use = egg:swift#listing_formats'],
    bulk: ['use = egg:swift#bulk'],
    // Listings come in pages of at most 50 keys (S3's page is 1000), so that tests of listing
    // code cover continuation without writing thousands of objects.
    s3api: ['use = egg:swift#s3api', `location = ${S3_TEST_REGION}`, `max_bucket_listing = ${S3_TEST_LIST_PAGE}`],
    tempauth: ['use = egg:swift#tempauth', `user_test_tester = ${S3_TEST_SECRET_KEY} .admin`],
    copy: ['use = egg:swift#copy'],
    slo: ['use = egg:swift#slo'],
    dlo: ['use = egg:swift#dlo'],
  };
  const lines = [
    '[pipeline:main]',
    'pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server',
    '',
    '[app:proxy-server]',
    'use = egg:swift#proxy',
    'account_autocreate = true',
    'allow_account_management = true',
    '',
  ];
  for (const [name, body] of Object.entries(filters)) lines.push(`[filter:${name}]`, ...body, '');
  return commonConf(dir, port, user) + lines.join('\n');
}

/** The last `lines` lines of each log file in `logDir`. */
function tailLogs(logDir: string, names: string[], lines = 40): string {
  return names
    .map((name) => {
      let text: string;
      try {
        text = readFileSync(path.join(logDir, `${name}.log`), 'utf8');
      } catch (e) {
        text = `(no log: ${(e as Error).message})`;
      }
      const tail = text.trimEnd().split('\n').slice(-lines).join('\n');
      return `----- ${name} -----\n${tail}`;
    })
    .join('\n');
}

function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Starts Swift + s3api and memcached and waits until a minio client can create a bucket.
 * Throws with the installation hint when a program is missing, and with the log tails when the
 * store does not come up within `readyTimeoutMs`.
 */
export async function startS3Server(options: StartS3ServerOptions = {}): Promise<S3TestServer> {
  const programs = await checkSwiftInstalled();
  const prog = (name: string): string => {
    const file = programs[name];
    if (!file) throw missingPackagesError([name]);
    return file;
  };
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const started = Date.now();

  const dir = await mkdtemp(path.join(tmpdir(), 'memometer-s3-'));
  const etc = path.join(dir, 'etc');
  const logDir = path.join(dir, 'log');
  const pgidFile = path.join(dir, 'pgids');
  const device = 'd1';
  const pgids: number[] = [];
  const logNames: string[] = [];
  const exited = new Map<string, string>();
  let stopped = false;

  // Kills the servers if this process dies without running stop() or its exit hook (SIGKILL, a
  // crash of the runner): the detached groups would otherwise outlive it. It reads the group ids
  // from `pgids` in the temp dir, so it covers servers started after it.
  const watchdogScript = [
    'parent=$1; dir=$2; keep=$3',
    // A parent killed by a signal can stay a zombie where nothing reaps it (kill -0 succeeds on
    // zombies): read its state from /proc where there is one.
    'alive() {',
    '  if [ -r "/proc/$parent/status" ]; then ! grep -q "^State:[[:space:]]*Z" "/proc/$parent/status" 2>/dev/null',
    '  else kill -0 "$parent" 2>/dev/null; fi',
    '}',
    'while alive; do sleep 1; done',
    'groups=$(cat "$dir/pgids" 2>/dev/null)',
    'for g in $groups; do kill -TERM "-$g" 2>/dev/null; done',
    'sleep 2',
    'for g in $groups; do kill -KILL "-$g" 2>/dev/null; done',
    'case "$dir" in */memometer-s3-*) [ "$keep" = 1 ] || rm -rf -- "$dir";; esac',
  ].join('\n');
  const watchdog = spawn('/bin/sh', ['-c', watchdogScript, 'memometer-s3-watchdog', String(process.pid), dir, options.keepDir ? '1' : '0'], {
    detached: true,
    stdio: 'ignore',
  });
  watchdog.on('error', () => undefined); // best effort
  watchdog.unref();

  const onExit = (): void => {
    // Synchronous: runs in process.on('exit').
    for (const pgid of pgids) killGroup(pgid, 'SIGKILL');
    if (watchdog.pid) killGroup(watchdog.pid, 'SIGKILL');
    if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', onExit);
    for (const pgid of pgids) killGroup(pgid, 'SIGTERM');
    const deadline = Date.now() + 5_000;
    while (pgids.some(groupAlive) && Date.now() < deadline) await sleep(50);
    for (const pgid of pgids) if (groupAlive(pgid)) killGroup(pgid, 'SIGKILL');
    if (watchdog.pid) killGroup(watchdog.pid, 'SIGKILL');
    if (!options.keepDir) await rm(dir, { recursive: true, force: true });
  };

  /** Starts one server in its own process group, its stdout/stderr appended to log/NAME.log. */
  const launch = (name: string, file: string, args: string[]): void => {
    const fd = openSync(path.join(logDir, `${name}.log`), 'a');
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        cwd: dir,
        detached: true, // own process group: stop() kills it together with its workers
        stdio: ['ignore', fd, fd],
        env: { ...process.env, PYTHONUNBUFFERED: '1' },
      });
    } finally {
      closeSync(fd);
    }
    logNames.push(name);
    child.once('error', (e) => exited.set(name, `failed to start: ${e.message}`));
    child.once('exit', (code, signal) => exited.set(name, `exited (code ${code}, signal ${signal})`));
    child.unref();
    if (child.pid) {
      pgids.push(child.pid);
      appendFileSync(pgidFile, `${child.pid}\n`);
    }
  };

  try {
    await mkdir(etc);
    await mkdir(logDir);
    await mkdir(path.join(dir, 'srv', device), { recursive: true });
    const [proxy, account, container, object, memcachedPort] = (await freePorts(5)) as [number, number, number, number, number];
    const ports = { proxy, account, container, object };
    const user = userInfo().username;

    // The settings this store needs. Note that Swift 2.30's servers read the hash settings and the
    // policies from /etc/swift/swift.conf only (see SWIFT_CONF_FILE); Debian's file has the same
    // single default policy 0, which the object ring below serves.
    await writeFile(
      path.join(etc, 'swift.conf'),
      [
        '[swift-hash]',
        'swift_hash_path_suffix = memometer-test-suffix',
        'swift_hash_path_prefix = memometer-test-prefix',
        '',
        '[storage-policy:0]',
        'name = Policy-0',
        'default = yes',
        '',
      ].join('\n'),
    );
    for (const kind of ['account', 'container', 'object'] as const) {
      await writeFile(path.join(etc, `${kind}-server.conf`), serverConf(kind, dir, ports[kind], user));
    }
    await writeFile(path.join(etc, 'proxy-server.conf'), proxyConf(dir, ports.proxy, user, memcachedPort));

    const memcachedArgs = ['-l', '127.0.0.1', '-p', String(memcachedPort), '-U', '0', '-m', '32', '-c', '256'];
    if (process.getuid?.() === 0) memcachedArgs.push('-u', 'root'); // memcached refuses root without -u
    launch('memcached', prog('memcached'), memcachedArgs);
    // The storage servers do not read rings at start-up: start them while the rings are built.
    for (const kind of ['account', 'container', 'object'] as const) {
      launch(`${kind}-server`, prog(`swift-${kind}-server`), [path.join(etc, `${kind}-server.conf`), '-v']);
    }
    await buildRings(prog('swift-ring-builder'), etc, ports, device);
    launch('proxy-server', prog('swift-proxy-server'), [path.join(etc, 'proxy-server.conf'), '-v']);

    const endpoint = `http://127.0.0.1:${ports.proxy}`;
    const probe = new Client({
      endPoint: '127.0.0.1',
      port: ports.proxy,
      useSSL: false,
      accessKey: S3_TEST_ACCESS_KEY,
      secretKey: S3_TEST_SECRET_KEY,
      region: S3_TEST_REGION,
      pathStyle: true,
      retryOptions: { disableRetry: true },
    });
    const probeBucket = 'memometer-ready-probe';
    let lastError: unknown;
    for (;;) {
      if (exited.size > 0) {
        throw new Error(
          `the S3 test server did not start: ${[...exited].map(([n, why]) => `${n} ${why}`).join('; ')}\n${tailLogs(logDir, logNames)}`,
        );
      }
      try {
        await probe.makeBucket(probeBucket, S3_TEST_REGION);
        await probe.removeBucket(probeBucket);
        break;
      } catch (e) {
        lastError = e;
      }
      if (Date.now() - started > readyTimeoutMs) {
        throw new Error(
          `the S3 test server at ${endpoint} was not ready after ${readyTimeoutMs} ms ` +
            `(last error: ${lastError instanceof Error ? lastError.message : String(lastError)})\n${tailLogs(logDir, logNames)}`,
        );
      }
      await sleep(200);
    }

    return {
      endpoint,
      host: '127.0.0.1',
      port: ports.proxy,
      region: S3_TEST_REGION,
      accessKey: S3_TEST_ACCESS_KEY,
      secretKey: S3_TEST_SECRET_KEY,
      dir,
      pids: [...pgids],
      startupMs: Date.now() - started,
      logTail: (lines?: number) => tailLogs(logDir, logNames, lines),
      stop,
    };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}
