/**
 * Issue 10: no client can take the service down. One table of malformed and extreme requests,
 * every one sent to a real server (real storage, a real S3-compatible server for s3:// URIs);
 * each must end with the expected status, a message naming the field and never echoing more
 * than a short prefix of what the client sent. Afterwards the server still answers SERVING.
 */
import { cp, mkdir, mkdtemp, open, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeadInit, HeadSharing, MeasurementState, Mode, Optimizer, type MeasureMemorizationRequest } from '../../src/gen/memometer/v1/memometer.js';
import { MAX_MESSAGE_CHARS } from '../../src/server/status.js';
import { healthCheck } from '../support/grpc-probes.js';
import { startTestService, type TestService } from '../support/service.js';

const MODEL = 'examples/fashion-cnn';
const DATA = 'examples/fashion-mnist-2k.npz';
const BASE: Partial<MeasureMemorizationRequest> = {
  modelUri: MODEL, datasetUri: DATA, epochs: 1, inputScaling: { scale: 1 / 255, mean: [], std: [] },
};

type Code = keyof typeof status;
/** [what, request fields over BASE, expected status, text the message must hold (the field)]. */
type Row = [string, Partial<MeasureMemorizationRequest>, Code, string];

const IA = 'INVALID_ARGUMENT';
const PD = 'PERMISSION_DENIED';
const NF = 'NOT_FOUND';
const RE = 'RESOURCE_EXHAUSTED';
const MAX = 4294967295; // what a client's -1 becomes in a uint32 field
const long = (n: number, c = 'a') => c.repeat(n);
const scaling = (s: Partial<NonNullable<MeasureMemorizationRequest['inputScaling']>>) => ({ inputScaling: { mean: [], std: [], ...s } });

/** Bad URIs every URI field refuses the same way (the field name leads the message). */
const BAD_URIS: [string, string, Code][] = [
  ['too long', `examples/${long(2100)}`, IA],
  ['1 MiB', long(1 << 20, 'x'), IA],
  ['exactly one over the limit', long(2049, 'b'), IA],
  ['ftp scheme', 'ftp://host/data.npz', IA],
  ['http scheme', 'http://example.com/model', IA],
  ['gs scheme', 'gs://bucket/key', IA],
  ['javascript scheme', 'javascript://alert(1)', IA],
  ['NUL byte', 'examples/fashion\0-cnn', IA],
  ['NUL byte in s3', 's3://errors/a\0b', IA],
  ['only NULs', '\0\0\0', IA],
  ['absolute path', '/etc/passwd', PD],
  ['file URL outside', 'file:///etc/passwd', PD],
  ['dot-dot', '../../../etc/passwd', PD],
  ['dot-dot after a folder', 'examples/../../etc/shadow', PD],
  ['the data root itself', '.', PD],
  ['file URL with a host', 'file://evil.example/etc/passwd', IA],
  ['s3 without bucket', 's3://', IA],
  ['s3 with empty bucket', 's3:///key', IA],
  ['s3 bad bucket name', 's3://Bad_Bucket/key', IA],
  ['s3 one-letter bucket', 's3://a/key', IA],
  ['s3 dot-dot key', 's3://errors/a/../b', IA],
  ['s3 empty segment', 's3://errors/a//b', IA],
  ['s3 key over 1024 bytes', `s3://errors/${long(1100)}`, IA],
  ['segment over 255 bytes', `examples/${long(300)}/x`, IA],
  ['3,000 segments', Array.from({ length: 3000 }, () => 'a').join('/'), IA],
  ['into the state folder', '.state/measurements', PD],
  ['the state folder itself', '.state', PD],
  ['into the state folder by dot-dot', 'examples/../.state/requests', PD],
];

const uriRows = (field: 'modelUri' | 'datasetUri' | 'outputUri', name: string): Row[] =>
  BAD_URIS.map(([what, uri, code]) => [`${name} ${what}`, { [field]: uri }, code, name]);

const ROWS: Row[] = [
  // URIs: every bad form in every URI field.
  ...uriRows('modelUri', 'model_uri'),
  ...uriRows('datasetUri', 'dataset_uri'),
  ...uriRows('outputUri', 'output_uri'),
  ['model_uri empty', { modelUri: '' }, IA, 'model_uri'],
  ['model_uri blank', { modelUri: '   ' }, IA, 'model_uri'],
  ['dataset_uri empty', { datasetUri: '' }, IA, 'dataset_uri'],
  ['dataset_uri blank', { datasetUri: '\t\n' }, IA, 'dataset_uri'],
  ['model_uri missing', { modelUri: 'no/such/model' }, NF, 'no/such/model'],
  ['dataset_uri missing', { datasetUri: 'missing.npz' }, NF, 'missing.npz'],
  ['model_uri unknown bucket', { modelUri: 's3://no-such-bucket-10/model' }, NF, 'no-such-bucket-10'],
  ['dataset_uri unknown bucket', { datasetUri: 's3://no-such-bucket-10/data.npz' }, NF, 'no-such-bucket-10'],
  ['dataset_uri a symbolic-link loop', { datasetUri: 'loop-a.npz' }, NF, 'loop-a.npz'],
  ['model_uri a symbolic-link loop', { modelUri: 'loop-a/model.json' }, NF, 'loop-a'],
  ['dataset_uri a file over 2 GiB', { datasetUri: 'huge.npz' }, RE, 'huge.npz'],
  ['dataset_uri a link into the state folder', { datasetUri: 'state-link/x.npz' }, PD, 'state-link'],
  ['model_uri is the data set', { modelUri: DATA }, IA, 'fashion-mnist-2k.npz'],
  // request_id
  ['request_id one over the limit', { requestId: long(129) }, IA, 'request_id'],
  ['request_id 10,000 characters', { requestId: long(10_000) }, IA, 'request_id'],
  ['request_id 3 MiB', { requestId: long(3 << 20) }, IA, 'request_id'],
  // copy_depths
  ['copy_depths 0', { copyDepths: [0] }, IA, 'copy_depths'],
  ['copy_depths 0 twice', { copyDepths: [0, 0] }, IA, 'copy_depths'],
  ['copy_depths beyond the model', { copyDepths: [99], maxSamples: 300 }, IA, 'copy_depths'],
  ['copy_depths beyond the model, duplicated', { copyDepths: [99, 99], maxSamples: 300 }, IA, 'copy_depths'],
  ['copy_depths huge', { copyDepths: [20_000] }, IA, 'copy_depths'],
  ['copy_depths -1', { copyDepths: [MAX] }, IA, 'copy_depths'],
  ['copy_depths 33 depths', { copyDepths: Array.from({ length: 33 }, (_, i) => (i % 7) + 1) }, IA, 'copy_depths'],
  ['copy_depths 10,000 depths', { copyDepths: Array.from({ length: 10_000 }, () => 1) }, IA, 'copy_depths'],
  // num_random_labels
  ['num_random_labels 1', { numRandomLabels: 1 }, IA, 'num_random_labels'],
  ['num_random_labels huge', { numRandomLabels: 2_000_000 }, IA, 'num_random_labels'],
  ['num_random_labels -1', { numRandomLabels: MAX }, IA, 'num_random_labels'],
  // epochs
  ['epochs 1001', { epochs: 1001 }, IA, 'epochs: must be at most 1000, got 1001'],
  ['epochs 100,000', { epochs: 100_000 }, IA, 'epochs: must be at most 1000, got 100000'],
  ['epochs -1', { epochs: MAX }, IA, 'epochs'],
  // batch_size
  ['batch_size huge', { batchSize: 2_000_000 }, IA, 'batch_size'],
  ['batch_size -1', { batchSize: MAX }, IA, 'batch_size'],
  // learning_rate
  ['learning_rate NaN', { learningRate: Number.NaN }, IA, 'learning_rate'],
  ['learning_rate Inf', { learningRate: Number.POSITIVE_INFINITY }, IA, 'learning_rate'],
  ['learning_rate -Inf', { learningRate: Number.NEGATIVE_INFINITY }, IA, 'learning_rate'],
  ['learning_rate negative', { learningRate: -0.1 }, IA, 'learning_rate'],
  ['learning_rate tiny negative', { learningRate: -1e-300 }, IA, 'learning_rate'],
  // weight_decay
  ['weight_decay negative', { weightDecay: -1 }, IA, 'weight_decay'],
  ['weight_decay NaN', { weightDecay: Number.NaN }, IA, 'weight_decay'],
  ['weight_decay Inf', { weightDecay: Number.POSITIVE_INFINITY }, IA, 'weight_decay'],
  // regularization_lambda
  ['regularization_lambda negative', { regularizationLambda: -1 }, IA, 'regularization_lambda'],
  ['regularization_lambda NaN', { regularizationLambda: Number.NaN }, IA, 'regularization_lambda'],
  ['regularization_lambda Inf', { regularizationLambda: Number.POSITIVE_INFINITY }, IA, 'regularization_lambda'],
  ['regularization_lambda in frozen mode', { regularizationLambda: 0.5 }, IA, 'regularization_lambda'],
  // label_smoothing
  ['label_smoothing 1', { labelSmoothing: 1 }, IA, 'label_smoothing'],
  ['label_smoothing negative', { labelSmoothing: -0.1 }, IA, 'label_smoothing'],
  ['label_smoothing NaN', { labelSmoothing: Number.NaN }, IA, 'label_smoothing'],
  ['label_smoothing in frozen mode', { labelSmoothing: 0.1 }, IA, 'label_smoothing'],
  ['reinitialize in frozen mode', { reinitialize: true }, IA, 'reinitialize'],
  // seeds
  ['seeds 17', { seeds: Array.from({ length: 17 }, (_, i) => i) }, IA, 'seeds: must list at most 16 seeds, got 17'],
  ['seeds 20,000', { seeds: Array.from({ length: 20_000 }, (_, i) => i) }, IA, 'seeds: must list at most 16 seeds, got 20000'],
  // held_out_fraction
  ['held_out_fraction 1', { heldOutFraction: 1 }, IA, 'held_out_fraction'],
  ['held_out_fraction negative', { heldOutFraction: -0.5 }, IA, 'held_out_fraction'],
  ['held_out_fraction NaN', { heldOutFraction: Number.NaN }, IA, 'held_out_fraction'],
  ['held_out_fraction Inf', { heldOutFraction: Number.POSITIVE_INFINITY }, IA, 'held_out_fraction'],
  ['held_out_fraction 2', { heldOutFraction: 2 }, IA, 'held_out_fraction'],
  // max_samples: above the server's sample limit of 1000 is fine as a cap, but the data set is not
  ['max_samples with too many samples for the server', { maxSamples: 5000 }, RE, 'dataset_uri'],
  // enums
  ['mode 3', { mode: 3 as Mode }, IA, 'mode'],
  ['mode -1', { mode: -1 }, IA, 'mode'],
  ['mode huge', { mode: 2 ** 30 }, IA, 'mode'],
  ['head_sharing 3', { headSharing: 3 as HeadSharing }, IA, 'head_sharing'],
  ['head_sharing -1', { headSharing: -1 }, IA, 'head_sharing'],
  ['head_init 9', { headInit: 9 as HeadInit }, IA, 'head_init'],
  ['head_init -1', { headInit: -1 }, IA, 'head_init'],
  ['optimizer 4', { optimizer: 4 as Optimizer }, IA, 'optimizer'],
  ['optimizer -1', { optimizer: -1 }, IA, 'optimizer'],
  ['joint mode with a bad lambda', { mode: Mode.MODE_JOINT, regularizationLambda: -2 }, IA, 'regularization_lambda'],
  // input_scaling
  ['input_scaling.scale NaN', scaling({ scale: Number.NaN }), IA, 'input_scaling.scale'],
  ['input_scaling.scale Inf', scaling({ scale: Number.POSITIVE_INFINITY }), IA, 'input_scaling.scale'],
  ['input_scaling.scale -Inf', scaling({ scale: Number.NEGATIVE_INFINITY }), IA, 'input_scaling.scale'],
  ['input_scaling.offset NaN', scaling({ scale: 1 / 255, offset: Number.NaN }), IA, 'input_scaling.offset'],
  ['input_scaling.offset Inf', scaling({ scale: 1 / 255, offset: Number.POSITIVE_INFINITY }), IA, 'input_scaling.offset'],
  ['input_scaling.mean NaN', scaling({ scale: 1 / 255, mean: [Number.NaN] }), IA, 'input_scaling.mean'],
  ['input_scaling.mean Inf', scaling({ scale: 1 / 255, mean: [Number.POSITIVE_INFINITY] }), IA, 'input_scaling.mean'],
  ['input_scaling.std 0', scaling({ scale: 1 / 255, std: [0] }), IA, 'input_scaling.std'],
  ['input_scaling.std one 0 of two', scaling({ scale: 1 / 255, std: [1, 0] }), IA, 'input_scaling.std'],
  ['input_scaling.std NaN', scaling({ scale: 1 / 255, std: [Number.NaN] }), IA, 'input_scaling.std'],
  ['input_scaling.std Inf', scaling({ scale: 1 / 255, std: [Number.POSITIVE_INFINITY] }), IA, 'input_scaling.std'],
  ['input_scaling.mean 3 channels for 1', { ...scaling({ scale: 1 / 255, mean: [0.5, 0.5, 0.5] }), maxSamples: 300 }, IA, 'input_scaling.mean'],
  ['input_scaling.std 2 channels for 1', { ...scaling({ scale: 1 / 255, std: [0.5, 0.5] }), maxSamples: 300 }, IA, 'input_scaling.std'],
];

let service: TestService;
let root: string;

beforeAll(async () => {
  // The state folder lies inside the data root here (a configuration an operator may choose),
  // so that the table can aim URIs at the records.
  root = await mkdtemp(path.join(tmpdir(), 'memometer-corpus-'));
  await cp('examples', path.join(root, 'examples'), { recursive: true });
  await mkdir(path.join(root, '.state/measurements'), { recursive: true });
  await symlink('loop-b.npz', path.join(root, 'loop-a.npz'));
  await symlink('loop-a.npz', path.join(root, 'loop-b.npz'));
  await symlink('loop-b', path.join(root, 'loop-a'));
  await symlink('loop-a', path.join(root, 'loop-b'));
  await symlink('.state', path.join(root, 'state-link'));
  // A sparse file of 3 GiB: no disk used, but too large to read in one piece.
  const huge = await open(path.join(root, 'huge.npz'), 'w');
  await huge.truncate(3 * 1024 ** 3);
  await huge.close();
  service = await startTestService({ dataRoot: root, stateUri: path.join(root, '.state'), maxSamples: '1000' });
});
afterAll(async () => {
  await service?.stop();
  await rm(root, { recursive: true, force: true });
});

describe('malformed requests', () => {
  it('the corpus holds at least 120 distinct cases', () => {
    expect(ROWS.length).toBeGreaterThanOrEqual(120);
    expect(new Set(ROWS.map(([name]) => name)).size).toBe(ROWS.length);
  });

  it.each(ROWS)('%s', async (_name, request, code, mentions) => {
    const error = (await service.client().measure({ ...BASE, ...request }).then(() => undefined, (e: unknown) => e)) as ServiceError | undefined;
    expect(error, 'the request succeeded').toBeDefined();
    expect({ code: status[error!.code], details: error!.details }).toMatchObject({ code, details: expect.stringContaining(mentions) });
    expect(error!.details.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
    // Never more than a short prefix of a client string: no run of 100 equal characters.
    expect(error!.details).not.toMatch(/(.)\1{99}/);
  });

  it('leaves the server SERVING, and no record of the refused requests', async () => {
    expect(await healthCheck(service.address)).toBe('SERVING');
    expect(await healthCheck(service.address, 'memometer.v1.MemorizationService')).toBe('SERVING');
  });
});

/** Streams `request` on `client`; resolves with the measurement id once started, and the call's error. */
function streamed(client: ReturnType<TestService['client']>, request: Partial<MeasureMemorizationRequest>, signal?: AbortSignal) {
  let started!: (id: string) => void;
  const id = new Promise<string>((resolve) => (started = resolve));
  const ended = (async () => {
    for await (const message of client.stream(request, signal)) {
      if (message.event?.$case === 'started') started(message.event.value.measurementId);
    }
  })().then(() => undefined, (e: unknown) => e as ServiceError);
  return { id, ended };
}

/** The stored measurement once it is terminal. */
async function settled(id: string) {
  const client = service.client();
  let stored = await client.getMeasurement(id);
  for (let i = 0; i < 100 && stored.state <= MeasurementState.MEASUREMENT_STATE_RUNNING; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    stored = await client.getMeasurement(id);
  }
  return stored;
}

describe('a client deadline shorter than the measurement', () => {
  it('is recorded as DEADLINE_EXCEEDED while the measurement waits in the queue', async () => {
    const stop = new AbortController();
    const busy = streamed(service.client(), { ...BASE, epochs: 500, maxSamples: 500 }, stop.signal);
    await busy.id;
    const queued = streamed(service.client({ measureDeadlineMs: 1000 }), { ...BASE, epochs: 1, maxSamples: 500 });
    const id = await queued.id;
    expect((await queued.ended)?.code).toBe(status.DEADLINE_EXCEEDED);
    stop.abort();
    await busy.ended;
    const stored = await settled(id);
    expect(stored.state).toBe(MeasurementState.MEASUREMENT_STATE_CANCELLED);
    expect(stored.error?.code).toBe('DEADLINE_EXCEEDED');
  });

  it('ends the call with DEADLINE_EXCEEDED and records the measurement as CANCELLED with DEADLINE_EXCEEDED', async () => {
    const hasty = service.client({ measureDeadlineMs: 1500 });
    let id = '';
    const call = (async () => {
      for await (const message of hasty.stream({ ...BASE, epochs: 500, maxSamples: 500 })) {
        if (message.event?.$case === 'started') id = message.event.value.measurementId;
      }
    })();
    const error = (await call.then(() => undefined, (e: unknown) => e)) as ServiceError | undefined;
    expect(error?.code).toBe(status.DEADLINE_EXCEEDED);
    expect(id).not.toBe('');
    const client = service.client();
    let stored = await client.getMeasurement(id);
    for (let i = 0; i < 100 && stored.state !== MeasurementState.MEASUREMENT_STATE_CANCELLED; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      stored = await client.getMeasurement(id);
    }
    expect(stored.state).toBe(MeasurementState.MEASUREMENT_STATE_CANCELLED);
    expect(stored.error?.code).toBe('DEADLINE_EXCEEDED');
    expect(await healthCheck(service.address)).toBe('SERVING');
  });
});

describe('the bounds are server settings', () => {
  it('reads MEMOMETER_MAX_* (flags win) and applies them to requests', async () => {
    const { loadServerConfig } = await import('../../src/server/config.js');
    const { optionsFromRequest } = await import('../../src/api/request.js');
    const { MeasureMemorizationRequest } = await import('../../src/gen/memometer/v1/memometer.js');
    const config = loadServerConfig({ MEMOMETER_MAX_EPOCHS: '5', MEMOMETER_MAX_SEEDS: '2', MEMOMETER_MAX_COPY_DEPTHS: '1', MEMOMETER_MAX_URI_LENGTH: '40' }, { maxRequestIdLength: '8' });
    expect(config).toMatchObject({ maxEpochs: 5, maxSeeds: 2, maxCopyDepths: 1, maxUriLength: 40, maxRequestIdLength: 8 });
    expect(loadServerConfig({})).toMatchObject({ maxEpochs: 1000, maxSeeds: 16, maxCopyDepths: 32, maxRequestIdLength: 128, maxUriLength: 2048 });
    expect(() => loadServerConfig({ MEMOMETER_MAX_EPOCHS: '0' })).toThrow(/^MEMOMETER_MAX_EPOCHS: must be an integer >= 1, got '0'$/);
    const request = (r: Partial<MeasureMemorizationRequest>) => MeasureMemorizationRequest.fromPartial({ modelUri: 'm', datasetUri: 'd', ...r });
    expect(() => optionsFromRequest(request({ epochs: 6 }), config)).toThrow(/^epochs: must be at most 5, got 6$/);
    expect(() => optionsFromRequest(request({ seeds: [1, 2, 3] }), config)).toThrow(/^seeds: must list at most 2 seeds, got 3$/);
    expect(() => optionsFromRequest(request({ copyDepths: [1, 2] }), config)).toThrow(/^copy_depths: must list at most 1 depths, got 2$/);
    expect(() => optionsFromRequest(request({ requestId: 'nine-char' }), config)).toThrow(/^request_id: must be at most 8 characters long, got 9$/);
    expect(() => optionsFromRequest(request({ outputUri: 'o'.repeat(41) }), config)).toThrow(/^output_uri: must be at most 40 characters long, got 41$/);
    expect(optionsFromRequest(request({ epochs: 5, seeds: [1, 2] }), config)).toMatchObject({ epochs: 5, seeds: [1, 2] });
  });
});

describe('quote', () => {
  it('shows at most 64 characters of a client string, escapes control characters and tells the length', async () => {
    const { clip, quote } = await import('../../src/errors.js');
    expect(quote('abc')).toBe("'abc'");
    expect(quote('a\0b\n')).toBe("'a\\u0000b\\u000a'");
    expect(quote('x'.repeat(10_000))).toBe(`'${'x'.repeat(64)}…'(10000 chars)`);
    expect(clip('y'.repeat(65))).toBe(`${'y'.repeat(64)}…(65 chars)`);
    expect(quote('é'.repeat(64))).toBe(`'${'é'.repeat(64)}'`);
  });
});
