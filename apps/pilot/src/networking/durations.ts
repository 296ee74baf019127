import { parseDuration } from '@mizzen/api';
import { msToDuration } from '@mizzen/xds';

/** An Istio duration (`1.5s`, `100ms`, `1m`) as an Envoy JSON duration (`1.5s`). */
export function envoyDuration(istio: string): string {
  return msToDuration(parseDuration(istio));
}
