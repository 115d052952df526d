# Turns a package list into derivations. Evaluate with
#
#   nix-instantiate --eval --strict --json --read-write-mode resolve.nix \
#     --argstr packagesJson '["shell","git"]' --argstr srcType path \
#     --argstr srcArgs '{"path":"/some/nixpkgs"}' --argstr system x86_64-linux
#
# Package names are data (a JSON string), never Nix code. Only builtins are
# used, so this works against real nixpkgs and against the offline set alike.
#
# Result:
#   missing   names that address no derivation
#   failed    names that address something whose evaluation threw or failed
#             an assertion (nixpkgs does that for broken, unfree or insecure
#             packages and for removed aliases); also not found, but told apart
#             so that the reason can be logged
#   packages  [{ name, attrPath, drvPath, outputs = { <output> = <store path>; } }]
#             in request order; `outputs` are those an environment would get
{ packagesJson, srcType, srcArgs, system, loadSource ? ./load-source.nix }:

let
  inherit (builtins)
    attrNames concatLists deepSeq filter fromJSON groupBy hasAttr head isAttrs isString
    listToAttrs map match replaceStrings split tail tryEval;

  pkgs = import loadSource { inherit srcType srcArgs system; };

  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  toLower = replaceStrings upper lower;

  # Lower-cased name -> the attribute names that fold to it, in sorted order.
  lowerIndex = set: groupBy toLower (attrNames set);
  topIndex = lowerIndex pkgs;

  isDerivation = v: isAttrs v && (v.type or null) == "derivation";

  # Image names are lower case and cannot say `_7zip`, so each path segment is
  # looked up as: given, then any attribute equal to it ignoring case, then
  # the same two with an underscore prefix if it starts with a digit.
  # attrNames is sorted, so case-folded ties go to the lexicographically
  # smallest name. The search backtracks: a segment that matches but leads
  # nowhere gives way to the next candidate.
  variants = seg: [ seg ] ++ (if match "[0-9].*" seg != null then [ "_${seg}" ] else [ ]);

  # A search result is null (nothing there), { value, attrPath } (found), or
  # { failed } (an attribute matched but threw when evaluated). A find beats
  # a failure, and a failure beats nothing, so that `removedAlias` is reported
  # as failing rather than as absent.
  firstFound = tries: firstFound' tries null;
  firstFound' = tries: failure:
    if tries == [ ] then failure
    else
      let r = (head tries) null; in
      if r != null && r ? value then r
      else firstFound' (tail tries) (if failure == null then r else failure);

  find = value: attrPath: segs:
    if segs == [ ] then
      (if isDerivation value then { inherit value attrPath; } else null)
    else if !(isAttrs value) then null
    else
      let
        seg = head segs;
        descend = n:
          let r = tryEval value.${n}; in
          if r.success then find r.value (attrPath ++ [ n ]) (tail segs) else { failed = attrPath ++ [ n ]; };
        exact = v: _: if hasAttr v value then descend v else null;
        # Lists are strict in Nix, so the case-folded lookup sits behind a
        # function and runs only when the exact name found nothing. The index
        # of the top level (tens of thousands of names in nixpkgs) is built
        # once per evaluation and shared by all requested names.
        folded = v: _:
          let
            index = if attrPath == [ ] then topIndex else lowerIndex value;
            names = filter (n: n != v) (index.${toLower v} or [ ]);
          in
          firstFound (map (n: _: descend n) names);
      in
      firstFound (concatLists (map (v: [ (exact v) (folded v) ]) (variants seg)));

  segments = name: filter isString (split "\\." name);

  # What `nix-env -i` / buildEnv would install: a selected output
  # (`pkg.bin`), else meta.outputsToInstall, else the default output.
  installedOutputs = drv:
    let
      declared = drv.outputs or [ "out" ];
      wanted =
        if drv.outputSpecified or false then [ drv.outputName ]
        else drv.meta.outputsToInstall or [ (drv.outputName or "out") ];
      present = filter (o: hasAttr o drv && builtins.elem o declared) wanted;
    in
    if present == [ ] then [ (drv.outputName or "out") ] else present;

  resolve = name:
    let
      found = tryEval (
        let r = find pkgs [ ] (segments name); in
        if r == null || r ? failed then r
        else
          let
            info = {
              inherit name;
              inherit (r) attrPath;
              drvPath = r.value.drvPath;
              outputs = listToAttrs (map
                (o: { name = o; value = r.value.${o}.outPath; })
                (installedOutputs r.value));
            };
          in
          deepSeq info info
      );
    in
    if !found.success || (found.value != null && found.value ? failed) then { status = "failed"; inherit name; }
    else if found.value == null then { status = "missing"; inherit name; }
    else { status = "ok"; package = found.value; };

  results =
    if !(isAttrs pkgs) then throw "the package source did not evaluate to an attribute set"
    else map resolve (fromJSON packagesJson);

  namesWith = status: map (r: r.name) (filter (r: r.status == status) results);
in
{
  missing = namesWith "missing";
  failed = namesWith "failed";
  packages = map (r: r.package) (filter (r: r.status == "ok") results);
}
