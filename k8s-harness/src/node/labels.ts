// Label selectors as Kubernetes evaluates them: matchLabels AND every matchExpression.
import type { V1LabelSelector } from '@kubernetes/client-node';

export type Labels = Record<string, string> | undefined;

/** A Service's selector (a plain map): empty or missing selects nothing, as for Services. */
export function matchesMap(selector: Labels, labels: Labels): boolean {
  const entries = Object.entries(selector ?? {});
  if (entries.length === 0) return false;
  return entries.every(([key, value]) => labels?.[key] === value);
}

/** A workload's LabelSelector: an empty selector selects everything, as the API defines. */
export function matchesSelector(selector: V1LabelSelector | undefined, labels: Labels): boolean {
  const own = labels ?? {};
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) {
    if (own[key] !== value) return false;
  }
  for (const expression of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(own, expression.key);
    const value = own[expression.key];
    const values = expression.values ?? [];
    switch (expression.operator) {
      case 'In':
        if (!has || !values.includes(value!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(value!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** The selector in the query-string form (`a=b,c in (d,e)`) used by list calls and kubectl. */
export function selectorToString(selector: V1LabelSelector | undefined): string {
  const parts = Object.entries(selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector?.matchExpressions ?? []) {
    if (e.operator === 'In') parts.push(`${e.key} in (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}
