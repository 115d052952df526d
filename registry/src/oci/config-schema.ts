// Validation of a declared image config arriving as JSON (the CLI's --config-json, which the
// operator fills from a NixImage's spec.config).
import { z } from 'zod';
import type { ImageConfigOverrides } from './image.ts';

export const imageConfigSchema: z.ZodType<ImageConfigOverrides> = z
  .object({
    entrypoint: z.array(z.string()).optional(),
    cmd: z.array(z.string()).optional(),
    env: z.array(z.object({ name: z.string().min(1), value: z.string() }).strict()).optional(),
    workingDir: z.string().optional(),
    user: z.string().optional(),
    exposedPorts: z.array(z.string().regex(/^[0-9]{1,5}(\/(tcp|udp|sctp))?$/, 'expected a port such as 8080/tcp')).optional(),
    labels: z.record(z.string(), z.string()).optional(),
  })
  .strict();
