/**
 * The filter of ListMeasurements: the subset of Google's AIP-160 it needs. Conditions joined by
 * AND (upper case, as AIP-160 spells it):
 *
 *     model_uri = "s3://bucket/model"
 *     state = SUCCEEDED                      (QUEUED, RUNNING, FAILED, CANCELLED, or MEASUREMENT_STATE_*)
 *     create_time >= "2026-11-01T00:00:00Z"  (>, >=, <, <=; RFC 3339 with a zone)
 *
 * Every error is an InvalidArgumentError naming `filter` and the part it could not take.
 */
import { InvalidArgumentError, quote } from '../errors.js';
import { MeasurementState } from '../gen/memometer/v1/memometer.js';

export type TimeOperator = '<' | '<=' | '>' | '>=';

export type Condition =
  | { field: 'model_uri'; value: string }
  | { field: 'state'; value: MeasurementState }
  | { field: 'create_time'; op: TimeOperator; value: Date };

/**
 * What a condition is checked against: a record, or an index entry, which has no state and knows
 * its model only by a hash of the URI (hence a predicate).
 */
export interface Candidate {
  isModel(uri: string): boolean;
  createTime: Date;
  state?: MeasurementState;
}

export interface Filter {
  conditions: Condition[];
  /** The same conditions, normalized (page tokens are bound to it, not to the spelling). */
  canonical: string;
}

/** Filters longer than this are refused before parsing. */
export const MAX_FILTER_CHARS = 4096;

const fail = (message: string, subject = 'filter'): never => {
  throw new InvalidArgumentError(message, subject);
};

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 timestamp with a zone (`2026-11-01T00:00:00Z`), to the millisecond; `subject` names it in errors. */
export function parseTimestamp(text: string, subject = 'filter'): Date {
  const m = RFC3339.exec(text);
  const [year, month, day, hour, minute, second] = (m?.slice(1, 7) ?? []).map<number>(Number);
  const valid = m && month! >= 1 && month! <= 12 && day! >= 1 && day! <= new Date(Date.UTC(year!, month, 0)).getUTCDate()
    && hour! <= 23 && minute! <= 59 && second! <= 59;
  const date = new Date(text);
  if (!valid || Number.isNaN(date.getTime())) {
    fail(`${quote(text)} is not an RFC 3339 timestamp such as "2026-11-01T00:00:00Z"`, subject);
  }
  return date;
}

const STATES: readonly string[] = ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'];

/** A state by its short (SUCCEEDED) or full (MEASUREMENT_STATE_SUCCEEDED) name, any case; `subject` names it in errors. */
export function parseState(name: string, subject = 'filter'): MeasurementState {
  const short = name.toUpperCase().replace(/^MEASUREMENT_STATE_/, '');
  if (!STATES.includes(short)) fail(`unknown state ${quote(name)}; expected one of ${STATES.join(', ')}`, subject);
  return MeasurementState[`MEASUREMENT_STATE_${short}` as keyof typeof MeasurementState];
}

type Token = { kind: 'name' | 'string' | 'op'; text: string; value: string; at: number };

const TOKEN = /\s*(?:([A-Za-z_][A-Za-z0-9_.]*)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(>=|<=|!=|[=<>:()-]))/y;

function tokenize(filter: string): Token[] {
  const tokens: Token[] = [];
  TOKEN.lastIndex = 0;
  for (;;) {
    const at = TOKEN.lastIndex;
    if (/^\s*$/.test(filter.slice(at))) return tokens;
    const m = TOKEN.exec(filter);
    if (!m) return fail(`cannot read ${quote(filter.slice(at).trim())}`);
    const [text, name, string, op] = m;
    const start = at + text.length - text.trimStart().length;
    if (name !== undefined) tokens.push({ kind: 'name', text: name, value: name, at: start });
    else if (string !== undefined) tokens.push({ kind: 'string', text: string, value: string.slice(1, -1).replace(/\\(.)/g, '$1'), at: start });
    else tokens.push({ kind: 'op', text: op!, value: op!, at: start });
  }
}

const TIME_OPERATORS: readonly string[] = ['<', '<=', '>', '>='];
const FIELDS = 'model_uri, state or create_time';

/** One `field op value` from `tokens` at `i`. */
function condition(tokens: Token[], i: number): Condition {
  const [field, op, value] = [tokens[i], tokens[i + 1], tokens[i + 2]];
  if (field?.kind !== 'name') return fail(`expected a condition (${FIELDS}) at ${quote(field?.text ?? 'the end')}`);
  const part = tokens.slice(i, i + 3).map((t) => t.text).join(' ');
  if (!op || !value) return fail(`incomplete condition ${quote(part)}`);
  switch (field.value) {
    case 'model_uri':
      if (op.value !== '=' || value.kind !== 'string') fail(`${quote(part)}: expected model_uri = "URI"`);
      return { field: 'model_uri', value: value.value };
    case 'state':
      if (op.value !== '=' || value.kind !== 'name') fail(`${quote(part)}: expected state = ${STATES.join('|')}`);
      return { field: 'state', value: parseState(value.value) };
    case 'create_time':
      if (!TIME_OPERATORS.includes(op.value) || value.kind !== 'string') fail(`${quote(part)}: expected create_time <, <=, > or >= "RFC 3339 timestamp"`);
      return { field: 'create_time', op: op.value as TimeOperator, value: parseTimestamp(value.value) };
    default:
      return fail(`unknown field ${quote(field.value)}; expected ${FIELDS}`);
  }
}

function render(c: Condition): string {
  if (c.field === 'model_uri') return `model_uri = ${JSON.stringify(c.value)}`;
  if (c.field === 'state') return `state = ${MeasurementState[c.value].replace(/^MEASUREMENT_STATE_/, '')}`;
  return `create_time ${c.op} "${c.value.toISOString()}"`;
}

/** Parses a ListMeasurements filter; `''` (or blanks) matches everything. */
export function parseFilter(filter: string): Filter {
  if (filter.length > MAX_FILTER_CHARS) fail(`is ${filter.length} characters long, over the limit of ${MAX_FILTER_CHARS}`);
  const tokens = tokenize(filter);
  const conditions: Condition[] = [];
  for (let i = 0; i < tokens.length; i += 4) {
    conditions.push(condition(tokens, i));
    const joint = tokens[i + 3];
    if (joint && joint.text !== 'AND') {
      fail(`expected AND after ${quote(render(conditions.at(-1)!))}, got ${quote(joint.text)} (only AND joins conditions)`);
    }
    if (joint && i + 4 >= tokens.length) fail('ends with AND');
  }
  return { conditions, canonical: conditions.map(render).join(' AND ') };
}

function compare(op: TimeOperator, a: number, b: number): boolean {
  switch (op) {
    case '<': return a < b;
    case '<=': return a <= b;
    case '>': return a > b;
    case '>=': return a >= b;
  }
}

/**
 * Whether `candidate` meets every condition. A candidate without a state (an index entry) passes
 * state conditions: they are checked again on the record.
 */
export function matches(filter: Filter, candidate: Candidate): boolean {
  return filter.conditions.every((c) => {
    if (c.field === 'model_uri') return candidate.isModel(c.value);
    if (c.field === 'state') return candidate.state === undefined || candidate.state === c.value;
    return compare(c.op, candidate.createTime.getTime(), c.value.getTime());
  });
}

/** The earliest create time the filter lets through (ms), or -Infinity: listings newest first stop below it. */
export function oldestAllowed(filter: Filter): number {
  return Math.max(-Infinity, ...filter.conditions.map((c) =>
    c.field !== 'create_time' || c.op.startsWith('<') ? -Infinity : c.value.getTime() + (c.op === '>' ? 1 : 0)));
}
