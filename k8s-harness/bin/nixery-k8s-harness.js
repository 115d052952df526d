#!/usr/bin/env node
// Node 24 runs the TypeScript sources directly (type stripping); the e2e workspace is not compiled.
import '../main.ts';
