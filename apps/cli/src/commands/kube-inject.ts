import fs from 'node:fs';
import { type InjectionConfig, KubeInjectError, kubeInject } from '@mizzen/inject';
import { CliError } from '../errors.js';

export interface KubeInjectOptions {
  /** Files to read; `-` is standard input. */
  files: string[];
  image?: string;
  imagePullPolicy?: string;
  discoveryAddress?: string;
  caAddress?: string;
}

/**
 * `mizzen kube-inject -f FILE` (istioctl kube-inject): the workloads in the
 * files with the sidecar and init container the webhook would add, written as
 * YAML to stdout, everything else passed through.
 */
export function kubeInjectCommand(options: KubeInjectOptions, out: NodeJS.WritableStream): void {
  if (options.files.length === 0)
    throw new CliError('kube-inject needs -f FILE (or -f - for standard input)', 2);
  const pull = options.imagePullPolicy ?? 'IfNotPresent';
  if (pull !== 'Always' && pull !== 'IfNotPresent' && pull !== 'Never')
    throw new CliError(`--image-pull-policy must be Always, IfNotPresent or Never, got "${pull}"`, 2);
  const config: InjectionConfig = {
    proxyImage: options.image ?? 'mizzen/sidecar-agent:0.1.0',
    imagePullPolicy: pull,
    discoveryAddress: options.discoveryAddress ?? 'istiod.istio-system.svc:15010',
    caAddress: options.caAddress ?? 'istio-citadel.istio-system.svc:8060',
  };
  const outputs: string[] = [];
  for (const file of options.files) {
    let text: string;
    try {
      text = file === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new CliError(
        `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    try {
      const injected = kubeInject(text, config, file === '-' ? 'stdin' : file);
      if (injected !== '') outputs.push(injected);
    } catch (err) {
      if (err instanceof KubeInjectError) throw new CliError(err.message);
      throw err;
    }
  }
  out.write(outputs.join('---\n'));
}
