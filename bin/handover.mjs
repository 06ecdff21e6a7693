#!/usr/bin/env node
// Launcher: runs the TypeScript CLI in this process through tsx's loader, so no build step is
// needed and signals (Ctrl-C, SIGTERM from a service manager) reach the command itself.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src/cli/main.ts');
runCli(process.argv.slice(2));
