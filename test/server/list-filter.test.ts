import { describe, expect, it } from 'vitest';
import { MeasurementState } from '../../src/gen/memometer/v1/memometer.js';
import { matches, oldestAllowed, parseFilter, parseState, parseTimestamp } from '../../src/server/list-filter.js';

const { MEASUREMENT_STATE_SUCCEEDED: SUCCEEDED, MEASUREMENT_STATE_FAILED: FAILED } = MeasurementState;

describe('parseFilter accepts', () => {
  it.each([
    ['', []],
    ['   ', []],
    ['model_uri = "s3://b/m"', [{ field: 'model_uri', value: 's3://b/m' }]],
    [`model_uri='a "quoted" \\\\ uri'`, [{ field: 'model_uri', value: 'a "quoted" \\ uri' }]],
    ['model_uri = "say \\"hi\\""', [{ field: 'model_uri', value: 'say "hi"' }]],
    ['state = SUCCEEDED', [{ field: 'state', value: SUCCEEDED }]],
    ['state=MEASUREMENT_STATE_FAILED', [{ field: 'state', value: FAILED }]],
    ['state = cancelled', [{ field: 'state', value: MeasurementState.MEASUREMENT_STATE_CANCELLED }]],
    ['create_time >= "2026-11-01T00:00:00Z"', [{ field: 'create_time', op: '>=', value: new Date('2026-11-01T00:00:00Z') }]],
    ['create_time<"2026-11-01T01:30:00.250+01:00"', [{ field: 'create_time', op: '<', value: new Date('2026-11-01T00:30:00.250Z') }]],
  ])('%j', (filter, conditions) => {
    expect(parseFilter(filter).conditions).toEqual(conditions);
  });

  it('conditions joined by AND, in a canonical form that ignores spelling', () => {
    const a = parseFilter('state = SUCCEEDED AND model_uri = "m" AND create_time > "2026-01-01T00:00:00+00:00" AND create_time <= "2026-02-01T00:00:00Z"');
    expect(a.conditions).toHaveLength(4);
    expect(a.canonical).toBe('state = SUCCEEDED AND model_uri = "m" AND create_time > "2026-01-01T00:00:00.000Z" AND create_time <= "2026-02-01T00:00:00.000Z"');
    const b = parseFilter("state=MEASUREMENT_STATE_SUCCEEDED   AND model_uri='m' AND create_time>\"2026-01-01T00:00:00Z\" AND create_time<=\"2026-02-01T00:00:00Z\"");
    expect(b.canonical).toBe(a.canonical);
  });
});

describe('parseFilter refuses, naming filter and the bad part', () => {
  it.each([
    ['owner = "me"', /^filter: unknown field 'owner'; expected model_uri, state or create_time$/],
    ['state = DONE', /^filter: unknown state 'DONE'; expected one of QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED$/],
    ['state = "SUCCEEDED"', /^filter: 'state = "SUCCEEDED"': expected state = QUEUED\|RUNNING/],
    ['state != FAILED', /^filter: 'state != FAILED': expected state = /],
    ['model_uri = m', /^filter: 'model_uri = m': expected model_uri = "URI"$/],
    ['model_uri : "m"', /^filter: 'model_uri : "m"': expected model_uri = "URI"$/],
    ['create_time = "2026-11-01T00:00:00Z"', /^filter: 'create_time = "2026-11-01T00:00:00Z"': expected create_time <, <=, > or >=/],
    ['create_time >= "yesterday"', /^filter: 'yesterday' is not an RFC 3339 timestamp/],
    ['create_time >= "2026-11-01"', /^filter: '2026-11-01' is not an RFC 3339 timestamp/],
    ['create_time >= "2026-02-30T00:00:00Z"', /^filter: '2026-02-30T00:00:00Z' is not an RFC 3339 timestamp/],
    ['create_time >= "2026-11-01T00:00:00"', /is not an RFC 3339 timestamp/], // no zone
    ['state = SUCCEEDED OR state = FAILED', /^filter: expected AND after 'state = SUCCEEDED', got 'OR' \(only AND joins conditions\)$/],
    ['state = SUCCEEDED and state = FAILED', /^filter: expected AND after 'state = SUCCEEDED', got 'and'/],
    ['state = SUCCEEDED AND', /^filter: ends with AND$/],
    ['state =', /^filter: incomplete condition 'state ='$/],
    ['NOT state = FAILED', /^filter: unknown field 'NOT'/],
    ['(state = FAILED)', /^filter: expected a condition \(model_uri, state or create_time\) at '\('$/],
    ['model_uri = "unterminated', /^filter: cannot read '"unterminated'$/],
    ['state = SUCCEEDED; drop', /^filter: cannot read '; drop'$/],
  ])('%j', (filter, message) => {
    expect(() => parseFilter(filter)).toThrowError(message);
    try {
      parseFilter(filter);
    } catch (error) {
      expect(error).toMatchObject({ kind: 'INVALID_ARGUMENT', subject: 'filter' });
    }
  });

  it('clips long client strings and refuses filters over 4096 characters', () => {
    expect(() => parseFilter(`x${'y'.repeat(500)} = "a"`)).toThrowError(/…'\(501 chars\)/);
    expect(() => parseFilter(`model_uri = "${'a'.repeat(5000)}"`)).toThrowError(/^filter: is 5014 characters long, over the limit of 4096$/);
  });
});

describe('matches and oldestAllowed', () => {
  const at = (iso: string) => new Date(iso);
  const record = { isModel: (uri: string) => uri === 'm', createTime: at('2026-06-01T00:00:00Z'), state: SUCCEEDED };

  it('checks every condition; an entry without a state passes state conditions', () => {
    expect(matches(parseFilter(''), record)).toBe(true);
    expect(matches(parseFilter('model_uri = "m" AND state = SUCCEEDED'), record)).toBe(true);
    expect(matches(parseFilter('model_uri = "other"'), record)).toBe(false);
    expect(matches(parseFilter('state = FAILED'), record)).toBe(false);
    expect(matches(parseFilter('state = FAILED'), { ...record, state: undefined })).toBe(true);
    expect(matches(parseFilter('create_time >= "2026-06-01T00:00:00Z"'), record)).toBe(true);
    expect(matches(parseFilter('create_time > "2026-06-01T00:00:00Z"'), record)).toBe(false);
    expect(matches(parseFilter('create_time <= "2026-06-01T00:00:00Z"'), record)).toBe(true);
    expect(matches(parseFilter('create_time < "2026-06-01T00:00:00Z"'), record)).toBe(false);
  });

  it('oldestAllowed is the latest lower bound', () => {
    expect(oldestAllowed(parseFilter('state = FAILED AND create_time < "2026-01-01T00:00:00Z"'))).toBe(-Infinity);
    expect(oldestAllowed(parseFilter('create_time >= "2026-01-01T00:00:00Z" AND create_time > "2026-02-01T00:00:00Z"')))
      .toBe(Date.parse('2026-02-01T00:00:00Z') + 1);
  });
});

describe('parseState and parseTimestamp name their subject (CLI flags)', () => {
  const at = (iso: string) => new Date(iso);
  it('names the flag', () => {
    expect(parseState('running', '--state')).toBe(MeasurementState.MEASUREMENT_STATE_RUNNING);
    expect(() => parseState('sleeping', '--state')).toThrowError(/^--state: unknown state 'sleeping'/);
    expect(parseTimestamp('2026-11-01t00:00:00z', '--since')).toEqual(at('2026-11-01T00:00:00Z'));
    expect(() => parseTimestamp('2026-11-01 00:00', '--since')).toThrowError(/^--since: '2026-11-01 00:00' is not an RFC 3339 timestamp/);
  });
});
