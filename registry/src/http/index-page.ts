// Nixery's index page: what this registry is, how to pull from it, recent build errors.
import type { PackageSource } from '../config/package-source.ts';
import type { RecentError } from './recent-errors.ts';

export interface IndexPageInput {
  host: string;
  source: PackageSource;
  sourceIsDefault: boolean;
  storage: string;
  /** 'hidden': anonymous pulls are off, and the names of failed images are not everyone's business. */
  errors: readonly RecentError[] | 'hidden';
}

export function describeSource(source: PackageSource, isDefault = false): string {
  switch (source.type) {
    case 'channel':
      return `Nix channel ${source.channel}`;
    case 'git':
      return `git repository ${source.url} (the image tag selects the branch, tag or commit)`;
    case 'path':
      return isDefault ? `the bundled offline package set (${source.path})` : `local package set ${source.path}`;
  }
}

export function renderIndexPage(input: IndexPageInput): string {
  const h = escapeHtml;
  const errors = input.errors === 'hidden'
    ? '<p>Build errors are not listed: this registry needs credentials to pull.</p>'
    : input.errors.length
    ? `<table><tr><th>time</th><th>image</th><th>error</th></tr>${input.errors
        .map((e) => `<tr><td>${h(e.time)}</td><td><code>${h(e.image)}</code></td><td>${h(e.message)}</td></tr>`)
        .join('')}</table>`
    : '<p>No build errors so far.</p>';
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Nixery</title>
<style>body{font-family:sans-serif;max-width:52em;margin:2em auto;padding:0 1em;line-height:1.5}code,pre{background:#f3f3f3;padding:.1em .3em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}</style>
</head>
<body>
<h1>Nixery</h1>
<p>A container registry that builds images with Nix on demand. The image name is the package list:
each path component is a package, and the image is built and layered the first time it is pulled.</p>
<h2>Pulling</h2>
<pre>docker pull ${h(input.host)}/shell/git/htop:latest
skopeo copy --src-tls-verify=false docker://${h(input.host)}/hello:latest oci:hello</pre>
<ul>
<li><code>shell</code> at the start adds bash, coreutils, moreutils and nano; the default command is then <code>bash</code>.</li>
<li><code>arm64</code> at the start builds for aarch64-linux.</li>
<li>Nested attributes use dots (<code>haskellpackages.pandoc</code>); names are matched case-insensitively,
and a name starting with a digit also finds its <code>_</code>-prefixed attribute.</li>
<li>Every image contains CA certificates (<code>SSL_CERT_FILE</code> is set) and <code>/etc/services</code>.</li>
</ul>
<h2>This registry</h2>
<ul><li>Packages: ${h(describeSource(input.source, input.sourceIsDefault))}</li><li>Storage: ${h(input.storage)}</li></ul>
<h2>Recent build errors</h2>
${errors}
</body>
</html>
`;
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
