// Istio's precedence between conflicting resources, shared with the analyzers.
export { byCreation } from '@mizzen/analysis';
