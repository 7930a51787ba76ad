#!/usr/bin/env node
/**
 * The `memometer` executable. Telemetry starts first, before anything loads @grpc/grpc-js: the
 * gRPC instrumentation patches grpc-js as it loads, and generated clients bind its functions at
 * import time. Hence the dynamic import of the CLI below.
 */
import { startTelemetry, telemetryEnabledByDefault } from '../telemetry/setup.js';

const command = process.argv[2];
// The server traces by default; one-off CLI runs only when OTEL_* names an exporter.
const telemetry = startTelemetry({ enabled: telemetryEnabledByDefault(command === 'serve' ? 'server' : 'cli') });
const { main } = await import('./cli.js');
process.exitCode = await main(process.argv.slice(2));
await telemetry.shutdown();
