// GET /v2/<name>/tags/list, with the spec's pagination (n, last, a Link to the next page).
import type { Request, Response } from 'express';
import type { TagIndex } from '../service/tags.ts';
import { RegistryError } from './errors.ts';

export interface TagsDeps {
  tags: TagIndex;
}

export async function listTags(deps: TagsDeps, req: Request, res: Response, name: string): Promise<void> {
  const n = req.query.n === undefined ? undefined : Number(req.query.n);
  if (n !== undefined && (!Number.isInteger(n) || n < 0)) {
    throw new RegistryError('UNSUPPORTED', 'n must be a non-negative integer', undefined, 400);
  }
  const last = typeof req.query.last === 'string' ? req.query.last : undefined;
  const page = await deps.tags.page(name, n, last);
  if (page.more && page.tags.length > 0) {
    const next = new URLSearchParams({ n: String(n), last: page.tags.at(-1)! });
    res.setHeader('Link', `</v2/${name}/tags/list?${next}>; rel="next"`);
  }
  res.json({ name, tags: page.tags });
}
