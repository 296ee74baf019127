import { commandLineOk } from './flags.js';
import { runIptablesCommand } from './iptables/command.js';

if (process.argv[2] === 'iptables') {
  // The init container's job: install the capture rules, then exit.
  process.exitCode = runIptablesCommand(process.argv.slice(3), {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  });
} else if (commandLineOk(process.argv.slice(2))) {
  // Imported only now, with every flag known: the proxy, gRPC and OpenTelemetry's SDK take seconds to load.
  const { runAgent } = await import('./agent.js');
  void runAgent();
}
