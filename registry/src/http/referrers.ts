// GET /v2/<name>/referrers/<digest>: the OCI 1.1 referrers API. An image index of the manifests
// pushed to <name> whose `subject` is <digest> (none is an empty index, never a 404), filtered by
// `artifactType` when asked, with `OCI-Filters-Applied: artifactType` saying so.
import type { Request, Response } from 'express';
import { MediaType } from '../oci/media-types.ts';
import type { Manifests } from '../service/manifests.ts';
import { checkDigest } from './digests.ts';
import { RegistryError } from './errors.ts';

export interface ReferrersDeps {
  manifests: Manifests;
}

export async function listReferrers(deps: ReferrersDeps, req: Request, res: Response, name: string, reference: string): Promise<void> {
  const subject = checkDigest(reference);
  const filter = req.query.artifactType;
  if (filter !== undefined && typeof filter !== 'string') {
    throw new RegistryError('UNSUPPORTED', 'artifactType must be given once', undefined, 400);
  }
  const manifests = await deps.manifests.referrers(name, subject, filter);
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }));
  res.status(200);
  res.setHeader('Content-Type', MediaType.ociIndex);
  if (filter !== undefined) res.setHeader('OCI-Filters-Applied', 'artifactType');
  res.setHeader('Content-Length', body.length);
  res.end(req.method === 'HEAD' ? undefined : body);
}
