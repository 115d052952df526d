#!/usr/bin/env node
// Node 24 runs the TypeScript sources directly (type stripping); this package is not compiled.
import '../src/main.ts';
