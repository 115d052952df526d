// The distribution API under /v2/: the version check and the token endpoint, and the catch-all
// that splits /v2/<name>/<area>/<reference> (the name itself may contain slashes), checks the
// name, authorizes the request (auth.ts: reads need pull, uploads and manifest PUTs push, DELETEs
// delete) and hands it to its area: manifests.ts, blobs.ts, uploads.ts, tags.ts, referrers.ts.
// Each area calls the service layer (service/) and only translates.
import express, { Router } from 'express';
import { isValidRepositoryName } from '../image/name.ts';
import { authorize, type AuthDeps, type Need } from './auth.ts';
import { deleteBlob, getBlob, type BlobsDeps } from './blobs.ts';
import { RegistryError } from './errors.ts';
import { deleteManifest, getManifest, putManifest, type ManifestsDeps } from './manifests.ts';
import { listReferrers } from './referrers.ts';
import { listTags, type TagsDeps } from './tags.ts';
import { issueToken } from './token.ts';
import { handleUpload, type UploadsDeps } from './uploads.ts';
import { versionCheck } from './version.ts';

export interface RegistryApiDeps extends AuthDeps, ManifestsDeps, BlobsDeps, UploadsDeps, TagsDeps {}

interface Route {
  name: string;
  kind: 'manifests' | 'blobs' | 'uploads' | 'tags' | 'referrers';
  /** Tag or digest; the upload id for uploads ('' when starting one). */
  reference: string;
}

/** Splits /v2/<name>/<kind>/<reference>; the name itself may contain slashes. */
export function parseRoute(path: string): Route | null {
  const upload = /^\/v2\/(.+)\/blobs\/uploads\/?([^/]*)$/.exec(path);
  if (upload) return { name: upload[1]!, kind: 'uploads', reference: upload[2]! };
  const match = /^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\/([^/]+)\/?$/.exec(path);
  if (match) {
    const [, name, kind, reference] = match as unknown as [string, string, Route['kind'], string];
    return { name, kind, reference };
  }
  return null;
}

export function registryApi(deps: RegistryApiDeps): Router {
  const router = Router();

  router.use((_req, res, next) => {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    next();
  });

  router.all('/v2/', (req, res) => versionCheck(deps, req, res));

  router.get('/v2/token', (req, res) => issueToken(deps, req, res));
  router.post('/v2/token', express.urlencoded({ extended: false, limit: '64kb' }), (req, res) => issueToken(deps, req, res));

  // A RegExp without groups: a named wildcard would be percent-decoded by the router, and a path
  // that does not decode (`/v2/a%zz/…`) would fail there as a 500 before this code could answer.
  router.all(/^\/v2\/./, async (req, res) => {
    const route = parseRoute(req.path);
    if (!route) throw new RegistryError('NAME_UNKNOWN', `no registry endpoint at ${req.path}`, undefined, 404);
    if (!isValidRepositoryName(route.name)) {
      throw new RegistryError('NAME_INVALID', `invalid repository name ${JSON.stringify(route.name)}`);
    }
    res.locals.route = `/v2/:name/${route.kind}`;
    const readOnly = req.method === 'GET' || req.method === 'HEAD';
    await authorize(deps, req, res, [needOf(route, req.method)]);
    if (route.kind === 'uploads' || !readOnly) {
      if (route.kind === 'uploads') return handleUpload(deps, req, res, route.name, route.reference);
      if (route.kind === 'manifests' && req.method === 'PUT') return putManifest(deps, req, res, route.name, route.reference);
      if (route.kind === 'manifests' && req.method === 'DELETE') return deleteManifest(deps, res, route.name, route.reference);
      if (route.kind === 'blobs' && req.method === 'DELETE') return deleteBlob(deps, res, route.name, route.reference);
      throw new RegistryError('UNSUPPORTED', `${req.method} ${route.kind} is not supported`);
    }
    if (route.kind === 'tags') {
      if (route.reference !== 'list') throw new RegistryError('NAME_UNKNOWN', `no registry endpoint at ${req.path}`, undefined, 404);
      return listTags(deps, req, res, route.name);
    }
    if (route.kind === 'blobs') return getBlob(deps, req, res, route.reference);
    if (route.kind === 'referrers') return listReferrers(deps, req, res, route.name, route.reference);
    return getManifest(deps, req, res, route.name, route.reference);
  });

  return router;
}

/** The actions a request needs: reads pull, DELETEs delete, everything else (uploads, PUTs) push. */
function needOf(route: Route, method: string): Need {
  if (route.kind !== 'uploads' && (method === 'GET' || method === 'HEAD')) return { name: route.name, actions: ['pull'] };
  if (route.kind !== 'uploads' && method === 'DELETE') return { name: route.name, actions: ['delete'] };
  return { name: route.name, actions: ['push'], scope: ['pull', 'push'] };
}
