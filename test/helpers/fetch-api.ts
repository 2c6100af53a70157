/**
 * The service's API called over real HTTP, as a client program would: fetch with the key as a
 * bearer token and a JSON body when there is one. For tests that run a listening service.
 */

export interface FetchedAnswer {
  readonly status: number;
  readonly text: string;
  /** The body as JSON, null when empty; read on demand, so a non-JSON error text can be shown. */
  readonly body: any;
}

export async function fetchApi(
  base: string,
  key: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<FetchedAnswer> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    text,
    get body(): any {
      return text === '' ? null : JSON.parse(text);
    },
  };
}
