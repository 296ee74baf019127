import {
  EXT_AUTHZ_HTTP_TYPE,
  EXT_AUTHZ_NETWORK_TYPE,
  RBAC_HTTP_TYPE,
  RBAC_NETWORK_TYPE,
} from '@mizzen/policy';
import type { Fields } from '../understood.js';
import { EXT_AUTHZ, NETWORK_EXT_AUTHZ } from './ext-authz.js';
import { RBAC_HTTP, RBAC_NETWORK } from './rbac.js';

/** The configs of the authorization filters @mizzen/policy's AuthzChain runs, by filter type. */
export const AUTHZ_FILTER_FIELDS: Readonly<Record<string, Fields>> = {
  [RBAC_HTTP_TYPE]: RBAC_HTTP,
  [RBAC_NETWORK_TYPE]: RBAC_NETWORK,
  [EXT_AUTHZ_HTTP_TYPE]: EXT_AUTHZ,
  [EXT_AUTHZ_NETWORK_TYPE]: NETWORK_EXT_AUTHZ,
};
