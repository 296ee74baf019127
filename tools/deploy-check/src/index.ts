/** Offline checks of deploy/ and the Dockerfiles, used by this package's tests, and the CRD generator. */
export { type CrdValidator, crdValidator, preservedPaths, structuralProblems } from './crd-schema.js';
export { crdFor, crds, crdsYaml, openApiSchema, toStructural } from './crds.js';
export { appDockerfiles, checkDockerfile, type DockerfileReport, imageTable } from './dockerfiles.js';
export {
  type ContainerSpec,
  KUBERNETES_SERVICE_IP,
  type Mount,
  NODE_IP,
  type Pod,
  PodSandbox,
  type Probe,
  type RunningContainer,
} from './pod-sandbox.js';
export { imagesOf, podSpecOf, servicePortProblems, webhookProblems, workloadProblems } from './policy.js';
export {
  components,
  findRenderer,
  type K8sObject,
  kustomizations,
  parseObjects,
  REPO_ROOT,
  type Renderer,
} from './render.js';
export { validateObject } from './schema.js';
