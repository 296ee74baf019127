/**
 * @mizzen/analysis — Istio's config analyzers, as `istioctl analyze` runs
 * them: pure functions from a set of resources (and, where a check needs
 * them, the known services, workloads and credentials) to messages with
 * Istio's codes, levels and text. Pilot logs them, `mizzen apply` prints
 * those about what it applies, `mizzen analyze` prints them all.
 */

export { ANALYZERS, type Analyzer, analyze } from './analyze.js';
export { destinations } from './analyzers/destinations.js';
export { analyzeChange, applyChange, type ConfigChange } from './change.js';
export {
  AnalysisContext,
  type AnalysisInput,
  type AnalysisSettings,
  type KnownService,
  type Workload,
} from './context.js';
export {
  atOrAbove,
  documentationUrl,
  formatMessage,
  ISTIO_DOCS_VERSION,
  LEVELS,
  messageObject,
  originText,
  sortMessages,
} from './format.js';
export {
  hostMatches,
  hostsOverlap,
  isVisible,
  labelsMatch,
  resolveShortName,
  selectorText,
  splitServerHost,
} from './hosts.js';
export {
  type AnalysisMessage,
  fullName,
  type Level,
  MESSAGE_TYPES,
  type MessageType,
  msg,
  type Origin,
  originOf,
} from './messages.js';
export { byCreation } from './ordering.js';
export { schemaMessages } from './schema.js';
