// What a client's request asks of the API's semantics (api.ts): write, delete and list options,
// what a write answers, and the hooks that see every change.
import type { JsonObject } from './json.ts';
import type { FieldRequirement, LabelRequirement } from './selectors.ts';
import type { ResourceInfo } from './resources.ts';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export interface WriteOptions {
  dryRun: boolean;
  fieldManager?: string;
  fieldValidation: FieldValidation;
  userAgent: string;
}

export interface WriteResult {
  object: JsonObject;
  status: number;
  warnings: string[];
}

export interface DeleteOptions {
  propagationPolicy?: 'Orphan' | 'Background' | 'Foreground';
  orphanDependents?: boolean;
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

export type PatchType = 'json' | 'merge' | 'strategic' | 'apply';

export interface Selection {
  labels: LabelRequirement[];
  fields: FieldRequirement[];
}

export type ChangeHook = (res: ResourceInfo, object: JsonObject, type: 'ADDED' | 'MODIFIED' | 'DELETED') => void;
