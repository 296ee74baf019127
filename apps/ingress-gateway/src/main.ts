import { INGRESS_GATEWAY, runGatewayApp } from '@mizzen/proxy';
import { parseTelemetryFlags, startProxyTelemetry, TELEMETRY_FLAGS } from '@mizzen/telemetry';

// The mesh's edge: the gateway engine with Istio's ingress gateway defaults (libs/proxy).
void runGatewayApp(INGRESS_GATEWAY, {
  flags: TELEMETRY_FLAGS,
  parse: parseTelemetryFlags,
  start: startProxyTelemetry,
});
