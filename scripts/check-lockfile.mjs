#!/usr/bin/env node
// Upgrade checks for CI (.ci/run), run after `npm ci`:
//
//   node scripts/check-lockfile.mjs           the lockfile: package-lock.json (v3) is in step with
//                                             package.json (the root entry lists exactly the same
//                                             dependencies and ranges), every package in it comes
//                                             from the npm registry (a release version with sha512
//                                             integrity, `resolved`, if written, under
//                                             https://registry.npmjs.org/: no git, file:, link,
//                                             tarball-URL or other-registry sources), and
//                                             `npm ls --all` finds the installed tree complete and
//                                             matching (exit 0).
//   node scripts/check-lockfile.mjs --audit   `npm audit --audit-level=high`; when the registry has
//                                             no audit endpoint (it answers the advisories request
//                                             with 404, 405 or 501, as a mirror or an offline
//                                             registry does), prints a note and passes. Any other
//                                             failure, and any high or critical advisory, fails.
//
// Plain Node.js (no dependencies), so that it runs before anything is built.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const REGISTRY = 'https://registry.npmjs.org/';
const DEP_FIELDS = ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies'];
const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const NO_AUDIT_STATUS = new Set([404, 405, 501]);

function npm(args) {
  const result = spawnSync('npm', args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (result.error) throw result.error;
  return result;
}

/** Problems with package-lock.json against package.json; empty when it is fine. */
export function lockfileProblems(pkg, lock) {
  const problems = [];
  if (lock.lockfileVersion !== 3) problems.push(`lockfileVersion is ${lock.lockfileVersion}, expected 3 (npm >= 9)`);
  const root = lock.packages?.[''];
  if (!root) return [...problems, 'package-lock.json has no root entry (packages[""])'];
  if (lock.name !== pkg.name || root.name !== pkg.name) problems.push(`name: lockfile ${lock.name}/${root.name}, package.json ${pkg.name}`);
  if (lock.version !== pkg.version || root.version !== pkg.version) problems.push(`version: lockfile ${lock.version}/${root.version}, package.json ${pkg.version}`);
  for (const field of DEP_FIELDS) {
    const want = pkg[field] ?? {};
    const have = root[field] ?? {};
    for (const [name, range] of Object.entries(want)) {
      if (have[name] !== range) problems.push(`${field}.${name}: package.json ${range}, lockfile ${have[name] ?? '(missing)'}`);
    }
    for (const name of Object.keys(have)) {
      if (!(name in want)) problems.push(`${field}.${name}: in the lockfile (${have[name]}), not in package.json`);
    }
  }
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.inBundle) continue; // the project itself; bundled deps ship inside their parent's tarball
    if (entry.link) {
      problems.push(`${path}: a link to ${entry.resolved}, not a registry package`);
      continue;
    }
    // npm writes no `resolved` for a registry package when omit-lockfile-registry-resolved is set
    // (as on this project's machines): it then fetches from the configured registry. Git, file:,
    // link and remote-tarball sources always keep theirs.
    if (entry.resolved !== undefined && !(typeof entry.resolved === 'string' && entry.resolved.startsWith(REGISTRY))) {
      problems.push(`${path}: resolved from ${entry.resolved}, not ${REGISTRY}`);
    }
    if (typeof entry.version !== 'string' || !SEMVER.test(entry.version)) {
      problems.push(`${path}: version ${entry.version ?? '(none)'} is not a registry release`);
    }
    if (typeof entry.integrity !== 'string' || !entry.integrity.startsWith('sha512-')) {
      problems.push(`${path}: no sha512 integrity (${entry.integrity ?? 'none'})`);
    }
  }
  return problems;
}

function checkLockfile() {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  const problems = lockfileProblems(pkg, lock);
  const count = Object.keys(lock.packages ?? {}).length - 1;
  // The installed tree: missing, extraneous or invalid (out-of-range) packages make `npm ls` fail.
  const ls = npm(['ls', '--all', '--json']);
  if (ls.status !== 0) {
    let detail = ls.stderr.trim();
    try {
      const problemsFromLs = JSON.parse(ls.stdout).problems;
      if (Array.isArray(problemsFromLs) && problemsFromLs.length) detail = problemsFromLs.join('\n  ');
    } catch {
      // not JSON: keep stderr
    }
    problems.push(`npm ls --all exited ${ls.status}:\n  ${detail}`);
  }
  if (problems.length) {
    console.error(`check-lockfile: ${problems.length} problem(s):\n- ${problems.join('\n- ')}`);
    return 1;
  }
  console.log(`check-lockfile: ok (${count} packages, all registry releases with sha512 integrity; npm ls --all clean)`);
  return 0;
}

/** What to do with `npm audit --json`'s outcome: 'pass', 'skip' (no audit endpoint) or 'fail'. */
export function auditVerdict(status, stdout) {
  if (status === 0) return 'pass';
  let report;
  try {
    report = JSON.parse(stdout);
  } catch {
    return 'fail';
  }
  // A failed advisories request: npm prints the HTTP error (statusCode, uri) and an `error` object
  // instead of a report. Only "this registry has no such endpoint" is skipped.
  if (
    report?.error !== undefined &&
    report.vulnerabilities === undefined &&
    NO_AUDIT_STATUS.has(report.statusCode) &&
    typeof report.uri === 'string' &&
    report.uri.includes('/-/npm/v1/security/')
  ) {
    return 'skip';
  }
  return 'fail';
}

function checkAudit() {
  const json = npm(['audit', '--audit-level=high', '--json']);
  const verdict = auditVerdict(json.status, json.stdout);
  if (verdict === 'skip') {
    const report = JSON.parse(json.stdout);
    console.log(`check-lockfile --audit: skipped: the registry has no audit endpoint (${report.message ?? report.statusCode}); run npm audit where the public registry is reachable`);
    return 0;
  }
  // Pass or fail: show npm's own human-readable report.
  const text = npm(['audit', '--audit-level=high']);
  process.stdout.write(text.stdout);
  process.stderr.write(text.stderr);
  if (verdict === 'pass' && text.status === 0) return 0;
  console.error('check-lockfile --audit: npm audit found high or critical advisories (or failed): see above');
  return 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  if (args.some((a) => a !== '--audit')) {
    console.error('usage: node scripts/check-lockfile.mjs [--audit]');
    process.exit(2);
  }
  process.exit(args.includes('--audit') ? checkAudit() : checkLockfile());
}
