import fs from 'node:fs';
import path from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import { REPO_ROOT } from './render.js';

/** The image → Dockerfile table in tools/images/build.sh, the one list of images the project builds. */
export function imageTable(): Map<string, string> {
  const script = fs.readFileSync(path.join(REPO_ROOT, 'tools', 'images', 'build.sh'), 'utf8');
  const table = new Map<string, string>();
  for (const m of script.matchAll(/^\s*\[([a-z0-9-]+)\]=(\S+)\s*$/gm)) table.set(m[1]!, m[2]!);
  return table;
}

/**
 * Every app's Dockerfile (apps/<app>/Dockerfile, apps/bookinfo/<service>/Dockerfile)
 * by the image name it builds: `<app>`, or `bookinfo-<service>`.
 */
export function appDockerfiles(): Map<string, string> {
  const found = new Map<string, string>();
  const scan = (dir: string, prefix: string) => {
    for (const entry of fs.readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const file = path.posix.join(dir, entry.name, 'Dockerfile');
      if (fs.existsSync(path.join(REPO_ROOT, file))) found.set(`${prefix}${entry.name}`, file);
    }
  };
  scan('apps', '');
  scan('apps/bookinfo', 'bookinfo-');
  return new Map([...found].sort(([a], [b]) => a.localeCompare(b)));
}

export interface DockerfileReport {
  file: string;
  stages: number;
  problems: string[];
  entrypoint?: string;
  /** The final stage's ENV, WORKDIR and USER: what a container of the image starts with. */
  env: Record<string, string>;
  workingDir?: string;
  user?: { uid: number; gid: number };
}

/**
 * Reads a Dockerfile the way the builder would (dockerfile-ast's parser) and
 * checks what can be checked without a Docker engine: it parses without
 * errors, builds in stages, every COPY from the build context names a path
 * that exists in the repository, the final stage runs as a numeric non-root
 * user, carries OCI labels, and its ENTRYPOINT runs a file the app's build
 * produces (its package.json `main`).
 */
export function checkDockerfile(relative: string): DockerfileReport {
  const file = path.join(REPO_ROOT, relative);
  const problems: string[] = [];
  const text = fs.readFileSync(file, 'utf8');
  const dockerfile = DockerfileParser.parse(text);
  const froms = dockerfile.getFROMs();
  if (froms.length < 2)
    problems.push(`${relative}: expected a multi-stage build, found ${froms.length} FROM`);
  const stageNames = new Set(froms.map((f) => f.getBuildStage()).filter((s): s is string => Boolean(s)));
  for (const copy of dockerfile.getCOPYs()) {
    const from = copy.getFromFlag()?.getValue();
    if (from) {
      if (!stageNames.has(from)) problems.push(`${relative}: COPY --from=${from} names no earlier stage`);
      continue;
    }
    const args = copy.getArguments().map((a) => a.getValue());
    for (const source of args.slice(0, -1)) {
      if (!fs.existsSync(path.join(REPO_ROOT, source)))
        problems.push(`${relative}: COPY source ${source} does not exist`);
    }
  }
  const instructions = dockerfile.getInstructions();
  const lastFrom = instructions.lastIndexOf(froms[froms.length - 1]!);
  const final = instructions.slice(lastFrom);
  const user = final.filter((i) => i.getKeyword() === 'USER').pop();
  const uid = user?.getArguments()[0]?.getValue().split(':')[0];
  if (!uid || !/^\d+$/.test(uid) || uid === '0')
    problems.push(`${relative}: final stage does not run as a numeric non-root USER`);
  const labels = final
    .filter((i) => i.getKeyword() === 'LABEL')
    .map((i) => i.getTextContent())
    .join(' ');
  for (const l of ['org.opencontainers.image.title', 'org.opencontainers.image.source'])
    if (!labels.includes(l)) problems.push(`${relative}: no ${l} label`);
  const entry = final.filter((i) => i.getKeyword() === 'ENTRYPOINT').pop();
  let entrypoint: string | undefined;
  if (!entry) problems.push(`${relative}: no ENTRYPOINT`);
  else {
    const parts = JSON.parse(entry.getTextContent().replace(/^ENTRYPOINT\s+/i, '')) as string[];
    entrypoint = parts[1];
    const appDir = path.dirname(relative);
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, appDir, 'package.json'), 'utf8')) as {
      main?: string;
    };
    const expected = path.posix.join(appDir, pkg.main ?? 'dist/main.js');
    if (parts[0] !== 'node' || entrypoint !== expected)
      problems.push(`${relative}: ENTRYPOINT runs ${parts.join(' ')}, expected node ${expected}`);
  }
  const env: Record<string, string> = {};
  for (const i of final.filter((x) => x.getKeyword() === 'ENV')) {
    for (const pair of i
      .getTextContent()
      .replace(/^ENV\s+/i, '')
      .split(/\s*\\\s*\n\s*|\s+(?=[A-Z_][A-Z0-9_]*=)/)) {
      const eq = pair.indexOf('=');
      if (eq > 0) env[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
    }
  }
  const workingDir = final
    .filter((i) => i.getKeyword() === 'WORKDIR')
    .pop()
    ?.getArguments()[0]
    ?.getValue();
  const [u, g] = (user?.getArguments()[0]?.getValue() ?? '').split(':');
  const owner = u && /^\d+$/.test(u) ? { uid: Number(u), gid: Number(g ?? u) } : undefined;
  return { file: relative, stages: froms.length, problems, entrypoint, env, workingDir, user: owner };
}
