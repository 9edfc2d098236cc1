/** A promise that resolves after `ms` milliseconds (polling loops of the client side and the commands). */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
