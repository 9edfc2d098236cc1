/**
 * The signal an access of a missing page throws (post-copy, presence-map.ts):
 * like a page fault, it is raised before the access touches anything, and
 * the vCPU loop catches it, waits for the page and runs the step again
 * (workload.ts: steps are restartable). Not an error: no stack is taken, and
 * nothing but the vCPU loop should ever see one.
 */
export class MissingPage {
  constructor(readonly page: number) {}
}

export function isMissingPage(x: unknown): x is MissingPage {
  return x instanceof MissingPage;
}
