/**
 * Who is calling, as established by a plugin's onRequest hook (operator token, peer certificate),
 * kept beside the request rather than on it (no global request decoration). Keyed by the
 * fastify request object.
 */
const operators = new WeakMap<object, string>();
const peers = new WeakMap<object, string>();

export const setOperator = (req: object, operatorId: string): void => {
  operators.set(req, operatorId);
};
export const setPeer = (req: object, smId: string): void => {
  peers.set(req, smId);
};

/** The authenticated operator; a route without the operator hook is a programming error. */
export function operatorOf(req: object): string {
  const id = operators.get(req);
  if (id === undefined) throw new Error('operator route without operator authentication');
  return id;
}

export function peerOf(req: object): string {
  const id = peers.get(req);
  if (id === undefined) throw new Error('peer route without peer authentication');
  return id;
}
