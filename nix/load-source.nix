# Loads the configured package set. srcArgs is a JSON string (it arrives with
# --argstr, so nothing from configuration or requests is spliced into Nix code):
#
#   path     { "path": "/abs/dir" }
#   channel  { "channel": "nixos-24.05", "baseUrl": "https://github.com/NixOS/nixpkgs/archive" }
#   git      { "url": "...", "ref": "...", "rev": "<40 hex>" }   (rev optional)
#
# For git, `ref` is a full ref name (refs/heads/x, refs/tags/x, HEAD) or a
# branch name; `latest` or empty is the default branch. Nix cannot tell
# branches from tags without asking the remote, and without a rev it reuses a
# fetched branch for tarball-ttl (an hour), so the registry resolves the tag
# with `git ls-remote` first and passes a full ref plus the commit it points
# to; see registry/src/nix/git-ref.ts. A commit comes with the trusted ref that
# reaches it (registry/src/nix/git-trust.ts): Nix fetches only that ref, never
# every ref of the repository (`allRefs`, which on GitHub includes every pull
# request's commits), and a bare commit as `ref` is refused.
{ srcType, srcArgs, system }:

let
  args = builtins.fromJSON srcArgs;

  isCommit = s: builtins.match "[0-9a-f]{40}" s != null;

  # nixpkgs is a function of `system`; a plain attribute set is accepted too.
  importSet = src:
    let set = import src; in
    if builtins.isFunction set then set { inherit system; } else set;

  absolutePath = p:
    if builtins.substring 0 1 p == "/" then /. + p
    else throw "package source path must be absolute, got '${p}'";

  gitRef = ref:
    if ref == "HEAD" || builtins.substring 0 5 ref == "refs/" then ref else "refs/heads/${ref}";

  # Without a ref, Nix 2.8 fetches `master` from a remote (not the remote's
  # HEAD) and takes a local repository's work tree, uncommitted changes and
  # all; `ref = "HEAD"` means the default branch's commit in both cases. With
  # a rev, Nix fetches the ref and checks out the rev.
  gitSpec =
    let
      ref = args.ref or "";
      rev = args.rev or "";
      url = { inherit (args) url; };
      fullRef = if ref == "" || ref == "latest" then "HEAD" else gitRef ref;
    in
    if isCommit ref then
      throw "a commit is built only with the trusted ref that reaches it, got the bare commit '${ref}'"
    else
      url // { ref = fullRef; } // (if rev != "" then { inherit rev; } else { });

in
if srcType == "path" then
  importSet (absolutePath args.path)
else if srcType == "channel" then
  importSet (builtins.fetchTarball "${args.baseUrl}/${args.channel}.tar.gz")
else if srcType == "git" then
  importSet (builtins.fetchGit gitSpec)
else
  throw "unknown package source type '${srcType}'"
