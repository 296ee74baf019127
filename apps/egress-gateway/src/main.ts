import { EGRESS_GATEWAY, runGatewayApp } from '@mizzen/proxy';
import { parseTelemetryFlags, startProxyTelemetry, TELEMETRY_FLAGS } from '@mizzen/telemetry';

// The way out of the mesh: the gateway engine with Istio's egress gateway defaults (libs/proxy).
void runGatewayApp(EGRESS_GATEWAY, {
  flags: TELEMETRY_FLAGS,
  parse: parseTelemetryFlags,
  start: startProxyTelemetry,
});
